"""Training under DDP with two CPU processes (gloo), through the CLI in a subprocess.

Guards against collectives called from rank-0-only code (a deadlock, hence the timeout).
"""

import os
import subprocess
import sys
from pathlib import Path

import torch


def test_fit_under_ddp_writes_outputs(tmp_path: Path):
    command = [
        sys.executable, "-m", "mattekit.cli", "fit", "--model", "baseline",
        "--model.base_channels=8", "--model.depth=2", "--data.image_size=32",
        "--data.batch_size=2", "--data.num_workers=0", "--data.synthetic_train_samples=16",
        "--data.synthetic_eval_samples=4", "--trainer.accelerator=cpu", "--trainer.devices=2",
        "--trainer.strategy=ddp", "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert "SAD" in (run / "metrics_val.md").read_text()


NAN_ON_RANK_1 = '''
import torch
from mattekit.models.baseline.lightning_model import Baseline


class NanOnRankOne(Baseline):
    """The baseline whose loss is NaN on rank 1 at the first step, and whose gradients (not its
    loss) are non-finite on rank 1 at the second."""

    def loss_terms(self, outputs, batch):
        terms = super().loss_terms(outputs, batch)
        if self.global_rank == 1 and self.global_step == 0:
            terms["l1"] = terms["l1"] * float("nan")
        if self.global_rank == 1 and self.global_step == 1:
            # |x - x| is 0, a finite term, but the square root's gradient at 0 is not finite
            alpha = outputs["alpha"]
            terms["l1"] = terms["l1"] + (alpha - alpha.detach()).abs().sqrt().sum()
        return terms
'''


def test_a_skipped_step_on_one_rank_does_not_hang(tmp_path: Path):
    (tmp_path / "nan_family.py").write_text(NAN_ON_RANK_1)
    command = [
        sys.executable, "-m", "mattekit.cli", "fit", "--model", "nan_family.NanOnRankOne",
        "--model.base_channels=8", "--model.depth=2", "--model.nonfinite_loss=skip",
        "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=0",
        "--data.synthetic_train_samples=16", "--data.synthetic_eval_samples=4",
        "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.max_steps=3", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=180, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping this optimiser step" in result.stderr
    # rank 1's non-finite gradients reach rank 0 through DDP's all-reduce: both skip step 1
    assert result.stderr.count("non-finite gradients at step 1; skipping") == 2, result.stderr
    checkpoint = torch.load(
        tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )
    assert checkpoint["global_step"] == 3


def test_metrics_score_every_sample_once_under_ddp(tmp_path: Path):
    """5 test samples on 2 processes: the same metrics as one process (Lightning's sampler
    repeated a sample to even the shares: SAD 0.12251 against 0.12139)."""
    cli = [sys.executable, "-m", "mattekit.cli"]
    common = [
        "--model", "baseline", "--model.base_channels=8", "--model.depth=2",
        "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=0",
        "--data.synthetic_train_samples=4", "--data.synthetic_eval_samples=5",
        "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip
    fit = [*cli, "fit", *common, "--trainer.max_steps=2", f"--trainer.default_root_dir={tmp_path}"]
    subprocess.run(fit, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=True)
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"

    def test_metrics(devices: int) -> dict[str, float]:
        strategy = "ddp" if devices > 1 else "auto"
        command = [
            *cli, "test", *common, f"--ckpt_path={checkpoint}", f"--trainer.devices={devices}",
            f"--trainer.strategy={strategy}", f"--trainer.default_root_dir={tmp_path / strategy}",
        ]  # fmt: skip
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = {}
        for line in result.stdout.splitlines():
            cells = line.replace("│", " ").split()
            if len(cells) == 2 and cells[0].startswith("test/"):
                metrics[cells[0]] = float(cells[1])
        assert "test/SAD" in metrics, result.stdout[-2000:]
        return metrics

    one, two = test_metrics(1), test_metrics(2)
    assert one.keys() == two.keys()
    for name in one:
        assert abs(one[name] - two[name]) <= 1e-6 * max(1.0, abs(one[name])), name


def test_ddp_resumes_from_its_checkpoint(tmp_path: Path):
    """configs/trainer/ddp_cpu.yaml: trains, saves, resumes and validates with 2 processes."""
    config = Path(__file__).parents[2] / "configs" / "trainer" / "ddp_cpu.yaml"
    command = [
        sys.executable, "-m", "mattekit.cli", "fit", "--config", str(config),
        "--model", "baseline", "--model.base_channels=8", "--model.depth=2",
        "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=0",
        "--data.synthetic_train_samples=16", "--data.synthetic_eval_samples=3",
        "--data.steps_per_epoch=2", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip

    def fit(*extra: str) -> None:
        result = subprocess.run(
            [*command, *extra], cwd=tmp_path, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stderr[-3000:]

    fit("--trainer.max_steps=2")
    first = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(first, weights_only=True)["global_step"] == 2
    fit("--trainer.max_steps=4", f"--ckpt_path={first}")
    resumed = tmp_path / "lightning_logs" / "version_1"
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert "SAD" in (resumed / "metrics_val.md").read_text()


def test_one_process_ddp_run_resumes(tmp_path: Path, fit_on_synthetic):
    """``--trainer.strategy ddp --trainer.devices 1`` (a one-GPU rehearsal of a multi-GPU
    recipe): Lightning would wrap the draw sampler in its own distributed one, whose order the
    resume point cannot follow; the draws' own share is used from one process on."""
    from mattekit.callbacks import FamilyCheckpoint
    from mattekit.models.baseline.lightning_model import Baseline

    def settings():
        checkpoint = FamilyCheckpoint(save_last=True, dirpath=tmp_path / "checkpoints")
        return dict(strategy="ddp", devices=1, limit_val_batches=0, callbacks=[checkpoint])

    torch.manual_seed(0)
    fit_on_synthetic(Baseline(base_channels=8, depth=2), tmp_path, steps=2, **settings())
    last = tmp_path / "checkpoints" / "last.ckpt"
    resumed = Baseline(base_channels=8, depth=2)
    trainer = fit_on_synthetic(resumed, tmp_path, steps=4, ckpt_path=last, **settings())
    assert trainer.global_step == 4
