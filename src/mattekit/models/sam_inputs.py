"""What a SAM-based model is fed, in segment-anything's own conventions (ZIM now, SAMA next).

One place for the conventions that the official releases (segment-anything's predictor and ONNX
export, naver-ai/ZIM) follow and that a model trained here must see in training, evaluation and
interactive use alike:

- **Image**: RGB normalised with SAM's pixel mean / std, *then* padded with zeros: letterbox
  padding is 0 in normalised space, not black RGB (which would be ``-mean / std``).
- **Prompts** as sparse tokens: a box alone is two corner points labelled 2 (top-left) and 3
  (bottom-right) with no padding point; clicks (1 positive, 0 negative) are followed by exactly
  one padding point (label -1). So samples differ in token count, and a batch is decoded in
  groups of equal count (the image encoder still runs once for the whole batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mattekit.data.sample import MattingBatch

PIXEL_MEAN = (123.675, 116.28, 103.53)  # SAM's, on 0-255 RGB
PIXEL_STD = (58.395, 57.12, 57.375)
BOX_LABELS = (2, 3)  # top-left, bottom-right corner
PADDING_LABEL = -1
SAM_PROMPT_KINDS = ("points", "box")


@dataclass
class SamPromptGroup:
    """Samples of a batch that share one token count, decoded together.

    Attributes:
        indices: G positions in the batch (long).
        coords: G x K x 2 ``(x, y)`` token coordinates in model-input pixels.
        labels: G x K token labels (1 / 0 clicks, -1 padding, 2 / 3 box corners).
    """

    indices: Tensor
    coords: Tensor
    labels: Tensor


def normalize(images: Tensor) -> Tensor:
    """B x 3 x H x W RGB in [0, 1] -> SAM-normalised (per channel ``(255 x - mean) / std``)."""
    mean = images.new_tensor(PIXEL_MEAN).view(-1, 1, 1)
    std = images.new_tensor(PIXEL_STD).view(-1, 1, 1)
    return (images * 255 - mean) / std


def sam_image(images: Tensor, content_size: Tensor, size: int) -> Tensor:
    """A batch's images as a SAM image encoder takes them.

    Normalises, sets everything outside each sample's content (the top-left ``h x w``) to 0,
    as SAM pads after normalising, then resizes to ``size x size`` (antialiased bilinear) when
    the batch has another size. Zeroing before resizing keeps the output independent of the
    padding's pixel values; when the batch is already ``size`` it is exactly SAM's input.

    Args:
        images: B x 3 x H x W RGB in [0, 1].
        content_size: B x 2 ``(h, w)`` of the content; the rest is letterbox padding.
        size: the model's square input side.

    Returns:
        B x 3 x size x size.
    """
    height, width = images.shape[-2:]
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    content_size = content_size.to(images.device)
    inside = (rows[None, :, None] < content_size[:, 0, None, None]) & (
        cols[None, None, :] < content_size[:, 1, None, None]
    )  # B x H x W
    normalised = normalize(images) * inside[:, None].to(images.dtype)
    if (height, width) == (size, size):
        return normalised
    return F.interpolate(
        normalised, (size, size), mode="bilinear", align_corners=False, antialias=True
    )


def sam_tokens(
    points: Tensor, point_labels: Tensor, box: Tensor, kind: str
) -> tuple[Tensor, Tensor]:
    """One sample's prompt as SAM's sparse tokens.

    Args:
        points: N x 2 ``(x, y)`` clicks in model-input pixels.
        point_labels: N; 1 positive, 0 negative, -1 padding (dropped, wherever it is).
        box: 4 ``(x0, y0, x1, y1)`` in model-input pixels; corners are sorted.
        kind: ``"box"`` (the box alone) or ``"points"`` (the clicks).

    Returns:
        K x 2 coordinates and K labels: ``[top-left, bottom-right]`` with labels ``[2, 3]`` for a
        box; the clicks plus one padding point ``(0, 0)`` labelled -1 for points (a sample
        without clicks is the padding point alone).
    """
    if kind == "box":
        corners = box.reshape(2, 2)
        coords = torch.stack([corners.amin(dim=0), corners.amax(dim=0)])
        labels = torch.tensor(BOX_LABELS, device=box.device, dtype=point_labels.dtype)
        return coords.to(points.dtype), labels
    if kind != "points":
        raise ValueError(f"SAM prompt kind must be one of {SAM_PROMPT_KINDS}, got {kind!r}")
    clicks = point_labels >= 0
    coords = torch.cat([points[clicks], points.new_zeros(1, 2)])
    labels = torch.cat([point_labels[clicks], point_labels.new_full((1,), PADDING_LABEL)])
    return coords, labels


def group_by_token_count(
    points: Tensor, point_labels: Tensor, box: Tensor, kinds: Sequence[str]
) -> list[SamPromptGroup]:
    """Each sample's SAM tokens (:func:`sam_tokens`), grouped by token count.

    Args:
        points: B x N x 2 clicks; point_labels: B x N (1 / 0 clicks, -1 padding).
        box: B x 4; kinds: B prompt kinds (``"box"`` or ``"points"``). All in model pixels.

    Returns:
        One :class:`SamPromptGroup` per distinct token count, in increasing count; every sample
        is in exactly one group, in batch order within it.
    """
    if len(kinds) != len(points):
        raise ValueError(f"got {len(kinds)} prompt kinds for a batch of {len(points)}")
    tokens = [sam_tokens(points[i], point_labels[i], box[i], kind) for i, kind in enumerate(kinds)]
    groups = []
    for count in sorted({len(labels) for _, labels in tokens}):
        members = [i for i, (_, labels) in enumerate(tokens) if len(labels) == count]
        groups.append(
            SamPromptGroup(
                indices=torch.tensor(members, device=points.device),
                coords=torch.stack([tokens[i][0] for i in members]),
                labels=torch.stack([tokens[i][1] for i in members]),
            )
        )
    return groups


def sam_batch_inputs(
    batch: MattingBatch, kinds: Sequence[str], size: int
) -> tuple[Tensor, list[SamPromptGroup]]:
    """A batch as a SAM-based model takes it: :func:`sam_image` and the prompt groups.

    Prompts are scaled from batch pixels to the ``size x size`` model input.

    Returns:
        B x 3 x size x size images and the groups of :func:`group_by_token_count`.
    """
    height, width = batch.image.shape[-2:]
    scale = batch.points.new_tensor([size / width, size / height])
    groups = group_by_token_count(
        batch.points * scale, batch.point_labels, batch.box * scale.repeat(2), kinds
    )
    return sam_image(batch.image, batch.content_size, size), groups


def decode_groups(
    groups: Sequence[SamPromptGroup], decode: Callable[[SamPromptGroup], tuple[Tensor, ...]]
) -> tuple[Tensor, ...]:
    """Run ``decode`` once per group and put the results back in batch order.

    Args:
        groups: from :func:`group_by_token_count`.
        decode: a group -> tensors whose first dimension is the group's samples (G x ...).

    Returns:
        The same tensors for the whole batch (B x ...), sample ``i`` at row ``i``.
    """
    outputs = [decode(group) for group in groups]
    order = torch.cat([group.indices for group in groups])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    return tuple(torch.cat(parts)[inverse] for parts in zip(*outputs, strict=True))
