"""Time the five "dim" matting metrics against the slow numpy/scipy reference, on real-size pairs.

    .venv/bin/python benchmarks/metrics.py [--data PATH | --synthetic N] [--scale 0.5]
                                           [--repeats 3] [--threads 1] [--clock wall|cpu]

Data: the alphamatting.com low-resolution training images (``input/``, ``gt/``, ``trimap1/``),
by default in ``../shared/data/alphamatting-lowres-dev`` next to the repository (found from this
script's location, whatever the working directory); a missing folder is an error naming the path
and ``--data``. The prediction is pymatting's closed-form matting run on a copy downscaled by
``--scale`` and resized back, quantised to 8 bits like a saved PNG. Nothing is cached.
``--synthetic N`` times N random 800 x 600 pairs instead (no data needed). Values must agree with
the reference (SAD, MSE, MAD, Grad to 1e-6 relative, Conn to 1e-5); the script exits with status
1 if they do not.

Both sides start from the same float32 (H, W) alphas and uint8 trimap and run on one thread by
default (the reference is single-threaded numpy / scipy); the mattekit side is the full
``Metric.update`` (input validation included).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from timing import CLOCKS
from tqdm import tqdm

from mattekit.metrics import (
    DIM,
    MAD,
    MSE,
    SAD,
    ConnectivityError,
    GradientError,
    matting_metrics,
    reference,
)

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPOSITORY_ROOT.parent / "shared" / "data" / "alphamatting-lowres-dev"
ALPHAMATTING_FOLDERS = ("input", "gt", "trimap1")
RELATIVE_TOLERANCE = {"SAD": 1e-6, "MSE": 1e-6, "MAD": 1e-6, "Grad": 1e-6, "Conn": 1e-5}
Pair = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # name, pred, gt (H, W) f32, trimap u8


def read_gray(path: Path) -> np.ndarray:
    """(H, W) uint8; palette trimaps and R=G=B alpha PNGs decode to their grey values."""
    from PIL import Image  # pillow comes with torchvision / pymatting

    return np.array(Image.open(path).convert("L"))


def closed_form_prediction(image: np.ndarray, trimap: np.ndarray, scale: float) -> np.ndarray:
    """pymatting closed-form alpha at ``scale``, resized back and quantised to 8 bits."""
    import pymatting

    height, width = trimap.shape
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    image_small = cv2.resize(image, small, interpolation=cv2.INTER_AREA) / 255.0
    trimap_small = cv2.resize(trimap, small, interpolation=cv2.INTER_NEAREST) / 255.0
    alpha = pymatting.estimate_alpha_cf(image_small, trimap_small)
    alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    return (np.round(np.clip(alpha, 0, 1) * 255) / 255).astype(np.float32)


def alphamatting_pairs(folder: Path, scale: float, limit: int | None) -> list[Pair]:
    names = sorted(path.name for path in (folder / "gt").glob("*.png"))[:limit]
    pairs = []
    for name in tqdm(names, desc="pymatting predictions", unit="image"):
        image = cv2.cvtColor(cv2.imread(str(folder / "input" / name)), cv2.COLOR_BGR2RGB)
        gt = read_gray(folder / "gt" / name).astype(np.float32) / 255
        trimap = read_gray(folder / "trimap1" / name)
        pairs.append((name, closed_form_prediction(image, trimap, scale), gt, trimap))
    return pairs


def synthetic_pairs(count: int, height: int = 600, width: int = 800) -> list[Pair]:
    """Smooth random mattes with a noisy prediction and a trimap from the ground truth."""
    rng = np.random.default_rng(0)
    pairs = []
    for index in range(count):
        field = cv2.GaussianBlur(rng.random((height, width)), (0, 0), 12)
        field = (field - field.min()) / (field.max() - field.min())
        gt = np.round(np.clip((field - 0.4) * 4, 0, 1) * 255) / 255
        noise = cv2.GaussianBlur(rng.normal(0, 0.4, (height, width)), (0, 0), 3)
        pred = np.round(np.clip(gt + noise, 0, 1) * 255) / 255
        trimap = np.full((height, width), 128, np.uint8)
        trimap[gt == 0], trimap[gt == 1] = 0, 255
        pairs.append(
            (f"synthetic{index:02d}", pred.astype(np.float32), gt.astype(np.float32), trimap)
        )
    return pairs


def best_ms(function: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        function()
        best = min(best, clock() - start)
    return best * 1e3


def reference_functions(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> dict:
    """Zero-argument calls of the reference, each starting from the same float32 arrays and
    uint8 trimap as the metrics (the float64 conversion and the region are part of the work)."""

    def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        region = reference.evaluation_region(pred.shape, trimap, DIM)
        return pred.astype(np.float64), gt.astype(np.float64), region

    rule, tie_break = DIM.conn_component, DIM.conn_tie_break
    return {
        "SAD": lambda: reference.sad(*inputs()),
        "MSE": lambda: reference.mse(*inputs()),
        "MAD": lambda: reference.mad(*inputs()),
        "Grad": lambda: reference.gradient_error(*inputs(), DIM.gradient),
        "Conn": lambda: reference.connectivity_error(*inputs(), rule, tie_break),
        "all five": lambda: reference.matting_errors(pred, gt, trimap, DIM),
    }


METRICS = {"SAD": SAD, "MSE": MSE, "MAD": MAD, "Grad": GradientError, "Conn": ConnectivityError}


def time_pair(
    pair: Pair, repeats: int, clock: Callable[[], float]
) -> dict[str, tuple[float, float, float, float]]:
    """{metric: (reference ms, mattekit ms, reference value, mattekit value)} for one pair,
    timed by ``clock``."""
    _, pred, gt, trimap = pair
    tensors = [torch.from_numpy(array)[None, None] for array in (pred, gt, trimap)]
    references = reference_functions(pred, gt, trimap)
    results = {}
    for name in [*METRICS, "all five"]:
        metric = METRICS[name](preset="dim") if name in METRICS else matting_metrics("dim")

        def update(metric=metric) -> None:
            metric.reset()
            metric.update(*tensors)

        ref_ms = best_ms(references[name], repeats, clock)
        fast_ms = best_ms(update, repeats, clock)
        if name in METRICS:
            results[name] = (ref_ms, fast_ms, references[name](), float(metric.compute()))
        else:
            results[name] = (ref_ms, fast_ms, float("nan"), float("nan"))
    return results


def print_table(per_pair: list[dict], repeats: int, clock_name: str) -> bool:
    """Print per-image mean timings and the worst differences; True if all values agree."""
    threads = f"{torch.get_num_threads()} torch / {cv2.getNumThreads()} OpenCV thread(s)"
    print(
        f"\n{len(per_pair)} pairs, per-image mean of the best of {repeats} runs, {threads}, "
        f"{'CPU' if clock_name == 'cpu' else 'wall-clock'} time"
    )
    header = ("metric", "ref ms", "mattekit ms", "speedup", "max abs diff", "max rel diff")
    print(
        f"{header[0]:<9}{header[1]:>9}{header[2]:>13}{header[3]:>9}{header[4]:>14}{header[5]:>14}"
    )
    passed = True
    for name in [*METRICS, "all five"]:
        ref_ms = np.mean([results[name][0] for results in per_pair])
        fast_ms = np.mean([results[name][1] for results in per_pair])
        line = f"{name:<9}{ref_ms:>9.2f}{fast_ms:>13.2f}{ref_ms / fast_ms:>8.1f}x"
        if name in RELATIVE_TOLERANCE:
            expected = np.array([results[name][2] for results in per_pair])
            got = np.array([results[name][3] for results in per_pair])
            absolute = np.abs(got - expected)
            relative = absolute / np.maximum(np.abs(expected), 1e-12)
            ok = bool(np.all(relative <= RELATIVE_TOLERANCE[name]))
            passed &= ok
            verdict = "ok" if ok else "MISMATCH"
            line += f"{absolute.max():>14.2e}{relative.max():>14.2e}  {verdict}"
        print(line)
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"alphamatting folder ({DEFAULT_DATA})"
    )
    parser.add_argument("--scale", type=float, default=0.5, help="pymatting working scale")
    parser.add_argument("--repeats", type=int, default=3, help="timings per metric, best kept")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument(
        "--synthetic", type=int, default=0, help="time N synthetic pairs instead of --data"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall-clock time, or this process's CPU time (steadier on a shared machine; with "
        "one thread the two agree on an idle one)",
    )
    args = parser.parse_args()
    # The reference is single-threaded numpy/scipy; one thread each compares like with like
    # and keeps timings stable on a shared 2-core machine.
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    if args.synthetic > 0:
        pairs = synthetic_pairs(args.synthetic)
    else:
        missing = [f"{name}/" for name in ALPHAMATTING_FOLDERS if not (args.data / name).is_dir()]
        if missing:
            parser.error(
                f"no alphamatting data at {args.data.resolve()} (missing {', '.join(missing)}); "
                "pass the folder with --data PATH, or --synthetic N for synthetic pairs"
            )
        pairs = alphamatting_pairs(args.data, args.scale, args.limit)
    clock = CLOCKS[args.clock]
    per_pair = [
        time_pair(pair, args.repeats, clock) for pair in tqdm(pairs, desc="timing", unit="pair")
    ]
    sys.exit(0 if print_table(per_pair, args.repeats, args.clock) else 1)


if __name__ == "__main__":
    main()
