"""Shared data: sources, the one sample pipeline, prompts, mixing and the DataModule.

The names below are imported on first use: ``import mattekit.data.io`` (a worker process that
only reads files) then does not pay for Lightning and the DataModule.
"""

from __future__ import annotations

from mattekit.lazy_exports import lazy_exports

_MODULE_OF = {
    "AugmentConfig": "mattekit.data.transforms",
    "CompositionFolder": "mattekit.data.composition",
    "DISFolder": "mattekit.data.folders",
    "ImageAlphaFolder": "mattekit.data.folders",
    "ImageFolder": "mattekit.data.images",
    "MattingBatch": "mattekit.data.sample",
    "MattingDataModule": "mattekit.data.datamodule",
    "MattingSource": "mattekit.data.source",
    "MicroMatFolder": "mattekit.data.micromat",
    "PromptConfig": "mattekit.data.prompts",
    "PromptSampler": "mattekit.data.prompts",
    "RawSample": "mattekit.data.sample",
    "RefMatteFolder": "mattekit.data.refmatte",
    "SyntheticSource": "mattekit.data.synthetic",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _MODULE_OF)
