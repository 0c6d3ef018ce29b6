"""The peak resident memory of ``mattekit export`` at paper size (issue 26: a paper-size SAMA
export within 24 GiB), and whether each family exports at all.

    python benchmarks/export_memory.py                       # SAMA and LiteSDMatte, paper size
    python benchmarks/export_memory.py --families sama,zim --cap_gib 22
    python benchmarks/export_memory.py --dry_run             # tiny variants, a minute

Per family: a checkpoint with random weights at the registry's paper size is saved in a run
folder whose ``config.yaml`` trains at the family's paper side (one child process), then
``mattekit export`` runs on it as a user runs it (another child), its resident memory sampled
by this process and stopped above ``--cap_gib``.
Reported: the export's peak, its time, its files' sizes and its worst parity difference
(from ``export.json``). Results go to ``--results`` (JSON) and the table to standard output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from paper_scale import paper_side
from peak_rss import run_watched

from mattekit.pipelines.benchmark.resident import GIB

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "experiments" / "results" / "export_memory.json"


def make_checkpoint(alias: str, path: Path, dry_run: bool) -> None:
    """A checkpoint of ``alias`` with random weights (seed 0): the paper-size variant, or the
    tiny one for ``dry_run``."""
    import torch

    from mattekit.models.registry import get_model_entry
    from mattekit.models.saving import save_fit_checkpoint

    entry = get_model_entry(alias)
    torch.manual_seed(0)
    module = entry.cls(**(entry.tiny if dry_run else entry.paper_size))
    save_fit_checkpoint(module, path)


def make_run_folder(alias: str, work: Path, dry_run: bool) -> Path:
    """``work/<alias>/`` laid out as ``mattekit fit`` leaves a run; returns the checkpoint's path
    under ``checkpoints/``. Its ``config.yaml`` trains at the family's paper side (64 for
    ``dry_run``), so the export takes its side as a user's does: the family's own input
    convention where it has one (SAM's encoder side for ZIM and SAMA), else the run's."""
    run = work / alias
    (run / "checkpoints").mkdir(parents=True)
    side = 64 if dry_run else paper_side(alias)
    (run / "config.yaml").write_text(f"data:\n  image_size: {side}\n", encoding="utf-8")
    return run / "checkpoints" / f"{alias}.ckpt"


def measure(alias: str, cap_gib: float, dry_run: bool, work: Path) -> dict:
    """Save ``alias`` and export it in watched children; the figures as a dict."""
    checkpoint, output = make_run_folder(alias, work, dry_run), work / f"{alias}_export"
    made = run_watched([sys.executable, __file__, "--make", alias, str(checkpoint)]
                       + (["--dry_run"] if dry_run else []), cap_gib)  # fmt: skip
    if made.over_cap or made.returncode:
        return {"status": f"checkpoint not made: {made.error or 'over the cap'}"}
    command = [sys.executable, "-m", "mattekit.cli", "export", "--ckpt_path", str(checkpoint),
               "--output_dir", str(output)]  # fmt: skip
    run = run_watched(command, cap_gib)
    result = {"peak_gib": run.peak_gib, "seconds": run.seconds}
    result["checkpoint_gib"] = checkpoint.stat().st_size / GIB
    if run.over_cap:
        return {**result, "status": f"over the {cap_gib:g} GiB cap"}
    if run.returncode:
        return {**result, "status": f"failed: {run.error}"}
    manifest = json.loads((output / "export.json").read_text())
    graphs = manifest["graphs"]
    return {
        **result,
        "side": manifest["input"]["side"],
        "status": "ok",
        "files_gib": sum(f.stat().st_size for f in output.iterdir()) / GIB,
        "graphs": {g["name"]: g["format"] for g in graphs},
        "external_data": sorted(name for g in graphs for name in g["data_files"]),
        "max_abs_diff": max(max(g["max_abs_diff"].values(), default=0.0) for g in graphs),
    }


def table(results: dict) -> list[str]:
    """The markdown table of ``results``, one row per family."""
    lines = [
        "| family | side | status | export peak RSS (GiB) | time (s) | checkpoint (GiB) "
        "| files (GiB) | graphs | max abs diff |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for alias, r in results.items():
        graphs = ", ".join(f"{name} ({kind})" for name, kind in r.get("graphs", {}).items())
        files = f"{r['files_gib']:.2f}" if "files_gib" in r else ""
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
        peak = f"{r['peak_gib']:.2f}" if "peak_gib" in r else ""
        seconds = f"{r['seconds']:.0f}" if "seconds" in r else ""
        ckpt = f"{r['checkpoint_gib']:.2f}" if "checkpoint_gib" in r else ""
        lines.append(
            f"| {alias} | {r.get('side') or ''} | {r['status']} | {peak} | {seconds} | {ckpt} "
            f"| {files} | {graphs} | {diff} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="sama,litesdmatte", help="comma-separated aliases")
    parser.add_argument("--cap_gib", type=float, default=22.0, help="a child's memory cap")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--dry_run", action="store_true", help="tiny variants at 64 px")
    parser.add_argument("--make", nargs=2, metavar=("ALIAS", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make:
        make_checkpoint(args.make[0], Path(args.make[1]), args.dry_run)
        return 0
    from mattekit.models.registry import list_models

    families = [name.strip() for name in args.families.split(",") if name.strip()]
    registered = [entry.alias for entry in list_models()]
    unknown = sorted(set(families) - set(registered))
    if unknown:
        raise SystemExit(f"--families: unknown {unknown}; registered: {registered}")
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    for alias in families:
        print(f"export_memory: {alias} ...", file=sys.stderr)
        # GBs per family at paper size: each family's files go before the next is made
        with tempfile.TemporaryDirectory(prefix=f"export_memory_{alias}_") as work:
            results[alias] = measure(alias, args.cap_gib, args.dry_run, Path(work))
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
