"""Per-pixel alpha losses with optional trimap region weighting: L1, gradient, composition."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mattekit.losses._checks import check_image, check_map_for, check_same_shape
from mattekit.losses.region import RegionWeightedLoss, masked_mean


class L1Loss(RegionWeightedLoss):
    """Mean absolute error; with a trimap, SDMatte's known / unknown weighting.

    ``forward(pred, target, trimap=None)``: pred, target B x 1 x H x W in [0, 1]. With a trimap
    the result is ``unknown_weight * mean_unknown |pred - target| + known_weight *
    mean_known |pred - target|``, each mean over that region's pixels across the whole batch; an
    empty region contributes 0.
    """

    def _region_loss(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        return masked_mean((pred - target).abs(), mask)


class GradientLoss(RegionWeightedLoss):
    """ZIM's gradient loss (paper eq. 3): ``|d_x pred - d_x target| + |d_y pred - d_y target|``,
    summed over the two components and averaged over pixels.

    The derivatives are the 3 x 3 Sobel kernel ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (and its
    transpose for d/dy), correlated with the image. With ``normalized=True`` (default) the kernel
    is divided by its absolute sum, 8, so each output estimates the derivative itself (kornia's
    ``spatial_gradient(mode="sobel")``); with ``normalized=False`` the raw Sobel response, 8x
    that. ``padding`` sets the border: ``"replicate"`` (default, kornia's): a ramp of slope s
    gives s inside the image and s / 2 on its first and last pixel along the ramp;
    ``"zeros"`` (``F.conv2d(padding=1)``, naver-ai/ZIM's ``eval/metric.py``): an alpha that is
    not 0 at the image's edge has a step there. Either border applies to pred and target alike.
    So with the defaults a ramp of slope s against a flat target costs s per interior pixel,
    and a diagonal ramp of slope s along both axes costs 2 s.

    Region weighting as in :class:`L1Loss` (each pixel counted once, its two components summed),
    on gradients computed from the whole image, so a region's border sees its neighbours, as a
    gradient should.

    ``forward(pred, target, trimap=None)``: pred, target B x 1 x H x W.
    """

    def __init__(
        self,
        known_weight: float = 1.0,
        unknown_weight: float = 1.0,
        normalized: bool = True,
        padding: Literal["replicate", "zeros"] = "replicate",
    ) -> None:
        super().__init__(known_weight, unknown_weight)
        if padding not in ("replicate", "zeros"):
            raise ValueError(
                f"GradientLoss: padding must be 'replicate' or 'zeros', got {padding!r}"
            )
        self.normalized = normalized
        self.padding = padding
        kernel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        kernels = torch.stack([kernel_x, kernel_x.T])[:, None]  # 2 x 1 x 3 x 3: d/dx, d/dy
        self.register_buffer("kernels", kernels / 8 if normalized else kernels, persistent=False)

    def sobel(self, alpha: Tensor) -> Tensor:
        """B x C x H x W -> B x C x 2 x H x W derivatives (d/dx, d/dy) with this loss's kernel
        and border."""
        batch, channels, height, width = alpha.shape
        flat = alpha.reshape(batch * channels, 1, height, width)
        mode = "replicate" if self.padding == "replicate" else "constant"
        padded = F.pad(flat, (1, 1, 1, 1), mode=mode)
        gradients = F.conv2d(padded, self.kernels.to(alpha))
        return gradients.reshape(batch, channels, 2, height, width)

    def _region_loss(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        # eq. 3 sums the (d/dx, d/dy) errors per pixel
        difference = self.sobel(pred) - self.sobel(target)
        return masked_mean(difference.abs().sum(dim=2), mask)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, normalized={self.normalized}, padding={self.padding!r}"


class CompositionLoss(RegionWeightedLoss):
    """L1 between the composite ``pred * fg + (1 - pred) * bg`` and the image.

    Mean over pixels and the 3 colour channels; region weighting as in :class:`L1Loss`.
    """

    def _region_loss(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        return masked_mean((pred - target).abs(), mask)

    def forward(  # type: ignore[override]
        self, pred: Tensor, image: Tensor, fg: Tensor, bg: Tensor, trimap: Tensor | None = None
    ) -> Tensor:
        """Scalar loss.

        Args:
            pred: B x 1 x H x W predicted alpha in [0, 1].
            image: B x 3 x H x W composited image in [0, 1].
            fg: B x 3 x H x W foreground colours.
            bg: B x 3 x H x W background colours.
            trimap: optional B x 1 x H x W in {0, 0.5, 1}; 0.5 = unknown.
        """
        check_image("image", image, channels=3)
        check_same_shape("fg", fg, "image", image)
        check_same_shape("bg", bg, "image", image)
        check_map_for("pred", pred, "image", image)
        if trimap is not None:
            # checked against pred here so the message names pred, not the internal composite
            check_map_for("trimap", trimap, "pred", pred)
        composite = pred * fg + (1 - pred) * bg
        return self._weighted_by_region(composite, image, trimap)
