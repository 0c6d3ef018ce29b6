"""A user's prompt on a photo as a ground-truth-free sample: the prompt checked against the
photo, its files read, and what a family reads derived (a box for a mask, the whole image for
text or nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mattekit.data.folders import check_same_size
from mattekit.data.io import ConversionLog, read_mask, read_trimap
from mattekit.data.micromat import parse_micromat_prompt
from mattekit.data.sample import RawSample
from mattekit.prompts.user import UserPrompt

#: The smallest photo side ``matte`` and the demo take: below it there is nothing to matte, and
#: the cut-out's multilevel foreground estimate divides by zero (a 1 x 1 photo did).
MIN_PHOTO_SIDE = 8


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
    """A photo (H x W x 3 uint8) and its prompt as a ground-truth-free sample, run with the
    prompt's ``kind`` ("" : the family's choice).

    A click outside the photo is an error, as is a box outside it (a box reaching past an edge
    is clipped with a warning, as MicroMat-3K's are:
    :func:`~mattekit.data.micromat.parse_micromat_prompt`). A mask without a box gets its
    bounding box, and a prompt without clicks or a box the whole image's, since the prompt
    sampler derives what a family reads from the box when there is no ground truth.

    Raises:
        ValueError naming the file: an empty mask, a mask or trimap of another size than its
        image.
    """
    height, width = image.shape[:2]
    photo = image_path or Path(sample_id)
    points, box = checked_prompt(prompt, height, width, photo)
    coarse_mask = trimap = None
    if prompt.trimap is not None:
        trimap = read_trimap(prompt.trimap, conversions)
        check_same_size(sample_id, (photo, image), (prompt.trimap, trimap))
    if prompt.mask is not None:
        mask = read_mask(prompt.mask, conversions)
        check_same_size(sample_id, (photo, image), (prompt.mask, mask))
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
        trimap=trimap,
        text=prompt.text or "",
        points=points if len(points) else None,
        box=box,
        coarse_mask=coarse_mask,
        source=source,
        prompt_kind=prompt.kind,
    )
