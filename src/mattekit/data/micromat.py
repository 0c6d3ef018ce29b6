"""MicroMat-3K source (ZIM's test set): images, fine / coarse mattes, fixed point / box prompts."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np

from mattekit.data.folders import check_same_size
from mattekit.data.io import ConversionLog, read_alpha, read_image, read_json, warn_once
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource

logger = logging.getLogger(__name__)


def read_micromat_prompt(
    path: Path, height: int, width: int, sample_id: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a MicroMat-3K prompt json for an image of ``height`` x ``width`` pixels.

    The file holds ``{"point": [[x, y, label], ...], "bbox": [x0, y0, x1, y1]}`` in pixels, label
    1 positive, 0 negative, -1 padding (the official loader pads to 50 rows).

    Returns:
        points: N x 3 float32 ``(x, y, label)`` without padding rows (N may be 0); points outside
            the image are clipped to it with a warning.
        box: 4 float32 ``(x0, y0, x1, y1)`` in the pipeline's inclusive pixel coordinates, clipped
            to ``[0, width - 1] x [0, height - 1]`` (a box ending at ``width`` / ``height`` is
            clipped silently, one reaching further with a warning naming the sample), or None
            when the file has no ``bbox``.

    Raises:
        ValueError naming the file: malformed content, labels other than -1 / 0 / 1, a box with
        x1 <= x0 or y1 <= y0, or a box entirely outside the image.
    """
    return parse_micromat_prompt(read_json(path, "prompt file"), path, height, width, sample_id)


def parse_micromat_prompt(
    prompt: object, path: Path, height: int, width: int, sample_id: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`read_micromat_prompt` on a json document already read from ``path`` (the errors
    and warnings still name ``path``)."""
    if not isinstance(prompt, dict):
        raise ValueError(f"{path}: expected a json object with 'point' and 'bbox'")

    try:
        points = np.asarray(prompt.get("point") or np.zeros((0, 3)), dtype=np.float32)
    except ValueError as error:  # ragged rows
        raise ValueError(f"{path}: 'point' must be a list of [x, y, label] rows") from error
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{path}: 'point' must be a list of [x, y, label] rows")
    points = points[points[:, 2] >= 0]  # label -1 rows are padding
    if not np.isin(points[:, 2], (0, 1)).all():
        raise ValueError(f"{path}: point labels must be 1 (positive), 0 (negative) or -1 (padding)")
    inside = np.clip(points[:, :2], 0, [width - 1, height - 1])
    if not np.array_equal(inside, points[:, :2]):
        warn_once(
            f"points:{path}",
            "%s: points outside the %dx%d image clipped (%s)",
            sample_id,
            width,
            height,
            path,
        )
        points[:, :2] = inside

    if "bbox" not in prompt:
        return points, None
    try:
        box = np.asarray(prompt["bbox"], dtype=np.float32).reshape(4)
    except ValueError as error:
        raise ValueError(f"{path}: 'bbox' must be [x0, y0, x1, y1]") from error
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"{path}: box {box.tolist()} has x1 <= x0 or y1 <= y0")
    if box[0] >= width or box[1] >= height or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{path}: box {box.tolist()} lies outside the {width}x{height} image")
    # The pipeline uses inclusive pixel coordinates (x1 <= W - 1). A box ending exactly at W / H
    # is the edge convention, not an error: clip it silently; warn only when it reaches further.
    clipped = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1]).astype(np.float32)
    if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
        warn_once(
            f"box:{path}",
            "%s: box %s clipped to the %dx%d image (%s)",
            sample_id,
            box.tolist(),
            width,
            height,
            path,
        )
    return points, clipped


class MicroMatFolder(MattingSource):
    """MicroMat-3K: 3,000 high-resolution images with micro-level mattes and fixed prompts.

    Layout (as released with naver-ai/ZIM)::

        root/                           e.g. MicroMat3K
        ├── data_list.txt   one sample per line, paths relative to root:
        │                   "img/0001.png matte/fine/0001_01.png prompt/fine/0001_01.json seg/..."
        ├── img/           0001.png ...
        ├── matte/{fine,coarse}/   0001_01.png ...   one matte per object
        ├── prompt/{fine,coarse}/  0001_01.json ...  {"point": [[x, y, label], ...], "bbox": [...]}
        └── seg/{fine,coarse}/     ...               SAM-style masks, not used here

    Lines of ``data_list.txt`` whose matte path lies under a ``split`` folder form the source; the
    first three columns (image, matte, prompt json) are used. Samples carry ``points`` (padding
    removed) and ``box`` from the json; see :func:`read_micromat_prompt`.

    Args:
        root: data set folder.
        split: ``"fine"`` or ``"coarse"`` objects.
        list_file: sample list, relative to ``root``.
        name: source name; defaults to ``micromat-<split>``.
        strict: a listed file that does not exist is an error (True) or its line is skipped.
    """

    def __init__(
        self,
        root: str,
        split: Literal["fine", "coarse"] = "fine",
        list_file: str = "data_list.txt",
        name: str | None = None,
        strict: bool = True,
    ) -> None:
        super().__init__(name or f"micromat-{split}")
        if split not in ("fine", "coarse"):
            raise ValueError(f"{self.name}: split must be 'fine' or 'coarse', got {split!r}")
        root_path = Path(root)
        list_path = root_path / list_file
        if not list_path.is_file():
            raise FileNotFoundError(f"{self.name}: sample list not found: {list_path}")
        self.samples: list[tuple[Path, Path, Path]] = []
        for number, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
            columns = line.split()
            if not columns or columns[0].startswith("#"):
                continue
            if len(columns) < 3:
                raise ValueError(
                    f"{list_path}:{number}: expected 'image matte prompt [seg]' paths, got {line!r}"
                )
            if split in Path(columns[1]).parts:
                self.samples.append(tuple(root_path / column for column in columns[:3]))
        self._drop_missing_files(strict)
        if not self.samples:
            raise ValueError(f"{self.name}: no {split!r} samples listed in {list_path}")
        self._conversions = ConversionLog(self.name)

    def _drop_missing_files(self, strict: bool) -> None:
        """Check every listed file exists, listing each folder once instead of one stat per file."""
        folder_contents: dict[Path, set[str]] = {}

        def exists(path: Path) -> bool:
            if path.parent not in folder_contents:
                try:
                    folder_contents[path.parent] = set(os.listdir(path.parent))
                except FileNotFoundError:
                    folder_contents[path.parent] = set()
            return path.name in folder_contents[path.parent]

        missing = [path for sample in self.samples for path in sample if not exists(path)]
        if not missing:
            return
        if strict:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise FileNotFoundError(
                f"{self.name}: listed file not found: {missing[0]}{more}; pass strict=False to skip"
            )
        missing_set = set(missing)
        kept = [s for s in self.samples if not missing_set.intersection(s)]
        logger.warning(
            "%s: skipping %d samples with missing files (first: %s)",
            self.name,
            len(self.samples) - len(kept),
            missing[0],
        )
        self.samples = kept

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        image_path, matte_path, prompt_path = self.samples[index]
        sample_id = matte_path.stem
        image = read_image(image_path, self._conversions)
        alpha = read_alpha(matte_path, self._conversions)
        check_same_size(sample_id, (image_path, image), (matte_path, alpha))
        height, width = alpha.shape
        points, box = read_micromat_prompt(prompt_path, height, width, sample_id)
        return RawSample(sample_id, image, alpha, points=points, box=box, source=self.name)
