"""Classical matting as a benchmark method: pymatting on each image and its trimap, over a pool
of worker processes kept for the whole benchmark. Workers are spawned, not forked (a process
that has run OpenMP code, torch or numba, cannot fork safely), and one that dies stops the
benchmark with an error instead of being replaced forever."""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np

from mattekit.pipelines.benchmark.classical import (
    CLASSICAL_PROMPTS,
    classical_alpha,
    derived_trimap,
)
from mattekit.pipelines.benchmark.measure import PeakMemory, timed
from mattekit.pipelines.benchmark.methods import BenchmarkMethod, Prediction
from mattekit.pipelines.benchmark.prompt_store import load_raw
from mattekit.pipelines.benchmark.spec import MethodSpec

# This process's memory watch of each algorithm, started before that algorithm's warm-up.
_MEMORY: dict[str, PeakMemory] = {}


def _start_worker(algorithm: str) -> None:
    """Start ``algorithm``'s memory watch, and compile pymatting's numba kernels on a tiny
    problem so that every timed call is warm; once per process and algorithm."""
    if algorithm in _MEMORY:
        return
    _MEMORY[algorithm] = PeakMemory().start()
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, 4:] = 255
    trimap = np.full((8, 8), 128, np.uint8)
    trimap[:, 0] = 0
    trimap[:, -1] = 255
    classical_alpha(algorithm, image, trimap)


def _trimap_label(kind: str, from_dataset: bool) -> str:
    if kind != "trimap":
        return "derived from the prompt"
    return "dataset" if from_dataset else "sampled from the GT"


def _predict(task: tuple, index: int) -> Prediction:
    source, store, kind, algorithm = task
    raw = load_raw(source, index, store.protocol.seed)
    prompt = store.read(index, raw)
    trimap = derived_trimap(prompt, kind, raw.size)
    label = _trimap_label(kind, prompt.trimap_from_dataset)
    try:
        alpha, seconds = timed(lambda: classical_alpha(algorithm, raw.image, trimap))
    except ValueError as error:  # pymatting's solver did not converge on this image
        peak = _MEMORY[algorithm].peak_bytes
        return Prediction(index, raw.sample_id, None, math.nan, peak, label, str(error))
    peak = _MEMORY[algorithm].peak_bytes
    return Prediction(index, raw.sample_id, alpha.astype(np.float32), seconds, peak, label)


class ClassicalMethod(BenchmarkMethod):
    """Closed-form or KNN matting on the trimap of :func:`~.classical.derived_trimap`, on
    ``workers`` processes (in this one when 1). Call :meth:`close` when done."""

    def __init__(self, spec: MethodSpec, workers: int = 1) -> None:
        super().__init__(spec)
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def refusal(self, kind: str) -> str | None:
        if kind in CLASSICAL_PROMPTS:
            return None
        return f"classical methods take {list(CLASSICAL_PROMPTS)} (they need a trimap)"

    @property
    def parallel_calls(self) -> int:
        return self.workers

    def predictions(self, source, store, kind, indices):
        predict = partial(_predict, (source, store, kind, self.spec.algorithm))
        if self.workers == 1:
            _start_worker(self.spec.algorithm)
            yield from map(predict, indices)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.spec.algorithm,),
            )
        yield from self._pool.map(predict, indices)

    def close(self) -> None:
        if self.workers == 1 and self.spec.algorithm in _MEMORY:
            _MEMORY.pop(self.spec.algorithm).stop()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
