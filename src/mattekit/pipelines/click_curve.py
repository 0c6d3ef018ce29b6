"""``mattekit clicks``: a trained interactive model's metrics against the number of clicks.

    mattekit clicks RUN/checkpoints/best.ckpt [--clicks 1 3 5 10] [--metric NAME]
                    [--protocol NAME] [--output DIR] [--seed 0] [--force] [-- TEST ARGUMENTS ...]

The interactive protocol of SAMA's Fig. 2 (after HQ-SAM): the mean IoU of the segmentation with
1, 3, 5 and 10 clicks. Each count k is one ``mattekit test`` of the checkpoint, in its own
process (as a grid's tests), with ``--model.eval_prompt points`` and exactly k positive clicks and
no negative one per sample (``--data.eval_clicks k``), drawn by the data's seeded evaluation
stream, under a named evaluation protocol with ``--protocol`` (``sdmatte``: the release's
clicks from alpha > 0.8 and its click maps): every rerun, and every
model tested on the same data, sees the same clicks for a given k (the k-click set is drawn
anew for each k, not grown from the smaller one). The data settings are the run's own
(``config.yaml`` beside ``checkpoints/``); arguments after ``--`` are added to every test (another
test set, its size, its seed).

Writes in ``DIR`` (default ``<run>/clicks``): ``clicks_<k>/`` (each test's run folder),
``clicks.md`` / ``clicks.csv`` (a row per count: every test metric of the model) and
``clicks.png`` (``--metric`` against the count; by default ``seg/IoU``, or for a family without a
segmentation output the first matting metric of :data:`DEFAULT_METRICS` the table has, said in
the log). Counts already in ``clicks.csv`` are not tested again unless ``--force``.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import shlex
import sys
from pathlib import Path

from mattekit.atomic_files import write_bytes_atomic
from mattekit.checkpoint_config import checkpoint_entry, run_folder_of
from mattekit.cli import show_mattekit_logs
from mattekit.errors import UsageError, reports_usage_errors
from mattekit.pipelines.grid.commands import GRID_DEFAULTS, placement
from mattekit.pipelines.grid.process import ProcessFailed, run_process
from mattekit.pipelines.grid.runner import metric_values, read_test_rows
from mattekit.prompts.protocols import PROTOCOLS
from mattekit.visualize import write_metrics_table

logger = logging.getLogger(__name__)

DEFAULT_CLICKS = (1, 3, 5, 10)
#: The plotted column without ``--metric``: the first of these the table has (SAMA's Fig. 2
#: plots the segmentation IoU; a family without a segmentation output has only matting metrics).
DEFAULT_METRICS = ("seg/IoU", "SAD", "MSE", "MAD", "Grad", "Conn")


def run_config(checkpoint: Path) -> Path:
    """The ``config.yaml`` of the run that wrote ``checkpoint`` (``<run>/checkpoints/x.ckpt``)."""
    path = run_folder_of(checkpoint) / "config.yaml"
    if not path.is_file():
        raise UsageError(f"{checkpoint}: no config.yaml of its run at {path}; give --config")
    return path


def click_test_command(
    checkpoint: Path,
    config: Path,
    clicks: int,
    folder: Path,
    seed: int,
    extra: list[str],
    protocol: str | None = None,
) -> list[str]:
    """``mattekit test`` of ``checkpoint`` with exactly ``clicks`` positive clicks a sample
    (under the evaluation ``protocol``, when named)."""
    return [
        "test",
        *GRID_DEFAULTS,
        f"--config={config}",
        "--model.eval_prompt=points",
        f"--data.eval_clicks={clicks}",
        *([f"--data.protocol={protocol}"] if protocol else []),
        *extra,
        *placement(folder, "test", seed),
        f"--ckpt_path={checkpoint}",
    ]


def read_rows(path: Path) -> dict[int, dict]:
    """The rows of an earlier ``clicks.csv``, by click count (empty without one)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        int(row["clicks"]): {
            **metric_values(row),
            "clicks": int(row["clicks"]),
            "model": row["model"],
        }
        for row in rows
    }


def plotted_metric(rows: list[dict], asked: str | None, table: Path) -> str:
    """The column to plot: ``asked``, else the first of :data:`DEFAULT_METRICS` in ``rows``.

    Raises:
        UsageError listing the table's columns when it has no such column.
    """
    columns = [name for name in rows[0] if name not in ("clicks", "model")] if rows else []
    if asked is not None and asked in columns:
        return asked
    if asked is None:
        for name in DEFAULT_METRICS:
            if name in columns:
                if name != DEFAULT_METRICS[0]:
                    logger.info(
                        "no %s column (the model has no segmentation output): plotting %s",
                        DEFAULT_METRICS[0], name,
                    )  # fmt: skip
                return name
    raise UsageError(
        f"no column {asked or DEFAULT_METRICS[0]!r} to plot in {table}: it has "
        f"{', '.join(columns) or 'no metric'}; rerun with --metric NAME (tested counts are reused)"
    )


def write_curve_plot(rows: list[dict], metric: str, path: Path, title: str) -> bool:
    """``metric`` against the click count, one point per count; False when no row has it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    points = [(row["clicks"], row[metric]) for row in rows if metric in row]
    if not points:
        return False
    figure, axis = plt.subplots(figsize=(5, 3.6), layout="constrained")
    axis.plot(*zip(*points, strict=True), marker="o")
    axis.set_xticks([count for count, _ in points])
    axis.set_xlabel("positive clicks per object")
    axis.set_ylabel(metric)
    axis.set_title(title, fontsize=9)
    axis.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
    return True


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mattekit clicks",
        description="Test a checkpoint with 1, 3, 5, 10 clicks and plot a metric against them.",
    )
    parser.add_argument("checkpoint", type=Path, help="a trained run's checkpoint")
    parser.add_argument(
        "--clicks", type=int, nargs="+", default=list(DEFAULT_CLICKS), help="click counts"
    )
    parser.add_argument(
        "--metric", help="the plotted column (default: seg/IoU, else SAD for a matting-only model)"
    )
    parser.add_argument("--config", type=Path, help="the run's config (default: beside it)")
    parser.add_argument(
        "--protocol", choices=sorted(PROTOCOLS), help="a named evaluation protocol (default: none)"
    )
    parser.add_argument("--output", type=Path, help="default: <run>/clicks")
    parser.add_argument("--seed", type=int, default=0, help="seed_everything of the tests")
    parser.add_argument("--force", action="store_true", help="test counts already recorded")
    return parser


@reports_usage_errors("mattekit clicks")
def click_curve_main(argv: list[str]) -> int:
    """``mattekit clicks``: 0 when every count was tested (or reused) and plotted, 1 if a test
    failed, 2 on a bad command line, checkpoint or ``--metric``."""
    split = argv.index("--") if "--" in argv else len(argv)
    own, extra = argv[:split], argv[split + 1 :]
    args = parser().parse_args(own)
    show_mattekit_logs()
    if any(count < 1 for count in args.clicks):
        raise UsageError(f"--clicks must be >= 1, got {args.clicks}")
    checkpoint_entry(args.checkpoint)  # read weights-only here: a refused file is one line
    config = args.config or run_config(args.checkpoint)
    output = args.output or run_folder_of(args.checkpoint) / "clicks"
    table = output / "clicks.md"
    rows = {} if args.force else read_rows(table.with_suffix(".csv"))
    for count in sorted(set(args.clicks)):
        if count in rows:
            continue
        folder = output / f"clicks_{count}"
        command = click_test_command(
            args.checkpoint, config, count, folder, args.seed, extra, args.protocol
        )
        try:
            summary = run_process(command, folder / "summary.json")
        except ProcessFailed as error:
            print(f"mattekit clicks: {count} click(s): {error}\n{error.details}", file=sys.stderr)
            return 1
        model_row, _ = read_test_rows(Path(summary["log_dir"]))
        rows[count] = {"clicks": count, "model": model_row["model"], **metric_values(model_row)}
        ordered = [rows[k] for k in sorted(rows)]
        # Written after every count: an interrupted curve keeps the counts it has.
        command_line = shlex.join(["mattekit", "clicks", *argv])
        write_metrics_table(ordered, table, f"# Metrics against clicks\n\n`{command_line}`")
    ordered = [rows[k] for k in sorted(rows)]
    run = Path(*run_folder_of(args.checkpoint.resolve()).parts[-3:])  # e.g. grid/<name>/<run>/fit
    metric = plotted_metric(ordered, args.metric, table)
    write_curve_plot(ordered, metric, output / "clicks.png", f"{run}: {metric} against clicks")
    print(f"results: {table}, {table.with_suffix('.csv')}, {output / 'clicks.png'}")
    return 0
