"""``mattekit grid``: run a whole ablation table from one YAML file.

    mattekit grid experiments/baseline_prompts.yaml [--output PATH] [--runs_root DIR] [--dry_run]

Every combination of the ``grid:`` values (times every seed) is a run: ``mattekit fit`` with the
base arguments plus the combination's overrides, then ``mattekit test`` on the fit's best (else
last) checkpoint. Each run's test metrics become one row of ``<output>.csv`` / ``.md``; a rerun
skips the runs already recorded. A grid may first make a chain of training stages that the runs
start from (``stages:``, or ``pretrain:`` for one), and each run may be a chain itself
(``run_stages:``). The file format and the table: ``experiments/README.md``.

The parts, one concern each: the file (:mod:`.spec`, :mod:`.placeholders`), the command lines
(:mod:`.commands`), a fit or test in its own process (:mod:`.process`), chained stages
(:mod:`.stages`), running and recording (:mod:`.runner`, :mod:`.results`), the picture
(:mod:`.figure`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from mattekit.cli import show_mattekit_logs
from mattekit.pipelines.grid.process import ProcessFailed
from mattekit.pipelines.grid.runner import run_grid
from mattekit.pipelines.grid.spec import GridSpec, load_grid_spec
from mattekit.pipelines.grid.stages import StageConflict


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
    except (ProcessFailed, StageConflict) as error:  # a shared stage every run needs
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
