"""Referring expressions as the cross-attention context of SDMatte's down and up blocks.

On RefMatte-RW100 the release tokenises each sample's referring expression (``data/dataset.py:74``,
the last of the image's expressions; ``modeling/SDMatte/meta_arch.py:176-187``: padded to 77
tokens, truncated), runs SD 2's CLIP text encoder on it (frozen, ``meta_arch.py:63``) and hands
the last hidden state to the UNet as ``encoder_hidden_states_2`` (``meta_arch.py:189-190``). That
is the context of the blocks whose ``use_encoder_hidden_states_list`` entry is False
(``utils/replace.py:367-377, 414-416``): the down and up blocks in its configs
(``[False, True, False]``, ``configs/SDMatte.py:43``); the mid block keeps the visual-prompt
tokens. Every other sample's caption is ``""`` (``data/dataset.py:96`` for RefMatte's training
images, ``947-950`` for sources without one), whose embedding is SDMatte's fixed ``text_context``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mattekit.models.sdmatte.text_context import (
    clip_text_model,
    folder_text_encoder,
    sd_text_config,
)
from mattekit.models.sdmatte.weights import text_encoder_state

if TYPE_CHECKING:
    from collections.abc import Callable

    from transformers import CLIPTextConfig, CLIPTextModel

logger = logging.getLogger(__name__)

# (width, layers, MLP width) of each variant's text encoder: SD 2's ViT-H-14 text tower without
# its last layer (stabilityai/stable-diffusion-2's text_encoder/config.json), and a tiny one as
# wide as the tiny UNet's cross-attention.
_TEXT_ENCODER_SHAPES = {"sd2": (1024, 23, 4096), "tiny": (32, 2, 64)}


def text_encoder_config(variant: str) -> CLIPTextConfig:
    """The CLIP text encoder structure of an SDMatte ``variant`` (``sd2`` or ``tiny``)."""
    if variant not in _TEXT_ENCODER_SHAPES:
        raise ValueError(f"variant must be one of {tuple(_TEXT_ENCODER_SHAPES)}, got {variant!r}")
    return sd_text_config(*_TEXT_ENCODER_SHAPES[variant])


def random_text_encoder(variant: str) -> CLIPTextModel:
    """A randomly initialised text encoder of the variant's size, the same at every build (seed
    0, the global random state untouched): a run rebuilt from its checkpoint gets it again."""
    from transformers import CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return CLIPTextModel(text_encoder_config(variant)).eval()


def load_referring_encoder(
    variant: str, files: list[str | None], folder: str | None
) -> CLIPTextModel:
    """SD 2's CLIP text encoder from the first source that holds one: the ``text_encoder.``
    entries of ``files`` (official checkpoints), then ``folder``'s ``text_encoder/`` (a diffusers
    Stable Diffusion 2 folder); else a random one (:func:`random_text_encoder`), for a network
    that starts random and for the tiny variant, which no released encoder fits.

    Raises:
        ValueError naming the sources when an ``sd2`` network starts from some but none holds
        a text encoder, or when its size is not the variant's.
    """
    config = text_encoder_config(variant)
    given = [str(path) for path in files if path is not None]
    for path in given:
        if state := text_encoder_state(path):
            return _load(state, config, path)
    if folder is not None:
        given.append(str(folder))
        if (Path(folder) / "text_encoder").is_dir():
            return _load(folder_text_encoder(Path(folder)).state_dict(), config, folder)
    if given and variant != "tiny":
        raise ValueError(
            f"referring_text needs SD 2's CLIP text encoder: none in {given} (an official "
            "checkpoint's text_encoder. entries or a diffusers folder's text_encoder/)"
        )
    logger.info("SDMatte %s: random weights, a random text encoder for referring text", variant)
    return random_text_encoder(variant)


def _load(state: dict[str, Tensor], config: CLIPTextConfig, source: str) -> CLIPTextModel:
    try:
        return clip_text_model(state, config)
    except ValueError as error:
        raise ValueError(f"{source}: {error} (not the {config.hidden_size}-wide encoder)") from None


@torch.no_grad()
def referring_context(
    encoder: CLIPTextModel,
    tokenizer: Callable[[list[str]], Tensor],
    texts: list[str],
    empty: Tensor,
) -> Tensor | None:
    """B x T x D cross-attention contexts: each non-empty text's last hidden state, ``empty``
    (1 x T x D, the empty caption's) for the empty ones; None when every text is empty.

    A text of spaces counts as empty: the tokenizer drops the spaces, as the release's does.
    """
    given = [i for i, text in enumerate(texts) if text.strip()]
    if not given:
        return None
    device = next(encoder.parameters()).device
    ids = tokenizer([texts[i] for i in given]).to(device)
    encoded = encoder(input_ids=ids).last_hidden_state
    context = empty.expand(len(texts), -1, -1).clone()
    context[given] = encoded.to(context.dtype)
    return context
