"""benchmarks/gpu_check.py: a clear refusal without a GPU, and a CPU rehearsal of every section."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_check.py"
SECTIONS = (
    "cuda_tests", "train_step", "ddp", "fsdp", "sdmatte_attention", "zim_vs_sam", "teachmatte",
)  # fmt: skip


def run_check(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    environment.pop("OUT", None)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_without_a_gpu_it_exits_2_and_says_why(tmp_path: Path):
    result = run_check(cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("no CUDA device: ")
    assert "--dry_run" in result.stderr
    assert not (tmp_path / "gpu_check.md").exists()


@pytest.mark.slow
def test_dry_run_runs_every_section_and_writes_the_table(tmp_path: Path):
    output = tmp_path / "check" / "gpu_check.md"
    # A generous budget: on an idle 2-core machine the dry run takes about a minute.
    dry_run = ("--dry_run", "--budget_s", "1700", "--output", str(output))
    result = run_check(*dry_run, cwd=tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text()
    for name in SECTIONS:
        assert f"| {name} | ok |" in text, f"{name} did not run cleanly:\n{text}"
        assert f"(`{name}`)" in text
    # Every family got a training-step row with numbers, not an error.
    assert "failed" not in text.split("(`train_step`)")[1].split("## ")[0], text
    assert "**" in text.split("(`cuda_tests`)")[1], text  # pytest's summary line
    assert "global_step in last.ckpt 3" in text.split("(`ddp`)")[1].split("## ")[0], text
    assert "global_step in last.ckpt 3" in text.split("(`fsdp`)")[1].split("## ")[0], text
    assert "| teachmatte (decoder) | tiny | 64 |" in text
    assert "| peak sdpa / classic (goal <= 0.1) |" in text
    assert "| forward (image encoder + decoder) |" in text
    assert "| student / teacher |" in text


def test_unknown_sections_are_refused_by_name(tmp_path: Path):
    result = run_check("--dry_run", "--sections", "ddp,warp", cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "--sections: unknown ['warp']" in result.stderr
