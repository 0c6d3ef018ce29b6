"""Run a benchmark: prompts once per dataset, then every method x dataset x prompt not yet
recorded, each prediction scored at the stored size against the stored GT; then the reports."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mattekit.atomic_files import write_alpha_png
from mattekit.data.source import MattingSource
from mattekit.metrics import matting_metrics
from mattekit.pipelines.benchmark.classical_method import ClassicalMethod
from mattekit.pipelines.benchmark.methods import BenchmarkMethod, FloorMethod, Prediction
from mattekit.pipelines.benchmark.model_method import ModelMethod
from mattekit.pipelines.benchmark.prompt_store import PromptStore, file_stem, load_raw
from mattekit.pipelines.benchmark.records import (
    METRIC_NAMES,
    alpha_path,
    read_record,
    record_path,
    scores_in_trimap,
    settings,
    summary,
    write_record,
)
from mattekit.pipelines.benchmark.sample_cache import CachedSource
from mattekit.pipelines.benchmark.spec import BenchmarkSpec, MethodSpec, Protocol
from mattekit.pipelines.grid.commands import stage_dir, stage_fit_command
from mattekit.pipelines.grid.placeholders import fill, placeholders
from mattekit.pipelines.grid.spec import Stage
from mattekit.pipelines.grid.stages import MadeStage, ensure_stages
from mattekit.prompts.protocols import get_protocol, quantized

logger = logging.getLogger(__name__)


@dataclass
class Timing:
    """Where a benchmark run's time went: ``total`` seconds, of which ``stages`` training the
    stages and ``methods`` in the methods' own calls (a pool's calls divided by its workers)."""

    total: float = 0.0
    stages: float = 0.0
    methods: float = 0.0
    made: list[str] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        """The fraction of the benchmark's time (training the stages aside) spent outside the
        methods' calls: loading, prompting, scoring, writing."""
        benchmark = self.total - self.stages
        return 1.0 - self.methods / benchmark if benchmark > 0 else math.nan


def make_stages(spec: BenchmarkSpec, root: Path) -> dict[str, MadeStage]:
    """The benchmark's stages, reused or made, in ``stages_dir`` (the grid's rules:
    :mod:`mattekit.pipelines.grid.stages`)."""
    if not spec.stages:
        return {}
    stages = [Stage(stage.name, tuple(stage.args)) for stage in spec.stages]
    folder = Path(spec.stages_dir) if spec.stages_dir else root / "stages"
    needed = set(placeholders([m.checkpoint or "" for m in spec.methods]))
    return ensure_stages(
        stages,
        folder,
        lambda stage, used: stage_fit_command(
            stage, stage_dir(folder, stage), used, spec.stage_seed
        ),
        needed=needed,
    )


def with_checkpoint(method: MethodSpec, checkpoints: dict[str, str]) -> MethodSpec:
    """``method`` with the stages named in its checkpoint filled in."""
    if method.checkpoint is None:
        return method
    return dataclasses.replace(method, checkpoint=fill([method.checkpoint], checkpoints)[0])


def build_method(spec: MethodSpec, workers: int) -> BenchmarkMethod:
    if spec.kind == "model":
        return ModelMethod(spec)
    if spec.kind == "classical":
        return ClassicalMethod(spec, workers)
    return FloorMethod(spec)


def ground_truth(
    source: MattingSource, seed: int, index: int
) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(sample id, alpha H x W float32, trimap H x W uint8 or None)`` of sample ``index``."""
    raw = load_raw(source, index, seed)
    return raw.sample_id, raw.alpha, raw.trimap


class Scorer:
    """Per-image metrics of the protocol's preset at the stored size: in the dataset's trimap
    band when the protocol scores there (:func:`~.records.scores_in_trimap`) and the dataset
    has a trimap, else on the whole image."""

    def __init__(self, protocol: Protocol) -> None:
        self.metrics = matting_metrics(protocol.preset)
        self.use_trimap = scores_in_trimap(protocol)
        self.quantize = protocol.quantize or get_protocol(protocol.name).quantize

    def __call__(self, alpha: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None) -> dict:
        as_batch = lambda array: torch.from_numpy(np.ascontiguousarray(array))[None, None]  # noqa: E731
        region = as_batch(trimap) if self.use_trimap and trimap is not None else None
        alpha = quantized(alpha.astype(np.float32), self.quantize)
        errors = self.metrics.sample_errors(as_batch(alpha), as_batch(gt), region)
        return {name: float(errors[name][0]) for name in METRIC_NAMES}


def checkpoint_identity(method: MethodSpec) -> dict:
    """A checkpoint file's size and modification time: a retrained file is not the same."""
    if method.checkpoint is None:
        return {}
    status = Path(method.checkpoint).stat()
    return {"checkpoint_bytes": status.st_size, "checkpoint_mtime_ns": status.st_mtime_ns}


def run_benchmark(spec: BenchmarkSpec, root: Path, progress: bool = True) -> Timing:
    """Make every missing record under ``root`` (see :mod:`.records`); returns the timing."""
    timing = Timing()
    start = time.perf_counter()
    made = make_stages(spec, root)
    timing.stages = time.perf_counter() - start
    methods: dict[str, BenchmarkMethod] = {}
    try:
        _make_records(spec, root, made, methods, timing, progress)
    finally:
        for method in methods.values():
            method.close()
    timing.total = time.perf_counter() - start
    return timing


def _make_records(
    spec: BenchmarkSpec,
    root: Path,
    made: dict[str, MadeStage],
    methods: dict[str, BenchmarkMethod],
    timing: Timing,
    progress: bool,
) -> None:
    """Every missing record, dataset by dataset; the methods built on first use."""
    scorer = Scorer(spec.protocol)
    for dataset in spec.datasets:
        source = CachedSource(dataset.source)
        store = PromptStore(root / "prompts" / dataset.name, spec.protocol)
        store.make(source, progress, dataset.source_config)
        truth = partial(ground_truth, source, spec.protocol.seed)
        for method_spec in spec.methods:
            used = placeholders([method_spec.checkpoint or ""])
            resolved = with_checkpoint(method_spec, {n: made[n].checkpoint for n in used})
            made_from = {n: made[n].made_at for n in used} or checkpoint_identity(resolved)
            wanted = settings(method_spec, spec.protocol, dataset, made_from)
            for kind in spec.protocol.prompts:
                path = record_path(root, method_spec, dataset.name, kind)
                if method_spec.name not in spec.force and read_record(path, wanted):
                    continue
                if method_spec.name not in methods:
                    methods[method_spec.name] = build_method(resolved, spec.workers)
                method = methods[method_spec.name]
                record, seconds = _make_record(
                    spec, method, dataset.name, source, store, kind, (truth, scorer), path, progress
                )
                write_record(path, {**wanted, **record})
                timing.methods += seconds
                timing.made.append(f"{method_spec.name} / {dataset.name} / {kind}")


def _make_record(
    spec: BenchmarkSpec,
    method: BenchmarkMethod,
    dataset_name: str,
    source: MattingSource,
    store: PromptStore,
    kind: str,
    scoring: tuple[Callable[[int], tuple], Scorer],
    path: Path,
    progress: bool,
) -> tuple[dict, float]:
    """The record of one method on one dataset with one prompt, and the seconds its calls took
    (a pool's divided by its workers)."""
    record = {
        "dataset": dataset_name,
        "prompt": kind,
        "parameters": method.parameters,
        "input": method.input_description,
        "skipped": method.refusal(kind),
        "trimap": None,
        "images": [],
    }
    if record["skipped"] is not None:
        logger.info("%s on %s: %s", method.spec.name, kind, record["skipped"])
        return record, 0.0
    indices = range(len(source))
    label = f"{method.spec.name} | {dataset_name} | {kind}"
    rows, trimaps, peak = [], set(), 0
    predictions = method.predictions(source, store, kind, indices)
    for prediction in tqdm(predictions, label, len(source), disable=not progress):
        rows.append(_scored(prediction, *scoring))
        peak = max(peak, prediction.peak_bytes)
        if prediction.trimap is not None:
            trimaps.add(prediction.trimap)
        if prediction.index < spec.grid_images and prediction.alpha is not None:
            write_alpha_png(alpha_path(path, file_stem(prediction.sample_id)), prediction.alpha)
    record["trimap"] = ", ".join(sorted(trimaps)) or None
    record["parallel_calls"] = method.parallel_calls
    record["images"] = rows
    record["summary"] = summary(rows, peak)
    seconds = sum(row["latency_ms"] for row in rows if not row.get("error")) / 1000
    failed = [row["sample_id"] for row in rows if row.get("error")]
    if failed:
        logger.warning("%s: failed on %s (see per_image.csv)", label, failed)
    return record, seconds / min(method.parallel_calls, max(1, len(rows)))


def _scored(prediction: Prediction, truth: Callable[[int], tuple], scorer: Scorer) -> dict:
    """The image's row: its metrics and latency, or NaN ones and the error of a failure."""
    sample_id, alpha, trimap = truth(prediction.index)
    if prediction.error is not None:
        undefined = dict.fromkeys(METRIC_NAMES, math.nan)
        return {
            "sample_id": sample_id,
            **undefined,
            "latency_ms": math.nan,
            "error": prediction.error,
        }
    if prediction.alpha.shape != alpha.shape:
        raise ValueError(
            f"{sample_id}: prediction {prediction.alpha.shape} is not at the stored size "
            f"{alpha.shape}"
        )
    return {
        "sample_id": sample_id,
        **scorer(prediction.alpha, alpha, trimap),
        "latency_ms": prediction.seconds * 1000,
    }
