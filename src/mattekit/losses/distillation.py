"""Feature distillation: a student's intermediate features pulled towards a frozen teacher's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FeatureMSELoss(nn.Module):
    """Mean over feature pairs of the mean squared error (LiteSDMatte's UNet-stage distillation).

    ``forward(student, teacher)``: two equally long sequences of features, pair i of the same
    shape (any, e.g. B x C x h x w); the teacher's are detached (it is never trained through this
    loss). Returns a scalar.

    Raises:
        ValueError naming the pair whose shapes differ, or when the sequences differ in length.
    """

    def forward(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
        if len(student) != len(teacher) or not student:
            raise ValueError(
                f"expected as many student as teacher features (at least one), got "
                f"{len(student)} and {len(teacher)}"
            )
        errors = []
        for index, (ours, theirs) in enumerate(zip(student, teacher, strict=True)):
            if ours.shape != theirs.shape:
                raise ValueError(
                    f"feature {index}: student {tuple(ours.shape)} vs teacher {tuple(theirs.shape)}"
                )
            errors.append(F.mse_loss(ours.float(), theirs.detach().float()))
        return torch.stack(errors).mean()
