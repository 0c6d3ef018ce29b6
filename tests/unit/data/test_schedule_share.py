"""A ``--data.schedule`` under several processes: global batch ``i`` from ``schedule[i % len]``,
each process training its own share of that batch's draws (DrawShare over ScheduledDraws)."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.trainer.states import RunningStage
from torch.utils.data import BatchSampler

from mattekit.data.datamodule import MattingDataModule
from mattekit.data.mixing import (
    DrawShare,
    ScheduledBatchSampler,
    ScheduledDraws,
    WeightedSourceSampler,
)
from mattekit.data.synthetic import SyntheticSource

SIZES = [5, 7]  # source 0 is indices 0-4, source 1 indices 5-11


def source_of(index: int) -> int:
    return int(index >= SIZES[0])


def process_batches(processes: int, rank: int, batch: int = 2, steps: int = 4) -> list[list]:
    """Process ``rank``'s batches of ``batch`` draws under schedule ``[0, 1]``."""
    global_batches = ScheduledBatchSampler(SIZES, [0, 1], batch * processes, steps, seed=3)
    share = DrawShare(ScheduledDraws(global_batches), processes, rank)
    return list(BatchSampler(share, batch, drop_last=True))


def test_each_process_trains_its_positions_of_every_global_batch():
    ranks = [process_batches(2, rank) for rank in (0, 1)]
    single = list(ScheduledBatchSampler(SIZES, [0, 1], 4, 4, seed=3))  # one process, batch 4
    for step, (first, second) in enumerate(zip(*ranks, strict=True)):
        # Both processes train the schedule's source of this step, the one-process batch's.
        assert {source_of(d.index) for d in first + second} == {step % 2}
        # Positions 4i, 4i + 2 on process 0 and 4i + 1, 4i + 3 on process 1: the union is the
        # one-process batch of 4, each draw once.
        assert [d.key[2] for d in first] == [4 * step, 4 * step + 2]
        assert [d.key[2] for d in second] == [4 * step + 1, 4 * step + 3]
        assert sorted(first + second, key=lambda d: d.key) == single[step]


def test_one_process_share_is_the_schedule_itself():
    assert process_batches(1, 0, batch=3, steps=5) == list(
        ScheduledBatchSampler(SIZES, [0, 1], 3, 5, seed=3)
    )


def test_a_resumed_share_continues_with_the_next_global_batch():
    # 2 processes each trained 2 batches of 2: the draws 0 to 7 (global batches 0, 1) are done.
    global_batches = ScheduledBatchSampler(SIZES, [0, 1], 4, 4, seed=3)
    whole = list(global_batches)
    draws = ScheduledDraws(global_batches)
    draws.resume(0, 8)
    resumed = list(DrawShare(draws, 2, 1))
    assert [d.key[2] for d in resumed] == [9, 11, 13, 15]
    assert resumed == whole[2][1::2] + whole[3][1::2]


def two_sources(**settings) -> MattingDataModule:
    sources = [SyntheticSource(n, image_size=32, seed=n, name=f"s{n}") for n in SIZES]
    return MattingDataModule(
        train=sources, batch_size=2, num_workers=0, schedule=["s5", "s7", "s7"], **settings
    )


def loader_batches(data: MattingDataModule) -> list[list]:
    loader = data.train_dataloader()
    return [list(batch) for batch in loader.batch_sampler]


def test_the_one_process_loader_draws_the_schedule_unchanged():
    torch.manual_seed(11)
    expected = list(ScheduledBatchSampler(SIZES, [0, 1, 1], 2, 6, seed=11))
    assert loader_batches(two_sources(steps_per_epoch=6)) == expected
    # Without a count: one pass over the 12 samples, 6 batches of 2.
    assert loader_batches(two_sources()) == expected


@pytest.mark.parametrize("steps_per_epoch", [6, 7])
def test_the_loader_of_each_of_two_processes_takes_its_share(steps_per_epoch):
    torch.manual_seed(11)
    # 6 or 7 steps of 2 draws in all: 3 global batches of 4, as the weighted draws split them.
    single = list(ScheduledBatchSampler(SIZES, [0, 1, 1], 4, 3, seed=11))
    shares = []
    for rank in (0, 1):
        data = two_sources(steps_per_epoch=steps_per_epoch)
        data.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        shares.append(loader_batches(data))
    assert [len(share) for share in shares] == [3, 3]
    for step, (first, second) in enumerate(zip(*shares, strict=True)):
        assert first == single[step][0::2] and second == single[step][1::2]
    data = two_sources(steps_per_epoch=1)
    data.trainer = SimpleNamespace(world_size=2, global_rank=0)
    with pytest.raises(ValueError, match=r"--data\.steps_per_epoch=1 leaves no step"):
        data.train_dataloader()


@pytest.mark.parametrize("schedule", [None, ["s5", "s7", "s7"]], ids=["weighted", "schedule"])
def test_one_process_ddp_keeps_the_draws_order(schedule):
    """Under ``--trainer.strategy ddp --trainer.devices 1`` Lightning injects its own sampler
    into a loader whose sampler is not distributed: it shuffled the weighted draws (which the
    resume point cannot follow) and refused the schedule's batch sampler."""
    torch.manual_seed(11)
    sources = [SyntheticSource(n, image_size=32, seed=n, name=f"s{n}") for n in SIZES]
    data = MattingDataModule(train=sources, batch_size=2, num_workers=0, schedule=schedule)
    expected = (
        list(ScheduledBatchSampler(SIZES, [0, 1, 1], 2, seed=11))
        if schedule
        else list(BatchSampler(WeightedSourceSampler(SIZES, SIZES, seed=11), 2, drop_last=True))
    )
    trainer = L.Trainer(accelerator="cpu", strategy="ddp", devices=1, logger=False)
    data.trainer = trainer
    # What the fit loop trains on: the loader after Lightning's distributed-sampler injection.
    loader = trainer._data_connector._prepare_dataloader(
        data.train_dataloader(), shuffle=True, mode=RunningStage.TRAINING
    )
    assert [list(batch) for batch in loader.batch_sampler] == expected
