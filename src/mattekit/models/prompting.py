"""Choosing which prompt each sample shows the model, shared by the interactive families.

The DataModule samples every prompt kind for every sample; a family decides which ones its model
sees. The training path draws a kind per sample (:func:`random_prompt_kinds`; SDMatte picks point,
box or mask at random); inference uses one fixed kind (the family's ``eval_prompt``) so that
numbers are comparable across runs and families.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.nn.prompt_maps import box_mask

PromptKind = Literal["points", "box", "mask", "text", "none"]
#: Every prompt kind: clicks, a box, a coarse mask, a referring expression (``batch.text``), and
#: nothing at all (automatic matting). A family declares the ones it takes in
#: ``accepted_prompts``; the registry shows them.
PROMPT_KINDS: tuple[str, ...] = ("points", "box", "mask", "text", "none")
# The kinds rasterised into prompt maps, in channel order.
SPATIAL_KINDS: tuple[str, ...] = ("points", "box", "mask")


def check_prompt_kinds(kinds: list[str], eval_kind: str, accepted: tuple[str, ...]) -> None:
    """Raise a ValueError naming the argument when a kind is unknown or not ``accepted``."""
    allowed = tuple(k for k in PROMPT_KINDS if k in accepted)
    if not kinds or any(k not in allowed for k in kinds):
        raise ValueError(f"prompt_kinds must be a non-empty subset of {allowed}, got {kinds}")
    if eval_kind not in allowed:
        raise ValueError(f"eval_prompt must be one of {allowed}, got {eval_kind!r}")


def random_prompt_kinds(batch_size: int, kinds: list[str]) -> list[str]:
    """A kind per sample, drawn uniformly among ``kinds`` (the training path)."""
    picks = torch.randint(len(kinds), (batch_size,)).tolist()
    return [kinds[p] for p in picks]


def prompt_maps(batch: MattingBatch, kinds: list[str]) -> Tensor:
    """Rasterise each sample's chosen prompt into one channel per spatial kind, others zero.

    A sample prompted by ``text`` or ``none`` gets three zero channels.

    Returns:
        B x 3 x H x W: channel 0 the Gaussian point map, 1 the box mask, 2 the coarse mask.
    """
    height, width = batch.image.shape[-2:]
    maps = torch.cat(
        [batch.point_map, box_mask(batch.box, (height, width)), batch.coarse_mask], dim=1
    )
    chosen = torch.tensor(
        [[kind == k for k in SPATIAL_KINDS] for kind in kinds], device=maps.device, dtype=maps.dtype
    )
    return maps * chosen[:, :, None, None]
