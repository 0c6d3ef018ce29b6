"""On real photographs (alphamatting.com, in ../shared when this machine has it): the
benchmark's classical rows with the dataset's trimap equal pymatting + mattekit's metrics
computed directly, to 1e-6 (issue 9). Skipped where the photos are absent."""

import csv
from pathlib import Path

import pytest

from mattekit.pipelines.benchmark.command import benchmark_main
from mattekit.pipelines.benchmark.reference import direct_rows

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "alphamatting-lowres-dev"
IMAGES = ["GT04.png", "GT13.png"]  # GT04: trimap and GT disagree in a few pixels

pytestmark = pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"no photos at {PHOTOS}")


def test_classical_rows_equal_a_direct_computation(tmp_path):
    root = tmp_path / "photos"
    for folder in ("input", "gt", "trimap1"):
        (root / folder).mkdir(parents=True)
        for name in IMAGES:  # links, not copies: the photos never enter the repository
            (root / folder / name).symlink_to(PHOTOS / folder / name)
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"""
name: real
protocol: {{prompts: [trimap], preset: dim}}
datasets:
  - name: alphamatting
    source:
      class_path: mattekit.data.folders.ImageAlphaFolder
      init_args: {{root: {root}, image_dir: input, alpha_dir: gt, trimap_dir: trimap1}}
methods:
  - {{name: closed_form, kind: classical, algorithm: closed_form}}
  - {{name: knn, kind: classical, algorithm: knn}}
"""
    )
    assert benchmark_main([str(config)]) == 0
    with (tmp_path / "results" / "real" / "results.csv").open() as handle:
        ours = {row["method"]: row for row in csv.DictReader(handle)}
    for direct in direct_rows(root):
        row = ours[direct["method"]]
        assert row["trimap"] == "dataset" and int(row["n"]) == len(IMAGES)
        for name in ("SAD", "MSE", "MAD", "Grad", "Conn"):
            assert float(row[name]) == pytest.approx(direct[name], rel=1e-6), name
