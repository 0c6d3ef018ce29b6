"""One record per (method, dataset, prompt): what a finished part of a benchmark found.

``records/<method>/<dataset>/<prompt>.json`` holds the settings it was made with, the per-image
metrics, latencies and memory, and the summary; ``.../<prompt>/<stem>.png`` the first alphas
(for the comparison picture). A record whose settings differ from the benchmark's is never
reused silently (:class:`RecordConflict`); deleting a method's folder makes it again, alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path

from mattekit.data.io import read_json, write_bytes_atomic
from mattekit.pipelines.benchmark.spec import MethodSpec, Protocol, method_folder

METRIC_NAMES = ("SAD", "MSE", "MAD", "Grad", "Conn")


class RecordConflict(ValueError):
    """A stored record made with other settings than the benchmark asks (the message says how
    to make it again)."""


def record_path(root: Path, method: MethodSpec, dataset: str, prompt: str) -> Path:
    return root / "records" / method_folder(method.name) / dataset / f"{prompt}.json"


def alpha_path(record: Path, stem: str) -> Path:
    """Where a record keeps the alpha of sample ``stem`` (8-bit PNG)."""
    return record.with_suffix("") / f"{stem}.png"


def settings(method: MethodSpec, protocol: Protocol, stages: dict[str, str]) -> dict:
    """What a record must have been made with to be reused (json-plain): the method, the
    protocol, and the making (``made_at``) of each benchmark stage its checkpoint comes from."""
    made = {
        "method": dataclasses.asdict(method),
        "protocol": dataclasses.asdict(protocol),
        "stages": stages,
    }
    return json.loads(json.dumps(made))


def read_record(
    path: Path, method: MethodSpec, protocol: Protocol, stages: dict[str, str]
) -> dict | None:
    """The stored record, None when there is none.

    Raises:
        RecordConflict: it was made with other settings (or from another making of a stage).
    """
    if not path.exists():
        return None
    record = read_json(path, "benchmark record")
    wanted = settings(method, protocol, stages)
    made = {key: record.get(key) for key in wanted}
    if made != wanted:
        raise RecordConflict(
            f"{path} was made with other settings than the benchmark's (the method, the "
            f"protocol or a stage it was trained in changed): pass --force '[{method.name}]' "
            f"to make it again, or delete {path.parent.parent}"
        )
    return record


def summary(images: list[dict]) -> dict:
    """Mean of each metric over the images where it is defined; latency median / min / max in
    milliseconds; the largest peak memory in MiB."""
    result: dict = {"n": len(images)}
    for name in METRIC_NAMES:
        values = [row[name] for row in images if not math.isnan(row[name])]
        result[name] = sum(values) / len(values) if values else math.nan
    latencies = [row["latency_ms"] for row in images]
    result["latency_ms"] = statistics.median(latencies) if latencies else math.nan
    result["latency_min_ms"] = min(latencies, default=math.nan)
    result["latency_max_ms"] = max(latencies, default=math.nan)
    result["peak_mib"] = max((row["peak_mib"] for row in images), default=math.nan)
    return result


def write_record(path: Path, record: dict) -> None:
    write_bytes_atomic(path, json.dumps(record, indent=1).encode())
