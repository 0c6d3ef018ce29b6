"""A memory budget per family at paper size (issue 26): one training step measured on the CPU,
the per-GPU batch it implies on 24 / 48 / 80 GB, and the configs that reach each paper's batch.

    python benchmarks/memory_budget.py                    # every case: hours on 2 cores, alone
    python benchmarks/memory_budget.py --cases zim,sama   # some of them (results merged)
    python benchmarks/memory_budget.py --derive_only      # table and configs from the results
    python benchmarks/memory_budget.py --dry_run --results /tmp/b.json --configs /tmp/scale

Each measurement is one child process (``family_step.py``: random weights at paper size, one
step at a side, fp32 or bf16 autocast, activation checkpointing off or on; batch 1, and batch 2
too under bf16, the precision the configs use)
whose resident memory the parent watches: a child above ``--cap_gib`` is stopped and recorded
as over the cap, and the case is measured again at a smaller side (the budget says which side
each figure comes from). The results are written to ``--results`` after every child, so an
interrupted run resumes where it stopped.

From the results (:func:`budget`): a step needs ``state + a + b * s`` at batch ``b``, with
``state`` the fp32 weights and AdamW moments counted from the parameters (as
``bf16-mixed`` keeps them), ``s`` the measured growth of the step's peak from batch 1 to 2 (the
batch-1 peak when batch 2 did not fit) scaled to the paper's side by pixels, ``a`` the rest of
the batch-1 peak (the gradients are in it: they exist only during a step). A GPU of ``G`` GB
offers ``0.9 G - 1.5`` GiB (CUDA context and allocator slack), an assumption the GPU check's
measured peaks are there to correct. CPU kernels are not CUDA's: these are estimates, to be
replaced by the GPU check's figures where it has run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from paper_scale import CASES, DEFAULT_GLOBAL_BATCH, DEFAULT_GPUS, Case, state_gib
from peak_rss import run_watched

from mattekit.pipelines.benchmark.resident import GIB

REPOSITORY = Path(__file__).resolve().parents[1]
GPU_SIZES_GB = (24, 48, 80)
#: A GPU's usable share: 90 % of its memory less a CUDA context and allocator reserve (GiB).
USABLE_FRACTION, RESERVE_GIB = 0.9, 1.5
#: The smallest growth of resident memory a step is trusted to show (GiB): a smaller one (a
#: frozen network's step, whose activations fit in memory the allocator already holds) is taken
#: as this much, so its per-GPU batch is a lower bound (the table writes it ">= N").
RESOLUTION_GIB = 0.05
RESULTS = REPOSITORY / "experiments" / "results" / "memory_budget.json"
SETTINGS = [(p, c) for p in ("bf16", "fp32") for c in (False, True)]


def parse_settings(text: str) -> list[tuple[str, bool]]:
    """``"bf16,fp32+ckpt"`` -> ``[("bf16", False), ("fp32", True)]``."""
    settings = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        precision, _, recompute = item.partition("+")
        if precision not in ("bf16", "fp32") or recompute not in ("", "ckpt"):
            raise argparse.ArgumentTypeError(f"unknown setting {item!r}")
        settings.append((precision, recompute == "ckpt"))
    return settings


def setting_key(case: Case, precision: str, checkpointing: bool, batch: int) -> str:
    return f"{case.name}/{precision}/{'ckpt' if checkpointing else 'plain'}/b{batch}"


def key(case: Case, precision: str, checkpointing: bool, batch: int, side: int) -> str:
    """A measurement's name in the results: its setting and the side it ran at."""
    return f"{setting_key(case, precision, checkpointing, batch)}/{side}px"


def tried(case: Case, precision: str, checkpointing: bool, batch: int, results: dict) -> list:
    """Every measurement of one setting, at whichever sides were tried, in the order made."""
    wanted = setting_key(case, precision, checkpointing, batch)
    return [result for name, result in results.items() if name.rpartition("/")[0] == wanted]


def batch_one(case: Case, precision: str, checkpointing: bool, results: dict) -> dict:
    """The batch-1 result at the largest side measured that fitted ({} if none did)."""
    fitted = [r for r in tried(case, precision, checkpointing, 1, results) if r["status"] == "ok"]
    return max(fitted, key=lambda result: result["side"], default={})


# ------------------------------------------------------------------------------- measuring


def child(spec: dict, result: Path) -> None:
    """One measurement, in its own process (its resident memory is the parent's to watch)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from family_step import build_family, measure_step

    from mattekit.data.datamodule import synthetic_batch
    from mattekit.models.registry import get_model_entry

    torch.set_num_threads(int(os.environ.get("BUDGET_THREADS", torch.get_num_threads())))
    entry = get_model_entry(spec["alias"])
    kwargs = entry.tiny if spec["dry_run"] else entry.paper_size
    try:
        module = build_family(
            entry, kwargs, "cpu", stage=spec["stage"], teacher=True,
            activation_checkpointing=spec["checkpointing"],
        )  # fmt: skip
    except ValueError as error:  # a family that refuses the switch says so by name
        result.write_text(json.dumps({"status": f"refused: {error}"}))
        return
    batch = synthetic_batch(spec["side"], spec["batch"], stage="train")
    step = measure_step(module, batch, "cpu", spec["precision"], warm_up=0)
    result.write_text(json.dumps({"status": "ok", **vars(step)}))


def watch(spec: dict, cap_gib: float) -> dict:
    """Run :func:`child` on ``spec``, stopped if its resident memory passes ``cap_gib``."""
    with tempfile.TemporaryDirectory(prefix="memory_budget_") as folder:
        result = Path(folder) / "child.json"
        command = [sys.executable, __file__, "--child", json.dumps(spec)]
        run = run_watched([*command, "--child_result", str(result)], cap_gib)
        if run.over_cap:
            return {"status": f"over the {cap_gib:g} GiB cap", "seconds": run.seconds}
        if run.returncode or not result.exists():
            return {"status": f"failed: {run.error or run.returncode}"}
        measured = json.loads(result.read_text())
    return {**measured, "rss_peak_gib": run.peak_gib, "seconds": run.seconds}


def sides_to_try(case: Case, dry_run: bool) -> list[int]:
    """The paper's side, then smaller ones (multiples of 128) until one fits the cap."""
    if dry_run:
        return [64, 32]
    return [case.side, *(s for s in (768, 512, 384, 256) if s < case.side)]


def measure(cases: list[Case], args: argparse.Namespace) -> dict:
    """Every case x setting x batch 1, 2, at the largest side that fits (results resumed)."""
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    for case in cases:
        for precision, checkpointing in args.settings:
            for side in sides_to_try(case, args.dry_run):
                outcome = {}
                # Batch 2 (the per-sample growth) where a config can use it: bf16.
                for batch in (1, 2) if precision == "bf16" else (1,):
                    name = key(case, precision, checkpointing, batch, side)
                    if name not in results:
                        spec = dict(alias=case.alias, stage=case.stage, side=side, batch=batch)
                        spec |= dict(precision=precision, checkpointing=checkpointing)
                        spec["dry_run"] = args.dry_run
                        print(f"memory_budget: {name} at {side} px ...", file=sys.stderr)
                        results[name] = {**watch(spec, args.cap_gib), "side": side}
                        write_json(args.results, results)
                    outcome[batch] = results[name]["status"]
                    if outcome[batch] != "ok":
                        break
                if outcome.get(1) == "ok" or not outcome[1].startswith("over"):
                    break  # fits (batch 2 may not), or failed for another reason than memory
    return results


def write_json(path: Path, data: dict) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(partial, path)


# ------------------------------------------------------------------------------- deriving


@dataclass(frozen=True)
class Budget:
    """One case and setting, derived at the paper's side (GiB)."""

    side: int
    state_gib: float
    fixed_gib: float
    per_sample_gib: float
    parameters: int
    trainable: int
    #: the per-sample memory is :data:`RESOLUTION_GIB`, not a measured growth (a lower bound
    #: on the batch)
    resolution_bound: bool = False

    def need_gib(self, batch: int) -> float:
        return self.state_gib + self.fixed_gib + batch * self.per_sample_gib

    def batch_on(self, gigabytes: int) -> int:
        """The largest per-GPU batch that fits a GPU of ``gigabytes`` GB (0: not even one)."""
        usable = gigabytes * 1e9 / GIB * USABLE_FRACTION - RESERVE_GIB
        room = usable - self.state_gib - self.fixed_gib
        return max(0, math.floor(room / self.per_sample_gib)) if self.per_sample_gib > 0 else 0


def budget(case: Case, precision: str, checkpointing: bool, results: dict) -> Budget | None:
    """The :class:`Budget` of one setting from its batch-1 (and batch-2) steps, or None."""
    one = batch_one(case, precision, checkpointing, results)
    if not one:
        return None
    two = results.get(key(case, precision, checkpointing, 2, one["side"]), {})
    growth = two["peak_gib"] - one["peak_gib"] if two.get("status") == "ok" else one["peak_gib"]
    per_sample = max(growth, RESOLUTION_GIB) * (case.side / one["side"]) ** 2
    return Budget(
        side=one["side"],
        state_gib=state_gib(one["parameters"], one["trainable"]),
        fixed_gib=max(one["peak_gib"] - growth, 0.0),
        per_sample_gib=per_sample,
        parameters=one["parameters"],
        trainable=one["trainable"],
        resolution_bound=growth < RESOLUTION_GIB,
    )


def choose(case: Case, results: dict) -> tuple[str, bool, Budget] | None:
    """The setting a config ships: bf16, without recomputation when the paper's per-GPU share
    fits an 80 GB GPU, else whichever of the two fits the larger batch."""
    share = math.ceil((case.global_batch or DEFAULT_GLOBAL_BATCH) / (case.gpus or DEFAULT_GPUS))
    plain, recomputed = (budget(case, "bf16", c, results) for c in (False, True))
    if plain and plain.batch_on(80) >= share:
        return "bf16", False, plain
    options = [(b.batch_on(80), c, b) for c, b in ((False, plain), (True, recomputed)) if b]
    if not options:
        return None
    _, checkpointing, chosen = max(options, key=lambda option: option[0])
    return "bf16", checkpointing, chosen


def batch_split(global_batch: int, gpus: int, largest: int) -> tuple[int, int] | None:
    """``(per-GPU batch, accumulated batches)`` whose product with ``gpus`` is ``global_batch``,
    the per-GPU batch at most ``largest``, with the fewest accumulations; where no split is
    exact, the fewest accumulations that reach at least ``global_batch``. None: ``largest`` 0."""
    if largest < 1:
        return None
    for accumulate in range(1, global_batch + 1):
        per_gpu, left = divmod(global_batch, gpus * accumulate)
        if left == 0 and 1 <= per_gpu <= largest:
            return per_gpu, accumulate
    accumulate = math.ceil(global_batch / (gpus * largest))
    return math.ceil(global_batch / (gpus * accumulate)), accumulate


def scale_config(case: Case, gpus: int, checkpointing: bool, chosen: Budget) -> str | None:
    """``configs/scale/<case>_<gpus>.yaml``: the paper's global batch on ``gpus`` 80 GB GPUs."""
    global_batch = case.global_batch or DEFAULT_GLOBAL_BATCH
    split = batch_split(global_batch, gpus, chosen.batch_on(80))
    if split is None:
        return None
    per_gpu, accumulate = split
    stated = "the paper's" if case.global_batch else "ZIM's (the paper states none)"
    stage = f"\n    stage: {case.stage}" if case.stage else ""
    from mattekit.models.registry import get_model_entry

    entry = get_model_entry(case.alias)
    variant = entry.paper_size.get("variant")
    effective = per_gpu * gpus * accumulate
    return (
        f"# {case.name} on {gpus} x 80 GB GPU{'s' if gpus > 1 else ''}, {case.side} px: "
        f"{stated} global batch of {global_batch}\n# ({case.source})\n"
        f"# as {per_gpu} per GPU x {gpus} GPU(s) x {accumulate} accumulated = {effective}.\n"
        f"# Made by benchmarks/memory_budget.py from its CPU estimate: "
        f"{chosen.need_gib(per_gpu):.1f} GiB per GPU\n# (measured at {chosen.side} px). "
        "Add the data and recipe configs.\n"
        f"model:\n  class_path: {entry.class_path}\n  init_args:\n"
        + (f"    variant: {variant}\n" if variant else "")
        + f"    activation_checkpointing: {str(checkpointing).lower()}{stage}\n"
        f"data:\n  image_size: {case.side}\n  batch_size: {per_gpu}\n"
        f"trainer:\n  accelerator: gpu\n  devices: {gpus}\n"
        + ("  strategy: ddp\n" if gpus > 1 else "")
        + f"  precision: bf16-mixed\n  accumulate_grad_batches: {accumulate}\n"
    )


def table(cases: list[Case], results: dict) -> list[str]:
    """The README's table: one row per case, the shipped setting's figures."""
    lines = [
        "| family | params trainable / total | held between steps: weights + AdamW (GiB) "
        "| step, batch 1 / per extra sample (GiB) | measured at | per-GPU batch on 24 / 48 / 80 GB "
        "| paper's global batch | config |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for case in cases:
        chosen = choose(case, results)
        if chosen is None:
            lines.append(f"| {case.name} | not measured yet | | | | | | |")
            continue
        _, checkpointing, b = chosen
        bound = ">= " if b.resolution_bound else ""
        batches = " / ".join(f"{bound}{b.batch_on(g)}" for g in GPU_SIZES_GB)
        setting = "bf16" + (", recomputed" if checkpointing else "")
        gpus = case.gpus or DEFAULT_GPUS
        lines.append(
            f"| {case.name} | {b.trainable / 1e6:.1f} M / {b.parameters / 1e6:.1f} M "
            f"| {b.state_gib:.1f} | {b.fixed_gib + b.per_sample_gib:.1f} / {b.per_sample_gib:.1f} "
            f"| {b.side} px, {setting} | {batches} | {case.global_batch or 'not stated'} "
            f"| [`{case.name}_{gpus}.yaml`](../configs/scale/{case.name}_{gpus}.yaml) |"
        )
    return lines


def settings_table(cases: list[Case], results: dict) -> list[str]:
    """Every measured setting: the step's peak at batch 1 by precision and recomputation."""
    lines = [
        "| family | " + " | ".join(f"{p}{', recomputed' if c else ''}" for p, c in SETTINGS) + " |",
        "| --- |" + " ---: |" * len(SETTINGS),
    ]
    for case in cases:
        cells = []
        for precision, checkpointing in SETTINGS:
            one = batch_one(case, precision, checkpointing, results)
            attempts = tried(case, precision, checkpointing, 1, results)
            if one:
                cells.append(f"{one['peak_gib']:.2f} at {one['side']}")
            elif attempts:
                cells.append(f"none fitted ({attempts[-1]['status'].split(' (')[0]})")
            else:
                cells.append("not measured")
        lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
    return lines


def derive(cases: list[Case], results: dict, configs: Path) -> list[str]:
    """Write each case's configs (its paper's GPU count, and one GPU); the markdown."""
    configs.mkdir(parents=True, exist_ok=True)
    for case in cases:
        chosen = choose(case, results)
        if chosen is None:
            continue
        for gpus in sorted({case.gpus or DEFAULT_GPUS, 1}):
            text = scale_config(case, gpus, chosen[1], chosen[2])
            if text:
                (configs / f"{case.name}_{gpus}.yaml").write_text(text)
    return [
        *table(cases, results),
        "",
        "Step peak above the memory held between steps at batch 1 (GiB, at the side given), "
        "per setting:",
        "",
        *settings_table(cases, results),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--cap_gib", type=float, default=20.0, help="a child's memory cap")
    parser.add_argument("--results", type=Path, default=RESULTS, help="measurements (JSON)")
    parser.add_argument("--configs", type=Path, default=REPOSITORY / "configs/scale")
    parser.add_argument("--output", type=Path, default=None, help="the markdown (default: print)")
    parser.add_argument(
        "--settings", type=parse_settings, default=SETTINGS,
        help="comma-separated, of bf16, bf16+ckpt, fp32, fp32+ckpt (default: all four)",
    )  # fmt: skip
    parser.add_argument("--derive_only", action="store_true")
    parser.add_argument("--dry_run", action="store_true", help="tiny variants at 64 px")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child_result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child), args.child_result)
        return 0
    chosen = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = sorted(set(chosen) - {case.name for case in CASES})
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}; known: {[c.name for c in CASES]}")
    cases = [case for case in CASES if not chosen or case.name in chosen]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.results.read_text()) if args.derive_only else measure(cases, args)
    lines = derive(CASES if args.derive_only else cases, results, args.configs)
    text = "\n".join(lines) + "\n"
    if args.output:
        args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
