"""Photos with their users' prompts as a data source, so that inference runs through the same
dataset, transform and prompt handling as evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mattekit.data.folders import check_same_size
from mattekit.data.io import ConversionLog, read_mask, read_photo
from mattekit.data.micromat import parse_micromat_prompt
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource
from mattekit.inference.prompts import UserPrompt

#: The smallest photo side ``matte`` and the demo take: below it there is nothing to matte, and
#: the cut-out's multilevel foreground estimate divides by zero (a 1 x 1 photo did).
MIN_PHOTO_SIDE = 8


class PromptedImages(MattingSource):
    """``(image file, prompt)`` pairs; sample ids are the files' stems (unique by contract).

    Photos are read as displayed (:func:`~mattekit.data.io.read_photo`: EXIF orientation
    applied), since the prompts are given in the pixels the user sees. The alpha is an all-zero
    placeholder (there is no ground truth). A click outside the photo is an error, as is a box
    outside it (a box reaching past an edge is clipped with a warning, as MicroMat-3K's are:
    :func:`~mattekit.data.micromat.parse_micromat_prompt`). A mask without a box
    gets its bounding box, and a text prompt the whole image's, since the prompt sampler
    derives what a family reads from the box when there is no ground truth.

    Raises (in :meth:`load`):
        ValueError naming the file: a photo under :data:`MIN_PHOTO_SIDE` pixels a side, a click
        outside the photo, an empty mask, a mask of another size than its image.
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


def checked_prompt(
    prompt: UserPrompt, height: int, width: int, photo: Path
) -> tuple[np.ndarray, np.ndarray | None]:
    """The prompt's clicks (N x 3) and box (4,) on a ``height`` x ``width`` photo, checked
    (see :class:`PromptedImages`); ``matte`` calls it on every photo's size before any runs.

    Raises:
        ValueError naming the photo or the prompt's origin.
    """
    if min(height, width) < MIN_PHOTO_SIDE:
        raise ValueError(
            f"{photo}: a {width} x {height} photo; mattekit mattes photos of at least "
            f"{MIN_PHOTO_SIDE} x {MIN_PHOTO_SIDE} pixels"
        )
    outside = [p for p in prompt.points if not (0 <= p[0] < width and 0 <= p[1] < height)]
    if outside:
        x, y, _ = outside[0]
        raise ValueError(
            f"{prompt.origin}: the click at ({x:g}, {y:g}) lies outside the {width} x {height} "
            f"photo {photo} (x in [0, {width}), y in [0, {height}), in displayed pixels)"
        )
    document = prompt.micromat_document()
    # Inside the photo but past the last pixel centre: the last pixel, without a warning.
    document["point"] = [
        [min(x, width - 1), min(y, height - 1), label] for x, y, label in document["point"]
    ]
    return parse_micromat_prompt(document, Path(prompt.origin), height, width, photo.stem)


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
    points, box = checked_prompt(prompt, height, width, image_path or Path(sample_id))
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
