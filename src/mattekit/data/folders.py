"""Folder sources: benchmark and training sets stored as parallel folders paired by file stem.

Every folder source lists its files once, at construction (sorted by stem), and reads them only in
:meth:`~mattekit.data.source.MattingSource.load`. A stem present in one folder but not in another
is an error at construction (or, with ``strict=False``, skipped with one warning); an image and
its matte of different sizes are an error when that sample is loaded. The layouts are drawn in
``src/mattekit/data/README.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mattekit.data.io import (
    IMAGE_EXTENSIONS,
    ConversionLog,
    read_alpha,
    read_image,
    read_mask,
    read_trimap,
)
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource

logger = logging.getLogger(__name__)


def default_source_name(root: Path) -> str:
    """The name of the root folder (also for ``"."`` or a trailing slash)."""
    return root.absolute().name or str(root)


def list_image_files(folder: str | Path) -> dict[str, Path]:
    """Image files directly inside ``folder`` (not recursive), keyed by stem, sorted by stem.

    Hidden files and other extensions are ignored; two files with the same stem are an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    files: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in files:
            raise ValueError(
                f"{folder}: two files share the stem {path.stem!r} "
                f"({files[path.stem].name}, {path.name}); keep one"
            )
        files[path.stem] = path
    return dict(sorted(files.items()))


def pair_by_stem(
    folders: Mapping[str, str | Path], *, source_name: str, strict: bool = True
) -> list[dict[str, Path]]:
    """Pair the files of several folders by stem.

    Args:
        folders: role -> folder, e.g. ``{"image": root / "input", "alpha": root / "gt"}``.
        source_name: named in errors and warnings.
        strict: a stem missing from any folder is an error (True) or skipped with a warning.

    Returns:
        One ``{role: path}`` per stem present in every folder, sorted by stem.
    """
    listings = {role: list_image_files(folder) for role, folder in folders.items()}
    all_stems = sorted(set().union(*listings.values()))
    missing = [
        (stem, Path(folders[role]))
        for stem in all_stems
        for role, listing in listings.items()
        if stem not in listing
    ]
    if missing and strict:
        shown = "; ".join(f"{stem!r} has no file in {folder}" for stem, folder in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{source_name}: missing counterpart: {shown}{more}; pass strict=False to skip them"
        )
    incomplete = {stem for stem, _ in missing}
    if incomplete:
        logger.warning(
            "%s: skipping %d of %d stems that lack a counterpart (first: %r has no file in %s)",
            source_name,
            len(incomplete),
            len(all_stems),
            missing[0][0],
            missing[0][1],
        )
    pairs = [
        {role: listing[stem] for role, listing in listings.items()}
        for stem in all_stems
        if stem not in incomplete
    ]
    if not pairs:
        raise ValueError(
            f"{source_name}: no samples found in {', '.join(map(str, folders.values()))}"
        )
    return pairs


def check_same_size(
    sample_id: str, reference: tuple[Path, np.ndarray], *others: tuple[Path, np.ndarray]
) -> None:
    """Raise a ValueError naming both files when an array's H x W differs from the reference's.

    Args:
        sample_id: named in the error.
        reference: (file, array) whose size the others must have.
        others: more (file, array) pairs.
    """
    reference_path, reference_array = reference
    height, width = reference_array.shape[:2]
    for path, array in others:
        if array.shape[:2] != (height, width):
            raise ValueError(
                f"{sample_id}: size mismatch: {path} is {array.shape[1]}x{array.shape[0]} but "
                f"{reference_path} is {width}x{height} (W x H)"
            )


class ImageAlphaFolder(MattingSource):
    """Natural images with ground-truth alpha mattes (and optionally trimaps), paired by stem.

    Layout (defaults)::

        root/
        ├── image/   a.jpg  b.png ...   photos (any of .png .jpg .jpeg .bmp .tif .tiff .webp)
        ├── alpha/   a.png  b.png ...   mattes: grey, 16-bit, R=G=B colour or palette PNG
        └── trimap/  a.png  b.png ...   optional, values {0, 128, 255} (trimap_dir="trimap")

    Works for AIM-500 / AM-2K / P3M-500 (``image_dir="original"``, ``alpha_dir="mask"``,
    ``trimap_dir="trimap"``; P3M-500-NP: ``image_dir="original_image"``) and alphamatting.com
    (``image_dir="input"``, ``alpha_dir="gt"``, ``trimap_dir="trimap1"``).

    Args:
        root: data set folder.
        image_dir, alpha_dir: sub-folders of ``root`` holding images and mattes.
        trimap_dir: sub-folder of trimaps, or None when the set has none.
        name: source name; defaults to the name of ``root``.
        strict: a stem missing from a folder is an error (True) or skipped with a warning.
    """

    def __init__(
        self,
        root: str,
        image_dir: str = "image",
        alpha_dir: str = "alpha",
        trimap_dir: str | None = None,
        name: str | None = None,
        strict: bool = True,
    ) -> None:
        root_path = Path(root)
        super().__init__(name or default_source_name(root_path))
        folders = {"image": root_path / image_dir, "alpha": root_path / alpha_dir}
        if trimap_dir is not None:
            folders["trimap"] = root_path / trimap_dir
        self.files = pair_by_stem(folders, source_name=self.name, strict=strict)
        self._conversions = ConversionLog(self.name)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        files = self.files[index]
        sample_id = files["image"].stem
        image = read_image(files["image"], self._conversions)
        alpha = read_alpha(files["alpha"], self._conversions)
        trimap = read_trimap(files["trimap"], self._conversions) if "trimap" in files else None
        others = [(files["alpha"], alpha)]
        if trimap is not None:
            others.append((files["trimap"], trimap))
        check_same_size(sample_id, (files["image"], image), *others)
        return RawSample(sample_id, image, alpha, trimap=trimap, source=self.name)


class DISFolder(MattingSource):
    """Dichotomous image segmentation (DIS-5K style): images with binary masks, paired by stem.

    Layout (defaults; ``root`` is e.g. ``DIS5K/DIS-TR``)::

        root/
        ├── im/  a.jpg ...   photos
        └── gt/  a.png ...   binary masks (> 127 is foreground)

    The sample's ``alpha`` is the mask as float32 {0, 1} and ``seg_mask`` the mask itself.

    Args:
        root: data set folder.
        image_dir, mask_dir: sub-folders of ``root``.
        name: source name; defaults to the name of ``root``.
        strict: a stem missing from a folder is an error (True) or skipped with a warning.
    """

    def __init__(
        self,
        root: str,
        image_dir: str = "im",
        mask_dir: str = "gt",
        name: str | None = None,
        strict: bool = True,
    ) -> None:
        root_path = Path(root)
        super().__init__(name or default_source_name(root_path))
        self.files = pair_by_stem(
            {"image": root_path / image_dir, "mask": root_path / mask_dir},
            source_name=self.name,
            strict=strict,
        )
        self._conversions = ConversionLog(self.name)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        files = self.files[index]
        sample_id = files["image"].stem
        image = read_image(files["image"], self._conversions)
        mask = read_mask(files["mask"], self._conversions)
        check_same_size(sample_id, (files["image"], image), (files["mask"], mask))
        return RawSample(sample_id, image, mask.astype(np.float32), seg_mask=mask, source=self.name)
