"""SAMA's idle task head under DDP: a zero-weighted term keeps it in the graph (DDP's reducer
wants a gradient for every parameter), and its gradient is dropped before the optimiser step,
so that AdamW skips it as in one process. The 2-process run itself:
``tests/integration/test_ddp_registry.py``.
"""

import dataclasses

import pytest
import torch

from mattekit.models.sama.lightning_model import SAMA


def as_under_ddp(monkeypatch) -> None:
    """The DDP code path in this one process (a trainer's strategy answers its collectives)."""
    monkeypatch.setattr(SAMA, "_under_ddp", lambda self: True)


def head_gradients(module: SAMA, task: str) -> list:
    return [p.grad for p in module.model.heads[task].parameters()]


@pytest.mark.parametrize(
    ("settings", "source", "idle"),
    [
        ({"task_schedule": "alternate"}, "synthetic", "matting"),  # step 0 trains segmentation
        ({"segmentation_sources": ["dis"]}, "dis", "matting"),  # joint, a segmentation batch
        ({}, "synthetic", None),  # joint: both heads train
    ],
)
def test_the_idle_head_gets_a_zero_gradient_then_none(
    settings, source, idle, synthetic_batch, monkeypatch
):
    torch.manual_seed(0)
    module = SAMA(variant="tiny", **settings).train()
    batch = synthetic_batch(32, 2, stage="train")
    batch = dataclasses.replace(batch, source=[source] * len(batch))
    alone = module.training_step(batch, 0)  # one process: the idle head is not in the graph
    as_under_ddp(monkeypatch)
    kept = module.training_step(batch, 0)
    assert torch.equal(kept, alone)
    kept.backward()
    for task in ("segmentation", "matting"):
        gradients = head_gradients(module, task)
        assert all(g is not None for g in gradients), task
        if task == idle:
            assert all(not g.any() for g in gradients)
        else:
            assert any(g.any() for g in gradients), task
    optimizer = torch.optim.AdamW(module.parameter_groups())
    module.on_before_optimizer_step(optimizer)
    for task in ("segmentation", "matting"):
        dropped = all(g is None for g in head_gradients(module, task))
        assert dropped == (task == idle), task


def fit_alternating(fit_on_synthetic, tmp_path, steps: int) -> dict[str, torch.Tensor]:
    """SAMA tiny (alternate schedule) after ``steps`` AdamW steps (weight decay 0.01) under a
    one-process Trainer: its parameters."""
    torch.manual_seed(0)
    module = SAMA(variant="tiny", task_schedule="alternate")
    fit_on_synthetic(module, tmp_path, steps, enable_checkpointing=False, limit_val_batches=0)
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_two_alternate_steps_on_the_ddp_path_equal_one_process_bitwise(
    tmp_path, monkeypatch, fit_on_synthetic
):
    """Step 0 trains segmentation, step 1 matting. A zero gradient left on the matting head at
    step 0 would start its AdamW moments and step count there and decay it: step 1 would then
    differ from one process's first matting step."""
    plain = fit_alternating(fit_on_synthetic, tmp_path / "plain", 2)
    as_under_ddp(monkeypatch)
    kept = fit_alternating(fit_on_synthetic, tmp_path / "kept", 2)
    assert plain.keys() == kept.keys()
    for name, value in plain.items():
        assert torch.equal(kept[name], value), name
