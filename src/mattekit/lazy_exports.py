"""Package names imported on first use, so that importing one light submodule of a package (a
worker process that only reads files, or only needs metric preset names) does not pay for the
heavy ones its ``__init__`` would otherwise import."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_exports(
    package: str, module_of: dict[str, str], eager: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for a package whose names live in submodules.

    Args:
        package: the package's ``__name__`` (named in the error for an unknown name).
        module_of: exported name -> the module that defines it, imported on first use.
        eager: names the package binds itself (listed in ``__all__`` and ``dir()`` too).
    """
    names = sorted([*module_of, *eager])

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module_of[name]), name)

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__, names
