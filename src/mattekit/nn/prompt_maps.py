"""Rasterising prompts into maps: one implementation for the data pipeline and every family.

The data pipeline uses these at the network input size; ZIM reuses them on its 64 x 64 token grid
(sigma 21 grid units) and SDMatte on its latent grids, so the maps must stay batched and device
agnostic.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_point_map(
    points: Tensor,
    labels: Tensor,
    size: tuple[int, int],
    sigma: float | Tensor,
    include_negative: bool = False,
    radius: float | None = None,
) -> Tensor:
    """Max over clicks of an unnormalised Gaussian centred on each click.

    Args:
        points: B x N x 2 ``(x, y)`` in pixels of the target grid (pixel centres at integers).
        labels: B x N; points labelled 1 contribute, and 0 too with ``include_negative``
            (ZIM's attention map counts every click); -1 padding never does.
        size: ``(H, W)`` of the map.
        sigma: standard deviation in pixels of the target grid; a float or a B tensor.
        include_negative: negative clicks contribute as well.
        radius: zero beyond this many pixels from a click along x or y (ZIM truncates its
            kernel at 3 sigma + 1); None keeps the full Gaussian.

    Returns:
        B x 1 x H x W in [0, 1], exactly 1 at a click that lies on a pixel centre, 0 where a sample
        has no contributing click.
    """
    height, width = size
    sigma = torch.as_tensor(sigma, dtype=points.dtype, device=points.device).reshape(-1, 1, 1)
    ys = torch.arange(height, dtype=points.dtype, device=points.device)
    xs = torch.arange(width, dtype=points.dtype, device=points.device)
    # A 2-D Gaussian is separable: build per-point 1-D profiles and take their outer product,
    # which costs N x (H + W) exponentials instead of N x H x W.
    dy = ys[None, None] - points[..., 1:2]  # B x N x H
    dx = xs[None, None] - points[..., 0:1]  # B x N x W
    gy = torch.exp(-(dy**2) / (2 * sigma**2))
    gx = torch.exp(-(dx**2) / (2 * sigma**2))
    if radius is not None:
        gy = gy * (dy.abs() <= radius)
        gx = gx * (dx.abs() <= radius)
    counted = (labels == 1) | ((labels == 0) & include_negative)
    gy = gy * counted.to(gy.dtype)[..., None]
    maps = gy[..., :, None] * gx[..., None, :]  # B x N x H x W
    if maps.shape[1] == 0:
        return maps.new_zeros(points.shape[0], 1, height, width)
    return maps.amax(dim=1, keepdim=True)


def box_mask(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Binary mask of the pixels whose centres lie inside each box.

    Args:
        boxes: B x 4 ``(x0, y0, x1, y1)`` in pixels of the target grid, corners inclusive.
        size: ``(H, W)`` of the mask.

    Returns:
        B x 1 x H x W float mask with 1 inside the box.
    """
    height, width = size
    ys = torch.arange(height, dtype=boxes.dtype, device=boxes.device)
    xs = torch.arange(width, dtype=boxes.dtype, device=boxes.device)
    inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])  # B x H
    inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])  # B x W
    return (inside_y[:, :, None] & inside_x[:, None, :]).to(boxes.dtype)[:, None]


def mask_boxes(masks: Tensor) -> Tensor:
    """B x 1 x H x W masks -> B x 4 ``(x0, y0, x1, y1)`` bounding their nonzero pixels.

    Corners are inclusive, as :func:`box_mask` reads them (and as SDMatte's release takes
    ``argwhere``'s min and max). An empty mask gives ``(0, 0, W, H)``: normalised by the image's
    size, the release's "whole image" ``[0, 0, 1, 1]``.
    """
    batch, _, height, width = masks.shape
    filled = masks[:, 0] > 0
    rows, cols = filled.any(2), filled.any(1)  # B x H, B x W
    ys = torch.arange(height, device=masks.device, dtype=torch.float32)
    xs = torch.arange(width, device=masks.device, dtype=torch.float32)
    big = float(max(height, width))
    y0 = torch.where(rows, ys, big).amin(1)
    y1 = torch.where(rows, ys, -1.0).amax(1)
    x0 = torch.where(cols, xs, big).amin(1)
    x1 = torch.where(cols, xs, -1.0).amax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1)
    whole = boxes.new_tensor([0, 0, width, height]).expand(batch, 4)
    empty = ~rows.any(1, keepdim=True)
    return torch.where(empty, whole, boxes)
