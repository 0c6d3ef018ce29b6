"""Training under DDP with two CPU processes (gloo), through the CLI in a subprocess.

Guards against collectives called from rank-0-only code (a deadlock, hence the timeout).
"""

import subprocess
import sys
from pathlib import Path


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
