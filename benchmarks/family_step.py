"""One training step of a registered family, measured: the memory held between steps, the step's
peak above it, its time. Shared by ``gpu_check.py`` (bf16 on a GPU) and ``memory_budget.py``
(fp32 / bf16, activation checkpointing off / on, on the CPU).

The step is the one Lightning runs: ``training_step`` (under autocast for bf16, as
``precision=bf16-mixed``), backward, AdamW on the family's parameter groups, gradients set to
None after the step. Before it, AdamW's moments are allocated by one step on zero gradients, so
the memory held is what a run holds between steps: weights, AdamW's moments and the batch.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from paper_scale import state_gib
from timing import timed

from mattekit.data.datamodule import synthetic_batch
from mattekit.models.registry import ModelEntry, get_model_entry
from mattekit.models.saving import save_module_checkpoint
from mattekit.pipelines.benchmark.measure import PeakMemory
from mattekit.pipelines.benchmark.resident import GIB, resident_bytes

T = TypeVar("T")
#: ``precision`` choices: the autocast dtype of each (None: plain fp32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class StepMeasure:
    """One step's figures (GiB and ms; CUDA: allocated memory, CPU: resident memory)."""

    parameters: int
    trainable: int
    held_gib: float
    peak_gib: float
    step_ms: float
    loss: float

    @property
    def state_gib(self) -> float:
        """Weights (fp32) and AdamW's two moments of the trainable ones: what a run holds
        between steps whatever the allocator (counted, not measured). Gradients are not in it:
        they are set to None after each step, so the step's peak above the held memory holds
        them."""
        return state_gib(self.parameters, self.trainable)


def on_device(build: Callable[[], T], device: str) -> T:
    """``build()`` with ``device`` as the default device: random weights are initialised there
    (an SD UNet in seconds on a GPU, a minute on the CPU). Code that makes its own CPU tensors
    while building fails so: it is then built on the CPU (the caller moves it)."""
    try:
        with torch.device(device):
            return build()
    except (RuntimeError, TypeError):
        return build()


def build_family(
    entry: ModelEntry,
    kwargs: dict,
    device: str,
    stage: str | None = None,
    work_dir: str | Path | None = None,
    **settings,
):
    """The family with random weights (seed 0) on ``device``, in train mode.

    A later ``stage`` of a staged family starts, as a run does, from the checkpoint of the stage
    before: each earlier stage is built (random weights) and saved under ``work_dir`` (default: a
    temporary folder, removed once the family is built: a new run reads those files while it is
    built) first. LiteSDMatte gets a random SDMatte of its size as its distillation
    teacher (``teacher=True`` in ``settings``), as the release trains it.
    """
    if work_dir is None:  # the earlier stages' files (GBs at paper size) go when it is built
        with tempfile.TemporaryDirectory(prefix="family_step_") as folder:
            return build_family(entry, kwargs, device, stage, folder, **settings)
    extra = dict(settings)
    teacher = extra.pop("teacher", False)
    folder = Path(work_dir)
    if stage is not None and entry.stages.index(stage) > 0:
        previous = entry.stages[entry.stages.index(stage) - 1]
        earlier = build_family(entry, kwargs, "cpu", previous, folder)
        extra["previous_stage"] = str(save_module_checkpoint(earlier, folder / f"{previous}.ckpt"))
        del earlier
    if stage is not None:
        extra["stage"] = stage
    if teacher and entry.alias == "litesdmatte":
        sdmatte = build_family(get_model_entry("sdmatte"), kwargs, "cpu", work_dir=folder)
        extra["teacher_checkpoint"] = str(save_module_checkpoint(sdmatte, folder / "sd.ckpt"))
        del sdmatte

    def build():
        torch.manual_seed(0)
        return entry.cls(**kwargs, **extra)

    return on_device(build, device).to(device).train()


def measure_step(module, batch, device: str, precision: str = "bf16", warm_up: int = 1):
    """One training step of ``module`` on ``batch`` (both on ``device``), measured after
    ``warm_up`` unmeasured steps (0: the first step is measured; its time then includes one-off
    costs, its memory does not differ)."""
    dtype = PRECISIONS[precision]
    optimizer = torch.optim.AdamW(module.parameter_groups())
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    for parameter in trainable:  # AdamW's moments exist from here on, as between real steps
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    losses = []

    def step() -> None:
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))

    for _ in range(warm_up):
        step()
    held = (torch.cuda.memory_allocated() if device == "cuda" else resident_bytes()) / GIB
    meter = PeakMemory(device).start()
    step_ms = timed(step, device) * 1e3
    return StepMeasure(
        parameters=sum(p.numel() for p in module.parameters()),
        trainable=sum(p.numel() for p in trainable),
        held_gib=held,
        peak_gib=meter.stop() / GIB,
        step_ms=step_ms,
        loss=losses[-1],
    )


def family_step(
    entry: ModelEntry, kwargs: dict, side: int, device: str, precision: str = "bf16", **build
) -> StepMeasure:
    """Build the family (``build``: :func:`build_family`'s settings) and measure one step at
    ``side`` px, batch 1, after one warm-up step on a GPU (none on the CPU: a paper-size step
    there takes minutes, and memory is the figure the CPU is asked for)."""
    module = build_family(entry, kwargs, device, **build)
    batch = synthetic_batch(side, 1, stage="train").to(device)
    return measure_step(module, batch, device, precision, warm_up=int(device == "cuda"))
