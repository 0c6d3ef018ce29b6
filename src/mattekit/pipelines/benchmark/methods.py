"""The three kinds of benchmark method behind one interface: predictions at the stored size.

A method yields, per sample, the alpha at the sample's stored size with the latency and peak
memory of producing it (:mod:`.measure`). What is timed:

- a model: from the batch at its own input size (already loaded, resized and prompted by the
  shared pipeline, as in ``mattekit test``) to the alpha resized back to the stored size;
- a classical method: pymatting's call on the stored image and the trimap;
- the floor: drawing the prompt.

Loading, prompting and scoring are the benchmark's own overhead, reported apart.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from mattekit.checkpoint_config import checkpoint_hparams, registered_entry
from mattekit.data.dataset import MattingDataset
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.sample import collate_samples
from mattekit.data.source import MattingSource
from mattekit.data.transforms import MattingTransform
from mattekit.models.base import MattingModule
from mattekit.models.evaluation import alpha_at_original_size
from mattekit.pipelines.benchmark.classical import (
    CLASSICAL_PROMPTS,
    FLOOR_PROMPTS,
    classical_alpha,
    derived_trimap,
    floor_alpha,
)
from mattekit.pipelines.benchmark.measure import Measured, measured
from mattekit.pipelines.benchmark.prompt_store import PromptStore, StoredPromptSource, load_raw
from mattekit.pipelines.benchmark.spec import MethodSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One sample's prediction: ``alpha`` H x W float32 in [0, 1] at the stored size."""

    index: int
    sample_id: str
    alpha: np.ndarray
    measured: Measured
    trimap_from_dataset: bool | None = None


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

    def predictions(
        self, source: MattingSource, store: PromptStore, kind: str, indices: Sequence[int]
    ) -> Iterator[Prediction]:
        """The predictions of samples ``indices`` (in this order) with prompt ``kind``."""
        raise NotImplementedError


class FloorMethod(BenchmarkMethod):
    """The prompt itself as the alpha: the row every method must clear."""

    def refusal(self, kind: str) -> str | None:
        return None if kind in FLOOR_PROMPTS else f"the floor takes {list(FLOOR_PROMPTS)}"

    def predictions(self, source, store, kind, indices):
        warm = False
        for index in indices:
            raw = load_raw(source, index, store.protocol.seed)
            prompt = store.read(index, raw)
            if not warm:  # the first call pays for loading the code it runs
                floor_alpha(prompt, kind, raw.size)
                warm = True
            alpha, cost = measured(lambda: floor_alpha(prompt, kind, raw.size))  # noqa: B023
            yield Prediction(index, raw.sample_id, alpha, cost)


# What a classical worker reads, set once per worker: tasks then carry only an index.
_WORKER_STATE: dict = {}


def _start_classical_worker(source, store, kind: str, algorithm: str) -> None:
    """Keep the task's settings and compile pymatting's numba kernels on a tiny problem, so
    that every timed call is warm."""
    _WORKER_STATE.update(source=source, store=store, kind=kind, algorithm=algorithm)
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, 4:] = 255
    trimap = np.full((8, 8), 128, np.uint8)
    trimap[:, 0] = 0
    trimap[:, -1] = 255
    classical_alpha(algorithm, image, trimap)


def _classical_prediction(index: int) -> Prediction:
    source, store, kind, algorithm = (
        _WORKER_STATE[k] for k in ("source", "store", "kind", "algorithm")
    )
    raw = load_raw(source, index, store.protocol.seed)
    prompt = store.read(index, raw)
    trimap = derived_trimap(prompt, kind, raw.size)
    alpha, cost = measured(lambda: classical_alpha(algorithm, raw.image, trimap))
    from_dataset = kind == "trimap" and prompt.trimap_from_dataset
    return Prediction(index, raw.sample_id, alpha.astype(np.float32), cost, from_dataset)


class ClassicalMethod(BenchmarkMethod):
    """Closed-form or KNN matting on the trimap of :func:`~.classical.derived_trimap`, over
    ``workers`` processes (each warmed up before its first timed call).

    Workers are spawned, not forked: a process that has run OpenMP code (torch, numba) cannot
    fork safely, and a worker that dies stops the benchmark with an error instead of being
    replaced forever.
    """

    def __init__(self, spec: MethodSpec, workers: int = 1) -> None:
        super().__init__(spec)
        self.workers = workers

    def refusal(self, kind: str) -> str | None:
        if kind in CLASSICAL_PROMPTS:
            return None
        return f"classical methods take {list(CLASSICAL_PROMPTS)} (they need a trimap)"

    def predictions(self, source, store, kind, indices):
        settings = (source, store, kind, self.spec.algorithm)
        if self.workers == 1:
            _start_classical_worker(*settings)
            yield from map(_classical_prediction, indices)
            return
        with ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_classical_worker,
            initargs=settings,
        ) as pool:
            yield from pool.map(_classical_prediction, indices)


def _run_image_size(spec: MethodSpec) -> int | None:
    """``data.image_size`` of the run the checkpoint belongs to (its ``config.yaml``)."""
    path = Path(spec.config) if spec.config else Path(spec.checkpoint).parent.parent / "config.yaml"
    if not path.is_file():
        if spec.config:
            raise FileNotFoundError(f"method {spec.name!r}: config not found: {path}")
        return None
    data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data") or {}
    size = data.get("eval_image_size") or data.get("image_size")
    if isinstance(size, list):
        if size[0] != size[1]:
            raise ValueError(f"{path}: the benchmark runs models on square inputs, got {size}")
        size = size[0]
    return size


class ModelMethod(BenchmarkMethod):
    """A trained mattekit family, from its checkpoint (weights-only, registered classes only),
    at its own input convention: ``image_size`` and ``resize`` of the method, else the family's
    (:attr:`~mattekit.models.base.MattingModule.input_convention`), else the run's config."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec)
        path = Path(spec.checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"method {spec.name!r}: checkpoint not found: {path}")
        entry = registered_entry(str(checkpoint_hparams(path).get("_class_path")), path)
        self.model: MattingModule = entry.cls.load_from_checkpoint(path, map_location="cpu")
        self.model.eval().to(spec.device)
        side, resize = self.model.input_convention
        self.side = spec.image_size or side or _run_image_size(spec)
        if self.side is None:
            raise ValueError(
                f"method {spec.name!r}: no input size: give image_size, or the run's config"
            )
        self.resize = spec.resize or resize

    def refusal(self, kind: str) -> str | None:
        try:
            self.model.evaluate_with(kind)
        except ValueError as error:
            return str(error)
        return None

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def input_description(self) -> str:
        return f"{self.side} px {self.resize}"

    def predictions(self, source, store, kind, indices):
        self.model.evaluate_with(kind)
        dataset = MattingDataset(
            StoredPromptSource(source, store),
            MattingTransform((self.side, self.side), train=False, resize=self.resize),
            PromptSampler(PromptConfig()),
            train=False,
            seed=store.protocol.seed,
            keep_original=False,
        )
        device = torch.device(self.spec.device)

        def predict(batch):
            batch = self.model.transform_batch(batch, "test")
            return alpha_at_original_size(self.model(batch), batch)[0][0]

        warm = False
        with torch.inference_mode():
            for index in indices:
                batch = collate_samples([dataset[index]]).to(device)
                if not warm:  # the first call pays for allocations and kernel selection
                    predict(batch)
                    warm = True
                alpha, cost = measured(lambda: predict(batch), device)  # noqa: B023
                alpha = alpha.float().cpu().numpy()
                yield Prediction(index, batch.sample_id[0], alpha, cost)
