"""Per-pixel alpha losses with optional trimap region weighting: L1, gradient, composition."""

from __future__ import annotations

from kornia.filters import spatial_gradient
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
    summed over the two components and averaged over pixels (ZIM trains with L1 + 10 x this).

    The derivatives are ``kornia.filters.spatial_gradient(mode="sobel")``: the 3 x 3 Sobel
    kernel ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (and its transpose for d/dy), correlated
    with the image, borders replicated. With ``normalized=True`` (default) kornia divides the
    kernel by its absolute sum, 8, so each output estimates the derivative itself: a ramp of
    slope s per pixel gives s inside the image and s / 2 on its first and last pixel along the
    ramp (the replicated border flattens one side). With ``normalized=False`` the raw Sobel
    response, 8 s. So a ramp of slope s against a flat target costs s per interior pixel, and a
    diagonal ramp of slope s along both axes costs 2 s.

    Region weighting as in :class:`L1Loss` (each pixel counted once, its two components summed),
    on gradients computed from the whole image, so a region's border sees its neighbours, as a
    gradient should.

    ``forward(pred, target, trimap=None)``: pred, target B x 1 x H x W.
    """

    def __init__(
        self, known_weight: float = 1.0, unknown_weight: float = 1.0, normalized: bool = True
    ) -> None:
        super().__init__(known_weight, unknown_weight)
        self.normalized = normalized

    def _region_loss(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        # spatial_gradient gives B x C x 2 x H x W; eq. 3 sums the (d/dx, d/dy) errors per pixel
        pred_grad = spatial_gradient(pred, mode="sobel", normalized=self.normalized)
        target_grad = spatial_gradient(target, mode="sobel", normalized=self.normalized)
        return masked_mean((pred_grad - target_grad).abs().sum(dim=2), mask)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, normalized={self.normalized}"


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
