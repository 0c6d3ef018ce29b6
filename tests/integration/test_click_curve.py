"""``mattekit clicks``: one test per click count of a trained run, a table and a plot, resumable."""

import csv

from mattekit.cli import main
from mattekit.pipelines.click_curve import click_curve_main

TINY_FIT = [
    "fit", "--model=sama", "--model.variant=tiny", "--data.image_size=32", "--data.batch_size=2",
    "--data.num_workers=0", "--data.synthetic_train_samples=4", "--data.synthetic_eval_samples=2",
    "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.max_epochs=1",
]  # fmt: skip


def test_clicks_tests_each_count_once_and_plots_the_curve(tmp_path):
    main([*TINY_FIT, f"--trainer.default_root_dir={tmp_path}"])
    run = tmp_path / "lightning_logs" / "version_0"
    checkpoint = run / "checkpoints" / "last.ckpt"
    argv = [str(checkpoint), "--clicks", "1", "4", "--", "--data.synthetic_eval_samples=2"]
    assert click_curve_main(argv) == 0
    output = run / "clicks"
    with (output / "clicks.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["clicks"] for row in rows] == ["1", "4"]
    assert all(row["model"] == "SAMA" and float(row["seg/IoU"]) >= 0 for row in rows)
    assert rows[0]["seg/IoU"] != rows[1]["seg/IoU"]  # other clicks, other masks
    assert (output / "clicks.png").stat().st_size > 0
    summaries = {count: output / f"clicks_{count}" / "summary.json" for count in (1, 4)}
    stamps = {count: path.stat().st_mtime_ns for count, path in summaries.items()}

    assert click_curve_main([*argv[:4], "2", *argv[4:]]) == 0  # 1 and 4 reused, 2 tested
    assert {count: path.stat().st_mtime_ns for count, path in summaries.items()} == stamps
    with (output / "clicks.csv").open(newline="") as handle:
        assert [row["clicks"] for row in csv.DictReader(handle)] == ["1", "2", "4"]


def test_clicks_names_a_missing_checkpoint(tmp_path, capsys):
    assert click_curve_main([str(tmp_path / "none.ckpt")]) == 2
    assert "none.ckpt" in capsys.readouterr().err


def test_clicks_of_a_matting_only_family_plot_a_matting_metric(tmp_path, capsys, caplog):
    """The baseline has no segmentation output: no seg/IoU column, so SAD is plotted (said in
    the log), and a --metric the table lacks is an error naming its columns, with no plot
    reported (issue 23, item C)."""
    baseline = ["--model=baseline", "--model.base_channels=8", "--model.depth=2"]
    fit = [arg for arg in TINY_FIT if not arg.startswith("--model")]
    main([*fit, *baseline, f"--trainer.default_root_dir={tmp_path}"])
    run = tmp_path / "lightning_logs" / "version_0"
    argv = [str(run / "checkpoints" / "last.ckpt"), "--clicks", "1"]
    capsys.readouterr()
    with caplog.at_level("INFO", logger="mattekit"):
        assert click_curve_main(argv) == 0
    assert "no seg/IoU column (the model has no segmentation output): plotting SAD" in caplog.text
    plot = run / "clicks" / "clicks.png"
    assert plot.stat().st_size > 0
    assert str(plot) in capsys.readouterr().out
    plot.unlink()

    assert click_curve_main([*argv, "--metric", "seg/IoU"]) == 2  # the count is reused
    out, err = capsys.readouterr()
    assert "no column 'seg/IoU' to plot" in err and "Conn, Grad, MAD, MSE, SAD" in err
    assert "clicks.png" not in out and not plot.exists()
