"""Laplacian pyramid L1 loss (SDMatte, SAMA, ViTMatte family)."""

from __future__ import annotations

from itertools import pairwise

import torch.nn.functional as F
from kornia.geometry.transform import build_pyramid, pyrup
from torch import Tensor

from mattekit.losses.region import RegionWeightedLoss


def laplacian_pyramid(image: Tensor, levels: int) -> list[Tensor]:
    """``levels`` Laplacian levels of a B x C x H x W image (H, W divisible by 2^(levels-1)).

    Levels 0 .. levels-2 are band-pass (Gaussian level i minus kornia's ``pyrup`` of level i+1),
    the last is the coarsest Gaussian level, as ``kornia.geometry.transform
    .build_laplacian_pyramid`` returns them. That function is not called directly because it
    pads every image whose sides are not powers of two up to the next power of two (520 -> 1024),
    quadrupling the cost and counting mirrored content in the loss.
    """
    gaussian = build_pyramid(image, levels)
    band_pass = [fine - pyrup(coarse) for fine, coarse in pairwise(gaussian)]
    return [*band_pass, gaussian[-1]]


class LaplacianLoss(RegionWeightedLoss):
    """``sum_i 2^i * mean |lap_i(pred) - lap_i(target)|`` over ``levels`` pyramid levels.

    Level 0 is the finest band-pass level, level ``levels - 1`` the coarsest Gaussian level; each
    mean runs over every element of that level. With a trimap, each region's loss builds the
    pyramids of ``pred * mask`` and ``target * mask`` (SDMatte's convention): the mean still runs
    over the whole level, so a region's loss scales with its area, unlike :class:`L1Loss`; an
    empty region gives 0.

    Sides not divisible by 2^(levels-1) are padded (replicating the border) up to the next
    multiple; the padded pixels count in the means. The Gaussian blur (5 x 5, reflect border)
    needs H and W > 2^(levels-1) (17 for 5 levels), else ValueError.

    ``forward(pred, target, trimap=None)``: pred, target B x 1 x H x W.
    """

    def __init__(
        self, levels: int = 5, known_weight: float = 1.0, unknown_weight: float = 1.0
    ) -> None:
        super().__init__(known_weight, unknown_weight)
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.levels = levels

    def forward(self, pred: Tensor, target: Tensor, trimap: Tensor | None = None) -> Tensor:
        """Scalar loss; see the class docstring. pred, target, trimap: B x 1 x H x W."""
        # after padding to a multiple of 2^(levels-1), the coarsest blurred level must keep
        # >= 3 pixels for the reflect border: i.e. a side must exceed 2^(levels-1)
        min_side = 2 ** (self.levels - 1) + 1 if self.levels > 1 else 1
        if pred.ndim == 4 and min(pred.shape[-2:]) < min_side:
            raise ValueError(
                f"pred is {tuple(pred.shape)} but LaplacianLoss(levels={self.levels}) needs "
                f"H and W >= {min_side}"
            )
        return super().forward(pred, target, trimap)

    def _region_loss(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        if mask is not None:
            pred, target = pred * mask, target * mask
        # the pyramid is linear, so one pyramid of the difference equals the difference of two
        diff = self._pad_to_stride(pred - target)
        levels = laplacian_pyramid(diff, self.levels)
        return sum(2**i * level.abs().mean() for i, level in enumerate(levels))

    def _pad_to_stride(self, image: Tensor) -> Tensor:
        stride = 2 ** (self.levels - 1)
        height, width = image.shape[-2:]
        pad_h, pad_w = -height % stride, -width % stride
        if pad_h == 0 and pad_w == 0:
            return image
        return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")

    def extra_repr(self) -> str:
        return f"levels={self.levels}, {super().extra_repr()}"
