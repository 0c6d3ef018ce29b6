"""Matting metrics under named presets (dim, zim, sdmatte) and DIS segmentation metrics.

    from mattekit.metrics import matting_metrics
    metrics = matting_metrics("dim", prefix="val/")
    metrics.update(pred, target, trimap)   # (B, 1, H, W) alphas in [0, 1]
    metrics.compute()                      # {"val/SAD": ..., "val/MSE": ..., ...}

See README.md in this folder for the definitions and which papers each preset reproduces.
"""

from mattekit.metrics.matting import (
    MAD,
    MSE,
    SAD,
    ConnectivityError,
    GradientError,
    matting_metrics,
)
from mattekit.metrics.object_size import SIZE_BUCKETS, object_size
from mattekit.metrics.presets import DIM, PRESETS, SDMATTE, ZIM, MattingPreset, resolve_preset
from mattekit.metrics.segmentation import (
    BinaryIoU,
    MaxFMeasure,
    MeanEMeasure,
    SegmentationMAE,
    SMeasure,
    WeightedFMeasure,
    segmentation_metrics,
)

__all__ = [
    "DIM",
    "MAD",
    "MSE",
    "PRESETS",
    "SAD",
    "SDMATTE",
    "SIZE_BUCKETS",
    "ZIM",
    "BinaryIoU",
    "ConnectivityError",
    "GradientError",
    "MattingPreset",
    "MaxFMeasure",
    "MeanEMeasure",
    "SMeasure",
    "SegmentationMAE",
    "WeightedFMeasure",
    "matting_metrics",
    "object_size",
    "resolve_preset",
    "segmentation_metrics",
]
