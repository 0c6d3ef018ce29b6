"""The benchmark over the registry: every registered family, scored with every prompt kind it
takes (and refused, with the reason, for the others), beside the floor row of each kind, on
photos of mixed, non-square sizes with their own trimaps. A new family is covered by
registering itself."""

import csv
import math

import cv2
import numpy as np

from mattekit.models import MODELS
from mattekit.pipelines.benchmark.command import benchmark_main
from mattekit.prompts import KINDS

#: A side for families without one of their own (the random checkpoints have no run config).
SIDE = 32


def write_photos(folder):
    """Two photos of different, non-square sizes with GT and trimap (ImageAlphaFolder)."""
    rng = np.random.default_rng(0)
    for name, (height, width) in {"a": (30, 44), "b": (50, 36)}.items():
        yy, xx = np.mgrid[:height, :width]
        alpha = np.clip(1.5 - np.hypot(yy - height / 2, xx - width / 2) / 6, 0, 1)
        colours = rng.integers(0, 255, (2, 3))
        image = alpha[..., None] * colours[0] + (1 - alpha[..., None]) * colours[1]
        trimap = np.where(alpha == 0, 0, np.where(alpha == 1, 255, 128)).astype(np.uint8)
        for sub, array in (("image", image), ("alpha", alpha * 255), ("trimap", trimap)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / sub / f"{name}.png"), np.round(array).astype(np.uint8))
    return folder


def test_every_family_is_scored_with_every_kind_it_takes(tmp_path, save_checkpoint):
    methods = ["  - {name: floor, kind: floor}"]
    for alias, entry in MODELS.items():
        checkpoint = save_checkpoint(alias, tmp_path)
        side = entry.cls(**entry.tiny).input_convention.side
        size = "" if side else f", image_size: {SIDE}"
        methods.append(f"  - {{name: {alias}, kind: model, checkpoint: {checkpoint}{size}}}")
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"""
name: registry
protocol: {{prompts: [{", ".join(KINDS)}], seed: 1}}
datasets:
  - name: photos
    source:
      class_path: mattekit.data.folders.ImageAlphaFolder
      init_args: {{root: {write_photos(tmp_path / "photos")}, trimap_dir: trimap}}
methods:
{chr(10).join(methods)}
grid_images: 0
"""
    )
    assert benchmark_main([str(config), "--workers=1"]) == 0
    with (tmp_path / "results" / "registry" / "results.csv").open() as handle:
        rows = {(r["method"], r["prompt"]): r for r in csv.DictReader(handle)}
    for alias, entry in MODELS.items():
        for kind in KINDS:
            row = rows[alias, kind]
            if kind in entry.prompts:
                assert not row["skipped"] and row["n"] == "2", (alias, kind, row["skipped"])
                assert math.isfinite(float(row["SAD"])), (alias, kind)
            else:
                assert "prompt" in row["skipped"], (alias, kind)
    for name, kind in KINDS.items():
        assert bool(rows["floor", name]["skipped"]) == (kind.floor_field is None), name
    report = (tmp_path / "results" / "registry" / "results.md").read_text()
    assert "Protocol **`shared`**" in report
