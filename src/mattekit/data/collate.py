"""How a batch dataclass collates and moves its fields, declared once on each field.

Each field of a batch dataclass (:class:`~mattekit.data.sample.MattingBatch`) carries its rule in
its metadata, built with one of the helpers below::

    image: Tensor = field(metadata=stacked())                   # B x ... (every sample has one)
    points: Tensor = field(metadata=padded(0.0))                # B x N_max x ..., padded
    fg: Tensor | None = field(default=None, metadata=stacked(optional=True))
    text: list[str] = field(default_factory=list, metadata=per_sample())
    original_alpha: list[Tensor] | None = field(default=None, metadata=per_sample(optional=True))

:func:`collate_dataclass` and :func:`move_dataclass` read those rules, so adding a field to the
batch is one line beside the others, and a field without a rule is an error naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

COLLATE_RULE = "collate"  # the key of a field's rule in its metadata

T = TypeVar("T")


class CollateRule:
    """How one field's per-sample values become the batch's value, and how it moves."""

    optional: bool = False

    def collate(self, name: str, values: list) -> Any:
        raise NotImplementedError

    def to(self, value: Any, device: torch.device | str) -> Any:
        raise NotImplementedError

    def select(self, value: Any, indices: list[int]) -> Any:
        """The batch value of the samples at ``indices`` only."""
        if value is None:
            return None
        if isinstance(value, Tensor):
            return value[indices]
        return [value[index] for index in indices]

    def _missing(self, name: str, values: list) -> bool:
        """True when some sample has no value: an optional field is then None for the batch."""
        missing = [index for index, value in enumerate(values) if value is None]
        if missing and not self.optional:
            raise ValueError(f"batch field '{name}' is missing from sample(s) {missing}")
        return bool(missing)


@dataclass(frozen=True)
class Stacked(CollateRule):
    """``torch.stack`` of same-shaped tensors; optional: None unless every sample has one."""

    optional: bool = False

    def collate(self, name: str, values: list) -> Tensor | None:
        return None if self._missing(name, values) else torch.stack(values)

    def to(self, value: Tensor | None, device: torch.device | str) -> Tensor | None:
        return None if value is None else value.to(device)


@dataclass(frozen=True)
class Padded(CollateRule):
    """Tensors of different lengths along dim 0, padded with ``value`` to the longest, stacked."""

    value: float

    def collate(self, name: str, values: list) -> Tensor:
        self._missing(name, values)
        length = max(value.shape[0] for value in values)
        first = values[0]
        batch = first.new_full((len(values), length, *first.shape[1:]), self.value)
        for index, value in enumerate(values):
            batch[index, : value.shape[0]] = value
        return batch

    def to(self, value: Tensor, device: torch.device | str) -> Tensor:
        return value.to(device)


@dataclass(frozen=True)
class PerSample(CollateRule):
    """A list with one value per sample (strings, or tensors of different sizes); optional: None
    unless every sample has a value."""

    optional: bool = False

    def collate(self, name: str, values: list) -> list | None:
        return None if self._missing(name, values) else list(values)

    def to(self, value: list | None, device: torch.device | str) -> list | None:
        if value is None:
            return None
        return [item.to(device) if isinstance(item, Tensor) else item for item in value]


def stacked(optional: bool = False) -> dict:
    """Field metadata: B x (the per-sample shape); optional: None unless every sample has it."""
    return {COLLATE_RULE: Stacked(optional)}


def padded(value: float) -> dict:
    """Field metadata: per-sample length N_i along dim 0 -> B x max(N_i) x ..., padded."""
    return {COLLATE_RULE: Padded(value)}


def per_sample(optional: bool = False) -> dict:
    """Field metadata: the list of the samples' values; optional: None unless all have one."""
    return {COLLATE_RULE: PerSample(optional)}


def collate_rule(field: dataclasses.Field) -> CollateRule:
    """The rule declared on ``field``.

    Raises:
        TypeError: naming the field when it declares none.
    """
    rule = field.metadata.get(COLLATE_RULE)
    if not isinstance(rule, CollateRule):
        raise TypeError(
            f"batch field '{field.name}' declares no collation rule: give it "
            "field(metadata=stacked() / padded(value) / per_sample()) from mattekit.data.collate"
        )
    return rule


def collate_dataclass(batch_type: type[T], samples: list[dict]) -> T:
    """``batch_type`` built from per-sample dicts, each field by its declared rule.

    A key that is not a field of ``batch_type`` is an error (a typo would otherwise vanish);
    a sample may leave out an optional field.
    """
    fields = dataclasses.fields(batch_type)
    unknown = sorted(set().union(*(sample.keys() for sample in samples)) - {f.name for f in fields})
    if unknown:
        raise KeyError(f"samples have keys that {batch_type.__name__} does not declare: {unknown}")
    return batch_type(
        **{
            f.name: collate_rule(f).collate(f.name, [sample.get(f.name) for sample in samples])
            for f in fields
        }
    )


def select_dataclass(batch: T, indices: list[int]) -> T:
    """A copy of ``batch`` (same class) holding the samples at ``indices`` only."""
    return type(batch)(
        **{
            f.name: collate_rule(f).select(getattr(batch, f.name), indices)
            for f in dataclasses.fields(batch)
        }
    )


def move_dataclass(batch: T, device: torch.device | str) -> T:
    """A copy of ``batch`` (same class) with every field moved to ``device`` by its rule."""
    return type(batch)(
        **{
            f.name: collate_rule(f).to(getattr(batch, f.name), device)
            for f in dataclasses.fields(batch)
        }
    )
