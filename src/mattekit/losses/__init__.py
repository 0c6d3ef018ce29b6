"""Losses: one small ``nn.Module`` each.

Alpha losses take B x 1 x H x W predictions in [0, 1] and an optional trimap (B x 1 x H x W in
{0, 0.5, 1}, 0.5 = unknown) whose known and unknown regions are weighted separately through the
one shared mechanism, :class:`RegionWeightedLoss`.
"""

from mattekit.losses.distillation import FeatureMSELoss, MaskedFeatureMSELoss, PerLevelMSELoss
from mattekit.losses.laplacian import LaplacianLoss, laplacian_pyramid
from mattekit.losses.pixel import CompositionLoss, GradientLoss, L1Loss
from mattekit.losses.region import RegionWeightedLoss, masked_mean, unknown_region
from mattekit.losses.segmentation import BCELoss, CrossEntropyLoss, IoULoss
from mattekit.losses.ssim import SSIMLoss

__all__ = [
    "BCELoss",
    "CompositionLoss",
    "CrossEntropyLoss",
    "FeatureMSELoss",
    "GradientLoss",
    "IoULoss",
    "L1Loss",
    "LaplacianLoss",
    "MaskedFeatureMSELoss",
    "PerLevelMSELoss",
    "RegionWeightedLoss",
    "SSIMLoss",
    "laplacian_pyramid",
    "masked_mean",
    "unknown_region",
]
