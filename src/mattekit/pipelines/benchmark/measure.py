"""Latency and peak memory of one call, the same way for every method.

On the CPU the peak is sampled: a thread reads the process's resident memory every
``SAMPLE_SECONDS`` while the call runs, and the peak above the level before the call is kept (a
call shorter than the interval may show 0). On CUDA it is the allocator's exact peak above the
memory allocated before the call.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

SAMPLE_SECONDS = 0.002
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

T = TypeVar("T")


def resident_bytes() -> int:
    """This process's resident memory (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


@dataclass(frozen=True)
class Measured:
    """A call's wall-clock ``seconds`` and ``peak_bytes`` above the memory in use before it."""

    seconds: float
    peak_bytes: int


def measured(call: Callable[[], T], device: torch.device | str = "cpu") -> tuple[T, Measured]:
    """Run ``call()`` once; return its result with its latency and peak memory."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = call()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        return result, Measured(seconds, torch.cuda.max_memory_allocated(device) - before)
    before = resident_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            peak[0] = max(peak[0], resident_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        result = call()
        seconds = time.perf_counter() - start
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], resident_bytes())
    return result, Measured(seconds, peak[0] - before)
