"""A real grid: two tiny baseline runs and one that fails; a chain of tiny ZIM stages. Each fit
and test in its own process."""

import csv
import json
import logging
import math
from pathlib import Path

import yaml

from mattekit.cli import main
from mattekit.pipelines.grid.results import REFERENCE_RUN

TINY = [
    "--model=baseline",
    "--model.base_channels=8",
    "--model.depth=2",
    "--data.image_size=32",
    "--data.batch_size=2",
    "--data.num_workers=0",
    "--data.synthetic_train_samples=8",
    "--data.synthetic_eval_samples=4",
    "--trainer.max_epochs=1",
    "--trainer.limit_val_batches=1",
    "--trainer.accelerator=cpu",
]
METRICS = ("Conn", "Grad", "MAD", "MSE", "SAD")


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_grid_of_tiny_runs(tmp_path: Path, capsys):
    grid_file = tmp_path / "prompts.yaml"
    kinds = [["box"], ["points"], ["nonsense"]]  # the last fails when the model is built
    grid_file.write_text(
        yaml.safe_dump({"name": "prompts", "base": TINY, "grid": {"model.prompt_kinds": kinds}})
    )
    runs = tmp_path / "runs"
    argv = ["grid", str(grid_file), "--runs_root", str(runs)]
    assert main(argv) == 1  # one run failed
    assert "run 2 seed 0: ValueError" in capsys.readouterr().err

    rows = read_csv(tmp_path / "results" / "prompts.csv")
    box, points, failed, reference = rows
    assert [box["model.prompt_kinds"], points["model.prompt_kinds"]] == ['["box"]', '["points"]']
    for row in (box, points, reference):
        assert all(math.isfinite(float(row[name])) for name in METRICS)
    assert box["SAD"] != points["SAD"]  # trained on other prompts, so other weights
    assert box["test_set"] == points["test_set"] == reference["test_set"] == "synthetic_test"
    assert reference["run"] == REFERENCE_RUN and box["preset"] == "dim"
    assert "unknown prompt kind 'nonsense'" in failed["error"] and failed["SAD"] == ""
    assert (runs / "prompts" / "0" / "fit" / "checkpoints" / "last.ckpt").exists()
    assert (runs / "prompts" / "1" / "test" / "metrics_test.csv").exists()
    markdown = (tmp_path / "results" / "prompts.md").read_text()
    assert "mattekit fit --trainer.enable_progress_bar=false --model=baseline" in markdown
    assert markdown.count("| box as alpha (reference) |") == 1
    assert (tmp_path / "results" / "prompts.png").is_file()  # the two runs side by side

    # A rerun would retry only the failed run, under its old index.
    assert main([*argv, "--dry_run"]) == 0
    planned = capsys.readouterr().out
    assert "2 of 3 runs recorded" in planned and "# run 2 seed 0" in planned
    assert "# run 0 " not in planned and "# run 1 " not in planned


def test_a_chain_of_stages_each_from_the_last(tmp_path: Path, capfd, caplog):
    """Two stages made once (a segmenter, then a matter started from it) and runs that are a
    stage themselves (started from the matter), tested on their own checkpoint."""
    tiny_zim = ["--model=zim", "--model.variant=tiny"]
    tiny_zim += [arg for arg in TINY if arg.startswith(("--data.", "--trainer."))]
    sam = [*tiny_zim, "--model.decoder=sam"]
    spec = {
        "name": "chain",
        "stages": [
            {"name": "segmenter", "args": [*sam, "--model.objective=segmentation"]},
            {"name": "matter", "args": [*sam, "--model.checkpoint={segmenter}"]},
        ],
        "base": tiny_zim,
        "run_stages": [{"name": "tuned", "args": ["--model.checkpoint={matter}"]}],
        "grid": {"tuned:model.decoder": ["hierarchical"]},
    }
    grid_file = tmp_path / "chain.yaml"
    grid_file.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    argv = ["grid", str(grid_file), "--runs_root", str(runs)]
    assert main(argv) == 0

    records = {
        name: json.loads((runs / "chain" / name / f"{name}.json").read_text())
        for name in ("segmenter", "matter")
    }
    segmenter, matter = (Path(records[name]["checkpoint"]) for name in ("segmenter", "matter"))
    assert segmenter.is_file() and segmenter.is_relative_to(runs / "chain" / "segmenter")
    assert f"--model.checkpoint={segmenter}" in records["matter"]["command"]
    assert records["matter"]["inputs"] == {"segmenter": records["segmenter"]["made_at"]}
    # The matter loaded the segmenter whole; the run's new decoder starts at init, the rest
    # from the matter.
    log = capfd.readouterr().err
    assert f"{segmenter}: " in log and f"{matter}: " in log
    assert "left at init: ['mask_decoder.pixel_decoder" in log
    (row,) = [r for r in read_csv(tmp_path / "results" / "chain.csv") if r["run"] == "0"]
    assert row["tuned:model.decoder"] == "hierarchical"
    assert math.isfinite(float(row["SAD"])) and row["preset"] == "zim"
    tuned = json.loads((runs / "chain" / "0" / "tuned" / "tuned.json").read_text())
    assert tuned["inputs"] == {"matter": records["matter"]["made_at"]}
    assert (runs / "chain" / "0" / "test" / "metrics_test.csv").is_file()
    markdown = (tmp_path / "results" / "chain.md").read_text()
    assert markdown.index("of stage `segmenter`") < markdown.index("of stage `matter`")

    assert main([*argv, "--dry_run"]) == 0
    assert "1 of 1 runs recorded" in capfd.readouterr().out

    # A trained run restores from its own checkpoint without the file it started from.
    matter.unlink()
    retest = [
        "test",
        *tiny_zim,
        f"--model.checkpoint={matter}",
        "--model.decoder=hierarchical",
        f"--ckpt_path={tuned['checkpoint']}",
        f"--trainer.default_root_dir={runs}",
    ]
    with caplog.at_level(logging.INFO, logger="mattekit"):
        assert main(retest) is None
    assert f"{matter} is not read" in caplog.text
