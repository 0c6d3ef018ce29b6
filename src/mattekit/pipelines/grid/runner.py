"""Running a grid: the shared stages, then every run not yet recorded, each a row of the table."""

from __future__ import annotations

import csv
import logging
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from mattekit.pipelines.grid.commands import (
    describe,
    fit_command,
    run_lines,
    shared_stage_command,
    shared_stage_lines,
    stage_dir,
    test_command,
)
from mattekit.pipelines.grid.figure import write_comparison_figure
from mattekit.pipelines.grid.process import ProcessFailed, run_process
from mattekit.pipelines.grid.results import GridResults, is_reference
from mattekit.pipelines.grid.spec import GridRun, GridSpec
from mattekit.pipelines.grid.stages import MadeStage, ensure_stages

logger = logging.getLogger(__name__)


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


def ensure_shared_stages(spec: GridSpec, runs_root: Path) -> dict[str, MadeStage]:
    """The grid's stages, reused or made (see :mod:`mattekit.pipelines.grid.stages`)."""
    root = runs_root / spec.name
    return ensure_stages(
        spec.stages,
        root,
        lambda stage, used: shared_stage_command(spec, stage, stage_dir(root, stage), used),
        needed=spec.stages_the_runs_use,
    )


def read_test_rows(log_dir: Path) -> tuple[dict, dict | None]:
    """(model row, reference row or None) of a test run's ``metrics_test.csv``.

    The model's row comes first and the reference row, when the family has one, is labelled
    ``... (reference)``; rows in between (per object size, when the model reports them) are
    left to the run's own table.
    """
    with (log_dir / "metrics_test.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise RuntimeError(f"{log_dir}/metrics_test.csv has no rows")
    reference = next((row for row in rows if is_reference(row.get("model"))), None)
    return rows[0], reference


def metric_values(row: dict) -> dict[str, float]:
    """The metric columns of a ``metrics_test.csv`` row, as floats."""
    metrics = {}
    for name, value in row.items():
        if name in ("model", "epoch", "step", "preset", "protocol"):
            continue
        try:
            metrics[name] = float(value)
        except (TypeError, ValueError):
            continue
    return metrics


def fit_run(
    spec: GridSpec, run: GridRun, run_dir: Path, shared: Mapping[str, MadeStage]
) -> tuple[str, dict[str, str]]:
    """Fit the run's stages; (checkpoint to test, every stage's checkpoint by name).

    A run of one fit fits again on every attempt; a chain of run stages reuses the stages an
    earlier attempt recorded, as the shared stages do.
    """
    checkpoints = {name: made.checkpoint for name, made in shared.items()}
    if not spec.run_stages:
        fit = run_process(fit_command(spec, run, run_dir), run_dir / "fit_summary.json")
        if not fit["checkpoint"]:
            raise ProcessFailed("the fit saved no checkpoint (is checkpointing turned off?)")
        return fit["checkpoint"], checkpoints
    last = spec.run_stages[-1]
    made = ensure_stages(
        spec.run_stages,
        run_dir,
        lambda stage, used: fit_command(spec, run, run_dir, stage, used),
        needed={last.name},
        given=shared,
    )
    checkpoints.update({name: stage.checkpoint for name, stage in made.items()})
    return made[last.name].checkpoint, checkpoints


def execute_run(
    spec: GridSpec,
    run: GridRun,
    run_dir: Path,
    results: GridResults,
    shared: Mapping[str, MadeStage] | None = None,
) -> dict:
    """Fit, then test the best (else last) checkpoint; the run's row. Raises when either fails.

    ``shared`` are the grid's stages (``spec`` already has their checkpoints in base and test).
    """
    start = time.perf_counter()
    (run_dir / "error.txt").unlink(missing_ok=True)  # from a failed attempt, retried now
    checkpoint, checkpoints = fit_run(spec, run, run_dir, shared or {})
    test = run_process(
        test_command(spec, run, run_dir, checkpoint, checkpoints), run_dir / "test_summary.json"
    )
    model_row, reference_row = read_test_rows(Path(test["log_dir"]))
    preset = model_row["preset"]
    if reference_row is None:
        label = results.test_set_label(test["test_set"], preset, None)
    else:
        reference = metric_values(reference_row)
        label = results.test_set_label(test["test_set"], preset, reference, reference_row["model"])
    return {
        "run": run.index,
        "seed": run.seed,
        **run.overrides,
        "test_set": label,
        "preset": preset,
        "protocol": model_row.get("protocol", ""),
        **metric_values(model_row),
        "wall_s": round(time.perf_counter() - start, 1),
        "run_dir": str(run_dir),
    }


def _record_error(error: BaseException, run_dir: Path) -> str:
    """The error on one line for the table; the whole traceback goes to ``run_dir/error.txt``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    details = getattr(error, "details", None) or "".join(traceback.format_exception(error))
    (run_dir / "error.txt").write_text(details)
    # A process's message already names the error raised in it.
    name = "" if isinstance(error, ProcessFailed) else f"{type(error).__name__}: "
    text = " ".join(f"{name}{error}".split())
    if len(text) > 300:
        text = text[:250] + f"... (see {run_dir / 'error.txt'})"
    return text


def _print_plan(spec: GridSpec, runs_root: Path, preamble: str, pending: list[GridRun]) -> None:
    """The dry run: what is recorded, then the shared stages' and the pending runs' commands."""
    print(preamble)
    for stage, line in shared_stage_lines(spec, runs_root / spec.name):
        print(f"# {stage.name}\n{line}\n")
    for run in pending:
        lines = run_lines(spec, run, runs_root / spec.name / str(run.index))
        print(f"# {run.label}\n" + "\n".join(lines) + "\n")


def run_grid(
    spec: GridSpec, grid_file: Path, output: Path, runs_root: Path, dry_run: bool = False
) -> list[dict]:
    """Run every run not yet recorded in ``output``; the failed rows (empty when all passed).

    A failing run is recorded with an ``error`` and the grid goes on; a rerun retries it.
    Ctrl+C stops the grid (the running process gets it too and shuts down), leaving the table
    as it was after the last finished run. A failing shared stage stops the grid: every run
    needs it.
    """
    results = GridResults(output, spec.keys)
    runs = plan_runs(spec, results)
    header = describe(spec, grid_file, runs_root)
    pending = [run for run in runs if not results.is_finished(run.key(results.key_columns))]
    if dry_run:
        recorded = len(runs) - len(pending)
        _print_plan(
            spec,
            runs_root,
            f"{header}\n\n{recorded} of {len(runs)} runs recorded in {results.csv_path}; "
            f"would run {len(pending)}:\n",
            pending,
        )
        return []
    shared: dict[str, MadeStage] = {}
    if spec.stages and pending:
        shared = ensure_shared_stages(spec, runs_root)
        _warn_if_remade(spec, shared, results)
        spec = spec.with_checkpoints({name: made.checkpoint for name, made in shared.items()})
    failed = []
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), unit="run", file=sys.stderr)
    for run in pending:
        bar.set_description(run.label)
        run_dir = runs_root / spec.name / str(run.index)
        start = time.perf_counter()
        try:
            row = execute_run(spec, run, run_dir, results, shared)
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


def _warn_if_remade(spec: GridSpec, shared: Mapping[str, MadeStage], results: GridResults) -> None:
    """The table does not record which making of a stage its runs started from: say so."""
    remade = [name for name, made in shared.items() if made.made_now]
    finished = [row for row in results.runs if not row.get("error")]
    if remade and finished:
        logger.warning(
            "grid %s: stage(s) %s made now, but %s already holds %d runs started from an earlier "
            "making; delete it (or pass another --output) to rerun them all from the new one",
            spec.name,
            ", ".join(remade),
            results.csv_path,
            len(finished),
        )
