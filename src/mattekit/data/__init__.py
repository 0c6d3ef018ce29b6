"""Shared data: sources, the one sample pipeline, prompts, mixing and the DataModule.

The names below are imported on first use: ``import mattekit.data.io`` (a worker process that
only reads files) then does not pay for Lightning and the DataModule.
"""

from __future__ import annotations

import importlib
from typing import Any

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

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
