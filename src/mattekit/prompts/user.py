"""What a user points at: clicks, a box, a mask or trimap file, or text, from the command line
or from a MicroMat-3K-style json file beside the image (its keys: each kind's ``json_key``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mattekit.data.io import read_json
from mattekit.output_records import file_sha256
from mattekit.prompts.kinds import KINDS

#: The json keys a prompt file may have: each kind's, in the order ``auto`` prefers them.
JSON_KEYS = tuple(kind.json_key for kind in KINDS.values() if kind.json_key)
#: The prompt fields that name files, by kind (their content, not their path, is recorded).
_FILE_KINDS = ("mask", "trimap")


@dataclass(frozen=True)
class UserPrompt:
    """One image's prompt, in the image's own pixels (checked against its size when loaded).

    Attributes:
        points: ``[(x, y, label), ...]``, label 1 positive / 0 negative.
        box: ``(x0, y0, x1, y1)``.
        mask: a mask file (any encoding :func:`~mattekit.data.io.read_mask` reads).
        trimap: a trimap file (:func:`~mattekit.data.io.read_trimap`).
        text: a referring expression, for text-prompted families.
        origin: where the prompt came from, named in errors (``command line``, a json file).
        kind: the kind to run with (set once chosen by :meth:`kind_for`); "" before.
    """

    points: tuple[tuple[float, float, int], ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: Path | None = None
    trimap: Path | None = None
    text: str | None = None
    origin: str = field(default="command line", compare=False)
    kind: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds this prompt has, in :data:`~mattekit.prompts.KINDS` order."""
        present = {
            "text": bool(self.text),
            "trimap": self.trimap is not None,
            "mask": self.mask is not None,
            "box": self.box is not None,
            "points": bool(self.points),
        }
        return tuple(kind for kind in KINDS if present.get(kind))

    def kind_for(self, accepted: Sequence[str], requested: str = "auto") -> str:
        """The kind to run: ``requested``, or with ``auto`` the first kind of this prompt the
        model accepts (``none`` for an empty prompt, when the model takes it: never in place
        of a prompt the user gave).

        Raises:
            ValueError naming the prompt's origin, what it has and what the model takes.
        """
        runnable = [kind for kind in (*self.kinds, "none") if kind in accepted]
        if requested != "auto":
            usable = [requested] if requested in runnable else []
        else:
            usable = [kind for kind in self.kinds if kind in accepted]
            usable = usable or (["none"] if not self.kinds and "none" in accepted else [])
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
            **{
                f"{name}_sha256": file_sha256(path) if (path := getattr(self, name)) else None
                for name in _FILE_KINDS
            },
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
    y1]``, label -1 rows are padding), with an optional ``"text"`` and optional ``"mask"`` and
    ``"trimap"`` (file paths, relative to the json's folder).

    Raises:
        ValueError naming the file when its content is not such an object, or when its mask
        path leaves the json's folder (a prompt file must not point the reader at any file on
        disk; a path given on the command line is the user's own choice).
    """
    document = read_json(path, "prompt file")
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a json object with keys among {', '.join(JSON_KEYS)}")
    unknown = set(document) - set(JSON_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected {', '.join(JSON_KEYS)}")
    try:
        points = np.asarray(document.get("point") or np.zeros((0, 3)), np.float64).reshape(-1, 3)
        box = document.get("bbox")
        box = tuple(float(v) for v in np.asarray(box, np.float64).reshape(4)) if box else None
    except ValueError as error:
        raise ValueError(f"{path}: 'point' must be [x, y, label] rows, 'bbox' 4 numbers") from error
    text = document.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"{path}: 'text' must be a string")
    files = {}
    for name in _FILE_KINDS:
        value = document.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{path}: '{name}' must be a file path")
        files[name] = _inside_folder(path, name, value) if value else None
    return UserPrompt(
        points=tuple((x, y, int(label)) for x, y, label in points if label >= 0),
        box=box,
        text=text or None,
        origin=str(path),
        **files,
    )


def _inside_folder(prompt_file: Path, key: str, name: str) -> Path:
    """File ``name`` (under ``key``) relative to the prompt file's folder, refused when it
    leaves that folder (``..``, an absolute path, or a symbolic link pointing out)."""
    folder = prompt_file.parent.resolve()
    target = (folder / name).resolve()
    if not target.is_relative_to(folder):
        raise ValueError(
            f"{prompt_file}: '{key}' {name!r} leaves the json's folder ({folder}); a prompt "
            f"file may name files in its own folder or below it (give --{key} for others)"
        )
    return prompt_file.parent / name
