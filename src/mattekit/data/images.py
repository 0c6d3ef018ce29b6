"""``ImageFolder``: plain images without ground truth, for ``predict``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mattekit.data.folders import default_source_name, list_image_files
from mattekit.data.io import ConversionLog, read_image
from mattekit.data.micromat import read_micromat_prompt
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource


class ImageFolder(MattingSource):
    """Plain images without ground truth, for ``predict`` only.

    Layout::

        root/
        ├── a.jpg  b.png ...     photos, directly inside root (not recursive)
        └── (prompt_dir/)        optional a.json ...  (MicroMat-3K format: "point", "bbox")

    Prompts come from ``prompt_dir`` (MicroMat-3K's json format, pixels of the stored image); an
    image without a prompt file, or every image when ``prompt_dir`` is None, is prompted with a box
    covering the whole image, which asks the model for the salient object.

    ``RawSample`` requires an alpha, so ``alpha`` is an all-zero H x W float32 placeholder: it is
    not ground truth, and metrics or losses computed on this source are meaningless.

    Args:
        root: folder of images.
        prompt_dir: folder of ``<stem>.json`` prompt files (relative to ``root`` or absolute).
        name: source name; defaults to the name of ``root``.
    """

    def __init__(self, root: str, prompt_dir: str | None = None, name: str | None = None) -> None:
        root_path = Path(root)
        super().__init__(name or default_source_name(root_path))
        self.files = list(list_image_files(root_path).values())
        if not self.files:
            raise ValueError(f"{self.name}: no image files in {root_path}")
        self.prompt_dir = root_path / prompt_dir if prompt_dir is not None else None
        if self.prompt_dir is not None and not self.prompt_dir.is_dir():
            raise FileNotFoundError(f"{self.name}: prompt_dir not found: {self.prompt_dir}")
        self._conversions = ConversionLog(self.name)

    def __len__(self) -> int:
        return len(self.files)

    def sample_id(self, index: int) -> str:
        return self.files[index].stem

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        path = self.files[index]
        image = read_image(path, self._conversions)
        height, width = image.shape[:2]
        points, box = None, None
        prompt_file = self.prompt_dir / f"{path.stem}.json" if self.prompt_dir else None
        if prompt_file is not None and prompt_file.exists():
            points, box = read_micromat_prompt(prompt_file, height, width, path.stem)
        if box is None and (points is None or len(points) == 0):
            box = np.array([0, 0, width - 1, height - 1], np.float32)
        placeholder_alpha = np.zeros((height, width), dtype=np.float32)
        return RawSample(
            self.sample_id(index),
            image,
            placeholder_alpha,
            points=points,
            box=box,
            source=self.name,
        )
