"""The six prompt kinds and the choice of a kind per sample.

Every place that needs to know the kinds (the batch, the families, ``matte``, the demo, pictures,
the export, the benchmark's store, the tests) reads them from :data:`KINDS`; nothing else keeps a
list of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import torch
from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.prompts.kind import PromptKind

POINTS = PromptKind(
    "points",
    batch_fields=("points", "point_labels", "point_map"),
    raw_fields=("points",),
    map_field="point_map",
    flag="--point",
    json_key="point",
    widget="clicks",
    drawn_fields=("point_labels",),
    # Clicks cover no area: the floor is the box they were drawn in, as for boxes.
    floor_field="box",
    description="positive / negative clicks (x, y, label)",
)
BOX = PromptKind(
    "box",
    batch_fields=("box", "box_map"),
    raw_fields=("box",),
    map_field="box_map",
    flag="--box",
    json_key="bbox",
    widget="box",
    drawn_fields=("box",),
    floor_field="box",
    description="a bounding box (x0, y0, x1, y1)",
)
MASK = PromptKind(
    "mask",
    batch_fields=("coarse_mask",),
    raw_fields=("coarse_mask",),
    map_field="coarse_mask",
    flag="--mask",
    json_key="mask",
    widget="upload",
    drawn_fields=("coarse_mask",),
    floor_field="coarse_mask",
    description="a coarse binary mask",
)
TRIMAP = PromptKind(
    "trimap",
    batch_fields=("trimap",),
    raw_fields=("trimap",),
    map_field="trimap",
    flag="--trimap",
    json_key="trimap",
    widget="upload",
    drawn_fields=("trimap",),
    # The trimap read as an alpha: 1 on known foreground, 0.5 on the unknown band.
    floor_field="trimap",
    description="a trimap (0 background, 128 unknown, 255 foreground)",
)
TEXT = PromptKind(
    "text",
    batch_fields=("text",),
    raw_fields=("text",),
    map_field=None,
    flag="--text",
    json_key="text",
    widget="textbox",
    drawn_fields=("text",),
    # A text family is compared against the box of the object it refers to.
    floor_field="box",
    description="a referring expression",
)
NONE = PromptKind(
    "none",
    batch_fields=(),
    raw_fields=(),
    map_field=None,
    flag=None,
    json_key=None,
    widget=None,
    drawn_fields=(),
    floor_field=None,
    description="no prompt (automatic matting)",
)

#: A kind's name as a type (argument parsers list the choices); equal to :data:`KINDS`' keys.
KindName = Literal["text", "trimap", "mask", "box", "points", "none"]

#: Every kind by name, in the order ``auto`` prefers them when a user's prompt has several.
KINDS: dict[str, PromptKind] = {kind.name: kind for kind in (TEXT, TRIMAP, MASK, BOX, POINTS, NONE)}
#: Kinds rasterised into the spatial families' three prompt channels, in channel order.
SPATIAL_KINDS: tuple[str, ...] = ("points", "box", "mask")


#: Each stored field's map in a batch (the box as its rasterised map), from the kinds.
_BATCH_MAPS = {kind.raw_fields[0]: kind.map_field for kind in KINDS.values() if kind.map_field}


def batch_floor(batch: MattingBatch, kind: str) -> Tensor | None:
    """The floor row's alpha of ``kind`` in a batch: B x 1 x H x W, or None (no floor)."""
    name = get_kind(kind).floor_field
    return None if name is None else getattr(batch, _BATCH_MAPS[name])


def get_kind(name: str) -> PromptKind:
    """The kind called ``name``.

    Raises:
        ValueError naming the known kinds.
    """
    if name not in KINDS:
        raise ValueError(f"unknown prompt kind {name!r}; the kinds are {', '.join(KINDS)}")
    return KINDS[name]


def check_kinds(
    prompt_kinds: Sequence[str], eval_prompt: str, accepted: Sequence[str], family: str
) -> None:
    """Raise a ValueError naming the argument when a kind is unknown or not ``accepted``."""
    unknown = [k for k in [*prompt_kinds, eval_prompt] if k not in KINDS]
    if unknown:
        get_kind(unknown[0])
    if not prompt_kinds or any(k not in accepted for k in prompt_kinds):
        raise ValueError(f"prompt_kinds: {family} takes {list(accepted)}, got {list(prompt_kinds)}")
    if eval_prompt not in accepted:
        raise ValueError(f"eval_prompt: {family} takes {list(accepted)}, got {eval_prompt!r}")


def with_kind(batch: MattingBatch, kind: str) -> MattingBatch:
    """``batch`` with every sample to be run with ``kind``."""
    return replace(batch, prompt_kind=[kind] * len(batch))


def random_kinds(batch_size: int, kinds: Sequence[str]) -> list[str]:
    """A kind per sample, drawn uniformly among ``kinds`` (the training path)."""
    picks = torch.randint(len(kinds), (batch_size,)).tolist()
    return [kinds[p] for p in picks]


def prompt_maps(batch: MattingBatch, kinds: Sequence[str]) -> Tensor:
    """Each sample's prompt (``kinds``: one per sample) in one channel per spatial kind, the
    channels of the other kinds zero.

    A sample prompted by a non-spatial kind (``text``, ``trimap``, ``none``) gets three zero
    channels.

    Returns:
        B x 3 x H x W: channel 0 the point map, 1 the box map, 2 the coarse mask.
    """
    maps = torch.cat([getattr(batch, KINDS[k].map_field) for k in SPATIAL_KINDS], dim=1)
    chosen = torch.tensor(
        [[kind == k for k in SPATIAL_KINDS] for kind in kinds],
        device=maps.device,
        dtype=maps.dtype,
    )
    return maps * chosen[:, :, None, None]
