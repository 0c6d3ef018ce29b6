"""fit -> test -> predict through the CLI, in-process, for every registered family."""

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mattekit.cli import main
from mattekit.errors import UsageError
from mattekit.export.manifest import read_export
from mattekit.matting_cli import resolve_model_aliases
from mattekit.models import MODELS, list_models

TINY_DATA = [
    "--data.image_size=32",
    "--data.batch_size=2",
    "--data.num_workers=0",
    "--data.synthetic_train_samples=8",
    "--data.synthetic_eval_samples=4",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
]


def tiny_model_args(entry) -> list[str]:
    return [f"--model.{key}={value}" for key, value in entry.tiny.items()]


@pytest.mark.parametrize("entry", list_models(), ids=lambda e: e.alias)
def test_fit_test_predict(entry, tmp_path: Path, user_prompt_args):
    """Every stage of a staged family, each fitted from the last stage's checkpoint."""
    previous: list[str] = []
    for stage in entry.stages or (None,):
        stage_args = [f"--model.stage={stage}", *previous] if stage else []
        work = tmp_path / (stage or "run")
        args = [*tiny_model_args(entry), *stage_args]
        checkpoint = fit_test_predict(args, entry.alias, work, user_prompt_args)
        previous = [f"--model.previous_stage={checkpoint}"]


def fit_test_predict(model_args: list[str], alias: str, tmp_path: Path, prompt_args) -> Path:
    """fit, then test, validate and predict (synthetic scenes and a photo folder) its checkpoint."""
    root = tmp_path / "runs"
    common = ["--model", alias, *model_args, *TINY_DATA, f"--trainer.default_root_dir={root}"]
    main(["fit", *common, "--trainer.max_epochs=1", "--trainer.limit_val_batches=1"])
    version = root / "lightning_logs" / "version_0"
    checkpoint = version / "checkpoints" / "last.ckpt"
    assert checkpoint.exists()
    assert (version / "metrics_val.md").read_text().count("|") > 10
    assert (version / "predictions_val.png").stat().st_size > 0

    main(["test", *common, f"--ckpt_path={checkpoint}"])
    table = (root / "lightning_logs" / "version_1" / "metrics_test.md").read_text()
    assert all(name in table for name in ("SAD", "MSE", "MAD", "Grad", "Conn"))

    main(["validate", *common, f"--ckpt_path={checkpoint}"])
    assert "SAD" in (root / "lightning_logs" / "version_2" / "metrics_val.md").read_text()

    out = tmp_path / "alphas"
    main(["predict", *common, f"--ckpt_path={checkpoint}", f"--prediction_writer.output_dir={out}"])
    assert len(list(out.rglob("*.png"))) == 4

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "holiday.jpg"), np.full((45, 70, 3), 120, np.uint8))
    folder = [
        "--data.predict.class_path=mattekit.data.images.ImageFolder",
        f"--data.predict.init_args.root={photos}",
    ]
    main(["predict", *common, *folder, f"--ckpt_path={checkpoint}",
          f"--prediction_writer.output_dir={out}"])  # fmt: skip
    alpha = cv2.imread(str(out / "holiday.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (45, 70) and alpha.dtype == np.uint8
    matte_a_photo(checkpoint, photos / "holiday.jpg", tmp_path, prompt_args)
    export_to_onnx(checkpoint, tmp_path / "exported")
    return checkpoint


def export_to_onnx(checkpoint: Path, out: Path) -> None:
    """``mattekit export`` for every prompt kind the family takes: ONNX files within the
    tolerance of PyTorch on the example and on a second scene (a value of the first frozen into
    a graph fails it), and a manifest naming the graphs, the kind and the input convention."""
    from mattekit.checkpoint_config import checkpoint_entry

    for kind in checkpoint_entry(checkpoint).prompts:
        folder = out / kind
        assert main(["export", f"--ckpt_path={checkpoint}", f"--output_dir={folder}",
                     f"--kind={kind}"]) == 0  # fmt: skip
        manifest = read_export(folder)
        assert manifest["prompt_kind"] == kind
        assert manifest["input"]["resize"] in ("stretch", "letterbox") and manifest["input"]["std"]
        assert manifest["graphs"]
        for graph in manifest["graphs"]:
            assert graph["format"] == "onnx" and (folder / graph["file"]).is_file()
            assert 0 <= max(graph["max_abs_diff"].values()) <= manifest["tolerance"]


def matte_a_photo(checkpoint: Path, photo: Path, tmp_path: Path, prompt_args) -> None:
    """``mattekit matte`` with every prompt kind the family takes: an alpha at the photo's size
    and an RGBA cut-out with that alpha; a rerun skips the photo."""
    from mattekit.checkpoint_config import checkpoint_entry

    for kind in checkpoint_entry(checkpoint).prompts:
        out = tmp_path / f"cutouts_{kind}"
        prompt = prompt_args(kind, tmp_path, (45, 70))
        command = ["matte", str(photo), f"--ckpt_path={checkpoint}", f"--output_dir={out}",
                   "--kind", kind, *prompt]  # fmt: skip
        assert main(command) == 0
        alpha = cv2.imread(str(out / "holiday_alpha.png"), cv2.IMREAD_UNCHANGED)
        rgba = cv2.imread(str(out / "holiday_cutout.png"), cv2.IMREAD_UNCHANGED)
        assert alpha.shape == (45, 70) and rgba.shape == (45, 70, 4)
        assert np.array_equal(rgba[..., 3], alpha)
        written = (out / "holiday_alpha.png").stat().st_mtime_ns
        assert main(command) == 0
        assert (out / "holiday_alpha.png").stat().st_mtime_ns == written


def test_alias_rewriting_keeps_other_arguments():
    argv = ["fit", "--model", "BASELINE", "--model=baseline", "--model.depth=2", "--model", "x.Y"]
    rewritten = resolve_model_aliases(argv)
    path = list_models("baseline")[0].class_path
    assert rewritten == [
        "fit",
        "--model",
        path,
        f"--model={path}",
        "--model.depth=2",
        "--model",
        "x.Y",
    ]


def test_models_command_lists_the_registry(capsys):
    main(["models"])
    out = capsys.readouterr().out
    assert all(entry.alias in out for entry in list_models())
    # Columns line up: every row's class and prompts start where the header's do.
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("alias"))
    rows = [line for line in lines if line.split(" ")[0] in {e.alias for e in list_models()}]
    for column in ("class", "prompts", "summary"):
        start = header.index(column)
        assert all(row[start - 1] == " " and row[start] != " " for row in rows), column


def test_an_unknown_model_name_lists_the_registered_ones():
    registered = re.escape(", ".join(sorted(MODELS)))
    with pytest.raises(UsageError, match=rf"unknown model 'zimm'; registered: {registered}"):
        resolve_model_aliases(["fit", "--model", "zimm"])
    assert resolve_model_aliases(["fit", "--model=my_pkg.MyFamily"])[1] == "--model=my_pkg.MyFamily"


def test_usage_errors_print_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["mattekit", "fit", "--model", "zimm"])
    assert main() == 2
    assert capsys.readouterr().err.startswith("mattekit: error: --model unknown model 'zimm'")


def test_a_data_error_is_named_under_jsonargparse(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "nowhere"
    argv = ["mattekit", "fit", "--model", "baseline",
            "--data.train.class_path=mattekit.data.folders.ImageAlphaFolder",
            f"--data.train.init_args.root={missing}", "--trainer.accelerator=cpu"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert main() == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"mattekit: error: FileNotFoundError: folder not found: {missing / 'image'}"
