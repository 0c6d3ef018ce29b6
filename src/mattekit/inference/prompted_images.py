"""Photos with their users' prompts as a data source, so that inference runs through the same
dataset, transform and prompt handling as evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mattekit.data.io import ConversionLog, read_photo
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource
from mattekit.prompts.photo_samples import prompted_sample
from mattekit.prompts.user import UserPrompt


class PromptedImages(MattingSource):
    """``(image file, prompt)`` pairs; sample ids are the files' stems (unique by contract).

    Photos are read as displayed (:func:`~mattekit.data.io.read_photo`: EXIF orientation
    applied), since the prompts are given in the pixels the user sees. The alpha is an all-zero
    placeholder (there is no ground truth); what is checked and derived:
    :func:`~mattekit.prompts.photo_samples.prompted_sample`.
    """

    def __init__(self, items: list[tuple[Path, UserPrompt]], name: str = "matte") -> None:
        super().__init__(name)
        self.items = items
        self._conversions = ConversionLog(name)

    def __len__(self) -> int:
        return len(self.items)

    def sample_id(self, index: int) -> str:
        return self.items[index][0].stem

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        path, prompt = self.items[index]
        image = read_photo(path, self._conversions)
        return prompted_sample(path.stem, image, prompt, self.name, self._conversions, path)
