"""The cut-out's memory on large photos, and how far its bounded-memory path lies from the
full-size foreground estimate on real photos.

    python benchmarks/cutout_memory.py                       # 24 MP, and the shared photos
    python benchmarks/cutout_memory.py --megapixels 48 --photos PATH/alphamatting-lowres-dev

Memory: peak RSS of one ``cutout`` call in a fresh process, above the process's RSS just before
it (photo and alpha already in memory), at full size (``max_pixels`` above the photo) and with
the default :data:`~mattekit.inference.cutout.FULL_SIZE_FOREGROUND_PIXELS`. Agreement: on each
photo with ground truth, the mean colour difference over mixed pixels (alpha in (0.05, 0.95))
between the bounded path, forced to run at half and a quarter of the side, and the full-size
estimate, for several prior weights.
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

MEASURE_ONE = """
import json, resource, sys, numpy as np
from mattekit.inference.cutout import cutout
side, max_pixels = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
image = rng.integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8)
y, x = np.mgrid[: image.shape[0], : image.shape[1]]
alpha = np.clip(1.5 - np.hypot(x / side - 0.5, y / side - 0.4) * 4, 0, 1).astype(np.float32)
cutout(image[:64, :64], alpha[:64, :64])  # numba compiles outside the measurement
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cutout(image, alpha, max_pixels)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"pixels": image.shape[0] * image.shape[1], "extra_kib": after - before}))
"""


def peak_memory(megapixels: float, max_pixels: int) -> dict:
    side = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    command = [sys.executable, "-c", MEASURE_ONE, str(side), str(max_pixels)]
    return json.loads(subprocess.run(command, capture_output=True, check=True, text=True).stdout)


def agreement(folder: Path, weights: list[float]) -> dict[str, list[float]]:
    from mattekit.data.io import read_alpha, read_image
    from mattekit.inference import cutout as module

    results: dict[str, list[float]] = {}
    for gt in sorted(glob.glob(str(folder / "gt" / "*.png"))):
        name = Path(gt).name
        image, alpha = read_image(folder / "input" / name), read_alpha(gt)
        mixed = (alpha > 0.05) & (alpha < 0.95)
        full = module.cutout(image, alpha, max_pixels=alpha.size)[..., :3].astype(np.int32)
        results.setdefault("photo's own colours", []).append(
            float(np.abs(image.astype(np.int32) - full)[mixed].mean())
        )
        for weight in weights:
            module.PRIOR_WEIGHT = weight
            for divisor in (2, 4):
                part = module.cutout(image, alpha, max_pixels=alpha.size // divisor**2)
                difference = np.abs(part[..., :3].astype(np.int32) - full)[mixed].mean()
                results.setdefault(f"weight {weight}, 1/{divisor} side", []).append(
                    float(difference)
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=24)
    parser.add_argument(
        "--photos", type=Path, default=Path("../shared/data/alphamatting-lowres-dev")
    )
    parser.add_argument("--weights", type=float, nargs="+", default=[0.01, 0.1, 0.2, 0.4, 0.8])
    args = parser.parse_args()
    from mattekit.inference.cutout import FULL_SIZE_FOREGROUND_PIXELS

    print(f"| path at {args.megapixels:g} MP | extra peak RSS (MB) | bytes / pixel |")
    print("| --- | ---: | ---: |")
    for label, limit in (("full size", 10**12), ("bounded (default)", FULL_SIZE_FOREGROUND_PIXELS)):
        measured = peak_memory(args.megapixels, limit)
        extra = measured["extra_kib"] * 1024
        print(f"| {label} | {extra / 2**20:,.0f} | {extra / measured['pixels']:.1f} |")
    if not args.photos.is_dir():
        print(f"no photos at {args.photos}: agreement not measured")
        return
    print(f"\nmean |difference| from the full-size estimate, mixed pixels, {args.photos.name}")
    print("| path | mean over photos | worst photo |\n| --- | ---: | ---: |")
    for label, values in agreement(args.photos, args.weights).items():
        print(f"| {label} | {np.mean(values):.2f} | {np.max(values):.2f} |")


if __name__ == "__main__":
    main()
