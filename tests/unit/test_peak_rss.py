"""benchmarks/peak_rss.py and export_memory.py: a watched child's peak memory is measured, a
child past the cap is stopped, and a family's export is measured end to end (tiny variant)."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import export_memory  # noqa: E402
from peak_rss import run_watched  # noqa: E402


def holding(mib: int) -> list[str]:
    """A Python child that writes ``mib`` MiB (so they are resident) and holds them a while."""
    return [sys.executable, "-c", f"import time; block = b'x' * ({mib} << 20); time.sleep(0.5)"]


def test_a_childs_peak_includes_what_it_touched():
    small = run_watched(holding(16), cap_gib=4)
    large = run_watched(holding(400), cap_gib=4)
    assert small.returncode == 0 and large.returncode == 0 and not large.over_cap
    assert 0.3 < large.peak_gib - small.peak_gib < 0.5  # the 384 MiB more, sampled


def test_a_child_past_the_cap_is_stopped_and_its_error_line_is_kept():
    stopped = run_watched(holding(600), cap_gib=0.25)
    assert stopped.over_cap and stopped.returncode is None and stopped.peak_gib > 0.25
    failed = run_watched([sys.executable, "-c", "raise SystemExit('no such file: x.ckpt')"], 4)
    assert failed.returncode == 1 and failed.error == "no such file: x.ckpt"
    killed = run_watched([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], 4)
    assert killed.returncode == -9 and killed.error.startswith("killed by signal 9")


@pytest.mark.slow
def test_a_family_export_is_measured_end_to_end(tmp_path, capsys):
    results = tmp_path / "export_memory.json"
    argv = ["--dry_run", "--families", "sama,baseline", "--results", str(results)]
    assert export_memory.main(argv) == 0
    measured = json.loads(results.read_text())
    sama, baseline = measured["sama"], measured["baseline"]
    assert sama["status"] == "ok" and sama["side"] == 128  # the tiny SAM encoder's input
    assert baseline["status"] == "ok" and baseline["side"] == 64  # the run's config.yaml
    assert sama["graphs"] == {"encoder": "onnx", "decoder": "onnx"}
    assert 0 < sama["max_abs_diff"] < 1e-4 and sama["peak_gib"] > 0.2
    assert "| sama | 128 | ok |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown"):
        export_memory.main(["--families", "sama2", "--results", str(results)])
