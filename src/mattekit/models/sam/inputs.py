"""What a SAM-based model is fed, in segment-anything's own conventions (ZIM now, SAMA next).

One place for the conventions that the official releases (segment-anything's predictor and ONNX
export, naver-ai/ZIM) follow and that a model trained here must see in training, evaluation and
interactive use alike:

- **Image**: RGB normalised with SAM's pixel mean / std, *then* padded with zeros: letterbox
  padding is 0 in normalised space, not black RGB (which would be ``-mean / std``).
- **Prompts** as sparse tokens: a box alone is two corner points labelled 2 (top-left) and 3
  (bottom-right) with no padding point; clicks (1 positive, 0 negative) are followed by exactly
  one padding point (label -1). So samples differ in token count. A batch is decoded in one call
  all the same: shorter samples are filled up with *filler* slots (label -2, not a token of
  SAM's: the release's padding point is label -1 and is a real token), which the decoder masks
  out as attention keys, so each sample's result is the one it gets decoded alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.data.convention import InputConvention
from mattekit.data.sample import MattingBatch

PIXEL_MEAN = (123.675, 116.28, 103.53)  # SAM's, on 0-255 RGB
PIXEL_STD = (58.395, 57.12, 57.375)
BOX_LABELS = (2, 3)  # top-left, bottom-right corner
PADDING_LABEL = -1
FILLER_LABEL = -2  # an empty slot of a shorter sample in a batch: masked out, not a token
SAM_PROMPT_KINDS = ("points", "box")


def sam_input_convention(side: int) -> InputConvention:
    """SAM's input convention at ``side``: letterboxed, normalised by :data:`PIXEL_MEAN` /
    :data:`PIXEL_STD`, padded with 0 after normalisation."""
    mean = tuple(value / 255 for value in PIXEL_MEAN)
    std = tuple(value / 255 for value in PIXEL_STD)
    return InputConvention(side, "letterbox", mean, std, pad_value=0.0)


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


def batch_tokens(
    points: Tensor, point_labels: Tensor, box: Tensor, kinds: Sequence[str]
) -> tuple[Tensor, Tensor]:
    """Each sample's SAM tokens (:func:`sam_tokens`), filled up to the longest with fillers.

    Args:
        points: B x N x 2 clicks; point_labels: B x N (1 / 0 clicks, -1 padding).
        box: B x 4; kinds: B prompt kinds (``"box"`` or ``"points"``). All in model pixels.

    Returns:
        B x K x 2 coordinates and B x K labels, K the most tokens of a sample; the slots after a
        sample's own tokens are labelled ``FILLER_LABEL`` at ``(0, 0)``.
    """
    if len(kinds) != len(points):
        raise ValueError(f"got {len(kinds)} prompt kinds for a batch of {len(points)}")
    tokens = [sam_tokens(points[i], point_labels[i], box[i], kind) for i, kind in enumerate(kinds)]
    count = max(len(labels) for _, labels in tokens)
    coords = points.new_zeros(len(tokens), count, 2)
    labels = point_labels.new_full((len(tokens), count), FILLER_LABEL)
    for i, (sample_coords, sample_labels) in enumerate(tokens):
        coords[i, : len(sample_labels)] = sample_coords
        labels[i, : len(sample_labels)] = sample_labels
    return coords, labels


def sam_batch_tokens(batch: MattingBatch, kinds: Sequence[str], size: int) -> tuple[Tensor, Tensor]:
    """The batch's prompts as SAM's tokens (:func:`batch_tokens`), scaled from batch pixels to
    the ``size x size`` model input: B x K x 2 coordinates and B x K labels."""
    height, width = batch.image.shape[-2:]
    scale = batch.points.new_tensor([size / width, size / height])
    return batch_tokens(
        batch.points * scale, batch.point_labels, batch.box * scale.repeat(2), kinds
    )


def sam_encode(network: nn.Module, image: Tensor, content_size: Tensor) -> object:
    """``network.encode`` (a SAM-based network's image features) of B x 3 x H x W batch images
    in [0, 1], in SAM's convention: :func:`sam_image` at the network's ``image_size``."""
    return network.encode(sam_image(image, content_size, network.image_size))
