"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``, which
puts this folder on the import path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from tqdm import tqdm

from mattekit.pipelines.benchmark import measure

#: ``--clock`` choices: wall-clock time, or this process's CPU time (steadier on a shared
#: machine; with one thread the two agree on an idle one).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(function, device: str, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one call by ``clock`` (CUDA work included: synchronised around it)."""
    return measure.timed(function, device, clock)[1]


def paired(
    reference_pass,
    candidate_pass,
    runs: int,
    device: str,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float, float]:
    """Median ms of the reference's and of the candidate's pass, and the median of the per-run
    ratios candidate / reference.

    The two passes alternate after one warm-up call each, so that on a shared machine both see
    the same load; the ratio of each pair is then steadier than the ratio of the medians.
    """
    reference_pass(), candidate_pass()
    pairs = [
        (timed(reference_pass, device, clock), timed(candidate_pass, device, clock))
        for _ in tqdm(range(runs), leave=False)
    ]
    reference_s, candidate_s = zip(*pairs, strict=True)
    ratios = [c / r for r, c in pairs]
    return (
        statistics.median(reference_s) * 1e3,
        statistics.median(candidate_s) * 1e3,
        statistics.median(ratios),
    )


def median_ms(
    function, runs: int, device: str, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median ms of ``runs`` calls after one warm-up call."""
    function()
    return statistics.median(timed(function, device, clock) for _ in range(runs)) * 1e3
