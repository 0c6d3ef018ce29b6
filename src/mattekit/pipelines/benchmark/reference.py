"""The classical rows of a benchmark computed directly, as a user without mattekit's pipeline
would: pymatting's ``load_image`` and ``estimate_alpha_*`` on each image and its trimap, then
mattekit's metrics in the trimap band. The benchmark's ``trimap`` rows must equal these (checked
by ``tests/integration/test_benchmark_real_data.py``; the README states both tables).

    python -m mattekit.pipelines.benchmark.reference PATH/alphamatting-lowres-dev [--limit N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mattekit.metrics import matting_metrics
from mattekit.visualize import markdown_table

ALGORITHMS = ("closed_form", "knn")


def direct_rows(
    root: Path, preset: str = "dim", limit: int | None = None, trimap_dir: str = "trimap1"
) -> list[dict]:
    """Mean metrics of closed-form and KNN matting over ``root/input/*.png`` with
    ``root/<trimap_dir>`` and ``root/gt`` (alphamatting.com's layout), images in name order."""
    from pymatting import estimate_alpha_cf, estimate_alpha_knn, load_image

    estimate = {"closed_form": estimate_alpha_cf, "knn": estimate_alpha_knn}
    names = sorted(path.name for path in (root / "input").glob("*.png"))[:limit]
    rows = []
    for algorithm in ALGORITHMS:
        metrics = matting_metrics(preset)
        for name in tqdm(names, algorithm, unit="image"):
            image = load_image(str(root / "input" / name), "RGB")
            trimap = load_image(str(root / trimap_dir / name), "GRAY")
            gt = load_image(str(root / "gt" / name), "GRAY")
            alpha = estimate[algorithm](image, trimap)
            as_batch = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None, None]  # noqa: E731
            metrics.update(as_batch(alpha), as_batch(gt), as_batch(np.round(trimap * 255)))
        values = {key: float(value) for key, value in metrics.compute().items()}
        rows.append({"method": algorithm, "n": len(names), **values})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="alphamatting.com layout: input/, gt/, trimap1/")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only")
    parser.add_argument("--preset", default="dim")
    args = parser.parse_args(argv)
    print(markdown_table(direct_rows(args.root, args.preset, args.limit)))


if __name__ == "__main__":
    main()
