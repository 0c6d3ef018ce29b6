"""``{name}`` in a grid's arguments: the checkpoint of the stage called ``name``.

Only ``{identifier}`` is a placeholder, so JSON and YAML values in arguments
(``{"class_path": ...}``, ``{encoder: 0.1}``) are never mistaken for one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# A stage name: it is also a folder name, and a digit-led one could be taken for a run's index.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{(" + NAME.pattern + r")\}")


def placeholders(args: Iterable[str]) -> list[str]:
    """The names ``args`` use as ``{name}``, in order of first mention."""
    return list(dict.fromkeys(name for arg in args for name in _PLACEHOLDER.findall(arg)))


def fill(args: Iterable[str], checkpoints: Mapping[str, str]) -> tuple[str, ...]:
    """``args`` with each ``{name}`` of ``checkpoints`` replaced; other placeholders stay."""
    replace = lambda match: checkpoints.get(match[1], match[0])  # noqa: E731
    return tuple(_PLACEHOLDER.sub(replace, arg) for arg in args)
