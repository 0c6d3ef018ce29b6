"""ViTMatte's weights from local files: a transformers folder, a state dict, or the release's.

Accepted (nothing is downloaded):

- a ``save_pretrained`` folder (``config.json`` and ``model.safetensors`` or
  ``pytorch_model.bin``), as ``hustvl/vitmatte-small-composition-1k`` is stored;
- one ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` state dict in transformers' key names
  (``backbone.*``, ``decoder.*``), or a mattekit ViTMatte run's Lightning ``.ckpt``;
- the release's own checkpoints (``ViTMatte_S_Com.pth``, ...; hustvl/ViTMatte's key names),
  renamed as transformers' conversion script renames them.

Files are read weights-only and memory-mapped (:func:`~mattekit.weights.files.load_state_dict`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from mattekit.models.vitmatte.torch_model import ViTMatteNet
from mattekit.weights.files import load_state_dict

logger = logging.getLogger(__name__)

# A save_pretrained folder holds one of these (safetensors first, as transformers reads it).
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# hustvl/ViTMatte key fragment -> transformers', in order (transformers' convert_vitmatte_to_hf).
RELEASE_RENAMES = (
    ("backbone.pos_embed", "backbone.embeddings.position_embeddings"),
    ("backbone.patch_embed.proj.", "backbone.embeddings.projection."),
    ("backbone.blocks.", "backbone.encoder.layer."),
    (".attn.", ".attention."),
    ("fusion_blks", "fusion_blocks"),
    (".bn.", ".batch_norm."),
)
# Structure fields of a folder's config.json checked against the variant, by (section, key).
CONFIG_FIELDS = (
    (None, "hidden_size"),
    ("backbone_config", "num_hidden_layers"),
    ("backbone_config", "num_attention_heads"),
    ("backbone_config", "window_block_indices"),
)


def from_release(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The release's key names (``backbone.blocks.0.attn.qkv.weight``) as transformers'
    (``backbone.encoder.layer.0.attention.qkv.weight``); other keys unchanged."""
    renamed = {}
    for key, value in state.items():
        for old, new in RELEASE_RENAMES:
            key = key.replace(old, new)
        renamed[key] = value
    return renamed


def _check_config(folder: Path, net: ViTMatteNet) -> None:
    """Raise naming ``config.json`` when the folder's structure is not the variant's."""
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: a transformers folder needs config.json")
    stored = json.loads(path.read_text())
    own = net.vitmatte.config.to_dict()
    for section, key in CONFIG_FIELDS:
        theirs = stored.get(section, {}) if section else stored
        mine = own.get(section, {}) if section else own
        if key in theirs and theirs[key] != mine[key]:
            name = f"{section}.{key}" if section else key
            raise ValueError(
                f"{path}: {name} is {theirs[key]}, but variant {net.variant!r} has {mine[key]}"
            )


def weights_file(path: Path, net: ViTMatteNet) -> Path:
    """The weights file of ``path``: itself, or a folder's (its ``config.json`` checked)."""
    if not path.is_dir():
        return path
    _check_config(path, net)
    for name in FOLDER_WEIGHTS:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path}: no {' or '.join(FOLDER_WEIGHTS)} in the folder")


def load_vitmatte_weights(net: ViTMatteNet, path: str | Path) -> None:
    """Copy ViTMatte weights into ``net`` (every tensor, same shapes; see the module docstring).

    Raises:
        FileNotFoundError naming the missing file; ValueError naming the file and the first
        missing / unexpected keys, or the shapes that differ (another size's weights).
    """
    file = weights_file(Path(path), net)
    state = load_state_dict(file)
    # A mattekit run's checkpoint holds ViTMatteNet's names (load_state_dict removed "model.").
    if all(key.startswith("vitmatte.") for key in state):
        state = {key.removeprefix("vitmatte."): value for key, value in state.items()}
    state = from_release(state)
    own = net.vitmatte.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if missing or unexpected:
        raise ValueError(
            f"{file} does not fit ViTMatte ({net.variant}): missing {missing[:5]} "
            f"({len(missing)} in all), unexpected {unexpected[:5]} ({len(unexpected)} in all)"
        )
    wrong = {
        k: (tuple(v.shape), tuple(own[k].shape))
        for k, v in state.items()
        if v.shape != own[k].shape
    }
    if wrong:
        shapes = dict(list(wrong.items())[:3])
        raise ValueError(
            f"{file}: shapes differ from variant {net.variant!r}'s (file, model): {shapes}"
        )
    net.vitmatte.load_state_dict(state)
    logger.info("ViTMatte (%s): %d tensors loaded from %s", net.variant, len(state), file)
