"""``mattekit grid``: run a whole ablation table from one YAML file.

    mattekit grid experiments/baseline_prompts.yaml [--output PATH] [--runs_root DIR] [--dry_run]

Every combination of the ``grid:`` values (times every seed) is a run: ``mattekit fit`` with the
base arguments plus the combination's overrides, then ``mattekit test`` on the fit's best (else
last) checkpoint. Each run's test metrics become one row of ``<output>.csv`` / ``.md``; a rerun
skips the runs already recorded. A grid may first pretrain one model that every run starts from
(``pretrain:``). The file format and the table: ``experiments/README.md``.

Each fit and each test runs in a fresh Python process (:mod:`mattekit.pipelines.grid_stage`),
seeded by ``--seed_everything``: nothing one run leaves behind in a process reaches the next.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from mattekit.cli import show_mattekit_logs
from mattekit.data.io import write_bytes_atomic
from mattekit.pipelines.grid_results import REFERENCE_RUN, GridResults
from mattekit.pipelines.grid_spec import (
    PRETRAIN_PLACEHOLDER,
    GridRun,
    GridSpec,
    load_grid_spec,
    render_value,
)
from mattekit.visualize import SAMPLE_KEYS, prediction_grid, write_png_grid

logger = logging.getLogger(__name__)

# Before the base arguments, so a grid file can turn Lightning's per-run bars back on.
GRID_DEFAULTS = ("--trainer.enable_progress_bar=false",)
CHECKPOINT_PLACEHOLDER = "<best, else last checkpoint of the fit>"
FIGURE_TILE = 128  # smallest tile side of the comparison figure, in pixels


def plan_runs(spec: GridSpec, results: GridResults) -> list[GridRun]:
    """Every run of the grid, in product order, each seed in turn.

    A run already in the table keeps its index (and its folder); a new one takes the next
    index no recorded run uses, so extending a grid never reuses a recorded run's folder.
    """
    used = results.used_indices()
    next_free = 0
    runs = []
    for overrides in spec.combinations():
        for seed in spec.seeds:
            recorded = results.find(GridRun(-1, seed, overrides).key(results.key_columns))
            if recorded is not None:
                index = recorded["run"]
            else:
                while next_free in used:
                    next_free += 1
                index = next_free
                used.add(index)
            runs.append(GridRun(index, seed, overrides))
    return runs


# --- commands ---------------------------------------------------------------------------------


def _placement(run_dir: str | Path, stage: str, seed: int | str) -> list[str]:
    """Arguments that put a run's files in ``run_dir/<stage>/`` and seed it.

    The logger is replaced, not just the root dir: a config that names its own logger folder
    (the quickstart's) would otherwise send every run of the grid to the same place.
    """
    return [
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger",
        f"--trainer.logger.save_dir={run_dir}",
        "--trainer.logger.name=",
        f"--trainer.logger.version={stage}",
        f"--seed_everything={seed}",
    ]


def fit_command(spec: GridSpec, run: GridRun, run_dir: str | Path) -> list[str]:
    return [
        "fit",
        *GRID_DEFAULTS,
        *spec.base,
        *run.override_args,
        *_placement(run_dir, "fit", run.seed),
    ]


def test_command(spec: GridSpec, run: GridRun, run_dir: str | Path, checkpoint: str) -> list[str]:
    # The test extras come after the overrides: they are the most specific (another data set).
    return [
        "test",
        *GRID_DEFAULTS,
        *spec.base,
        *run.override_args,
        *spec.test,
        *_placement(run_dir, "test", run.seed),
        f"--ckpt_path={checkpoint}",
    ]


def pretrain_dir(spec: GridSpec, runs_root: Path) -> Path:
    """Where the grid's pretraining run lives."""
    return runs_root / spec.name / "pretrain"


def pretrain_command(spec: GridSpec, run_dir: str | Path) -> list[str]:
    return ["fit", *GRID_DEFAULTS, *spec.pretrain, *_placement(run_dir, "fit", spec.seeds[0])]


def shell_line(args: list[str]) -> str:
    return shlex.join(["mattekit", *args])


def describe(spec: GridSpec, grid_file: Path, runs_root: Path) -> str:
    """The Markdown header of the results: the grid file, the exact commands, the grid."""
    run_dir = runs_root / spec.name / "<run>"
    example = GridRun(-1, -1, {key: f"<{key}>" for key in spec.grid})
    seeded = lambda line: line.replace("--seed_everything=-1", "--seed_everything=<seed>")  # noqa: E731
    fit = seeded(shell_line(fit_command(spec, example, run_dir)))
    test = seeded(shell_line(test_command(spec, example, run_dir, CHECKPOINT_PLACEHOLDER)))
    grid = "; ".join(
        f"`{key}` in " + ", ".join(f"`{render_value(v)}`" for v in values)
        for key, values in spec.grid.items()
    )
    pretrain = []
    if spec.pretrain:
        pretrain = [
            f"`{PRETRAIN_PLACEHOLDER}` is the best (else last) checkpoint of one pretraining "
            "run, made once before the grid:",
            "",
            f"    {shell_line(pretrain_command(spec, pretrain_dir(spec, runs_root)))}",
            "",
        ]
    return "\n".join(
        [
            f"# Grid `{spec.name}`",
            "",
            f"Made by `mattekit grid {grid_file}`; runs in `{run_dir}/`. Each run is",
            "",
            f"    {fit}",
            f"    {test}",
            "",
            *pretrain,
            f"Grid: {grid or '(none)'}; seeds {', '.join(map(str, spec.seeds))}.",
            "",
            "Test metrics of the fit's best (else last) checkpoint; `wall_s` is fit + test. "
            "Each `box as alpha (reference)` row scores the prompt box itself on the `test_set` "
            "it names: the floor of the runs on that test set.",
        ]
    )


# --- running ----------------------------------------------------------------------------------


class StageFailed(RuntimeError):
    """A fit or test process failed; ``details`` is its traceback (or what is known)."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details or message


def run_stage(args: list[str], summary: Path) -> dict:
    """Run ``mattekit <args>`` in a fresh Python process (see ``grid_stage``); its summary."""
    summary.unlink(missing_ok=True)
    command = [sys.executable, "-m", "mattekit.pipelines.grid_stage", str(summary), *args]
    code = subprocess.run(command, check=False).returncode
    result = json.loads(summary.read_text()) if summary.exists() else {}
    if "error" in result:
        raise StageFailed(result["error"], result.get("traceback", ""))
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise StageFailed(f"mattekit {args[0]} {how}")
    return result


class PretrainConflict(ValueError):
    """The pretraining folder holds the checkpoint of another command than the grid's."""


def ensure_pretrained(spec: GridSpec, runs_root: Path) -> str:
    """The pretraining fit's checkpoint: reused when this command made it, else made now.

    Raises:
        StageFailed when the fit fails; PretrainConflict when the folder holds the checkpoint
        of another pretraining command (the grid file changed: delete the folder to redo it).
    """
    run_dir = pretrain_dir(spec, runs_root)
    command = pretrain_command(spec, run_dir)
    record = run_dir / "pretrain.json"
    if record.exists():
        made = json.loads(record.read_text())
        if made["command"] != command:
            raise PretrainConflict(
                f"{run_dir} holds the checkpoint of another pretraining command: "
                f"{shell_line(made['command'])}; delete the folder to pretrain again"
            )
        if Path(made["checkpoint"]).is_file():
            logger.info("grid %s: reusing the pretrained %s", spec.name, made["checkpoint"])
            return made["checkpoint"]
    logger.info("grid %s: pretraining in %s", spec.name, run_dir)
    fit = run_stage(command, run_dir / "fit_summary.json")
    if not fit["checkpoint"]:
        raise StageFailed("the pretraining fit saved no checkpoint")
    made = {"command": command, "checkpoint": fit["checkpoint"]}
    write_bytes_atomic(record, json.dumps(made, indent=1).encode())
    return fit["checkpoint"]


def _read_test_rows(log_dir: Path) -> tuple[dict, dict]:
    """(model row, reference row) of a test run's ``metrics_test.csv``.

    The model's row comes first and the reference row is labelled; rows in between (per
    object size, when the model reports them) are left to the run's own table.
    """
    with (log_dir / "metrics_test.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    reference = next((row for row in rows if row.get("model") == REFERENCE_RUN), None)
    if not rows or reference is None:
        raise RuntimeError(f"{log_dir}/metrics_test.csv has no model and reference rows")
    return rows[0], reference


def _metrics(row: dict) -> dict[str, float]:
    """The metric columns of a ``metrics_test.csv`` row, as floats."""
    metrics = {}
    for name, value in row.items():
        if name in ("model", "epoch", "step", "preset"):
            continue
        try:
            metrics[name] = float(value)
        except (TypeError, ValueError):
            continue
    return metrics


def execute_run(spec: GridSpec, run: GridRun, run_dir: Path, results: GridResults) -> dict:
    """Fit, then test the best (else last) checkpoint; the run's row. Raises when a stage fails."""
    start = time.perf_counter()
    (run_dir / "error.txt").unlink(missing_ok=True)  # from a failed attempt, retried now
    fit = run_stage(fit_command(spec, run, run_dir), run_dir / "fit_summary.json")
    if not fit["checkpoint"]:
        raise StageFailed("the fit saved no checkpoint (is checkpointing turned off?)")
    test = run_stage(
        test_command(spec, run, run_dir, fit["checkpoint"]), run_dir / "test_summary.json"
    )
    model_row, reference_row = _read_test_rows(Path(test["log_dir"]))
    preset = model_row["preset"]
    label = results.test_set_label(test["test_set"], preset, _metrics(reference_row))
    return {
        "run": run.index,
        "seed": run.seed,
        **run.overrides,
        "test_set": label,
        "preset": preset,
        **_metrics(model_row),
        "wall_s": round(time.perf_counter() - start, 1),
        "run_dir": str(run_dir),
    }


def _record_error(error: BaseException, run_dir: Path) -> str:
    """The error on one line for the table; the whole traceback goes to ``run_dir/error.txt``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    details = getattr(error, "details", None) or "".join(traceback.format_exception(error))
    (run_dir / "error.txt").write_text(details)
    # A stage's message already names the error raised in its process.
    name = "" if isinstance(error, StageFailed) else f"{type(error).__name__}: "
    text = " ".join(f"{name}{error}".split())
    if len(text) > 300:
        text = text[:250] + f"... (see {run_dir / 'error.txt'})"
    return text


def run_grid(
    spec: GridSpec, grid_file: Path, output: Path, runs_root: Path, dry_run: bool = False
) -> list[dict]:
    """Run every run not yet recorded in ``output``; the failed rows (empty when all passed).

    A failing run is recorded with an ``error`` and the grid goes on; a rerun retries it.
    Ctrl+C stops the grid (the running stage gets it too and shuts down), leaving the table as
    it was after the last finished run.
    """
    results = GridResults(output, list(spec.grid))
    runs = plan_runs(spec, results)
    header = describe(spec, grid_file, runs_root)
    pending = [run for run in runs if not results.is_finished(run.key(results.key_columns))]
    if dry_run:
        print(
            header + f"\n\n{len(runs) - len(pending)} of {len(runs)} runs recorded in "
            f"{results.csv_path}; would run {len(pending)}:\n"
        )
        if spec.pretrain:
            command = pretrain_command(spec, pretrain_dir(spec, runs_root))
            print(f"# pretrain\n{shell_line(command)}\n")
        for run in pending:
            run_dir = runs_root / spec.name / str(run.index)
            print(f"# {run.label}\n{shell_line(fit_command(spec, run, run_dir))}")
            print(shell_line(test_command(spec, run, run_dir, CHECKPOINT_PLACEHOLDER)) + "\n")
        return []
    if spec.pretrain and pending:
        spec = spec.with_pretrained(ensure_pretrained(spec, runs_root))
    failed = []
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), unit="run", file=sys.stderr)
    for run in pending:
        bar.set_description(run.label)
        run_dir = runs_root / spec.name / str(run.index)
        start = time.perf_counter()
        try:
            row = execute_run(spec, run, run_dir, results)
        except Exception as error:  # a failed run is a row of the table, not the grid's end
            logger.error("grid %s: %s failed: %s", spec.name, run.label, error)
            row = {
                "run": run.index,
                "seed": run.seed,
                **run.overrides,
                "wall_s": round(time.perf_counter() - start, 1),
                "run_dir": str(run_dir),
                "error": _record_error(error, run_dir),
            }
            failed.append(row)
        results.record(row)
        results.write(header)
        bar.update()
    bar.close()
    figure = results.csv_path.with_suffix(".png")
    if write_comparison_figure(spec, results, figure):
        logger.info("grid %s: predictions side by side in %s", spec.name, figure)
    return failed


def write_comparison_figure(spec: GridSpec, results: GridResults, path: Path) -> bool:
    """One picture of the grid: the test samples of every run of the first seed, side by side.

    Columns are labelled by the run's grid values. Drawn from each run's
    ``test/predictions_test.pt``; nothing is drawn (False) unless at least two runs have one and
    all of them predicted on the same images and prompts (a grid over data would not).
    """
    seed = spec.seeds[0]
    columns: dict[str, torch.Tensor] = {}
    reference = None
    for row in results.runs:
        if row.get("seed") != seed or row.get("error"):
            continue
        saved = Path(str(row["run_dir"])) / "test" / "predictions_test.pt"
        if not saved.is_file():
            continue
        samples = torch.load(saved, map_location="cpu", weights_only=True)
        if reference is None:
            reference = samples
        elif any(not torch.equal(samples[key], reference[key]) for key in SAMPLE_KEYS):
            logger.info("grid %s: runs predicted on different samples, no figure", spec.name)
            return False
        label = ", ".join(f"{key.rsplit('.', 1)[-1]}={row[key]}" for key in spec.grid)
        columns[label or f"run {row['run']}"] = samples["prediction"]
    if reference is None or len(columns) < 2:
        return False
    # Small training images would leave no room for the labels: draw tiles of 128 px or more.
    scale = max(1.0, FIGURE_TILE / max(reference["image"].shape[-2:]))
    if scale > 1:
        reference, columns = _upscaled(reference, scale), _upscaled(columns, scale)
    write_png_grid(prediction_grid(reference, columns), path)
    return True


def _upscaled(tensors: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """Images and alphas resized by ``scale``; prompt coordinates scaled to match."""
    resized = {}
    for key, value in tensors.items():
        if value.ndim == 4:
            resized[key] = F.interpolate(value.float(), scale_factor=scale, mode="bilinear")
        elif key in ("points", "box"):
            resized[key] = value * scale
        else:
            resized[key] = value
    return resized


def _output_stem(spec: GridSpec, grid_file: Path, output: str | None) -> Path:
    if output is None:
        return grid_file.parent / "results" / spec.name
    path = Path(output)
    return path.with_suffix("") if path.suffix in (".md", ".csv") else path


def grid_main(argv: list[str]) -> int:
    """``mattekit grid``: 0 when every run passed, 1 when some failed (they are listed)."""
    parser = argparse.ArgumentParser(
        prog="mattekit grid", description="Run an ablation grid (see experiments/README.md)."
    )
    parser.add_argument("grid_file", type=Path, help="the grid YAML")
    parser.add_argument(
        "--output", help="results path without suffix (default: <grid dir>/results/<name>)"
    )
    parser.add_argument(
        "--runs_root",
        type=Path,
        default=Path("runs/grid"),
        help="runs go to <runs_root>/<name>/<run index>/ (default: runs/grid)",
    )
    parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    show_mattekit_logs()
    try:
        spec = load_grid_spec(args.grid_file)
    except (OSError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))
    output = _output_stem(spec, args.grid_file, args.output)
    try:
        failed = run_grid(spec, args.grid_file, output, args.runs_root, args.dry_run)
    except (StageFailed, PretrainConflict) as error:  # the pretraining every run needs
        print(f"mattekit grid: {error}", file=sys.stderr)
        return 1
    if not args.dry_run:
        print(f"results: {output}.md, {output}.csv")
    if failed:
        print(f"{len(failed)} run(s) failed (rerun the grid to retry them):", file=sys.stderr)
        for row in failed:
            print(f"  run {row['run']} seed {row['seed']}: {row['error']}", file=sys.stderr)
        return 1
    return 0
