"""One record per (method, dataset, prompt): what a finished part of a benchmark found.

``records/<method>/<dataset>/<prompt>.json`` holds the settings it was made with, the per-image
metrics and latencies, the method's peak memory and the summary; ``.../<prompt>/<stem>.png``
the first alphas (for the comparison picture). A record whose settings differ from the
benchmark's is never reused silently (:class:`RecordConflict`); deleting a method's folder
makes it again, alone. An undefined metric (an empty evaluation region) is stored as ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import get_args

from mattekit.atomic_files import write_bytes_atomic
from mattekit.data.io import read_json
from mattekit.metrics import resolve_preset
from mattekit.pipelines.benchmark.spec import (
    DatasetSpec,
    MethodSpec,
    MetricName,
    Protocol,
    method_folder,
)
from mattekit.prompts.protocols import get_protocol

METRIC_NAMES: tuple[str, ...] = get_args(MetricName)


class RecordConflict(ValueError):
    """A stored record made with other settings than the benchmark asks (the message says how
    to make it again)."""


def record_path(root: Path, method: MethodSpec, dataset: str, prompt: str) -> Path:
    return root / "records" / method_folder(method.name) / dataset / f"{prompt}.json"


def alpha_path(record: Path, stem: str) -> Path:
    """Where a record keeps the alpha of sample ``stem`` (8-bit PNG)."""
    return record.with_suffix("") / f"{stem}.png"


def scores_in_trimap(protocol: Protocol) -> bool:
    """Whether the protocol scores inside a dataset's trimap band (else the whole image)."""
    return protocol.with_trimap and resolve_preset(protocol.preset).region == "trimap_unknown"


def settings(method: MethodSpec, protocol: Protocol, dataset: DatasetSpec, made_from: dict) -> dict:
    """What a record must have been made with to be reused (json-plain): the method, the data,
    what of the protocol affects one record (not the list of prompt kinds: adding a kind keeps
    the others' records), and ``made_from``: the making of the stages its checkpoint comes from,
    or the checkpoint file's size and modification time."""
    made = {
        "method": dataclasses.asdict(method),
        "data": dataset.source_config or {"name": dataset.source.name},
        "protocol": {
            "name": protocol.name,
            "quantize": protocol.quantize or get_protocol(protocol.name).quantize,
            "seed": protocol.seed,
            "clicks": protocol.clicks,
            "preset": protocol.preset,
            "scored_in_trimap": scores_in_trimap(protocol),
        },
        "made_from": made_from,
    }
    return json.loads(json.dumps(made))


def read_record(path: Path, wanted: dict) -> dict | None:
    """The stored record (undefined metrics as NaN), None when there is none.

    Raises:
        RecordConflict: it was made with other ``settings`` than ``wanted``.
    """
    if not path.exists():
        return None
    record = read_json(path, "benchmark record")
    made = {key: record.get(key) for key in wanted}
    if made != wanted:
        changed = sorted(key for key in wanted if made[key] != wanted[key])
        raise RecordConflict(
            f"{path} was made with other settings than the benchmark's ({', '.join(changed)} "
            f"changed): pass --force '[{wanted['method']['name']}]' to make it again, or delete "
            f"{path.parent.parent}"
        )
    return with_nan(record)


def with_nan(record: dict) -> dict:
    """``null`` metrics back to NaN."""
    for row in [*record.get("images", []), record.get("summary") or {}]:
        for key, value in row.items():
            if value is None and key != "sample_id":
                row[key] = math.nan
    return record


def summary(images: list[dict], peak_bytes: int) -> dict:
    """Mean of each metric over the images where it is defined; how many images the method
    failed on (their metrics are undefined: a failure never scores as a prediction); latency
    median / min / max in milliseconds; the method's peak memory in MiB."""
    result: dict = {"n": len(images), "failed": sum(1 for row in images if row.get("error"))}
    for name in METRIC_NAMES:
        values = [row[name] for row in images if not math.isnan(row[name])]
        result[name] = sum(values) / len(values) if values else math.nan
    latencies = [row["latency_ms"] for row in images if not math.isnan(row["latency_ms"])]
    result["latency_ms"] = statistics.median(latencies) if latencies else math.nan
    result["latency_min_ms"] = min(latencies, default=math.nan)
    result["latency_max_ms"] = max(latencies, default=math.nan)
    result["peak_mib"] = peak_bytes / 1024**2
    return result


def _finite_or_null(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(item) for item in value]
    return value


def write_record(path: Path, record: dict) -> None:
    """Write atomically, undefined (NaN) metrics as ``null`` (json has no NaN)."""
    write_bytes_atomic(path, json.dumps(_finite_or_null(record), indent=1).encode())
