"""The student stage's distillation terms (paper eqs. 3, 5 and 6) from one step's two forwards:
the student's (with gradients) and the frozen teacher's, on the same image and text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from mattekit.models.teachmatte.attention import AttentionRecorder
from mattekit.models.teachmatte.torch_model import GroundingOutput


def distillation_terms(
    active: Mapping[str, nn.Module],
    student: GroundingOutput,
    teacher: GroundingOutput,
    records: tuple[AttentionRecorder, AttentionRecorder] | None,
    projectors: Sequence[nn.Module],
    pairs: Sequence[tuple[str, str]],
    known: Tensor,
) -> dict[str, Tensor]:
    """The unweighted ``sg``, ``stm`` and ``ctm`` terms that are active.

    Args:
        active: the active loss modules by name (weights not 0).
        records: the student's and the teacher's attention records (None when neither STM
            nor CTM is active).
        projectors: Phi per ``(student module, teacher module)`` pair of ``pairs``, whose
            outputs ``student.taps`` and ``teacher.taps`` hold.
        known: B x 1 x h x w mask of the known regions (L_SG's M).
    """
    terms: dict[str, Tensor] = {}
    if "sg" in active:
        projected = [phi(student.taps[s]) for phi, (s, _) in zip(projectors, pairs, strict=True)]
        targets = [teacher.taps[t] for _, t in pairs]
        terms["sg"] = active["sg"](projected, targets, known)
    for name, kind in (("stm", "propagated"), ("ctm", "cross")):
        if name in active:
            ours, theirs = records
            terms[name] = active[name](ours.by_level(kind), theirs.by_level(kind))
    return terms
