"""Under DDP every process trains on its own share of the epoch's draws: none twice.

A draw is one training sample as the epoch drew it: which sample, and the seed of its
augmentation and prompts, ``Draw.key = (run seed, epoch, position)``. Samples are drawn with
replacement (``WeightedSourceSampler``), so a sample id may recur within an epoch on one process
too; what must never recur is a draw: the same position trained by two processes is the same
augmented image trained twice. Two gloo processes, one launch, two epochs.
"""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from mattekit.data.mixing import WeightedSourceSampler

SAMPLES = 15  # odd: 2 processes cannot split an epoch of 15 draws evenly
BATCH = 2
EPOCHS = 2

RECORDING_FIT = f'''
import json, sys
import lightning as L
import torch
from mattekit.data.datamodule import MattingDataModule
from mattekit.data.dataset import MattingDataset

seen = []
load = MattingDataset.__getitem__


def recording(self, draw):
    seen.append({{"index": draw.index, "key": list(draw.key)}})
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

    def on_train_end(self):
        with open(f"{{sys.argv[1]}}/rank{{self.global_rank}}.json", "w") as file:
            json.dump(seen, file)


data = MattingDataModule(
    image_size=32, batch_size={BATCH}, num_workers=0, synthetic_train_samples={SAMPLES}
)
L.seed_everything(0)
trainer = L.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_epochs={EPOCHS}, limit_val_batches=0,
    logger=False, enable_checkpointing=False, enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(Probe(), datamodule=data)
'''


def test_every_draw_is_trained_by_one_process_only(tmp_path: Path):
    script = tmp_path / "recording_fit.py"
    script.write_text(RECORDING_FIT)
    # A session of its own: on a timeout the second process (started by Lightning) goes too.
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        cwd=tmp_path,
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
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

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
