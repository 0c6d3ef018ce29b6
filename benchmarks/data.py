"""Samples per second of the MattingDataModule alone (no model): can the data keep up with a GPU?

    python benchmarks/data.py                       # synthetic, 512 x 512, 2 workers
    python benchmarks/data.py --size 1024 --workers 4

Goal (issue 2): at least 50 samples/s for the synthetic source at 512 x 512 with 2 workers.
The first batches (worker start-up) are excluded from the timing.
"""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from mattekit.data.datamodule import MattingDataModule


def measure(size: int, workers: int, batch_size: int, batches: int, warmup: int) -> float:
    """Training-pipeline throughput in samples/s over ``batches`` batches after ``warmup``."""
    data = MattingDataModule(
        image_size=size,
        batch_size=batch_size,
        num_workers=workers,
        steps_per_epoch=batches + warmup,
    )
    loader = iter(data.train_dataloader())
    for _ in range(warmup):
        next(loader)
    start = time.perf_counter()
    for _ in tqdm(range(batches), desc=f"{size}px, {workers} workers", leave=False):
        next(loader)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=4)
    args = parser.parse_args()
    rate = measure(args.size, args.workers, args.batch_size, args.batches, args.warmup)
    goal = 50.0
    print("| source | size | workers | samples/s | goal | ratio to goal |")
    print("| --- | --- | --- | --- | --- | --- |")
    row = [args.size, args.workers, f"{rate:.1f}", f"{goal:.0f}", f"{rate / goal:.2f}"]
    print("| synthetic | " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
