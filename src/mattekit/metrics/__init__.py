"""Matting metrics under named presets (dim, zim, sdmatte) and DIS segmentation metrics.

    from mattekit.metrics import matting_metrics
    metrics = matting_metrics("dim", prefix="val/")
    metrics.update(pred, target, trimap)   # (B, 1, H, W) alphas in [0, 1]
    metrics.compute()                      # {"val/SAD": ..., "val/MSE": ..., ...}

See README.md in this folder for the definitions and which papers each preset reproduces.

The names below are imported on first use, as in :mod:`mattekit.data`: a module that only needs
the preset names (``mattekit.metrics.presets``, e.g. the benchmark's spec in a classical-method
worker) then does not pay for torchmetrics and scikit-image.
"""

from __future__ import annotations

from mattekit.lazy_exports import lazy_exports

# Bound now (it needs only torch): the submodule of the same name, once imported, would
# otherwise be what ``mattekit.metrics.object_size`` gives instead of the function.
from mattekit.metrics.object_size import SIZE_BUCKETS as SIZE_BUCKETS
from mattekit.metrics.object_size import object_size as object_size

_MODULE_OF = {
    "BinaryIoU": "mattekit.metrics.segmentation",
    "ConnectivityError": "mattekit.metrics.matting",
    "DIM": "mattekit.metrics.presets",
    "GradientError": "mattekit.metrics.matting",
    "MAD": "mattekit.metrics.matting",
    "MSE": "mattekit.metrics.matting",
    "MattingPreset": "mattekit.metrics.presets",
    "MaxFMeasure": "mattekit.metrics.segmentation",
    "MeanEMeasure": "mattekit.metrics.segmentation",
    "PRESETS": "mattekit.metrics.presets",
    "PresetName": "mattekit.metrics.presets",
    "SAD": "mattekit.metrics.matting",
    "SDMATTE": "mattekit.metrics.presets",
    "SMeasure": "mattekit.metrics.segmentation",
    "SegmentationMAE": "mattekit.metrics.segmentation",
    "WeightedFMeasure": "mattekit.metrics.segmentation",
    "ZIM": "mattekit.metrics.presets",
    "matting_metrics": "mattekit.metrics.matting",
    "resolve_preset": "mattekit.metrics.presets",
    "segmentation_metrics": "mattekit.metrics.segmentation",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _MODULE_OF, ["SIZE_BUCKETS", "object_size"])
