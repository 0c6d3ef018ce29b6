"""Prompts as one typed layer: one :class:`PromptKind` per kind (:data:`KINDS`) and the named
evaluation protocols that sample them from ground truth as each release does."""

from mattekit.prompts.kind import PromptKind
from mattekit.prompts.kinds import (
    KINDS,
    SPATIAL_KINDS,
    KindName,
    batch_floor,
    check_kinds,
    get_kind,
    prompt_maps,
    random_kinds,
    with_kind,
)

__all__ = [
    "KINDS",
    "SPATIAL_KINDS",
    "KindName",
    "PromptKind",
    "batch_floor",
    "check_kinds",
    "get_kind",
    "prompt_maps",
    "random_kinds",
    "with_kind",
]
