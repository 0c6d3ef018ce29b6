"""Which kernel every ``F.scaled_dot_product_attention`` call of each family runs (issue 27):
a fused one (flash, memory-efficient, cuDNN) or MATH, which builds and keeps the L x L map.

    python benchmarks/sdpa_backends.py                      # every family, paper size, CPU
    python benchmarks/sdpa_backends.py --families zim,sama --precisions bf16
    python benchmarks/sdpa_backends.py --dry_run            # tiny variants, seconds

Per family (each stage of TeachMatte), in its own process: random weights at paper size, one
training forward (train mode, gradients on) at the paper's side, batch 1, in fp32 and under
bf16 autocast. The kernel is chosen in the forward; the backward runs the same kernel's
backward. Every call is recorded (:func:`mattekit.nn.attention_backend.recorded_sdpa_calls`):
mattekit's and the libraries' that call it through ``torch.nn.functional``. Calls of one site
with the same shapes are one row. The GPU check records the same on CUDA (its ``train_step``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from paper_scale import paper_side

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "experiments" / "results" / "sdpa_backends.json"
DRY_SIDE = 64


def backend_rows(calls: list) -> list[dict]:
    """Recorded calls grouped by site, shapes, mask, dtype and kernel, with their count."""
    keys = Counter((c.caller, c.query, c.key, c.value, c.masked, c.dtype, c.backend) for c in calls)
    names = ("caller", "query", "key", "value", "masked", "dtype", "backend")
    return [{**dict(zip(names, key, strict=True)), "calls": n} for key, n in keys.items()]


def child(alias: str, stage: str | None, precision: str, dry_run: bool) -> list[dict]:
    """One training forward of the family; its SDPA calls as :func:`backend_rows`."""
    import torch
    from family_step import PRECISIONS, build_family

    from mattekit.data.datamodule import synthetic_batch
    from mattekit.models.registry import get_model_entry
    from mattekit.nn.attention_backend import recorded_sdpa_calls

    entry = get_model_entry(alias)
    kwargs = entry.tiny if dry_run else entry.paper_size
    module = build_family(entry, kwargs, "cpu", stage=stage, teacher=True)
    batch = synthetic_batch(DRY_SIDE if dry_run else paper_side(alias), 1, stage="train")
    dtype = PRECISIONS[precision]
    autocast = torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None)
    with recorded_sdpa_calls() as calls, autocast:
        module.training_step(batch, 0)
    return backend_rows(calls)


def table(results: dict) -> list[str]:
    """One markdown row per family, precision, call site, mask and kernel: its calls and the
    largest of their score maps (query tokens x key tokens, the map MATH would build)."""
    lines = [
        "| family | precision | call site | mask | kernel | calls | largest Lq x Lk |",
        "| --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for name, by_precision in results.items():
        for precision, rows in by_precision.items():
            if isinstance(rows, str) or not rows:
                lines.append(f"| {name} | {precision} | {rows or 'no SDPA call'} | | | | |")
                continue
            groups: dict[tuple, list[dict]] = {}
            for row in rows:
                groups.setdefault((row["caller"], row["masked"], row["backend"]), []).append(row)
            for (caller, masked, backend), group in groups.items():
                calls = sum(row["calls"] for row in group)
                largest = max(group, key=lambda row: row["query"][-2] * row["key"][-2])
                size = f"{largest['query'][-2]} x {largest['key'][-2]}"
                lines.append(
                    f"| {name} | {precision} | `{caller}` | {'yes' if masked else ''} "
                    f"| {backend} | {calls} | {size} |"
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="", help="comma-separated aliases (default all)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--dry_run", action="store_true", help="tiny variants at 64 px")
    parser.add_argument("--child", nargs=4, metavar=("ALIAS", "STAGE", "PRECISION", "OUT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.child:
        alias, stage, precision, out = args.child
        rows = child(alias, None if stage == "-" else stage, precision, args.dry_run)
        Path(out).write_text(json.dumps(rows))
        return 0
    from mattekit.models.registry import list_models

    chosen = {name.strip() for name in args.families.split(",") if name.strip()}
    cases = [(e.alias, s) for e in list_models() for s in e.stages or [None]]
    unknown = sorted(chosen - {alias for alias, _ in cases})
    if unknown:
        raise SystemExit(f"--families: unknown {unknown}")
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    for alias, stage in cases:
        if chosen and alias not in chosen:
            continue
        name = alias if stage is None else f"{alias}_{stage}"
        for precision in filter(None, args.precisions.split(",")):
            print(f"sdpa_backends: {name} {precision} ...", file=sys.stderr)
            with tempfile.TemporaryDirectory() as work:
                out = Path(work) / "calls.json"
                command = [sys.executable, __file__, "--child", alias, stage or "-", precision]
                run = subprocess.run([*command, str(out)] + ["--dry_run"] * args.dry_run,
                                     capture_output=True, text=True)  # fmt: skip
                lines = run.stderr.strip().splitlines()
                outcome = json.loads(out.read_text()) if run.returncode == 0 else (
                    f"failed: {lines[-1] if lines else run.returncode}")  # fmt: skip
            results.setdefault(name, {})[precision] = outcome
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
