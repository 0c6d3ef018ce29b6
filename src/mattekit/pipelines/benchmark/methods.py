"""What every benchmark method gives: per sample, the alpha at its stored size, the latency of
producing it and the method's peak memory so far (:mod:`.measure`). What is timed:

- a model (:mod:`.model_method`): from the batch at its own input size (already loaded, resized
  and prompted by the shared pipeline, as in ``mattekit test``) to the alpha resized back to the
  stored size;
- a classical method (:mod:`.classical_method`): pymatting's call on the image and the trimap;
- the floor (here): drawing the prompt.

Loading, prompting and scoring are the benchmark's own overhead, reported apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from mattekit.data.source import MattingSource
from mattekit.pipelines.benchmark.classical import FLOOR_PROMPTS, floor_alpha
from mattekit.pipelines.benchmark.measure import PeakMemory, WarmTimer
from mattekit.pipelines.benchmark.prompt_store import PromptStore, load_raw
from mattekit.pipelines.benchmark.spec import MethodSpec


@dataclass(frozen=True)
class Prediction:
    """One sample's prediction.

    Attributes:
        alpha: H x W float32 in [0, 1] at the stored size; None when the method failed on
            this image (``error`` says why).
        seconds: the timed call.
        peak_bytes: the method's peak memory so far (of the process that made this one).
        trimap: which trimap a classical method used (None for the others).
        error: why the method gave no alpha (a solver that did not converge), else None.
    """

    index: int
    sample_id: str
    alpha: np.ndarray | None
    seconds: float
    peak_bytes: int
    trimap: str | None = None
    error: str | None = None


class BenchmarkMethod:
    """Base of the three kinds (see the module docstring)."""

    def __init__(self, spec: MethodSpec) -> None:
        self.spec = spec

    def refusal(self, kind: str) -> str | None:
        """Why this method does not take prompt ``kind`` (None: it does)."""
        raise NotImplementedError

    @property
    def parameters(self) -> int:
        """Number of parameters (0 for weight-free methods)."""
        return 0

    @property
    def input_description(self) -> str:
        """How the method sees an image, for the tables."""
        return "stored size"

    @property
    def parallel_calls(self) -> int:
        """How many calls run at once (a pool's workers): their times overlap."""
        return 1

    def predictions(
        self, source: MattingSource, store: PromptStore, kind: str, indices: Sequence[int]
    ) -> Iterator[Prediction]:
        """The predictions of samples ``indices`` (in this order) with prompt ``kind``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the method holds (worker processes); default nothing."""


class FloorMethod(BenchmarkMethod):
    """The prompt itself as the alpha: the row every method must clear."""

    def refusal(self, kind: str) -> str | None:
        return None if kind in FLOOR_PROMPTS else f"the floor takes {list(FLOOR_PROMPTS)}"

    def predictions(self, source, store, kind, indices):
        memory = PeakMemory().start()
        timer = WarmTimer()
        try:
            for index in indices:
                raw = load_raw(source, index, store.protocol.seed)
                prompt = store.read(index, raw)
                alpha, seconds = timer(lambda: floor_alpha(prompt, kind, raw.size))  # noqa: B023
                yield Prediction(index, raw.sample_id, alpha, seconds, memory.peak_bytes)
        finally:
            memory.stop()
