"""Distillation: a student's features and attention pulled towards a frozen teacher's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.losses.region import masked_mean


def feature_pairs(
    student: Sequence[Tensor], teacher: Sequence[Tensor]
) -> list[tuple[Tensor, Tensor]]:
    """``(student, detached teacher)`` pairs in float32, checked to match.

    Raises:
        ValueError naming the pair whose shapes differ, or when the sequences differ in length.
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(
            f"expected as many student as teacher features (at least one), got "
            f"{len(student)} and {len(teacher)}"
        )
    pairs = []
    for index, (ours, theirs) in enumerate(zip(student, teacher, strict=True)):
        if ours.shape != theirs.shape:
            raise ValueError(
                f"feature {index}: student {tuple(ours.shape)} vs teacher {tuple(theirs.shape)}"
            )
        pairs.append((ours.float(), theirs.detach().float()))
    return pairs


class FeatureMSELoss(nn.Module):
    """Sum over feature pairs of the mean squared error: LiteSDMatte's distillation, as the
    release's ``DistillationCriterion`` (``criterion.py:33-38``, without its x 0.01, which is
    the ``distillation`` term's weight here).

    ``forward(student, teacher)``: two equally long sequences of features, pair i of the same
    shape (any, e.g. B x C x h x w); the teacher's are detached (it is never trained through this
    loss). Returns a scalar.

    Raises:
        ValueError naming the pair whose shapes differ, or when the sequences differ in length.
    """

    def forward(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
        pairs = feature_pairs(student, teacher)
        return torch.stack([F.mse_loss(ours, theirs) for ours, theirs in pairs]).sum()


class MaskedFeatureMSELoss(nn.Module):
    """TeachDiffusionMatting's L_SG (paper eq. 3): the squared error restricted to a mask (the
    known regions: the transparent band is left to the student), per feature pair.

    Args:
        pairs: ``"sum"`` adds the pairs' errors (eq. 3's sum over layers, BK-SDM's feature
            loss); ``"mean"`` averages them.
        over: ``"all"`` divides each pair's masked squared error by all its elements, i.e.
            ``mse(M * student, M * teacher)`` (the paper's "mean reduction"); ``"mask"`` by the
            masked elements only (larger by 1 / known fraction).

    The defaults follow eq. 3; ``pairs="mean", over="mask"`` is mattekit's earlier form, about
    0.22x the default with 5 pairs and a known fraction of 0.91.

    ``forward(student, teacher, mask)``: equally long sequences of B x C x h x w features (the
    student's already projected to the teacher's width), and a B x 1 x H x W mask resized
    (nearest) to each pair's grid. The teacher's are detached. Returns a scalar.
    """

    def __init__(
        self, pairs: Literal["sum", "mean"] = "sum", over: Literal["all", "mask"] = "all"
    ) -> None:
        super().__init__()
        if pairs not in ("sum", "mean"):
            raise ValueError(f"pairs must be 'sum' or 'mean', got {pairs!r}")
        if over not in ("all", "mask"):
            raise ValueError(f"over must be 'all' or 'mask', got {over!r}")
        self.pairs, self.over = pairs, over

    def forward(self, student: Sequence[Tensor], teacher: Sequence[Tensor], mask: Tensor) -> Tensor:
        errors = []
        for ours, theirs in feature_pairs(student, teacher):
            on_grid = F.interpolate(mask.float(), size=ours.shape[-2:], mode="nearest")
            squared = (ours - theirs).square()
            errors.append(
                masked_mean(squared, on_grid) if self.over == "mask" else (squared * on_grid).mean()
            )
        stacked = torch.stack(errors)
        return stacked.sum() if self.pairs == "sum" else stacked.mean()

    def extra_repr(self) -> str:
        return f"pairs={self.pairs!r}, over={self.over!r}"


class PerLevelMSELoss(nn.Module):
    """Squared error between student and teacher maps grouped by resolution, averaged over the
    resolutions both have: TeachDiffusionMatting's L_STM (``reduction="mean"``, on the
    propagated alphas) and L_CTM (``"sum"``, on cross-attention maps: the paper sums because
    padding tokens make most entries 0).

    ``forward(student, teacher)``: dicts grid -> tensor of equal shapes per grid; the teacher's
    are detached.

    Raises:
        ValueError when the two share no grid, or a shared grid's shapes differ.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def forward(self, student: Mapping[Any, Tensor], teacher: Mapping[Any, Tensor]) -> Tensor:
        shared = [level for level in student if level in teacher]
        if not shared:
            raise ValueError(
                f"student and teacher share no resolution (student {sorted(student)}, "
                f"teacher {sorted(teacher)})"
            )
        errors = []
        for level in shared:
            ours, theirs = student[level], teacher[level]
            if ours.shape != theirs.shape:
                raise ValueError(
                    f"resolution {level}: student {tuple(ours.shape)} vs teacher "
                    f"{tuple(theirs.shape)}"
                )
            errors.append(
                F.mse_loss(ours.float(), theirs.detach().float(), reduction=self.reduction)
            )
        return torch.stack(errors).mean()

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
