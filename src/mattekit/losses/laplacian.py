"""Laplacian pyramid L1 loss (SDMatte, SAMA, ViTMatte family), in two forms.

``pyramid="kornia"``: kornia's pyramid (blur, 2 x 2 average; bilinear up, blur), its band-pass
levels and the coarsest Gaussian level. ``pyramid="band_pass"``: the pyramid of SDMatte's
release (``criterion.py:175-234``; blur, every second pixel; zeros between pixels x 4, blur),
band-pass levels only. Both blur with the 5 x 5 binomial kernel and a reflected border.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from kornia.filters import filter2d
from kornia.geometry.transform import build_pyramid, pyrup
from torch import Tensor

from mattekit.losses.region import RegionWeightedLoss

PyramidForm = Literal["kornia", "band_pass"]

#: [1, 4, 6, 4, 1]^T [1, 4, 6, 4, 1] / 256, 1 x 5 x 5: the blur of both pyramids.
_BINOMIAL_5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
BINOMIAL_KERNEL = (_BINOMIAL_5[:, None] * _BINOMIAL_5[None, :] / 256)[None]


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


def _blur(image: Tensor) -> Tensor:
    kernel = BINOMIAL_KERNEL.to(device=image.device, dtype=image.dtype)
    return filter2d(image, kernel, border_type="reflect")


def band_pass_pyramid(image: Tensor, levels: int) -> list[Tensor]:
    """Up to ``levels`` band-pass levels of a B x C x H x W image, no low-pass level: the
    pyramid of SDMatte's release (``criterion.py:185-234``).

    Level i: the current image is cropped to even sides (its last row / column dropped when
    odd); ``down`` blurs it and keeps every second pixel; ``up`` puts ``down``'s pixels times 4
    on every second pixel of a zero image of the current size and blurs it; the level is
    ``current - up`` (H / 2^i x W / 2^i) and ``down`` the next level's input. The reflected
    border needs sides >= 3, so the pyramid stops before a level whose input has a side under 4
    (the release fails there): 5 levels need sides >= 64, a 32 px image gives 4.
    """
    pyramid = []
    current = image
    for _ in range(levels):
        height, width = current.shape[-2:]
        if min(height, width) < 4:
            break
        current = current[..., : height - height % 2, : width - width % 2]
        down = _blur(current)[..., ::2, ::2]
        up = torch.zeros_like(current)
        up[..., ::2, ::2] = 4 * down
        pyramid.append(current - _blur(up))
        current = down
    return pyramid


class LaplacianLoss(RegionWeightedLoss):
    """Weighted L1 over Laplacian pyramid levels, level i weighted 2^i (0 = finest).

    ``pyramid="kornia"`` (default): ``sum_i 2^i * mean |lap_i(pred) - lap_i(target)|`` over
    :func:`laplacian_pyramid`'s ``levels`` levels, the last one the coarsest Gaussian level.
    Sides not divisible by 2^(levels-1) are padded (replicating the border) up to the next
    multiple; the padded pixels count in the means. The blur needs H and W > 2^(levels-1) (17
    for 5 levels), else ValueError.

    ``pyramid="band_pass"``: SDMatte's release (``criterion.py:175-182``): ``(1 / levels) *
    sum_i 2^i * mean |...|`` over :func:`band_pass_pyramid`'s band-pass levels (no low-pass
    level; levels an image is too small for count 0).

    Each mean runs over every element of its level. With a trimap, each region's loss builds
    the pyramids of ``pred * mask`` and ``target * mask`` (SDMatte's convention), so a region's
    loss scales with its area; an empty region gives 0. ``region_mean=True`` multiplies a
    region's loss by ``B * H * W / |region|``, the release's ``B * 512^2 / |region|`` at its
    512 px training size (``criterion.py:85-104``): the loss per pixel of the region, as
    :class:`~mattekit.losses.L1Loss` is. The release keeps the 512 at other sizes, which
    multiplies every region term by 512^2 / (H * W); mattekit's factor keeps it a per-pixel
    loss at any size.

    ``forward(pred, target, trimap=None)``: pred, target B x 1 x H x W.
    """

    def __init__(
        self,
        levels: int = 5,
        known_weight: float = 1.0,
        unknown_weight: float = 1.0,
        pyramid: PyramidForm = "kornia",
        region_mean: bool = False,
    ) -> None:
        super().__init__(known_weight, unknown_weight)
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        if pyramid not in ("kornia", "band_pass"):
            raise ValueError(f"pyramid must be 'kornia' or 'band_pass', got {pyramid!r}")
        self.levels = levels
        self.pyramid = pyramid
        self.region_mean = region_mean

    def forward(self, pred: Tensor, target: Tensor, trimap: Tensor | None = None) -> Tensor:
        """Scalar loss; see the class docstring. pred, target, trimap: B x 1 x H x W."""
        # after padding to a multiple of 2^(levels-1), the coarsest blurred level must keep
        # >= 3 pixels for the reflect border: i.e. a side must exceed 2^(levels-1)
        min_side = 2 ** (self.levels - 1) + 1 if self.levels > 1 else 1
        if self.pyramid == "kornia" and pred.ndim == 4 and min(pred.shape[-2:]) < min_side:
            raise ValueError(
                f"pred is {tuple(pred.shape)} but LaplacianLoss(levels={self.levels}) needs "
                f"H and W >= {min_side}"
            )
        return super().forward(pred, target, trimap)

    def _region_loss(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        if mask is not None:
            pred, target = pred * mask, target * mask
        # the pyramid is linear, so one pyramid of the difference equals the difference of two
        diff = pred - target
        if self.pyramid == "band_pass":
            levels = band_pass_pyramid(diff, self.levels)
            weighted = (2**i * level.abs().mean() for i, level in enumerate(levels))
            loss = sum(weighted, diff.new_zeros(())) / self.levels
        else:
            levels = laplacian_pyramid(self._pad_to_stride(diff), self.levels)
            loss = sum(2**i * level.abs().mean() for i, level in enumerate(levels))
        if mask is not None and self.region_mean:
            # an empty region's loss is already 0: clamping the count avoids a 0 / 0
            loss = loss * mask.numel() / mask.sum().clamp_min(1)
        return loss

    def _pad_to_stride(self, image: Tensor) -> Tensor:
        stride = 2 ** (self.levels - 1)
        height, width = image.shape[-2:]
        pad_h, pad_w = -height % stride, -width % stride
        if pad_h == 0 and pad_w == 0:
            return image
        return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, pyramid={self.pyramid!r}, region_mean={self.region_mean}, "
            f"{super().extra_repr()}"
        )
