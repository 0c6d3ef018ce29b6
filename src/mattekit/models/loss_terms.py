"""Declared loss terms: each has a name and a weight, and every weight is a CLI setting.

A family declares its terms once in ``configure_losses`` (``{"l1": LossTerm(L1Loss()),
"gradient": LossTerm(GradientLoss(), 10.0)}``); users change a weight with
``--model.loss_weights '{gradient: 0}'``, so a paper's loss ablation is a config change. The
family computes raw (unweighted) values by name; the base multiplies them by their weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class LossTerm:
    """One named term of a family's objective.

    Attributes:
        module: computes the term (``mattekit.losses``); None when the family computes it inline.
        weight: its default weight in the total.
    """

    module: nn.Module | None = None
    weight: float = 1.0


def resolve_loss_weights(
    declared: Mapping[str, LossTerm], overrides: Mapping[str, float] | None
) -> dict[str, float]:
    """Declared default weights with the user's overrides applied.

    Raises:
        ValueError naming ``loss_weights`` and the unknown term (a typo must not be ignored).
    """
    unknown = sorted(set(overrides or {}) - set(declared))
    if unknown:
        raise ValueError(
            f"loss_weights: unknown loss term(s) {unknown}; this model's terms are "
            f"{sorted(declared)}"
        )
    return {
        name: float((overrides or {}).get(name, term.weight)) for name, term in declared.items()
    }


def weighted_terms(raw: Mapping[str, Tensor], weights: Mapping[str, float]) -> dict[str, Tensor]:
    """``weight x value`` per term; a term the family did not declare is an error."""
    undeclared = sorted(set(raw) - set(weights))
    if undeclared:
        raise KeyError(
            f"loss terms {undeclared} were computed but not declared in configure_losses "
            f"(declared: {sorted(weights)})"
        )
    return {name: weights[name] * value for name, value in raw.items()}


def in_float32(outputs: Mapping[str, object]) -> dict[str, object]:
    """``outputs`` with every floating-point tensor cast to float32 (differentiably); other
    values (integer or boolean maps, lists) as they are: what the loss terms compute on,
    whatever precision the network ran in (``MattingModule.weighted_loss``)."""
    return {
        name: value.float() if isinstance(value, Tensor) and value.is_floating_point() else value
        for name, value in outputs.items()
    }
