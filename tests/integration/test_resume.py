"""A ``fit`` killed with SIGKILL and resumed ends with the very weights of an uninterrupted run
(CPU, deterministic mode), resumed mid-epoch or at an epoch boundary (issue 8, bug 4)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

STEPS = 16
STEPS_PER_EPOCH = 6
FIT = [
    sys.executable, "-m", "mattekit.cli", "fit", "--model", "baseline",
    "--model.base_channels=8", "--model.depth=2", "--model.prompt_kinds=[points,box,mask]",
    "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=1",
    "--data.synthetic_train_samples=16", "--data.synthetic_eval_samples=2",
    f"--data.steps_per_epoch={STEPS_PER_EPOCH}", f"--trainer.max_steps={STEPS}",
    "--trainer.deterministic=true", "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false", "--trainer.logger=false",
    # A checkpoint at every step, named by its step.
    "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
    "--trainer.callbacks.every_n_train_steps=1", "--trainer.callbacks.save_top_k=-1",
    "--trainer.callbacks.filename={step}", "--trainer.callbacks.dirpath=steps",
]  # fmt: skip


def run(folder: Path, *extra: str) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    command = [*FIT, f"--trainer.default_root_dir={folder}", *extra]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()[-3000:]


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "steps" / f"step={STEPS}.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("uninterrupted")
    finish(run(folder))
    return final_weights(folder)


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    """A run killed with SIGKILL once step 10's checkpoint is complete (step 11's exists)."""
    folder = tmp_path_factory.mktemp("killed")
    process = run(folder)
    deadline = time.monotonic() + 300
    while not (folder / "steps" / "step=11.ckpt").exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run did not reach step 11"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (folder / "steps" / f"step={STEPS}.ckpt").exists()
    return folder


@pytest.mark.parametrize("step", [STEPS_PER_EPOCH, 9], ids=["epoch boundary", "mid-epoch"])
def test_resume_after_sigkill_is_exact(killed, uninterrupted, step, tmp_path):
    checkpoint = killed / "steps" / f"step={step}.ckpt"
    finish(run(tmp_path, f"--ckpt_path={checkpoint}"))
    resumed = final_weights(tmp_path)
    assert resumed.keys() == uninterrupted.keys()
    differing = [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])]
    assert not differing, differing
