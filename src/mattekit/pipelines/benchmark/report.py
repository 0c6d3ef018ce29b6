"""The benchmark's tables, assembled from its records: ``results.csv`` / ``results.md`` (a row
per method x dataset x prompt) and ``per_image.csv`` (a row per image), all written atomically."""

from __future__ import annotations

import math
from pathlib import Path

from mattekit.atomic_files import write_bytes_atomic
from mattekit.data.io import read_json
from mattekit.pipelines.benchmark.records import (
    METRIC_NAMES,
    record_path,
    scores_in_trimap,
    with_nan,
)
from mattekit.pipelines.benchmark.spec import BenchmarkSpec
from mattekit.prompts.protocols import get_protocol
from mattekit.visualize import csv_text, markdown_table


def collect_records(spec: BenchmarkSpec, root: Path) -> list[dict]:
    """Every record of the benchmark, in the order datasets x prompts x methods (as
    :func:`~.runner.run_benchmark` left them); a missing one (never made) is left out."""
    records = []
    for dataset in spec.datasets:
        for kind in spec.protocol.prompts:
            for method in spec.methods:
                path = record_path(root, method, dataset.name, kind)
                if path.exists():
                    records.append(with_nan(read_json(path, "benchmark record")))
    return records


def result_row(record: dict) -> dict:
    """One table row: who, on what, the metrics, size, latency and memory."""
    method = record["method"]
    row = {
        "method": method["name"],
        "kind": method["kind"],
        "dataset": record["dataset"],
        "prompt": record["prompt"],
    }
    if record["skipped"]:
        return {**row, "skipped": record["skipped"]}
    numbers = record["summary"]
    row.update(
        trimap=record["trimap"] or "",
        input=record["input"],
        n=numbers["n"],
        failed=numbers.get("failed", 0),
        **{name: numbers[name] for name in METRIC_NAMES},
        parameters=record["parameters"],
        latency_ms=numbers["latency_ms"],
        latency_min_ms=numbers["latency_min_ms"],
        latency_max_ms=numbers["latency_max_ms"],
        peak_mib=numbers["peak_mib"],
    )
    return row


def _latency(row: dict) -> str:
    if math.isnan(row["latency_ms"]):
        return ""
    return f"{row['latency_ms']:.3g} ({row['latency_min_ms']:.3g}-{row['latency_max_ms']:.3g})"


def _markdown_row(row: dict) -> dict:
    """A row of ``results.md``; a method that was skipped gets blank cells and the reason."""
    columns = ["method", "input", "n", *METRIC_NAMES, "params", "latency ms", "peak MiB", "note"]
    if "skipped" in row:
        return {**dict.fromkeys(columns, ""), "method": row["method"], "note": row["skipped"]}
    return {
        "method": row["method"],
        "input": row["input"],
        "n": row["n"],
        **{name: row[name] for name in METRIC_NAMES},
        "params": row["parameters"],
        "latency ms": _latency(row),
        "peak MiB": f"{row['peak_mib']:.3g}",
        "note": "; ".join(note for note in _notes(row) if note),
    }


def _notes(row: dict) -> list[str]:
    failed = row["failed"]
    return [
        f"trimap: {row['trimap']}" if row["trimap"] else "",
        f"failed on {failed} image(s), left out of the means (per_image.csv)" if failed else "",
    ]


def markdown_report(spec: BenchmarkSpec, rows: list[dict], command: str) -> str:
    """``results.md``: the protocol, the command, a table per dataset and prompt."""
    protocol = spec.protocol
    region = (
        "inside the dataset's trimap band where it has one, else the whole image"
        if scores_in_trimap(protocol)
        else "the whole image"
    )
    lines = [
        f"# Benchmark `{spec.name}`",
        "",
        f"Made by `{command}`.",
        "",
        f"Protocol **`{protocol.name}`** ({get_protocol(protocol.name).description}). "
        f"Metric preset **`{protocol.preset}`**, {region}; every prediction scored at the "
        f"image's stored size against the stored GT. Prompts stored with seed {protocol.seed}"
        f" ({protocol.clicks} click(s) for `points`), the same for every method. Latency: median "
        "(min-max) ms per image, warm. Peak: the most memory the method needed above the level "
        "before its first call, weights loaded (MiB; CPU: sampled resident memory).",
    ]
    for dataset in spec.datasets:
        for kind in protocol.prompts:
            chosen = [r for r in rows if r["dataset"] == dataset.name and r["prompt"] == kind]
            if not chosen:
                continue
            table = [_markdown_row(row) for row in chosen]
            lines += ["", f"## {dataset.name}, `{kind}` prompt", "", markdown_table(table)]
    return "\n".join(lines) + "\n"


def write_reports(spec: BenchmarkSpec, root: Path, command: str) -> list[dict]:
    """Write ``results.csv``, ``results.md`` and ``per_image.csv``; returns the result rows."""
    records = collect_records(spec, root)
    rows = [result_row(record) for record in records]
    per_image = [
        {
            "method": record["method"]["name"],
            "dataset": record["dataset"],
            "prompt": record["prompt"],
            **image,
        }
        for record in records
        for image in record["images"]
    ]
    write_bytes_atomic(root / "results.csv", csv_text(rows).encode())
    write_bytes_atomic(root / "per_image.csv", csv_text(per_image).encode())
    write_bytes_atomic(root / "results.md", markdown_report(spec, rows, command).encode())
    return rows
