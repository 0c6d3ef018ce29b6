"""The label converter's two training strategies (ZIM, section 3.1), on collated batches.

- Spatial Generalization Augmentation (SGA): random rectangles cut out of the input mask *and*
  the target matte alike, so the converter learns to convert partial, irregular segments (one
  hand rather than the whole person) instead of always completing the macro-level object.
- Selective Transformation Learning (STL): for coarse objects (cars, desks) the target is the
  input mask itself, so the converter learns to leave them untouched.
"""

from __future__ import annotations

import torch
from torch import Tensor


def cutout_keep_mask(
    mask: Tensor,
    probability: float,
    max_rectangles: int = 3,
    side_range: tuple[float, float] = (0.1, 0.5),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per sample, with ``probability``: 1 to ``max_rectangles`` rectangles to cut out.

    Each rectangle's sides are drawn from ``side_range`` (fractions of the image side) and its
    centre from the foreground of ``mask`` (anywhere when the mask is empty), so the cut bites
    into the object rather than into empty background.

    Args:
        mask: B x 1 x H x W input mask in {0, 1}.

    Returns:
        B x 1 x H x W float: 0 inside the cut-out rectangles, 1 elsewhere.
    """
    batch, _, height, width = mask.shape
    keep = torch.ones_like(mask, dtype=torch.float32)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    for i in range(batch):
        if float(torch.rand((), generator=generator)) >= probability:
            continue
        weights = mask[i, 0].flatten().float().cpu()
        weights = weights if weights.sum() > 0 else torch.ones_like(weights)
        count = int(torch.randint(1, max_rectangles + 1, (), generator=generator))
        for _ in range(count):
            centre = int(torch.multinomial(weights, 1, generator=generator))
            cy, cx = divmod(centre, width)
            half_h = round(uniform(*side_range) * height / 2)
            half_w = round(uniform(*side_range) * width / 2)
            keep[
                i, 0, max(0, cy - half_h) : cy + half_h + 1, max(0, cx - half_w) : cx + half_w + 1
            ] = 0
    return keep


def apply_cutout(mask: Tensor, target: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Zero the same region in the input mask and the target (both B x 1 x H x W)."""
    return mask * keep, target * keep


def selective_transformation(
    mask: Tensor,
    target: Tensor,
    alpha: Tensor,
    from_coarse_source: Tensor,
    synthetic_probability: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Input masks and targets with coarse samples' targets set to their input masks.

    Samples of a coarse source keep their input mask and get it as the target. Without a coarse
    source in the data, ``synthetic_probability`` makes further samples coarse: their input mask
    *and* target become the binarised alpha (alpha >= 0.5), a stand-in for a crisp segmentation
    label of an object that needs no matting (what ADE20K's car and desk masks are in the paper).

    Args:
        mask: B x 1 x H x W input masks; target: B x 1 x H x W target mattes.
        alpha: B x 1 x H x W ground-truth alpha (binarised for synthetic coarse samples).
        from_coarse_source: B bool.

    Returns:
        (mask, target, is_coarse): the new B x 1 x H x W masks and targets and the B bool flags.
    """
    synthetic = torch.rand(len(mask), generator=generator).to(mask.device) < synthetic_probability
    synthetic &= ~from_coarse_source
    binarised = (alpha >= 0.5).to(mask.dtype)
    mask = torch.where(synthetic.view(-1, 1, 1, 1), binarised, mask)
    is_coarse = from_coarse_source | synthetic
    target = torch.where(is_coarse.view(-1, 1, 1, 1), mask.to(target.dtype), target)
    return mask, target, is_coarse
