"""What a user points at: clicks, a box, a mask file or text, from the command line or from a
MicroMat-3K-style json file beside the image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mattekit.data.io import read_json
from mattekit.output_records import file_sha256

#: Prompt kinds in the order ``auto`` prefers them when a prompt has several.
PROMPT_KINDS = ("text", "mask", "box", "points")


@dataclass(frozen=True)
class UserPrompt:
    """One image's prompt, in the image's own pixels (checked against its size when loaded).

    Attributes:
        points: ``[(x, y, label), ...]``, label 1 positive / 0 negative.
        box: ``(x0, y0, x1, y1)``.
        mask: a mask file (any encoding :func:`~mattekit.data.io.read_mask` reads).
        text: a referring expression, for text-prompted families.
        origin: where the prompt came from, named in errors (``command line``, a json file).
    """

    points: tuple[tuple[float, float, int], ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: Path | None = None
    text: str | None = None
    origin: str = field(default="command line", compare=False)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds this prompt has, in :data:`PROMPT_KINDS` order."""
        present = {
            "text": bool(self.text),
            "mask": self.mask is not None,
            "box": self.box is not None,
            "points": bool(self.points),
        }
        return tuple(kind for kind in PROMPT_KINDS if present[kind])

    def kind_for(self, accepted: Sequence[str], requested: str = "auto") -> str:
        """The kind to run: ``requested``, or with ``auto`` the first kind of this prompt the
        model accepts.

        Raises:
            ValueError naming the prompt's origin, what it has and what the model takes.
        """
        usable = [kind for kind in self.kinds if kind in accepted]
        if requested != "auto":
            usable = [requested] if requested in usable else []
        if not usable:
            has = ", ".join(self.kinds) or "nothing"
            wanted = requested if requested != "auto" else " or ".join(accepted)
            raise ValueError(
                f"{self.origin}: the prompt has {has}; the model needs {wanted} "
                f"(it takes {', '.join(accepted)})"
            )
        return usable[0]

    def record(self) -> dict:
        """The prompt as an output's record holds it: the mask by its content (SHA-256)."""
        return {
            "points": [list(point) for point in self.points],
            "box": list(self.box) if self.box is not None else None,
            "mask_sha256": file_sha256(self.mask) if self.mask is not None else None,
            "text": self.text,
        }

    def micromat_document(self) -> dict:
        """The clicks and the box as MicroMat-3K's json has them (checked by its parser)."""
        document: dict = {"point": [list(point) for point in self.points]}
        if self.box is not None:
            document["bbox"] = list(self.box)
        return document


def parse_point(value: str) -> tuple[float, float, int]:
    """``"x,y"`` (a positive click) or ``"x,y,label"`` (1 positive, 0 negative)."""
    parts = value.split(",")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3) or (len(numbers) == 3 and numbers[2] not in (0, 1)):
        raise ValueError(f"--point {value!r}: expected x,y or x,y,label with label 1 or 0")
    label = int(numbers[2]) if len(numbers) == 3 else 1
    return numbers[0], numbers[1], label


def parse_box(value: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` in pixels."""
    try:
        numbers = tuple(float(part) for part in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 4:
        raise ValueError(f"--box {value!r}: expected x0,y0,x1,y1")
    return numbers  # type: ignore[return-value]


def read_prompt_file(path: Path) -> UserPrompt:
    """A MicroMat-3K prompt json (``"point": [[x, y, label], ...]``, ``"bbox": [x0, y0, x1,
    y1]``, label -1 rows are padding), with an optional ``"text"`` and an optional ``"mask"``
    (a file path, relative to the json's folder).

    Raises:
        ValueError naming the file when its content is not such an object, or when its mask
        path leaves the json's folder (a prompt file must not point the reader at any file on
        disk; a path given on the command line is the user's own choice).
    """
    document = read_json(path, "prompt file")
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a json object with 'point', 'bbox', 'text' or 'mask'")
    unknown = set(document) - {"point", "bbox", "text", "mask"}
    if unknown:
        raise ValueError(
            f"{path}: unknown keys {sorted(unknown)}; expected point, bbox, text or mask"
        )
    try:
        points = np.asarray(document.get("point") or np.zeros((0, 3)), np.float64).reshape(-1, 3)
        box = document.get("bbox")
        box = tuple(float(v) for v in np.asarray(box, np.float64).reshape(4)) if box else None
    except ValueError as error:
        raise ValueError(f"{path}: 'point' must be [x, y, label] rows, 'bbox' 4 numbers") from error
    text, mask = document.get("text"), document.get("mask")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"{path}: 'text' must be a string")
    if mask is not None and not isinstance(mask, str):
        raise ValueError(f"{path}: 'mask' must be a file path")
    return UserPrompt(
        points=tuple((x, y, int(label)) for x, y, label in points if label >= 0),
        box=box,
        mask=_inside_folder(path, mask) if mask else None,
        text=text or None,
        origin=str(path),
    )


def _inside_folder(prompt_file: Path, mask: str) -> Path:
    """``mask`` relative to the prompt file's folder, refused when it leaves that folder
    (``..``, an absolute path, or a symbolic link pointing out)."""
    folder = prompt_file.parent.resolve()
    target = (folder / mask).resolve()
    if not target.is_relative_to(folder):
        raise ValueError(
            f"{prompt_file}: 'mask' {mask!r} leaves the json's folder ({folder}); a prompt "
            "file may name masks in its own folder or below it (give --mask for others)"
        )
    return prompt_file.parent / mask
