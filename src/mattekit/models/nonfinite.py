"""Non-finite losses and gradients during training: which samples, and what was skipped.

With ``nonfinite_loss="skip"`` a step whose loss is NaN or infinite trains on the samples whose
inputs and outputs are finite (when that can be told), else it is skipped; a step whose
gradients are non-finite is skipped too, so the weights stay finite. Too many skips in a row stop
the run, and every skip is kept for the run's summary (``nonfinite_steps.json``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mattekit.atomic_files import write_bytes_atomic
from mattekit.data.sample import MattingBatch

logger = logging.getLogger(__name__)

SUMMARY_NAME = "nonfinite_steps.json"


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message names the terms and the samples."""


def nonfinite_samples(batch: MattingBatch, outputs: dict[str, Tensor]) -> list[int]:
    """Indices of the samples whose batch fields or outputs hold NaN or infinity."""
    size = len(batch)
    bad = torch.zeros(size, dtype=torch.bool)
    values = [getattr(batch, f.name) for f in dataclasses.fields(batch)] + list(outputs.values())
    for value in values:
        if isinstance(value, Tensor) and value.is_floating_point() and value.ndim >= 1:
            if value.shape[0] == size:
                finite = torch.isfinite(value.detach().reshape(size, -1)).all(dim=1)
                bad |= ~finite.cpu()
        elif isinstance(value, list) and len(value) == size:
            for index, item in enumerate(value):
                if isinstance(item, Tensor) and item.is_floating_point():
                    bad[index] |= not bool(torch.isfinite(item).all())
    return bad.nonzero().flatten().tolist()


def gradients_finite(parameters) -> Tensor:
    """Whether every gradient present is finite, as a 0-d bool tensor on the gradients' device
    (read it when the decision must be taken: that read is the one host sync).

    One multi-tensor max-norm per device and dtype (``torch._foreach_norm``: NaN or infinity
    anywhere makes a norm non-finite) instead of two kernels per parameter.
    """
    groups: dict[tuple, list[Tensor]] = {}
    for parameter in parameters:
        if parameter.grad is not None:
            grad = parameter.grad
            groups.setdefault((grad.device, grad.dtype), []).append(grad)
    if not groups:
        return torch.tensor(True)
    finite = [
        torch.stack(torch._foreach_norm(grads, float("inf"))).isfinite().all()
        for grads in groups.values()
    ]
    return finite[0] if len(finite) == 1 else torch.stack([f.cpu() for f in finite]).all()


@dataclass
class SkippedStep:
    """One step that did not train on its whole batch.

    Attributes:
        step: the global step.
        reason: what was non-finite.
        samples: the samples left out (the whole batch when the step was skipped).
        step_skipped: True when no update happened; False when the others trained.
    """

    step: int
    reason: str
    samples: list[str]
    step_skipped: bool


@dataclass
class NonFiniteRecord:
    """Every skip of a run and the current run of consecutive skipped steps.

    Args:
        max_consecutive: skipped optimiser steps in a row after which the run stops.
    """

    max_consecutive: int
    skips: list[SkippedStep] = field(default_factory=list)
    consecutive: int = 0

    def add(self, skip: SkippedStep) -> None:
        self.skips.append(skip)

    def optimiser_step(self, skipped: bool) -> None:
        """Count a step; raise :class:`NonFiniteLossError` after too many skips in a row."""
        self.consecutive = self.consecutive + 1 if skipped else 0
        if self.consecutive > self.max_consecutive:
            last = self.skips[-1] if self.skips else None
            raise NonFiniteLossError(
                f"{self.consecutive} optimiser steps in a row were skipped for non-finite values "
                f"(last: step {last.step if last else '?'}, {last.reason if last else '?'}); "
                "the data or the training has diverged: resume from an earlier checkpoint with "
                "a lower learning rate, or raise max_consecutive_skips"
            )

    def state(self) -> list[dict]:
        return [dataclasses.asdict(skip) for skip in self.skips]

    def restore(self, state: list[dict]) -> None:
        self.skips = [SkippedStep(**skip) for skip in state]

    def report(self, folder: Path | None) -> None:
        """Log what was skipped and write it to ``folder / nonfinite_steps.json``."""
        if not self.skips:
            return
        skipped = sum(skip.step_skipped for skip in self.skips)
        dropped = sum(len(skip.samples) for skip in self.skips if not skip.step_skipped)
        where = ""
        if folder is not None:
            path = Path(folder) / SUMMARY_NAME
            write_bytes_atomic(path, json.dumps(self.state(), indent=1).encode())
            where = f"; every one in {path}"
        logger.warning(
            "non-finite values: %d optimiser step(s) skipped, %d sample(s) left out of the "
            "steps that trained%s",
            skipped, dropped, where,
        )  # fmt: skip
