"""Known / unknown region weighting, the one mechanism behind L1, gradient, Laplacian and
composition losses (SDMatte weights the two trimap regions separately).

A trimap is B x 1 x H x W in {0, 0.5, 1}; 0.5 marks the unknown (transition) region. Values are
snapped to the nearest of the three, so a bilinearly resized trimap still splits cleanly.
"""

from __future__ import annotations

from torch import Tensor, nn

from mattekit.losses._checks import check_image, check_map_for, check_same_shape


def unknown_region(trimap: Tensor) -> Tensor:
    """B x 1 x H x W bool mask of the trimap's unknown pixels (values nearest 0.5)."""
    return (trimap - 0.5).abs() < 0.25


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``values`` over the pixels where ``mask`` is 1, pooled over the whole batch.

    Args:
        values: B x C x ... per-pixel errors.
        mask: float mask broadcastable to ``values`` (B x 1 x H x W), or None for the plain mean.

    An empty mask gives 0 (not NaN): the sum is then 0 as well, so dividing by a count clamped
    to 1 needs no branch and no device synchronisation.
    """
    if mask is None:
        return values.mean()
    # the mask broadcasts over channels (and gradient components): each one counts as a pixel
    count = mask.sum() * (values.numel() // mask.numel())
    return (values * mask).sum() / count.clamp_min(1)


def _check_pair(pred: Tensor, target: Tensor) -> None:
    check_image("pred", pred)
    check_same_shape("target", target, "pred", pred)


class RegionWeightedLoss(nn.Module):
    """Base class: ``known_weight * loss(known) + unknown_weight * loss(unknown)`` given a trimap,
    the plain loss without one.

    Subclasses implement :meth:`_region_loss`; ``forward(pred, target, trimap=None)`` validates the
    shapes and dispatches. Subclasses with other inputs (composition) call
    :meth:`_weighted_by_region` from their own ``forward``.
    """

    def __init__(self, known_weight: float = 1.0, unknown_weight: float = 1.0) -> None:
        super().__init__()
        self.known_weight = known_weight
        self.unknown_weight = unknown_weight

    def _region_loss(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
        """Loss restricted to ``mask`` (B x 1 x H x W float, 1 inside the region; None = all)."""
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor, trimap: Tensor | None = None) -> Tensor:
        """Scalar loss.

        Args:
            pred: B x 1 x H x W predicted alpha in [0, 1] (any channel count works).
            target: B x 1 x H x W ground-truth alpha, same shape as ``pred``.
            trimap: optional B x 1 x H x W in {0, 0.5, 1}; 0.5 = unknown.
        """
        _check_pair(pred, target)
        return self._weighted_by_region(pred, target, trimap)

    def in_region(self, pred: Tensor, target: Tensor, region: Tensor | None) -> Tensor:
        """The loss over one region only (a mean over its pixels; 0 when it is empty).

        Args:
            pred, target: B x 1 x H x W.
            region: B x 1 x H x W mask, 1 inside (bool or float); None: the whole image.
        """
        _check_pair(pred, target)
        if region is not None:
            check_map_for("region", region, "pred", pred)
            region = region.to(pred.dtype)
        return self._region_loss(pred, target, region)

    def _weighted_by_region(self, pred: Tensor, target: Tensor, trimap: Tensor | None) -> Tensor:
        if trimap is None:
            return self._region_loss(pred, target, None)
        check_map_for("trimap", trimap, "pred", pred)
        unknown = unknown_region(trimap)
        unknown_mask = unknown.to(pred.dtype)
        known_mask = (~unknown).to(pred.dtype)
        return self.unknown_weight * self._region_loss(
            pred, target, unknown_mask
        ) + self.known_weight * self._region_loss(pred, target, known_mask)

    def extra_repr(self) -> str:
        return f"known_weight={self.known_weight}, unknown_weight={self.unknown_weight}"


__all__ = ["RegionWeightedLoss", "masked_mean", "unknown_region"]
