"""``mattekit clicks``: a trained interactive model's metrics against the number of clicks.

    mattekit clicks RUN/checkpoints/best.ckpt [--clicks 1 3 5 10] [--metric seg/IoU]
                    [--output DIR] [--seed 0] [--force] [-- TEST ARGUMENTS ...]

The interactive protocol of SAMA's Fig. 2 (after HQ-SAM): the mean IoU of the segmentation with
1, 3, 5 and 10 clicks. Each count k is one ``mattekit test`` of the checkpoint, in its own
process (as a grid's tests), with ``--model.eval_prompt points`` and exactly k positive clicks and
no negative one per sample, drawn by the data's seeded evaluation stream: every rerun, and every
model tested on the same data, sees the same clicks for a given k (the k-click set is drawn
anew for each k, not grown from the smaller one). The data settings are the run's own
(``config.yaml`` beside ``checkpoints/``); arguments after ``--`` are added to every test (another
test set, its size, its seed).

Writes in ``DIR`` (default ``<run>/clicks``): ``clicks_<k>/`` (each test's run folder),
``clicks.md`` / ``clicks.csv`` (a row per count: every test metric of the model) and
``clicks.png`` (``--metric`` against the count). Counts already in ``clicks.csv`` are not tested
again unless ``--force``.
"""

from __future__ import annotations

import argparse
import csv
import io
import shlex
import sys
from pathlib import Path

from mattekit.checkpoint_config import run_folder_of
from mattekit.cli import show_mattekit_logs
from mattekit.data.io import write_bytes_atomic
from mattekit.errors import UsageError
from mattekit.pipelines.grid_commands import GRID_DEFAULTS, placement
from mattekit.pipelines.grid_process import ProcessFailed, run_process
from mattekit.pipelines.grid_runner import metric_values, read_test_rows
from mattekit.visualize import write_metrics_table

DEFAULT_CLICKS = (1, 3, 5, 10)


def run_config(checkpoint: Path) -> Path:
    """The ``config.yaml`` of the run that wrote ``checkpoint`` (``<run>/checkpoints/x.ckpt``)."""
    path = run_folder_of(checkpoint) / "config.yaml"
    if not path.is_file():
        raise UsageError(f"{checkpoint}: no config.yaml of its run at {path}; give --config")
    return path


def click_test_command(
    checkpoint: Path, config: Path, clicks: int, folder: Path, seed: int, extra: list[str]
) -> list[str]:
    """``mattekit test`` of ``checkpoint`` with exactly ``clicks`` positive clicks a sample."""
    return [
        "test",
        *GRID_DEFAULTS,
        f"--config={config}",
        "--model.eval_prompt=points",
        f"--data.prompts.positive_points=[{clicks}, {clicks}]",
        "--data.prompts.negative_points=[0, 0]",
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
    parser.add_argument("--metric", default="seg/IoU", help="the plotted column (seg/IoU)")
    parser.add_argument("--config", type=Path, help="the run's config (default: beside it)")
    parser.add_argument("--output", type=Path, help="default: <run>/clicks")
    parser.add_argument("--seed", type=int, default=0, help="seed_everything of the tests")
    parser.add_argument("--force", action="store_true", help="test counts already recorded")
    return parser


def click_curve_main(argv: list[str]) -> int:
    """``mattekit clicks``: 0 when every count was tested (or reused), 1 if a test failed,
    2 on a bad command line."""
    split = argv.index("--") if "--" in argv else len(argv)
    own, extra = argv[:split], argv[split + 1 :]
    args = parser().parse_args(own)
    show_mattekit_logs()
    if any(count < 1 for count in args.clicks):
        print(f"mattekit clicks: error: --clicks must be >= 1, got {args.clicks}", file=sys.stderr)
        return 2
    try:
        if not args.checkpoint.is_file():
            raise UsageError(f"checkpoint not found: {args.checkpoint}")
        config = args.config or run_config(args.checkpoint)
    except UsageError as error:
        print(f"mattekit clicks: error: {error}", file=sys.stderr)
        return 2
    output = args.output or run_folder_of(args.checkpoint) / "clicks"
    table = output / "clicks.md"
    rows = {} if args.force else read_rows(table.with_suffix(".csv"))
    for count in sorted(set(args.clicks)):
        if count in rows:
            continue
        folder = output / f"clicks_{count}"
        command = click_test_command(args.checkpoint, config, count, folder, args.seed, extra)
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
    title = f"{run}: {args.metric} against clicks"
    if not write_curve_plot(ordered, args.metric, output / "clicks.png", title):
        print(f"mattekit clicks: no column {args.metric!r} to plot", file=sys.stderr)
    print(f"results: {table}, {table.with_suffix('.csv')}, {output / 'clicks.png'}")
    return 0
