"""Running a grid with a stand-in for fit + test: rows, resume, failures, dry run, references;
and how a failing fit or test process is reported."""

import csv
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from mattekit.cli import main
from mattekit.pipelines.grid import command as grid
from mattekit.pipelines.grid import process as grid_process
from mattekit.pipelines.grid import runner as grid_runner
from mattekit.pipelines.grid.results import REFERENCE_RUN, GridResults
from mattekit.visualize import write_metrics_table

REFERENCE = {"SAD": 0.5, "MSE": 0.25}


class FakeRuns:
    """Stands in for :func:`grid_runner.execute_run`: SAD from the learning rate, failures on
    demand."""

    def __init__(self, failing: set[str] = frozenset(), reference: dict = REFERENCE) -> None:
        self.failing, self.reference, self.calls = failing, reference, []

    def __call__(self, spec, run, run_dir, results, shared):
        self.calls.append(run.overrides["model.lr"])
        if run.overrides["model.lr"] in self.failing:
            raise ValueError("lr | too large\nsecond line")
        label = results.test_set_label("synthetic_val", "dim", dict(self.reference))
        sad = float(run.overrides["model.lr"]) + run.seed / 100
        return {
            "run": run.index,
            "seed": run.seed,
            **run.overrides,
            "test_set": label,
            "preset": "dim",
            "protocol": "sampled",
            "SAD": sad,
            "MSE": sad / 2,
            "wall_s": 1.5,
            "run_dir": str(run_dir),
        }


@pytest.fixture
def grid_file(tmp_path: Path) -> Path:
    path = tmp_path / "lrs.yaml"
    spec = {
        "name": "lrs",
        "base": ["--model=baseline"],
        "seeds": [0, 1],
        "grid": {"model.lr": [0.1, 0.2]},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def run(grid_file: Path, fake: FakeRuns, monkeypatch, *extra: str) -> int:
    monkeypatch.setattr(grid_runner, "execute_run", fake)
    return grid.grid_main([str(grid_file), "--runs_root", str(grid_file.parent / "runs"), *extra])


def test_rows_and_reference_row(grid_file: Path, monkeypatch):
    assert run(grid_file, FakeRuns(), monkeypatch) == 0
    rows = read_csv(grid_file.parent / "results" / "lrs.csv")
    assert [r["run"] for r in rows] == ["0", "1", "2", "3", REFERENCE_RUN]
    assert list(rows[0]) == [
        "run",
        "seed",
        "model.lr",
        "test_set",
        "preset",
        "protocol",
        "SAD",
        "MSE",
        "wall_s",
        "run_dir",
    ]  # no error column: none failed
    assert [(r["seed"], r["model.lr"]) for r in rows[:4]] == [
        ("0", "0.1"),
        ("1", "0.1"),
        ("0", "0.2"),
        ("1", "0.2"),
    ]
    assert rows[3]["run_dir"] == str(grid_file.parent / "runs" / "lrs" / "3")
    # One reference row for the one test set every run shares.
    assert rows[4]["test_set"] == "synthetic_val" and float(rows[4]["SAD"]) == 0.5
    markdown = (grid_file.parent / "results" / "lrs.md").read_text()
    assert markdown.startswith("# Grid `lrs`")
    assert "mattekit fit --trainer.enable_progress_bar=false --model=baseline" in markdown
    assert "`model.lr` in `0.1`, `0.2`; seeds 0, 1" in markdown
    assert "| 3 | 1 | 0.2 | synthetic_val | dim | sampled | 0.21 | 0.105 | 1.5 |" in markdown


def test_seeds_are_summarised_as_mean_and_spread(grid_file: Path, monkeypatch):
    assert run(grid_file, FakeRuns(), monkeypatch) == 0
    markdown = (grid_file.parent / "results" / "lrs.md").read_text()
    # SAD of lr 0.1: 0.10 (seed 0) and 0.11 (seed 1); sample std = 0.01 / sqrt(2) = 0.00707.
    summary = "| 0.1 | synthetic_val | 2 | 0.105 ± 0.0071 | 0.0525 ± 0.0035 |"
    assert "## Mean ± standard deviation over seeds" in markdown and summary in markdown
    assert markdown.index(summary) < markdown.index("## Runs") < markdown.index("| 3 | 1 |")
    assert "±" not in (grid_file.parent / "results" / "lrs.csv").read_text()


def test_rerun_skips_recorded_runs_and_extends(grid_file: Path, monkeypatch):
    assert run(grid_file, FakeRuns(), monkeypatch) == 0
    again = FakeRuns()
    assert run(grid_file, again, monkeypatch) == 0
    assert again.calls == []
    # A value added to the grid runs only its own combinations, under indices no run used.
    spec = yaml.safe_load(grid_file.read_text())
    spec["grid"]["model.lr"] = [0.05, 0.1, 0.2]
    grid_file.write_text(yaml.safe_dump(spec))
    extended = FakeRuns()
    assert run(grid_file, extended, monkeypatch) == 0
    assert extended.calls == ["0.05", "0.05"]
    rows = read_csv(grid_file.parent / "results" / "lrs.csv")
    assert [(r["run"], r["model.lr"]) for r in rows[:6]] == [
        ("0", "0.1"),
        ("1", "0.1"),
        ("2", "0.2"),
        ("3", "0.2"),
        ("4", "0.05"),
        ("5", "0.05"),
    ]


def test_failures_are_rows_and_retried(grid_file: Path, monkeypatch, capsys):
    assert run(grid_file, FakeRuns(failing={"0.2"}), monkeypatch) == 1
    assert "2 run(s) failed" in capsys.readouterr().err
    results = grid_file.parent / "results"
    rows = read_csv(results / "lrs.csv")
    assert [r["error"] for r in rows] == [
        "",
        "",
        *["ValueError: lr | too large second line"] * 2,
        "",
    ]
    assert rows[2]["SAD"] == "" and rows[2]["run"] == "2"
    traceback = (grid_file.parent / "runs" / "lrs" / "2" / "error.txt").read_text()
    assert traceback.startswith("Traceback") and "ValueError: lr | too large\nsecond" in traceback
    assert "lr \\| too large" in (results / "lrs.md").read_text()  # the Markdown row stays whole

    retry = FakeRuns()
    assert run(grid_file, retry, monkeypatch) == 0
    assert retry.calls == ["0.2", "0.2"]  # only the failed runs, under their old indices
    rows = read_csv(results / "lrs.csv")
    assert "error" not in rows[0] and [r["run"] for r in rows] == [
        "0",
        "1",
        "2",
        "3",
        REFERENCE_RUN,
    ]


def test_dry_run_prints_commands_and_writes_nothing(grid_file: Path, monkeypatch, capsys):
    assert run(grid_file, FakeRuns(), monkeypatch, "--dry_run") == 0
    out = capsys.readouterr().out
    assert "0 of 4 runs recorded" in out
    assert out.count("mattekit fit ") == 4 + 1 and out.count("mattekit test ") == 4 + 1  # + header
    assert "--model.lr=0.2 " in out and "--seed_everything=1" in out
    assert not (grid_file.parent / "results").exists() and not (grid_file.parent / "runs").exists()


def test_output_option_and_cli_dispatch(grid_file: Path, monkeypatch, capsys):
    monkeypatch.setattr(grid_runner, "execute_run", FakeRuns())
    output = grid_file.parent / "elsewhere" / "table.md"
    assert main(["grid", str(grid_file), "--output", str(output), "--dry_run"]) == 0
    assert "mattekit fit" in capsys.readouterr().out
    assert (
        main(
            [
                "grid",
                str(grid_file),
                "--output",
                str(output),
                "--runs_root",
                str(grid_file.parent / "runs"),
            ]
        )
        == 0
    )
    assert len(read_csv(output.with_suffix(".csv"))) == 5
    with pytest.raises(SystemExit) as bad:
        main(["grid", str(grid_file.parent / "missing.yaml")])
    assert bad.value.code == 2


def test_test_sets_get_one_reference_row_each(tmp_path: Path):
    results = GridResults(tmp_path / "t", ["model.lr"])
    assert results.test_set_label("synthetic_val", "dim", {"SAD": 0.5}) == "synthetic_val"
    assert results.test_set_label("synthetic_val", "dim", {"SAD": 0.5}) == "synthetic_val"
    # Same data name, other scores (another image size): a second, numbered reference.
    assert results.test_set_label("synthetic_val", "dim", {"SAD": 0.6}) == "synthetic_val#2"
    assert results.test_set_label("alphamatting", "dim", {"SAD": 0.5}) == "alphamatting"
    for index, label in enumerate(["synthetic_val", "synthetic_val#2"]):
        results.record(
            {
                "run": index,
                "seed": 0,
                "model.lr": str(index),
                "test_set": label,
                "preset": "dim",
                "SAD": 0.1,
            }
        )
    results.write("# title")
    # The unused alphamatting reference is left out; the table reads back with its types.
    reread = GridResults(tmp_path / "t", ["model.lr"])
    assert [r["test_set"] for r in reread.references] == ["synthetic_val", "synthetic_val#2"]
    recorded = {k: v for k, v in reread.runs[1].items() if v != ""}  # blank: wall_s, run_dir
    expected = {"run": 1, "seed": 0, "model.lr": "1", "test_set": "synthetic_val#2"}
    assert recorded == {**expected, "preset": "dim", "SAD": 0.1}
    assert reread.test_set_label("synthetic_val", "dim", {"SAD": 0.6}) == "synthetic_val#2"


def test_a_familys_own_reference_label_is_kept_and_read_back(tmp_path: Path):
    results = GridResults(tmp_path / "t", ["model.sga"])
    mask = "input mask as alpha (reference)"
    assert results.test_set_label("synthetic_test", "zim", {"SAD": 0.3}, mask) == "synthetic_test"
    # The same scores under another reference (the box) are another test set.
    assert results.test_set_label("synthetic_test", "zim", {"SAD": 0.3}) == "synthetic_test#2"
    # A family without a reference row (text prompts) is labelled by the data's name alone.
    assert results.test_set_label("refmatte", "zim", None) == "refmatte"
    results.record(
        {"run": 0, "seed": 0, "model.sga": "true", "test_set": "synthetic_test", "preset": "zim"}
    )
    results.write("# title")
    reread = GridResults(tmp_path / "t", ["model.sga"])
    assert [r["run"] for r in reread.references] == [mask]
    assert [r["run"] for r in reread.runs] == [0]


def test_markdown_preamble_stays_out_of_the_csv(tmp_path: Path):
    markdown = write_metrics_table([{"a": 1.0, "b": "x|y"}], tmp_path / "m.md", preamble="# T")
    assert markdown == "# T\n\n| a | b |\n| --- | --- |\n| 1 | x\\|y |\n"
    assert (tmp_path / "m.csv").read_text().splitlines() == ["a,b", "1.0,x|y"]


def test_a_process_that_dies_is_a_failure(tmp_path: Path, monkeypatch):
    killed = subprocess.CompletedProcess([], returncode=-9)
    monkeypatch.setattr(grid_process.subprocess, "run", lambda *args, **kwargs: killed)
    with pytest.raises(grid_process.ProcessFailed, match="mattekit fit was killed by signal 9"):
        grid_process.run_process(["fit", "--model=baseline"], tmp_path / "fit_summary.json")


def test_process_errors_reach_the_summary(tmp_path: Path):
    summary = tmp_path / "fit_summary.json"
    args = ["fit", "--model=baseline", "--model.depth=oops"]
    assert grid_process.run_in_this_process(summary, args) == 1
    result = json.loads(summary.read_text())
    assert "depth" in result["error"] and result["traceback"].startswith("Traceback")


def test_one_seed_has_no_summary(tmp_path: Path):
    results = GridResults(tmp_path / "one", ["model.lr"])
    for index, lr in enumerate(["0.1", "0.2"]):
        results.record({"run": index, "seed": 0, "model.lr": lr, "SAD": 0.1, "run_dir": "r"})
    assert results.seed_summary() == []
    results.record({"run": 2, "seed": 1, "model.lr": "0.2", "SAD": 0.3, "run_dir": "r"})
    assert [row["seeds"] for row in results.seed_summary()] == [1, 2]
    assert results.seed_summary()[0]["SAD"] == "0.1"  # one run: the value alone
