"""``ImageFolder``: plain photos without ground truth, for ``predict``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mattekit.data.folders import default_source_name, list_image_files
from mattekit.data.io import ConversionLog, read_photo
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource
from mattekit.output_records import file_sha256
from mattekit.prompts.photo_samples import prompted_sample
from mattekit.prompts.user import UserPrompt, read_prompt_file


class ImageFolder(MattingSource):
    """Plain photos without ground truth, for ``predict`` only: the photos and prompt files
    ``mattekit matte`` reads, read the same way.

    Layout::

        root/
        ├── a.jpg  b.png ...     photos, directly inside root (not recursive)
        └── a.json ...           optional prompts (beside the photos, or in prompt_dir)

    Photos are read as displayed (EXIF orientation applied, :func:`~mattekit.data.io.read_photo`),
    so prompts and alphas are in the pixels a viewer shows. A prompt file is MicroMat-3K's json
    (``"point"``, ``"bbox"``) with optional ``"text"`` and ``"mask"``, as ``matte`` reads it
    (:func:`~mattekit.inference.prompts.read_prompt_file`); a photo without one is prompted
    with a box covering the whole photo, which asks the model for the salient object.

    ``RawSample`` requires an alpha, so ``alpha`` is an all-zero H x W float32 placeholder: it is
    not ground truth, and metrics or losses computed on this source are meaningless.

    Args:
        root: folder of photos.
        prompt_dir: folder of ``<stem>.json`` prompt files (relative to ``root`` or absolute);
            default: ``root`` itself, beside the photos.
        name: source name; defaults to the name of ``root``.
    """

    def __init__(self, root: str, prompt_dir: str | None = None, name: str | None = None) -> None:
        root_path = Path(root)
        super().__init__(name or default_source_name(root_path))
        self.files = list(list_image_files(root_path).values())
        if not self.files:
            raise ValueError(f"{self.name}: no image files in {root_path}")
        self.prompt_dir = root_path / prompt_dir if prompt_dir is not None else root_path
        if not self.prompt_dir.is_dir():
            raise FileNotFoundError(f"{self.name}: prompt_dir not found: {self.prompt_dir}")
        self._conversions = ConversionLog(self.name)

    def __len__(self) -> int:
        return len(self.files)

    def sample_id(self, index: int) -> str:
        return self.files[index].stem

    def prompt_file(self, index: int) -> Path | None:
        """The photo's ``<stem>.json``, None when it has none."""
        path = self.prompt_dir / f"{self.files[index].stem}.json"
        return path if path.is_file() else None

    def sample_inputs(self, index: int) -> dict:
        prompt_file = self.prompt_file(index)
        return {
            "photo_sha256": file_sha256(self.files[index]),
            "prompt_sha256": file_sha256(prompt_file) if prompt_file else None,
        }

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        path = self.files[index]
        prompt_file = self.prompt_file(index)
        prompt = read_prompt_file(prompt_file) if prompt_file else UserPrompt(origin=str(path))
        image = read_photo(path, self._conversions)
        return prompted_sample(path.stem, image, prompt, self.name, self._conversions, path)
