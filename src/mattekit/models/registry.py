"""The model registry: lower-case alias -> family, filled by each family's own folder.

A family registers itself in its package's ``__init__.py`` (timm-style:
``register_model(ModelEntry(...))``), and :mod:`mattekit.models` imports every family package, so
adding a family touches only its folder; ``mattekit models`` / :func:`list_models` show what
exists.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mattekit.models.base import MattingModule


@dataclass(frozen=True)
class ModelEntry:
    """One registered family.

    Attributes:
        alias: lower-case CLI name (``mattekit fit --model <alias>``).
        cls: the :class:`~mattekit.models.base.MattingModule` subclass.
        summary: one line for ``mattekit models``.
        tiny: init args of the tiny variant used by tests and CPU smoke runs.
        paper_size: init args of the paper-size variant; the contract tests build it on the
            meta device to check its structure.
        stages: a family trained in stages, its stage names in order (``--model.stage``); each
            later stage starts from a run of the one before (``--model.previous_stage CKPT``).
            The contract and CLI tests run every stage, chained.
    """

    alias: str
    cls: type[MattingModule]
    summary: str
    tiny: dict = field(default_factory=dict)
    paper_size: dict = field(default_factory=dict)
    stages: tuple[str, ...] = ()

    @property
    def class_path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    @property
    def prompts(self) -> tuple[str, ...]:
        """Prompt kinds the family accepts (declared once, on the family class)."""
        return self.cls.accepted_prompts


#: Every registered family by alias (filled as the family packages are imported).
MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add a family to :data:`MODELS` (called from the family's ``__init__.py``).

    Raises:
        ValueError: the alias is not lower-case, or another class already has it.
    """
    if entry.alias != entry.alias.lower():
        raise ValueError(f"model alias {entry.alias!r} must be lower-case")
    known = MODELS.get(entry.alias)
    if known is not None and known.cls is not entry.cls:
        raise ValueError(f"model alias {entry.alias!r} is taken by {known.class_path}")
    MODELS[entry.alias] = entry
    return entry


def list_models(pattern: str = "*") -> list[ModelEntry]:
    """Registered families whose alias matches a shell-style ``pattern`` (``"sd*"``)."""
    return [entry for alias, entry in sorted(MODELS.items()) if fnmatch.fnmatch(alias, pattern)]


def get_model_entry(name: str) -> ModelEntry:
    """Look a family up by alias or class name (case-insensitive)."""
    for entry in MODELS.values():
        if name.lower() in (entry.alias, entry.cls.__name__.lower()):
            return entry
    known = ", ".join(sorted(MODELS))
    raise KeyError(f"unknown model {name!r}; registered: {known} (see `mattekit models`)")
