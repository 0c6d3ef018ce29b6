"""Shared data: sources, the one sample pipeline, prompts, mixing and the DataModule."""

from mattekit.data.composition import CompositionFolder
from mattekit.data.datamodule import MattingDataModule
from mattekit.data.folders import DISFolder, ImageAlphaFolder
from mattekit.data.images import ImageFolder
from mattekit.data.micromat import MicroMatFolder
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.refmatte import RefMatteFolder
from mattekit.data.sample import MattingBatch, RawSample
from mattekit.data.source import MattingSource
from mattekit.data.synthetic import SyntheticSource
from mattekit.data.transforms import AugmentConfig

__all__ = [
    "AugmentConfig",
    "CompositionFolder",
    "DISFolder",
    "ImageAlphaFolder",
    "ImageFolder",
    "MattingBatch",
    "MattingDataModule",
    "MattingSource",
    "MicroMatFolder",
    "PromptConfig",
    "PromptSampler",
    "RawSample",
    "RefMatteFolder",
    "SyntheticSource",
]
