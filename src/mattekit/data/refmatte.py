"""RefMatte-style source: images, per-object mattes and referring expressions from a json file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mattekit.data.folders import check_same_size, default_source_name, list_image_files
from mattekit.data.io import IMAGE_EXTENSIONS, ConversionLog, read_alpha, read_image, read_json
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource

logger = logging.getLogger(__name__)


def _stem(name: str) -> str:
    """A file name or a stem -> the stem (names in annotations come both ways)."""
    path = Path(name)
    return path.stem if path.suffix.lower() in IMAGE_EXTENSIONS else path.name


def _expressions(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: 'expressions' must be a non-empty list of strings")
    return list(value)


def parse_refmatte_annotation(path: Path) -> list[dict]:
    """Read a RefMatte annotation into entries ``{"alpha", "image", "expressions", ...}``.

    Two forms are accepted:

    * the official RefMatte / RefMatte-RW100 files (``refmatte_train_label.json``, ...): an object
      keyed by matte stem, ``{"<matte stem>": {"image_name": "<image stem>", "expressions":
      [...], ...}, ...}``;
    * a list ``[{"image": "a.jpg", "alpha": "a_1.png", "expressions": [...],
      "is_transparent": false}, ...]`` (``is_transparent`` optional).

    Names may be file names or stems; they are looked up by stem in the image / alpha folders.
    """
    data = read_json(path, "annotation file")
    if isinstance(data, dict):
        items = [
            (key, {"alpha": key, **value} if isinstance(value, dict) else value)
            for key, value in data.items()
        ]
        image_key = "image_name"
    elif isinstance(data, list):
        items = [(f"entry {number}", value) for number, value in enumerate(data)]
        image_key = "image"
    else:
        raise ValueError(f"{path}: expected a json object or list at the top level")
    entries = []
    for label, value in items:
        where = f"{path}: {label}"
        if not isinstance(value, dict) or image_key not in value or "alpha" not in value:
            raise ValueError(f"{where}: needs {image_key!r}, 'alpha' and 'expressions'")
        entries.append(
            {
                "image": _stem(str(value[image_key])),
                "alpha": _stem(str(value["alpha"])),
                "expressions": _expressions(value.get("expressions"), where),
                "is_transparent": bool(value.get("is_transparent", False)),
            }
        )
    return entries


class RefMatteFolder(MattingSource):
    """Referring image matting: an image, the matte of one object in it, and text describing it.

    Layout (defaults; official RefMatte: ``image_dir="img"``, ``alpha_dir="mask"``,
    ``annotation="refmatte_train_label.json"``)::

        root/
        ├── refmatte.json             annotation (see parse_refmatte_annotation)
        ├── image/  a.jpg ...         images; one image may have several objects
        └── alpha/  a_1.png a_2.png   one matte per (image, object) entry

    One sample per entry, its expression drawn with the pipeline ``rng`` (training: every draw may
    get another one; evaluation: fixed per index). With ``expand_expressions=True``, one sample
    per (entry, expression), ids ``<matte stem>#<k>``, for evaluating every expression.

    Args:
        root: data set folder.
        annotation: json file, relative to ``root``.
        image_dir, alpha_dir: sub-folders of ``root``.
        expand_expressions: one sample per expression instead of per entry.
        name: source name; defaults to the name of ``root``.
        strict: an entry whose image or matte is missing is an error (True) or skipped.
    """

    def __init__(
        self,
        root: str,
        annotation: str = "refmatte.json",
        image_dir: str = "image",
        alpha_dir: str = "alpha",
        expand_expressions: bool = False,
        name: str | None = None,
        strict: bool = True,
    ) -> None:
        root_path = Path(root)
        super().__init__(name or default_source_name(root_path))
        folders = {"image": root_path / image_dir, "alpha": root_path / alpha_dir}
        listings = {role: list_image_files(folder) for role, folder in folders.items()}
        self.entries = []
        missing = []
        for entry in parse_refmatte_annotation(root_path / annotation):
            absent = [role for role in ("image", "alpha") if entry[role] not in listings[role]]
            if absent:
                missing.append((entry["alpha"], entry[absent[0]], folders[absent[0]]))
                continue
            entry["image_path"] = listings["image"][entry["image"]]
            entry["alpha_path"] = listings["alpha"][entry["alpha"]]
            self.entries.append(entry)
        if missing:
            entry_name, stem, folder = missing[0]
            message = f"entry {entry_name!r}: no file with stem {stem!r} in {folder}"
            if strict:
                raise FileNotFoundError(
                    f"{self.name}: {len(missing)} entries lack a file, first {message}; "
                    "pass strict=False to skip them"
                )
            logger.warning(
                "%s: skipping %d entries lacking a file; %s", self.name, len(missing), message
            )
        if not self.entries:
            raise ValueError(f"{self.name}: no usable entries in {root_path / annotation}")
        # (entry, expression) per sample; expression None = drawn at load time.
        self.samples: list[tuple[int, int | None]] = (
            [
                (e, k)
                for e, entry in enumerate(self.entries)
                for k in range(len(entry["expressions"]))
            ]
            if expand_expressions
            else [(e, None) for e in range(len(self.entries))]
        )
        self._conversions = ConversionLog(self.name)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        entry_index, expression_index = self.samples[index]
        entry = self.entries[entry_index]
        if expression_index is None:
            sample_id = entry["alpha"]
            expression_index = int(rng.integers(len(entry["expressions"])))
        else:
            sample_id = f"{entry['alpha']}#{expression_index}"
        image = read_image(entry["image_path"], self._conversions)
        alpha = read_alpha(entry["alpha_path"], self._conversions)
        check_same_size(sample_id, (entry["image_path"], image), (entry["alpha_path"], alpha))
        return RawSample(
            sample_id,
            image,
            alpha,
            text=entry["expressions"][expression_index],
            is_transparent=entry["is_transparent"],
            source=self.name,
        )
