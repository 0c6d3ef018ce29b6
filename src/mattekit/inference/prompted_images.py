"""Photos with their users' prompts as a data source, so that inference runs through the same
dataset, transform and prompt handling as evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mattekit.data.folders import check_same_size
from mattekit.data.io import ConversionLog, read_image, read_mask
from mattekit.data.micromat import parse_micromat_prompt
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource
from mattekit.inference.prompts import UserPrompt


class PromptedImages(MattingSource):
    """``(image file, prompt)`` pairs; sample ids are the files' stems (unique by contract).

    The alpha is an all-zero placeholder (there is no ground truth). The clicks and the box are
    checked as MicroMat-3K's are (:func:`~mattekit.data.micromat.parse_micromat_prompt`: points
    outside the image clipped with a warning, a box outside it an error). A mask without a box
    gets its bounding box, and a text prompt the whole image's, since the prompt sampler
    derives what a family reads from the box when there is no ground truth.

    Raises (in :meth:`load`):
        ValueError naming the file: an empty mask, a mask of another size than its image.
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
        image = read_image(path, self._conversions)
        return prompted_sample(path.stem, image, prompt, self.name, self._conversions, path)


def prompted_sample(
    sample_id: str,
    image: np.ndarray,
    prompt: UserPrompt,
    source: str,
    conversions: ConversionLog | None = None,
    image_path: Path | None = None,
) -> RawSample:
    """A photo (H x W x 3 uint8) and its prompt as a ground-truth-free sample (see
    :class:`PromptedImages` for what is checked and derived).

    Raises:
        ValueError naming the file: an empty mask, a mask of another size than its image.
    """
    height, width = image.shape[:2]
    points, box = parse_micromat_prompt(
        prompt.micromat_document(), Path(prompt.origin), height, width, sample_id
    )
    coarse_mask = None
    if prompt.mask is not None:
        mask = read_mask(prompt.mask, conversions)
        check_same_size(sample_id, (image_path or Path(sample_id), image), (prompt.mask, mask))
        if not mask.any():
            raise ValueError(f"{prompt.mask}: the mask prompt is empty")
        coarse_mask = mask.astype(np.uint8)
        if box is None:
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            box = np.array([cols[0], rows[0], cols[-1], rows[-1]], np.float32)
    if box is None and not len(points):
        box = np.array([0, 0, width - 1, height - 1], np.float32)
    return RawSample(
        sample_id=sample_id,
        image=image,
        alpha=np.zeros((height, width), np.float32),
        text=prompt.text or "",
        points=points if len(points) else None,
        box=box,
        coarse_mask=coarse_mask,
        source=source,
    )
