"""Run a benchmark: prompts once per dataset, then every method x dataset x prompt not yet
recorded, each prediction scored at the stored size against the stored GT; then the reports."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mattekit.data.io import write_png_atomic
from mattekit.metrics import matting_metrics, resolve_preset
from mattekit.pipelines.benchmark.methods import (
    BenchmarkMethod,
    ClassicalMethod,
    FloorMethod,
    ModelMethod,
    Prediction,
)
from mattekit.pipelines.benchmark.prompt_store import PromptStore, file_stem, load_raw
from mattekit.pipelines.benchmark.records import (
    METRIC_NAMES,
    alpha_path,
    read_record,
    record_path,
    settings,
    summary,
    write_record,
)
from mattekit.pipelines.benchmark.spec import BenchmarkSpec, DatasetSpec, MethodSpec
from mattekit.pipelines.grid_commands import stage_dir, stage_fit_command
from mattekit.pipelines.grid_placeholders import fill, placeholders
from mattekit.pipelines.grid_spec import Stage
from mattekit.pipelines.grid_stages import MadeStage, ensure_stages

logger = logging.getLogger(__name__)

_MIB = 1024.0**2


@dataclass
class Timing:
    """Where a benchmark run's time went: ``total`` seconds, of which ``methods`` in the
    methods' own calls (a pool's calls divided by its workers)."""

    total: float = 0.0
    methods: float = 0.0
    made: list[str] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        """The fraction of the time spent outside the methods' calls."""
        return 1.0 - self.methods / self.total if self.total > 0 else math.nan


def make_stages(spec: BenchmarkSpec, root: Path) -> dict[str, MadeStage]:
    """The benchmark's stages, reused or made, in ``stages_dir`` (the grid's rules:
    :mod:`mattekit.pipelines.grid_stages`)."""
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


class GroundTruth:
    """Each sample's stored GT and dataset trimap, loaded once for every method that is scored
    on it (kept while they fit in ``budget_bytes``, loaded again after that)."""

    def __init__(self, source, seed: int, budget_bytes: int = 2**30) -> None:
        self.source = source
        self.seed = seed
        self.budget = budget_bytes
        self.kept: dict[int, tuple[str, np.ndarray, np.ndarray | None]] = {}

    def __call__(self, index: int) -> tuple[str, np.ndarray, np.ndarray | None]:
        """``(sample id, alpha H x W float32, trimap H x W uint8 or None)`` of sample ``index``."""
        if index in self.kept:
            return self.kept[index]
        raw = load_raw(self.source, index, self.seed)
        truth = (raw.sample_id, raw.alpha, raw.trimap)
        size = raw.alpha.nbytes + (raw.trimap.nbytes if raw.trimap is not None else 0)
        if size <= self.budget:
            self.kept[index] = truth
            self.budget -= size
        return truth


class Scorer:
    """Per-image metrics of one preset, at the stored size, in the dataset's trimap band when
    the protocol and preset use one and the dataset has one, else on the whole image."""

    def __init__(self, preset: str, with_trimap: bool) -> None:
        self.metrics = matting_metrics(preset)
        self.use_trimap = with_trimap and resolve_preset(preset).region == "trimap_unknown"

    def __call__(self, alpha: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None) -> dict:
        as_batch = lambda array: torch.from_numpy(np.ascontiguousarray(array))[None, None]  # noqa: E731
        region = as_batch(trimap) if self.use_trimap and trimap is not None else None
        errors = self.metrics.sample_errors(as_batch(alpha), as_batch(gt), region)
        return {name: float(errors[name][0]) for name in METRIC_NAMES}


def run_benchmark(spec: BenchmarkSpec, root: Path, progress: bool = True) -> Timing:
    """Make every missing record under ``root`` (see :mod:`.records`); returns the timing."""
    timing = Timing()
    start = time.perf_counter()
    made = make_stages(spec, root)
    methods: dict[str, BenchmarkMethod] = {}
    scorer = Scorer(spec.protocol.preset, spec.protocol.with_trimap)
    for dataset in spec.datasets:
        store = PromptStore(root / "prompts" / dataset.name, spec.protocol)
        store.make(dataset.source, progress)
        truth = GroundTruth(dataset.source, spec.protocol.seed)
        for method_spec in spec.methods:
            used = placeholders([method_spec.checkpoint or ""])
            stages = {name: made[name].made_at for name in used}
            for kind in spec.protocol.prompts:
                path = record_path(root, method_spec, dataset.name, kind)
                forced = method_spec.name in spec.force
                if not forced and read_record(path, method_spec, spec.protocol, stages):
                    continue
                if method_spec.name not in methods:
                    checkpoints = {name: made[name].checkpoint for name in used}
                    resolved = with_checkpoint(method_spec, checkpoints)
                    methods[method_spec.name] = build_method(resolved, spec.workers)
                method = methods[method_spec.name]
                record, seconds = _make_record(
                    spec, method, dataset, store, kind, (truth, scorer), path, progress
                )
                record.update(settings(method_spec, spec.protocol, stages))
                write_record(path, record)
                timing.methods += seconds
                timing.made.append(f"{method_spec.name} / {dataset.name} / {kind}")
    timing.total = time.perf_counter() - start
    return timing


def _make_record(
    spec: BenchmarkSpec,
    method: BenchmarkMethod,
    dataset: DatasetSpec,
    store: PromptStore,
    kind: str,
    scoring: tuple[GroundTruth, Scorer],
    path: Path,
    progress: bool,
) -> tuple[dict, float]:
    """The record of one method on one dataset with one prompt, and the seconds its calls took
    (a pool's divided by its workers)."""
    record = {
        "dataset": dataset.name,
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
    source = dataset.source
    indices = range(len(source))
    label = f"{method.spec.name} | {dataset.name} | {kind}"
    rows, from_dataset = [], set()
    predictions = method.predictions(source, store, kind, indices)
    for prediction in tqdm(predictions, label, len(source), disable=not progress):
        rows.append(_scored(prediction, *scoring))
        if prediction.trimap_from_dataset is not None:
            from_dataset.add(prediction.trimap_from_dataset)
        if prediction.index < spec.grid_images:
            alpha = np.round(np.clip(prediction.alpha, 0, 1) * 255).astype(np.uint8)
            write_png_atomic(alpha_path(path, file_stem(prediction.sample_id)), alpha)
    if from_dataset:
        record["trimap"] = "dataset" if from_dataset == {True} else "derived from the prompt"
    record["images"] = rows
    record["summary"] = summary(rows)
    seconds = sum(row["latency_ms"] for row in rows) / 1000
    workers = getattr(method, "workers", 1)
    return record, seconds / min(workers, max(1, len(rows)))


def _scored(prediction: Prediction, truth: GroundTruth, scorer: Scorer) -> dict:
    sample_id, alpha, trimap = truth(prediction.index)
    if prediction.alpha.shape != alpha.shape:
        raise ValueError(
            f"{sample_id}: prediction {prediction.alpha.shape} is not at the stored size "
            f"{alpha.shape}"
        )
    return {
        "sample_id": sample_id,
        **scorer(prediction.alpha, alpha, trimap),
        "latency_ms": prediction.measured.seconds * 1000,
        "peak_mib": prediction.measured.peak_bytes / _MIB,
    }
