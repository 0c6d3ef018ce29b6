"""A checkpoint mattekit will not read is refused in one line, by every command and every weight
loader the command line reaches, with status 2 and never torch's advice to load it with
``weights_only=False`` (issue 23, items 4 and B)."""

import pickle
import random
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

TINY_DATA = [
    "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=0",
    "--data.synthetic_train_samples=4", "--data.synthetic_eval_samples=2",
    "--trainer.accelerator=cpu", "--trainer.max_steps=1", "--trainer.enable_progress_bar=false",
]  # fmt: skip
BASELINE = ["--model=baseline", "--model.base_channels=8", "--model.depth=2"]


class PrintOnUnpickle:
    """A pickle payload: unpickling it prints "pwned" (it could run any code the same way)."""

    def __reduce__(self):
        return (print, ("pwned",))


def malicious_files(folder: Path, save_tiny_checkpoint) -> dict[str, Path]:
    """The bad files: a pickle payload (torch's zip format and a bare pickle), a truncated
    checkpoint and random bytes."""
    files = {name: folder / f"{name}.ckpt" for name in ("payload", "bare", "truncated", "random")}
    torch.save({"state_dict": {"w": PrintOnUnpickle()}}, files["payload"])
    files["bare"].write_bytes(pickle.dumps({"state_dict": PrintOnUnpickle()}, protocol=4))
    whole = save_tiny_checkpoint("baseline", folder).read_bytes()
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    files["random"].write_bytes(random.Random(0).randbytes(4096))
    return files


REASONS = {
    "payload": "it holds a pickled object of class 'print', which weights-only loading refuses",
    "bare": "it holds a pickled object of class 'builtins.print', which weights-only loading",
    "truncated": "not a PyTorch file (truncated or not a zip archive)",
    "random": "not a PyTorch file (truncated or not a zip archive)",
}


def bench_spec(folder: Path, checkpoint: Path) -> Path:
    """A benchmark whose one model row names ``checkpoint``."""
    spec = folder / "bench.yaml"
    spec.write_text(
        "name: refused\nprotocol: {prompts: [box], seed: 1}\ndatasets:\n  - name: shapes\n"
        "    source:\n      class_path: mattekit.data.synthetic.SyntheticSource\n"
        "      init_args: {num_samples: 1, image_size: 32, seed: 9}\n"
        f"methods:\n  - {{name: bad, kind: model, checkpoint: {checkpoint}, image_size: 32}}\n"
    )
    return spec


def command_line(case: str, bad: Path, folder: Path) -> list[str]:
    """The ``mattekit`` arguments of ``case`` with ``bad`` where a checkpoint goes."""
    root = f"--trainer.default_root_dir={folder / 'runs'}"
    lightning = {
        "fit --ckpt_path": ["fit", *BASELINE, *TINY_DATA, root, f"--ckpt_path={bad}"],
        "predict --ckpt_path": ["predict", *BASELINE, *TINY_DATA, root, f"--ckpt_path={bad}"],
        "sama checkpoint": ["--model=sama", "--model.variant=tiny", f"--model.checkpoint={bad}"],
        "zim checkpoint": ["--model=zim", "--model.variant=tiny", f"--model.checkpoint={bad}"],
        "sdmatte checkpoint": ["--model=sdmatte", "--model.variant=tiny",
                               f"--model.checkpoint={bad}"],
        "litesdmatte teacher_checkpoint": ["--model=litesdmatte", "--model.variant=tiny",
                                           f"--model.teacher_checkpoint={bad}"],
        "teachmatte previous_stage": ["--model=teachmatte", "--model.variant=tiny",
                                      "--model.stage=student", f"--model.previous_stage={bad}"],
        "teachmatte text_encoder": ["--model=teachmatte", "--model.variant=tiny",
                                    f"--model.text_encoder={bad}"],
        "zim_converter backbone_checkpoint": ["--model=zim_converter", "--model.variant=tiny",
                                              "--model.image_size=32",
                                              f"--model.backbone_checkpoint={bad}"],
    }  # fmt: skip
    if case in lightning:
        return lightning[case]
    images = folder / "images"
    return {
        "benchmark": ["benchmark", str(bench_spec(folder, bad)), f"--output={folder / 'out'}"],
        "clicks": ["clicks", str(bad)],
        "convert-labels": ["convert-labels", f"--ckpt_path={bad}", f"--image_dir={images}",
                           f"--mask_dir={images}", f"--output_dir={folder / 'mattes'}"],
        "matte": ["matte", str(images), f"--ckpt_path={bad}", "--box=1,1,5,5",
                  f"--output_dir={folder / 'cutouts'}"],
        "export": ["export", f"--ckpt_path={bad}", f"--output_dir={folder / 'onnx'}"],
        "demo": ["demo", f"--ckpt_path={bad}"],
    }[case]  # fmt: skip


def run_mattekit(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mattekit.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def assert_refused_in_one_line(result: subprocess.CompletedProcess, bad: Path, reason: str):
    """Status 2; on stderr exactly one line from mattekit, naming the file and the reason, and
    no traceback; torch's advice and the payload's output nowhere."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert "weights_only=False" not in output and "weights_only` set to `False" not in output
    assert "pwned" not in output
    # Lightning's "Seed set to 0" and mattekit's own "INFO mattekit...." log lines aside.
    ours = [line for line in result.stderr.splitlines() if line.startswith("mattekit")]
    assert len(ours) == 1, result.stderr
    assert str(bad) in ours[0] and reason in ours[0], ours[0]


# Each command meets one kind of bad file (all four kinds go through one shared reader).
CASES = [
    # validate and test read --ckpt_path as fit and predict do (MattingCLI._parse_ckpt_path).
    ("fit --ckpt_path", "payload"),
    ("predict --ckpt_path", "bare"),
    ("benchmark", "payload"),
    ("clicks", "truncated"),
    ("convert-labels", "bare"),
    ("matte", "random"),
    ("export", "payload"),
    ("demo", "truncated"),
    ("sama checkpoint", "random"),
    ("zim checkpoint", "payload"),
    ("sdmatte checkpoint", "truncated"),
    ("litesdmatte teacher_checkpoint", "bare"),
    ("teachmatte previous_stage", "random"),
    ("teachmatte text_encoder", "payload"),
    ("zim_converter backbone_checkpoint", "truncated"),
]


@pytest.mark.parametrize(("case", "kind"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_bad_checkpoints_are_refused_in_one_line(case, kind, tmp_path, save_checkpoint):
    bad = malicious_files(tmp_path, save_checkpoint)[kind]
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "photo.png"), np.zeros((16, 16, 3), np.uint8))
    args = command_line(case, bad, tmp_path)
    if args[0].startswith("--model"):  # a family's weight loader, reached by fit
        args = ["fit", *args, *TINY_DATA, f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    assert_refused_in_one_line(run_mattekit(args, tmp_path), bad, REASONS[kind])


def test_convert_labels_names_the_family_of_another_checkpoint(tmp_path, save_checkpoint):
    baseline = save_checkpoint("baseline", tmp_path)
    (tmp_path / "images").mkdir()
    result = run_mattekit(command_line("convert-labels", baseline, tmp_path), tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"mattekit convert-labels: error: {baseline} holds a Baseline model (baseline), not a "
        "label converter: give the checkpoint of a zim_converter run"
    ]
