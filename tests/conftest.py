"""Test-session settings and helpers shared by every test."""

import pytest
import torch

from mattekit.data.datamodule import MattingDataModule
from mattekit.data.sample import MattingBatch, collate_samples

# `pytest -n 2` runs two worker processes on a 2-core machine: with torch's default of one
# thread per core each, the workers oversubscribe the CPU and tiny matmuls take milliseconds.
torch.set_num_threads(1)


def make_synthetic_batch(size: int, count: int, stage: str = "val") -> MattingBatch:
    """``count`` seeded synthetic samples at ``size`` px through the shared pipeline."""
    data = MattingDataModule(image_size=size, num_workers=0, synthetic_eval_samples=count)
    dataset = data.dataset(stage)
    return collate_samples([dataset[i] for i in range(count)])


def train_on_batch(module, batch: MattingBatch, steps: int) -> list[float]:
    """AdamW on ``module``'s parameter groups for ``steps`` steps on one batch; the losses."""
    optimizer = torch.optim.AdamW(module.parameter_groups())
    losses = []
    for _ in range(steps):
        loss = module.train().training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(name="synthetic_batch")
def synthetic_batch_fixture():
    return make_synthetic_batch


@pytest.fixture(name="train_on_batch")
def train_on_batch_fixture():
    return train_on_batch
