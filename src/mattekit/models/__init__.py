"""Matting families: one folder each, registered by the folder itself
(:mod:`mattekit.models.registry`).

Importing this package imports every family package in it, so :data:`MODELS` lists them all
without a central list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from mattekit.models.base import MattingModule
from mattekit.models.registry import (
    MODELS,
    ModelEntry,
    get_model_entry,
    list_models,
    register_model,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "MODELS",
    "MattingModule",
    "ModelEntry",
    "get_model_entry",
    "list_models",
    "register_model",
]
