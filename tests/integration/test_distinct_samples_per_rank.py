"""Under DDP every process trains on its own share of the epoch's draws: none twice.

A draw is one training sample as the epoch drew it: which sample, and the seed of its
augmentation and prompts, ``Draw.key = (run seed, epoch, position)``. Samples are drawn with
replacement (``WeightedSourceSampler``), so a sample id may recur within an epoch on one process
too; what must never recur is a draw: the same position trained by two processes is the same
augmented image trained twice. A ``--data.schedule`` keeps its meaning: global step ``i`` (both
processes' batches) comes from ``schedule[i % len]``, and a resumed run continues with the
draws it would have had. One launch of two gloo processes runs three fits in turn.
"""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mattekit.data.mixing import ScheduledBatchSampler, WeightedSourceSampler

SAMPLES = 15  # odd: 2 processes cannot split an epoch of 15 draws evenly
BATCH = 2
EPOCHS = 2
# The schedule case: sources of 6 and 9 scenes, 4 steps of 2 draws on each of 2 processes per
# epoch (8 one-process steps), resumed from step 5's checkpoint (1 step into epoch 1).
SIZES = {"a": 6, "b": 9}
SCHEDULE = ["a", "b", "b"]
SCHEDULED_STEPS = 8
RESUMED_AFTER = 5

RECORDING_FIT = f'''
import json, sys
import lightning as L
import torch
from mattekit.data.datamodule import MattingDataModule
from mattekit.data.dataset import MattingDataset
from mattekit.data.synthetic import SyntheticSource

seen = []
load = MattingDataset.__getitem__


def recording(self, draw):
    seen.append({{"source": self.source.name, "index": draw.index, "key": list(draw.key)}})
    return load(self, draw)


MattingDataset.__getitem__ = recording


class Probe(L.LightningModule):
    """Trains one number: only the draws it is handed matter."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_index):
        return (self.weight - len(batch.sample_id)).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(name, data, ckpt_path=None, **settings):
    """The draws each process loaded in one fit, to ``<name>-rank<r>.json``."""
    seen.clear()
    L.seed_everything(0)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs={EPOCHS}, limit_val_batches=0,
        logger=False, enable_progress_bar=False, enable_model_summary=False, **settings
    )
    trainer.fit(Probe(), datamodule=data, ckpt_path=ckpt_path)
    with open(f"{{sys.argv[1]}}/{{name}}-rank{{trainer.global_rank}}.json", "w") as file:
        json.dump(seen, file)


def scheduled():
    sources = [SyntheticSource(n, image_size=32, seed=n, name=name) for name, n in {SIZES}.items()]
    return MattingDataModule(
        train=sources, batch_size={BATCH}, num_workers=0, schedule={SCHEDULE},
        steps_per_epoch={SCHEDULED_STEPS},
    )


weighted = MattingDataModule(
    image_size=32, batch_size={BATCH}, num_workers=0, synthetic_train_samples={SAMPLES}
)
fit("weighted", weighted, enable_checkpointing=False)
steps = L.pytorch.callbacks.ModelCheckpoint(
    dirpath=f"{{sys.argv[1]}}/steps", filename="{{step}}", every_n_train_steps=1, save_top_k=-1
)
fit("scheduled", scheduled(), callbacks=[steps])
resume_from = f"{{sys.argv[1]}}/steps/step={RESUMED_AFTER}.ckpt"
fit("resumed", scheduled(), ckpt_path=resume_from, enable_checkpointing=False)
'''


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """The folder of every fit's ``<fit>-rank<r>.json`` (one launch of two processes)."""
    folder = tmp_path_factory.mktemp("ranks")
    script = folder / "recording_fit.py"
    script.write_text(RECORDING_FIT)
    # A session of its own: on a timeout the second process (started by Lightning) goes too.
    process = subprocess.Popen(
        [sys.executable, str(script), str(folder)],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-3000:]
    return folder


def draws_of(folder: Path, fit: str) -> list[list[dict]]:
    return [json.loads((folder / f"{fit}-rank{r}.json").read_text()) for r in (0, 1)]


def test_every_draw_is_trained_by_one_process_only(recorded: Path):
    ranks = draws_of(recorded, "weighted")
    for epoch in range(EPOCHS):
        shares = [[d for d in rank if d["key"][1] == epoch] for rank in ranks]
        positions = Counter(d["key"][2] for share in shares for d in share)
        repeated = sorted(p for p, count in positions.items() if count > 1)
        assert not repeated, f"epoch {epoch}: draws at positions {repeated} trained twice"
        # Whole batches only, as many on each process (DDP steps them together): 7 draws each,
        # 3 batches of 2; the odd draw out is left for no one rather than repeated.
        assert [len(share) for share in shares] == [6, 6], epoch
        # The processes split the one epoch a single process would draw, in its order.
        sampler = WeightedSourceSampler([SAMPLES], [SAMPLES], seed=0)
        sampler.set_epoch(epoch)
        expected = {draw.key[2]: draw.index for draw in sampler}
        for share in shares:
            assert all(d["index"] == expected[d["key"][2]] for d in share), epoch
            assert [d["key"][2] for d in share] == sorted(d["key"][2] for d in share), epoch


def test_a_schedule_keeps_its_meaning_under_two_processes(recorded: Path):
    ranks = draws_of(recorded, "scheduled")
    names = list(SIZES)
    offsets = {"a": 0, "b": SIZES["a"]}
    steps = SCHEDULED_STEPS // 2
    assert [len(rank) for rank in ranks] == [EPOCHS * steps * BATCH] * 2
    for epoch in range(EPOCHS):
        # The one-process schedule with both processes' batch: a, b, b, a.
        single = ScheduledBatchSampler(list(SIZES.values()), [0, 1, 1], 2 * BATCH, steps, seed=0)
        single.set_epoch(epoch)
        for step, whole in enumerate(single):
            source = names[whole[0].index >= SIZES["a"]]
            assert source == SCHEDULE[step % len(SCHEDULE)]
            first = epoch * steps * BATCH + step * BATCH
            trained = [d for rank in ranks for d in rank[first : first + BATCH]]
            # Each process trained its own half of the one-process batch, from its source.
            assert {d["source"] for d in trained} == {source}, (epoch, step)
            keys = sorted((tuple(d["key"]), d["index"] + offsets[d["source"]]) for d in trained)
            assert keys == [(draw.key, draw.index) for draw in whole], (epoch, step)
        positions = [d["key"][2] for rank in ranks for d in rank if d["key"][1] == epoch]
        assert sorted(positions) == list(range(steps * 2 * BATCH)), epoch  # no draw twice


def test_a_resumed_schedule_continues_with_its_draws(recorded: Path):
    uninterrupted, resumed = draws_of(recorded, "scheduled"), draws_of(recorded, "resumed")
    for rank in (0, 1):
        assert resumed[rank] == uninterrupted[rank][RESUMED_AFTER * BATCH :], rank
