"""Latency of each call and peak memory of a whole method, the same way for every method.

Peak memory is what a method needs above the process's level before its first call (a model's
weights already loaded): on CUDA the allocator's exact peak; on the CPU the resident memory,
sampled every ``SAMPLE_SECONDS`` by a thread for as long as the method runs (memory a call
allocates and frees within one interval can be missed). One number per method, not per image:
memory an earlier call left allocated would hide a later call's needs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import torch

from mattekit.pipelines.benchmark.resident import resident_bytes

SAMPLE_SECONDS = 0.002

T = TypeVar("T")


def timed(
    call: Callable[[], T],
    device: torch.device | str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[T, float]:
    """``call()`` and its seconds by ``clock`` (wall by default; CUDA work included:
    synchronised around it)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    result = call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, clock() - start


class WarmTimer:
    """:func:`timed` after one untimed first call: that call pays for loading the code it runs,
    allocations and kernel selection, which no later call repeats."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = device
        self.warm = False

    def __call__(self, call: Callable[[], T]) -> tuple[T, float]:
        if not self.warm:
            call()
            self.warm = True
        return timed(call, self.device)


class PeakMemory:
    """The peak memory above the level at :meth:`start` (see the module docstring)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._baseline = 0
        self._peak = 0
        self._done = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._baseline = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._baseline = self._peak = resident_bytes()
        self._done.clear()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self._peak = max(self._peak, resident_bytes())

    @property
    def peak_bytes(self) -> int:
        """The peak so far, above the level at :meth:`start`."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) - self._baseline
        self._peak = max(self._peak, resident_bytes())
        return self._peak - self._baseline

    def stop(self) -> int:
        """Stop sampling; the peak."""
        peak = self.peak_bytes
        self._done.set()
        if self._sampler is not None:
            self._sampler.join()
            self._sampler = None
        return peak
