"""``mattekit benchmark`` end to end: three tiny trained families (one takes only masks), the
classical rows and the floor, on synthetic scenes and on a folder of photos of mixed, non-square
sizes with trimaps; reruns reuse what is recorded (issue 9)."""

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from mattekit.cli import main
from mattekit.data.synthetic import SyntheticSource
from mattekit.pipelines.benchmark.command import benchmark_main
from mattekit.pipelines.benchmark.model_method import ModelMethod
from mattekit.pipelines.benchmark.prompt_store import PromptStore
from mattekit.pipelines.benchmark.spec import MethodSpec, Protocol

FIT = [
    "--data.image_size=32", "--data.batch_size=2", "--data.num_workers=0",
    "--data.synthetic_train_samples=4", "--data.synthetic_eval_samples=2",
    "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.max_steps=2",
    "--trainer.limit_val_batches=0", "--trainer.logger=false",
]  # fmt: skip
FAMILIES = {
    "baseline": ["--model=baseline", "--model.base_channels=8", "--model.depth=2"],
    "zim": ["--model=zim", "--model.variant=tiny"],
    "zim_converter": ["--model=zim_converter", "--model.variant=tiny", "--model.image_size=32"],
    "teachmatte": ["--model=teachmatte", "--model.variant=tiny", "--model.stage=teacher"],
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


def photos(folder: Path) -> Path:
    """Three photos of different, non-square sizes with GT and trimap (ImageAlphaFolder's
    layout); the third trimap has no unknown pixel, so its MSE and MAD are undefined."""
    rng = np.random.default_rng(0)
    for name, (height, width) in {"a": (30, 44), "b": (50, 36), "c": (40, 40)}.items():
        yy, xx = np.mgrid[:height, :width]
        alpha = np.clip(1.5 - np.hypot(yy - height / 2, xx - width / 2) / 6, 0, 1)
        colours = rng.integers(0, 255, (2, 3))
        image = alpha[..., None] * colours[0] + (1 - alpha[..., None]) * colours[1]
        trimap = np.where(alpha == 0, 0, np.where(alpha == 1, 255, 128)).astype(np.uint8)
        if name == "c":
            trimap = np.where(alpha > 0.5, 255, 0).astype(np.uint8)
        for sub, array in (("image", image), ("alpha", alpha * 255), ("trimap", trimap)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / sub / f"{name}.png"), np.round(array).astype(np.uint8))
    return folder


def write_config(folder: Path, checkpoints: dict[str, Path]) -> Path:
    config = folder / "bench.yaml"
    config.write_text(
        f"""
name: tiny
protocol: {{prompts: [box, mask, trimap], seed: 1}}
{shapes(count=3, size=40)}
  - name: photos
    source:
      class_path: mattekit.data.folders.ImageAlphaFolder
      init_args: {{root: {photos(folder / "photos")}, trimap_dir: trimap}}
methods:
  - {{name: prompt as alpha, kind: floor}}
  - {{name: closed-form, kind: classical, algorithm: closed_form}}
  - {{name: knn, kind: classical, algorithm: knn}}
  - {{name: baseline, kind: model, checkpoint: {checkpoints["baseline"]}, image_size: 32}}
  - {{name: zim, kind: model, checkpoint: {checkpoints["zim"]}}}
  - {{name: converter, kind: model, checkpoint: {checkpoints["zim_converter"]}}}
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
    rows = {(r["dataset"], r["method"], r["prompt"]): r for r in rows_of(out / "results.csv")}
    assert len(rows) == 2 * 6 * 3
    # Skipped where a method does not take the prompt, with the reason; scored elsewhere.
    skipped = {key for key, row in rows.items() if row["skipped"]}
    expected = {(d, m, k) for d in ("shapes", "photos") for m, k in [
        ("baseline", "trimap"), ("zim", "trimap"),
        ("zim", "mask"), ("converter", "box"), ("converter", "trimap")]}  # fmt: skip
    assert skipped == expected
    assert "takes the prompts mask, not 'box'" in rows[("photos", "converter", "box")]["skipped"]
    for key in set(rows) - skipped:
        assert rows[key]["n"] == "3" and float(rows[key]["SAD"]) >= 0, key
    assert rows[("photos", "zim", "box")]["input"] == "128 px letterbox"  # SAM's convention
    assert rows[("photos", "baseline", "box")]["input"] == "32 px stretch"
    assert rows[("photos", "converter", "mask")]["input"] == "32 px stretch"
    trimaps = {key: rows[key]["trimap"] for key in rows if key[1] == "knn"}
    assert trimaps[("photos", "knn", "trimap")] == "dataset"
    assert trimaps[("shapes", "knn", "trimap")] == "sampled from the GT"
    assert trimaps[("photos", "knn", "box")] == "derived from the prompt"
    zim, baseline = rows[("photos", "zim", "box")], rows[("photos", "baseline", "box")]
    assert int(zim["parameters"]) > int(baseline["parameters"])
    per_image = rows_of(out / "per_image.csv")
    assert len(per_image) == 2 * 13 * 3  # thirteen scored rows per dataset, three images each
    # Photo c's trimap has no unknown pixel: its MSE is undefined, the mean is over a and b.
    undefined = [r for r in per_image if r["dataset"] == "photos" and math.isnan(float(r["MSE"]))]
    assert undefined and all(r["sample_id"] == "c" for r in undefined)

    # A second benchmark into another folder stores byte-identical prompts.
    assert benchmark_main([str(config), f"--output={tmp_path / 'again'}", "--force=[]"]) == 0
    for dataset in ("shapes", "photos"):
        for path in sorted((out / "prompts" / dataset).iterdir()):
            again = tmp_path / "again" / "prompts" / dataset / path.name
            assert path.read_bytes() == again.read_bytes(), path

    # Deleting one method's records makes that method again, and only it; fewer prompt kinds
    # keep the other records.
    records = out / "records"
    stamps = {p: p.stat().st_mtime_ns for p in records.rglob("*.json")}
    for path in (records / "knn").rglob("*"):
        if path.is_file():
            path.unlink()
    assert benchmark_main([str(config), "--protocol.prompts=[box, trimap]"]) == 0
    remade = {p for p in records.rglob("*.json") if stamps.get(p) != p.stat().st_mtime_ns}
    assert remade == {records / f"knn/{d}/{k}.json" for d in ("shapes", "photos")
                      for k in ("box", "trimap")}  # fmt: skip


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


def test_a_model_is_given_the_stored_prompts_at_its_input_size(checkpoints, tmp_path):
    """What reaches the family's forward: the stored box and clicks, moved to 32 px."""
    protocol = Protocol(prompts=["box"], clicks=2, seed=4)
    source = SyntheticSource(2, image_size=64, seed=3)
    store = PromptStore(tmp_path, protocol)
    store.make(source, progress=False)
    spec = MethodSpec("baseline", "model", str(checkpoints["baseline"]), image_size=32)
    method = ModelMethod(spec)
    seen = []
    forward = method.model.forward
    method.model.forward = lambda batch: seen.append(batch) or forward(batch)
    predictions = list(method.predictions(source, store, "box", [0, 1]))
    assert [p.alpha.shape for p in predictions] == [(64, 64), (64, 64)]
    for index, batch in zip([0, 1], seen[1:], strict=True):  # seen[0]: the warm-up call
        stored = store.read(index, source.load(index, np.random.default_rng([4, index])))
        box = np.clip(stored.box * 0.5, 0, 31)
        np.testing.assert_allclose(batch.box[0].numpy(), box, rtol=1e-6)
        np.testing.assert_allclose(batch.points[0, :2].numpy(), stored.points[:, :2] * 0.5)
        assert method.model.hparams.eval_prompt == "box"


def test_a_text_prompted_model_is_given_the_stored_expression(checkpoints, tmp_path):
    protocol = Protocol(prompts=["text", "box"], seed=4)
    source = SyntheticSource(2, image_size=32, seed=3)
    store = PromptStore(tmp_path, protocol)
    store.make(source, progress=False)
    method = ModelMethod(MethodSpec("teachmatte", "model", str(checkpoints["teachmatte"])))
    assert method.refusal("text") is None
    assert "takes the prompts text, not 'box'" in method.refusal("box")
    seen = []
    forward = method.model.forward
    method.model.forward = lambda batch: seen.append(batch) or forward(batch)
    list(method.predictions(source, store, "text", [0, 1]))
    for index, batch in zip([0, 1], seen[1:], strict=True):
        stored = store.read(index, source.load(index, np.random.default_rng([4, index])))
        assert stored.text and batch.text == [stored.text]


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
