"""SDMatte's weights: the official release's checkpoints and local Stable Diffusion folders.

Official ``SDMatte.pth`` / ``SDMatte_plus.pth`` / ``LiteSDMatte.pth`` (and their safetensors
copies) hold one state dict, possibly wrapped in ``{"model": ...}``, with the prefixes ``unet.``,
``vae.`` and ``text_encoder.``; SDMatte's additions sit inside the UNet. mattekit keeps them
beside it:

=============================  ===============================================
official                       mattekit (:class:`SDMatteNet`)
=============================  ===============================================
``unet.aux_conv_in.*``          ``visual_prompt_projection.*``
``unet.point_embedding.*``      ``coordinate_embedding.points.*``
``unet.bbox_embedding.*``       ``coordinate_embedding.box.*``
``unet.*`` / ``vae.*``          ``unet.*`` / ``vae.*``
``text_encoder.*``              ``text_context`` (the empty caption, computed once)
=============================  ===============================================

Files are read weights-only and memory-mapped (:func:`~mattekit.weights.files.load_state_dict`).
A family given ``checkpoint`` builds its network on the meta device and loads with
``assign=True``: the parameters *are* the mapped tensors (pages read from disk as they are
used), with no random initialisation and no second copy of a 12 GB file in RAM.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import Tensor

from mattekit.models.sdmatte.text_context import empty_caption_context, placeholder_context
from mattekit.models.sdmatte.torch_model import SDMatteNet
from mattekit.weights.files import load_state_dict, map_prefixes

logger = logging.getLogger(__name__)

# official prefix -> mattekit prefix; the first match wins, so the UNet's additions come first.
OFFICIAL_PREFIXES = {
    "unet.aux_conv_in.": "visual_prompt_projection.",
    "unet.point_embedding.": "coordinate_embedding.points.",
    "unet.bbox_embedding.": "coordinate_embedding.box.",
    "unet.": "unet.",
    "vae.": "vae.",
}
TEXT_ENCODER_PREFIX = "text_encoder."


def is_official(state: Mapping[str, Tensor]) -> bool:
    """True for the release's layout (SDMatte's modules inside the UNet)."""
    return any(k.startswith(("unet.aux_conv_in.", "unet.point_embedding.")) for k in state) or (
        any(k.startswith(TEXT_ENCODER_PREFIX) for k in state)
    )


def from_official(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(network state, text encoder state)`` from an official state dict (``module.`` of a
    data-parallel save stripped; unknown keys are an error, not a silent drop).

    Raises:
        ValueError naming keys that belong to no known part.
    """
    network: dict[str, Tensor] = {}
    text: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(TEXT_ENCODER_PREFIX):
            text[key[len(TEXT_ENCODER_PREFIX) :]] = value
            continue
        for source, target in OFFICIAL_PREFIXES.items():
            if key.startswith(source):
                network[target + key[len(source) :]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"keys outside unet. / vae. / text_encoder.: {unknown[:5]}")
    return network, text


def to_official(
    network_state: Mapping[str, Tensor], text_encoder_state: Mapping[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """The release's layout of a :class:`SDMatteNet` state dict (the inverse of
    :func:`from_official`; ``text_context`` has no official form and is left out)."""
    inverse = {target: source for source, target in OFFICIAL_PREFIXES.items()}
    state: dict[str, Tensor] = {}
    for key, value in network_state.items():
        if key == "text_context":
            continue
        target = next((t for t in inverse if key.startswith(t)), None)
        if target is None:
            raise ValueError(f"{key!r} belongs to no part of the release's layout")
        state[inverse[target] + key[len(target) :]] = value
    for key, value in (text_encoder_state or {}).items():
        state[TEXT_ENCODER_PREFIX + key] = value
    return state


def text_encoder_state(path: str | Path) -> dict[str, Tensor]:
    """The CLIP text encoder weights of an official checkpoint (its ``text_encoder.`` entries,
    prefix removed); empty when the file has none (a mattekit run never stores one). A
    safetensors file is read for those entries only.

    Raises:
        FileNotFoundError / ValueError naming the file (:func:`load_state_dict`).
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), "pt") as file:
            names = file.keys()  # the header only: no tensor is read yet
            state = {
                k.removeprefix("module."): file.get_tensor(k)
                for k in names
                if k.removeprefix("module.").startswith(TEXT_ENCODER_PREFIX)
            }
    else:
        state = {k.removeprefix("module."): v for k, v in load_state_dict(path).items()}
    return map_prefixes(state, {TEXT_ENCODER_PREFIX: ""})


def load_sdmatte_weights(net: SDMatteNet, path: str | Path, assign: bool = False) -> None:
    """Load an official checkpoint or a mattekit SDMatte network (a run's ``.ckpt`` too).

    An official file's text encoder gives ``text_context``; without one the placeholder is used
    (said in the log).

    Args:
        assign: keep the file's (memory-mapped) tensors as the parameters: for a network built on
            the meta device.

    Raises:
        ValueError naming the file when its keys do not fit the network (missing or extra keys
        are listed).
    """
    state = load_state_dict(path)
    if is_official(state):
        state, text = from_official(state)
        if text:
            state["text_context"] = empty_caption_context(text)
        else:
            logger.info("%s: no text encoder in the file; the placeholder context is kept", path)
            width = net.unet.config.cross_attention_dim
            state["text_context"] = placeholder_context(width, net.text_context.shape[1])
    missing, unexpected = net.load_state_dict(state, strict=False, assign=assign)
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit this SDMatte (are the switches and variant the file's?): "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )


def load_stable_diffusion(
    folder: str | Path,
) -> tuple[UNet2DConditionModel, AutoencoderKL, Tensor]:
    """``(unet, vae, text_context)`` from a local diffusers Stable Diffusion 2 folder.

    The folder holds ``unet/`` and ``vae/`` (``config.json`` + weights), and optionally
    ``text_encoder/`` and ``tokenizer/``, as ``StableDiffusionPipeline.save_pretrained`` writes
    them; without ``text_encoder/`` the text context is a placeholder (said in the log). Nothing is
    downloaded.

    Raises:
        FileNotFoundError naming the folder or the missing part.
    """
    from mattekit.models.sdmatte.text_context import folder_caption_context
    from mattekit.weights.stable_diffusion import load_unet_and_vae

    folder = Path(folder)
    unet, vae = load_unet_and_vae(folder)
    if (folder / "text_encoder").is_dir():
        context = folder_caption_context(folder)
    else:
        logger.info("%s: no text_encoder/; a placeholder text context is used", folder)
        context = placeholder_context(unet.config.cross_attention_dim)
    return unet, vae, context
