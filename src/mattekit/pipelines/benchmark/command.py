"""``mattekit benchmark``: methods x datasets under one protocol (see ``experiments/README.md``).

    mattekit benchmark experiments/benchmark_alphamatting.yaml [--workers 2] [--force '[knn]']

Writes, under ``<config dir>/results/<name>/`` (or ``--output``): the fits of its ``stages``
(``stages/``, or ``stages_dir``), the stored prompts (``prompts/``), one record per method x
dataset x prompt (``records/``; finished ones are reused), ``results.csv`` / ``results.md``,
``per_image.csv``, ``tradeoff.png`` and ``grid.png``.
"""

from __future__ import annotations

import shlex
import sys
import time

from mattekit.data.prompts import EmptyAlphaError
from mattekit.errors import reports_usage_errors
from mattekit.pipelines.benchmark.figures import write_comparison_grid, write_tradeoff_plot
from mattekit.pipelines.benchmark.prompt_store import PromptsConflict
from mattekit.pipelines.benchmark.records import RecordConflict
from mattekit.pipelines.benchmark.report import write_reports
from mattekit.pipelines.benchmark.runner import run_benchmark
from mattekit.pipelines.benchmark.spec import parse_benchmark
from mattekit.pipelines.grid.process import ProcessFailed
from mattekit.pipelines.grid.stages import StageConflict


@reports_usage_errors("mattekit benchmark")
def benchmark_main(argv: list[str]) -> int:
    """``mattekit benchmark``: 0 when every record was made or reused, 1 on a conflict, 2 on
    a bad command line, config, checkpoint or data file (the records made so far are kept)."""
    try:
        spec, config_path = parse_benchmark(argv)
    except (FileNotFoundError, ValueError) as error:
        print(f"mattekit benchmark: error: {error}", file=sys.stderr)
        return 2
    root = spec.output_dir(config_path)
    start = time.perf_counter()
    try:
        timing = run_benchmark(spec, root)
    except (PromptsConflict, RecordConflict, StageConflict, ProcessFailed) as error:
        print(f"mattekit benchmark: {error}", file=sys.stderr)
        return 1
    except (EmptyAlphaError, FileNotFoundError) as error:
        # A bad data file met while running (a refused checkpoint is a UsageError).
        print(f"mattekit benchmark: error: {error}", file=sys.stderr)
        return 2
    command = shlex.join(["mattekit", "benchmark", *argv])
    rows = write_reports(spec, root, command)
    if not write_tradeoff_plot(rows, spec.tradeoff_metric, root / "tradeoff.png"):
        (root / "tradeoff.png").unlink(missing_ok=True)  # no scored row: no stale picture
    write_comparison_grid(spec, root, root / "grid.png")
    timing.total = time.perf_counter() - start  # the reports and pictures count too
    made = len(timing.made)
    print(f"results: {root / 'results.md'} ({made} record(s) made, the rest reused)")
    if made:
        stages = f" (training stages {timing.stages:.1f} s aside)" if timing.stages >= 1 else ""
        print(
            f"time: {timing.total:.1f} s{stages}, of which the methods' own calls "
            f"{timing.methods:.1f} s; benchmark overhead {100 * timing.overhead:.1f} %"
        )
    return 0


__all__ = ["benchmark_main"]
