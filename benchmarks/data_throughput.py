"""Samples per second that one DataLoader worker gives at 1024 px: how to size ``num_workers``.

    nice python benchmarks/data_throughput.py                  # synthetic + a folder, 1024 px
    nice python benchmarks/data_throughput.py --size 512 --samples 24

The training pipeline (load, augment, prompts, collate) runs in this process (``num_workers=0``),
so its CPU time per sample is what one worker spends: a worker keeps one core busy, and
``1 / (CPU seconds per sample)`` is one worker's samples/s whatever else the machine runs (the
wall clock is printed too; on a busy machine it says little). Two sources:

- ``synthetic``: the built-in scenes, rendered at the training size on the fly;
- ``folder``: an :class:`~mattekit.data.folders.ImageAlphaFolder` of JPEG photos and PNG mattes
  written first (synthetic scenes at ``--photo_size``), as a real benchmark folder is read:
  decoding, crop and resize included.

A GPU step of ``T`` seconds on a per-GPU batch ``B`` needs ``B / T`` samples/s, so about
``B / (T x samples/s per worker)`` workers per GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from mattekit.data.datamodule import MattingDataModule
from mattekit.data.folders import ImageAlphaFolder
from mattekit.data.synthetic import SyntheticSource


def write_folder(root: Path, count: int, side: int) -> ImageAlphaFolder:
    """``count`` synthetic scenes at ``side`` px as ``image/*.jpg`` + ``alpha/*.png``."""
    scenes = SyntheticSource(count, image_size=(side, side), seed=7, name="scenes")
    for folder in ("image", "alpha"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        raw = scenes.load(index, rng)
        image = cv2.cvtColor(raw.image, cv2.COLOR_RGB2BGR)  # H x W x 3 uint8 RGB
        cv2.imwrite(str(root / "image" / f"{index:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        alpha = (raw.alpha * 255).round().astype(np.uint8)
        cv2.imwrite(str(root / "alpha" / f"{index:04d}.png"), alpha)
    return ImageAlphaFolder(str(root), name="folder")


def measure(data: MattingDataModule, samples: int, batch_size: int) -> tuple[float, float]:
    """(CPU seconds per sample, wall seconds per sample) of the training loader in this process,
    after one untimed batch (imports, first allocations)."""
    loader = iter(data.train_dataloader())
    next(loader)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(samples // batch_size):
        next(loader)
    done = samples // batch_size * batch_size
    return (time.process_time() - cpu) / done, (time.perf_counter() - wall) / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="training side (px)")
    parser.add_argument("--samples", type=int, default=32, help="timed samples per source")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--photo_size", type=int, default=1536, help="the folder's photo side")
    args = parser.parse_args()
    # One thread: a worker is one process on one core (torch and OpenCV would spread otherwise).
    cv2.setNumThreads(0)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    common = {
        "image_size": args.size,
        "batch_size": args.batch_size,
        "num_workers": 0,
        "steps_per_epoch": args.samples // args.batch_size + 1,
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="data_throughput_") as folder:
        sources = {
            "synthetic": None,
            f"folder (JPEG {args.photo_size} px)": write_folder(
                Path(folder), max(8, args.samples // 2), args.photo_size
            ),
        }
        for name, source in sources.items():
            data = MattingDataModule(train=source, **common)
            cpu, wall = measure(data, args.samples, args.batch_size)
            rows.append((name, cpu, wall))
    cpu_name = platform.processor() or platform.machine()
    print(f"{args.size} px training samples, batch {args.batch_size}, {args.samples} timed, "
          f"one process, one thread; {cpu_name}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| source | CPU ms / sample | samples/s per worker | wall ms / sample (here) |")
    print("| --- | ---: | ---: | ---: |")
    for name, cpu, wall in rows:
        print(f"| {name} | {cpu * 1e3:.0f} | {1 / cpu:.1f} | {wall * 1e3:.0f} |")


if __name__ == "__main__":
    main()
