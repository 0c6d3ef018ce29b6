"""A ``fit`` killed with SIGKILL and resumed ends with the very weights of an uninterrupted run
(CPU, deterministic mode), resumed mid-epoch or at an epoch boundary (issue 8, bug 4), whether
``max_steps`` or ``max_epochs`` bounds the run, for the baseline and for a family with frozen
parts (SAMA tiny) (issue 23, item 3)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

STEPS_PER_EPOCH = 3
EPOCHS = 3
STEPS = STEPS_PER_EPOCH * EPOCHS
# The killed run is killed once this step's checkpoint is complete (the next one exists).
KILLED_AFTER = 5
FAMILIES = {
    "baseline": [
        "--model", "baseline", "--model.base_channels=8", "--model.depth=2",
        "--model.prompt_kinds=[points,box,mask]",
    ],
    # SAM, frozen and kept in checkpoints, around two trained heads.
    "sama": ["--model", "sama", "--model.variant", "tiny"],
}  # fmt: skip
# Both bound the run at the same step; under max_epochs Lightning builds the training loader
# while configuring the optimiser (the LR schedule's length), before the checkpoint is restored.
BOUNDS = {
    "max_steps": [f"--trainer.max_steps={STEPS}", "--trainer.max_epochs=-1"],
    "max_epochs": [f"--trainer.max_epochs={EPOCHS}"],
}
FIT = [
    sys.executable, "-m", "mattekit.cli", "fit",
    "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=1",
    "--data.synthetic_train_samples=16", "--data.synthetic_eval_samples=2",
    f"--data.steps_per_epoch={STEPS_PER_EPOCH}",
    "--trainer.deterministic=true", "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false", "--trainer.logger=false",
    # A checkpoint at every step, named by its step.
    "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
    "--trainer.callbacks.every_n_train_steps=1", "--trainer.callbacks.save_top_k=-1",
    "--trainer.callbacks.filename={step}", "--trainer.callbacks.dirpath=steps",
]  # fmt: skip


def run(folder: Path, configuration: list[str], *extra: str) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    command = [*FIT, *configuration, f"--trainer.default_root_dir={folder}", *extra]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()[-3000:]


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "steps" / f"step={STEPS}.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(
    scope="module",
    # The baseline under both bounds, and a family with frozen parts under the bound that
    # needed the fix (each configuration costs four processes).
    params=[("baseline", "max_steps"), ("baseline", "max_epochs"), ("sama", "max_epochs")],
    ids=lambda param: "-".join(param),
)
def configuration(request) -> list[str]:
    """The family's and the bound's command line arguments."""
    family, bound = request.param
    return [*FAMILIES[family], *BOUNDS[bound]]


@pytest.fixture(scope="module")
def uninterrupted(configuration, tmp_path_factory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("uninterrupted")
    finish(run(folder, configuration))
    return final_weights(folder)


@pytest.fixture(scope="module")
def killed(configuration, tmp_path_factory) -> Path:
    """A run killed with SIGKILL once step ``KILLED_AFTER``'s checkpoint is complete."""
    folder = tmp_path_factory.mktemp("killed")
    process = run(folder, configuration)
    deadline = time.monotonic() + 300
    while not (folder / "steps" / f"step={KILLED_AFTER + 1}.ckpt").exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, f"the run did not reach step {KILLED_AFTER + 1}"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (folder / "steps" / f"step={STEPS}.ckpt").exists()
    return folder


# Step 3's checkpoint is written after the last batch of epoch 0; step 5 is in epoch 1.
RESUMED_FROM = {"epoch boundary": STEPS_PER_EPOCH, "mid-epoch": KILLED_AFTER}


@pytest.mark.parametrize("step", RESUMED_FROM.values(), ids=RESUMED_FROM.keys())
def test_resume_after_sigkill_is_exact(configuration, killed, uninterrupted, step, tmp_path):
    checkpoint = killed / "steps" / f"step={step}.ckpt"
    finish(run(tmp_path, configuration, f"--ckpt_path={checkpoint}"))
    resumed = final_weights(tmp_path)
    assert resumed.keys() == uninterrupted.keys()
    differing = [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])]
    assert not differing, differing
