"""``mattekit benchmark`` end to end: two tiny trained families, the classical rows and the
floor on tiny synthetic data; reruns reuse what is recorded (issue 9)."""

import csv
from pathlib import Path

import pytest

from mattekit.cli import main
from mattekit.pipelines.benchmark import benchmark_main

FIT = [
    "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=0",
    "--data.synthetic_train_samples=4", "--data.synthetic_eval_samples=2",
    "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.max_steps=2",
    "--trainer.limit_val_batches=0", "--trainer.logger=false",
]  # fmt: skip
FAMILIES = {
    "baseline": ["--model=baseline", "--model.base_channels=8", "--model.depth=2"],
    "zim": ["--model=zim", "--model.variant=tiny"],
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    found = {}
    for name, model in FAMILIES.items():
        root = tmp_path_factory.mktemp(name)
        main(["fit", *model, *FIT, f"--trainer.default_root_dir={root}"])
        found[name] = root / "checkpoints" / "last.ckpt"
    return found


def shapes(count: int, size: int) -> str:
    """The ``datasets:`` entry of ``count`` synthetic scenes at ``size`` px, named ``shapes``."""
    source = f"{{num_samples: {count}, image_size: {size}, seed: 9}}"
    return (
        "datasets:\n  - name: shapes\n    source:\n"
        "      class_path: mattekit.data.synthetic.SyntheticSource\n"
        f"      init_args: {source}"
    )


def write_config(folder: Path, checkpoints: dict[str, Path]) -> Path:
    config = folder / "bench.yaml"
    config.write_text(
        f"""
name: tiny
protocol: {{prompts: [box, points], clicks: 2, seed: 1}}
{shapes(count=3, size=40)}
methods:
  - {{name: prompt as alpha, kind: floor}}
  - {{name: closed-form, kind: classical, algorithm: closed_form}}
  - {{name: knn, kind: classical, algorithm: knn}}
  - {{name: baseline, kind: model, checkpoint: {checkpoints["baseline"]}, image_size: 32}}
  - {{name: zim, kind: model, checkpoint: {checkpoints["zim"]}}}
grid_images: 2
"""
    )
    return config


def rows_of(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_benchmark_compares_families_classical_methods_and_the_floor(checkpoints, tmp_path):
    config = write_config(tmp_path, checkpoints)
    out = tmp_path / "results" / "tiny"
    assert benchmark_main([str(config), "--workers=2"]) == 0
    for name in ("results.csv", "results.md", "per_image.csv", "tradeoff.png", "grid.png"):
        assert (out / name).stat().st_size > 0, name
    rows = {(r["method"], r["prompt"]): r for r in rows_of(out / "results.csv")}
    assert len(rows) == 10
    # Skipped where a method does not take the prompt, with the reason; scored elsewhere.
    assert "the floor takes" in rows[("prompt as alpha", "points")]["skipped"]
    assert "need a trimap" in rows[("knn", "points")]["skipped"]
    for key in [("baseline", "points"), ("zim", "points"), ("zim", "box"), ("knn", "box")]:
        assert rows[key]["n"] == "3" and float(rows[key]["SAD"]) >= 0, key
    assert rows[("zim", "box")]["input"] == "128 px letterbox"  # SAM's convention
    assert rows[("baseline", "box")]["input"] == "32 px stretch"
    assert rows[("closed-form", "box")]["trimap"] == "derived from the prompt"
    assert int(rows[("zim", "box")]["parameters"]) > int(rows[("baseline", "box")]["parameters"])
    assert len(rows_of(out / "per_image.csv")) == 7 * 3  # seven scored rows x three images

    # A second benchmark into another folder stores byte-identical prompts.
    assert benchmark_main([str(config), f"--output={tmp_path / 'again'}", "--force=[]"]) == 0
    prompts = sorted((out / "prompts" / "shapes").iterdir())
    for path in prompts:
        assert path.read_bytes() == (tmp_path / "again/prompts/shapes" / path.name).read_bytes()

    # Deleting one method's records makes that method again, and only it.
    records = out / "records"
    stamps = {p: p.stat().st_mtime_ns for p in records.rglob("*.json")}
    for path in (records / "knn").rglob("*"):
        if path.is_file():
            path.unlink()
    assert benchmark_main([str(config)]) == 0
    remade = {p for p in records.rglob("*.json") if stamps.get(p) != p.stat().st_mtime_ns}
    assert remade == {records / "knn/shapes/box.json", records / "knn/shapes/points.json"}


def test_changed_settings_are_refused_not_mixed(checkpoints, tmp_path, capsys):
    config = write_config(tmp_path, checkpoints)
    assert benchmark_main([str(config), "--protocol.prompts=[box]"]) == 0
    # Another seed: the stored prompts no longer match.
    assert benchmark_main([str(config), "--protocol.prompts=[box]", "--protocol.seed=2"]) == 1
    assert "delete the folder" in capsys.readouterr().err
    # Another preset: every record was made under the old one.
    command = [str(config), "--protocol.prompts=[box]", "--protocol.preset=zim"]
    assert benchmark_main(command) == 1
    assert "--force" in capsys.readouterr().err
    assert benchmark_main([str(config), "--protocol.prompts=[nonsense]"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_a_method_trained_in_a_stage_is_made_once_and_never_mixed_with_a_new_making(tmp_path):
    fit = " ".join(f'"{arg}",' for arg in [*FAMILIES["baseline"], *FIT]).rstrip(",")
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"""
name: staged
protocol: {{prompts: [box]}}
{shapes(count=2, size=32)}
stages:
  - {{name: baseline, args: [{fit}]}}
methods:
  - {{name: baseline, kind: model, checkpoint: "{{baseline}}"}}
"""
    )
    out = tmp_path / "results" / "staged"
    assert benchmark_main([str(config)]) == 0
    stage_record = out / "stages" / "baseline" / "baseline.json"
    made = stage_record.read_text()
    assert rows_of(out / "results.csv")[0]["input"] == "32 px stretch"  # the stage run's size
    assert benchmark_main([str(config)]) == 0
    assert stage_record.read_text() == made  # reused, not fitted again
    # The stage made again (its folder deleted): the old rows are refused, not silently kept.
    for path in sorted((out / "stages").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert benchmark_main([str(config)]) == 1
    assert benchmark_main([str(config), "--force=[baseline]"]) == 0
