"""A real grid: two tiny baseline runs and one that fails, each stage in its own process."""

import csv
import json
import logging
import math
from pathlib import Path

import yaml

from mattekit.cli import main
from mattekit.pipelines.grid_results import REFERENCE_RUN

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
    assert box["test_set"] == points["test_set"] == reference["test_set"] == "synthetic_val"
    assert reference["run"] == REFERENCE_RUN and box["preset"] == "dim"
    assert "prompt_kinds must be a non-empty subset" in failed["error"] and failed["SAD"] == ""
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


def test_every_run_starts_from_the_pretrained_model(tmp_path: Path, capfd, caplog):
    tiny_zim = ["--model=zim", "--model.variant=tiny"]
    tiny_zim += [arg for arg in TINY if arg.startswith(("--data.", "--trainer."))]
    spec = {
        "name": "from_sam",
        "pretrain": [*tiny_zim, "--model.objective=segmentation", "--model.decoder=sam"],
        "base": [*tiny_zim, "--model.checkpoint={pretrain}"],
        "grid": {"model.decoder": ["hierarchical"]},
    }
    grid_file = tmp_path / "from_sam.yaml"
    grid_file.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    assert main(["grid", str(grid_file), "--runs_root", str(runs)]) == 0

    made = yaml.safe_load((runs / "from_sam" / "pretrain" / "pretrain.json").read_text())
    pretrained = Path(made["checkpoint"])
    assert pretrained.is_file() and pretrained.is_relative_to(runs / "from_sam" / "pretrain")
    # The run's model was built from the pretrained SAM: its decoder is new, the rest loaded.
    log = capfd.readouterr().err
    assert f"{pretrained}: " in log and "left at init: ['mask_decoder.pixel_decoder" in log
    markdown = (tmp_path / "results" / "from_sam.md").read_text()
    assert (
        "--model.checkpoint={pretrain}" in markdown and "--model.objective=segmentation" in markdown
    )
    (row,) = [r for r in read_csv(tmp_path / "results" / "from_sam.csv") if r["run"] == "0"]
    assert math.isfinite(float(row["SAD"])) and row["preset"] == "zim"

    # A trained run restores from its own checkpoint without the file it started from.
    trained = json.loads((runs / "from_sam" / "0" / "fit_summary.json").read_text())["checkpoint"]
    pretrained.unlink()
    retest = ["test", *spec["base"], f"--ckpt_path={trained}", f"--trainer.default_root_dir={runs}"]
    retest = [arg.replace("{pretrain}", str(pretrained)) for arg in retest]
    with caplog.at_level(logging.INFO, logger="mattekit"):
        assert main(retest) is None
    assert f"{pretrained} is not read" in caplog.text
