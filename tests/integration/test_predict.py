"""``predict`` over a folder: resuming without recomputing, unreadable images, the output folder
checked first (issue 8, weaker points); outputs tied to their inputs, photos as displayed
(issue 23)."""

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mattekit.cli import main
from mattekit.errors import UsageError
from mattekit.output_records import file_sha256

COMMON = [
    "--model", "baseline", "--model.base_channels=8", "--model.depth=2",
    "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=0",
    "--data.synthetic_train_samples=4", "--data.synthetic_eval_samples=2",
    "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fit")
    main(["fit", *COMMON, f"--trainer.default_root_dir={root}", "--trainer.max_steps=1",
          "--trainer.limit_val_batches=0", "--trainer.logger=false"])  # fmt: skip
    return root / "checkpoints" / "last.ckpt"


def test_a_folder_with_an_earlier_runs_outputs_needs_overwrite(checkpoint, tmp_path):
    """With a fixed run folder (no versioned logger) a second run would replace the first's."""
    run = ["test", *COMMON, f"--ckpt_path={checkpoint}", "--trainer.logger=false",
           f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    main(run)
    first = (tmp_path / "metrics_test.md").read_text()
    with pytest.raises(UsageError, match=r"outputs of an earlier run \(config\.yaml, metrics_test"):
        main(run)
    assert (tmp_path / "metrics_test.md").read_text() == first
    main([*run, "--overwrite=true"])


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, name in enumerate(["a", "b", "c"]):
        cv2.imwrite(str(folder / f"{name}.png"), np.full((20, 30, 3), 60 * index, np.uint8))
    return folder


def predict(checkpoint, photos, out, *extra):
    main(["predict", *COMMON, f"--ckpt_path={checkpoint}",
          "--data.predict.class_path=mattekit.data.images.ImageFolder",
          f"--data.predict.init_args.root={photos}", f"--prediction_writer.output_dir={out}",
          f"--trainer.default_root_dir={photos.parent / 'runs'}", *extra])  # fmt: skip


def test_skip_existing_does_not_run_predicted_images_again(checkpoint, photos, tmp_path, caplog):
    out = tmp_path / "alphas"
    predict(checkpoint, photos, out)
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "c.png"]
    (out / "b.png").unlink()
    kept = (out / "a.png").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="mattekit"):
        predict(checkpoint, photos, out, "--prediction_writer.skip_existing=true")
    assert "2 of 3 samples already predicted: not run again" in caplog.text
    assert (out / "b.png").exists() and (out / "a.png").stat().st_mtime_ns == kept


def test_unreadable_images_stop_the_run_or_are_skipped_and_counted(
    checkpoint, photos, tmp_path, caplog
):
    (photos / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png"):
        predict(checkpoint, photos, tmp_path / "stopped")
    out = tmp_path / "skipped"
    with caplog.at_level(logging.WARNING, logger="mattekit"):
        predict(checkpoint, photos, out, "--data.skip_unreadable=true")
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "c.png"]
    assert "broken.png" in caplog.text
    assert "1 of 4 images could not be read and were skipped" in caplog.text


def test_an_unwritable_output_folder_fails_before_predicting(checkpoint, photos, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError, match=r"cannot write predictions to .*a_file"):
        predict(checkpoint, photos, blocker / "alphas")


def test_a_prediction_knows_its_inputs_and_is_not_replaced_silently(checkpoint, photos, tmp_path):
    out = tmp_path / "alphas"
    predict(checkpoint, photos, out)
    record = json.loads((out / "a.inputs.json").read_text())
    assert record["checkpoint_sha256"] == file_sha256(checkpoint)
    assert record["photo_sha256"] == file_sha256(photos / "a.png")
    assert record["prompt_sha256"] is None
    (photos / "a.json").write_text(json.dumps({"bbox": [2, 2, 20, 15]}))  # a new prompt for a
    with pytest.raises(UsageError, match=r"a\.png was made from other inputs \(prompt_sha256"):
        predict(checkpoint, photos, out, "--prediction_writer.skip_existing=true")
    kept = (out / "b.png").stat().st_mtime_ns
    predict(checkpoint, photos, out, "--prediction_writer.skip_existing=true",
            "--prediction_writer.overwrite=true")  # fmt: skip
    assert (out / "b.png").stat().st_mtime_ns == kept  # the same inputs: not run again
    record = json.loads((out / "a.inputs.json").read_text())
    assert record["prompt_sha256"] == file_sha256(photos / "a.json")


def test_photos_are_predicted_as_displayed(checkpoint, tmp_path):
    folder = tmp_path / "phone"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30 wide and 20 high, displayed 20 wide and 30 high
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(folder / "p.jpg", exif=exif)
    predict(checkpoint, folder, tmp_path / "out")
    assert cv2.imread(str(tmp_path / "out" / "p.png"), cv2.IMREAD_UNCHANGED).shape == (30, 20)
