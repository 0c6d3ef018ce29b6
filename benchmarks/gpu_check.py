"""The prepared GPU check of issue 26: one command on a lent GPU writes ``gpu_check.md``.

    python benchmarks/gpu_check.py                 # on one GPU: about 7 minutes on an H100
    python benchmarks/gpu_check.py --dry_run       # every section at tiny size on the CPU
    python benchmarks/gpu_check.py --sections ddp,zim_vs_sam --output /tmp/check.md

Sections (each in its own subprocess, so that an out-of-memory error, a crash or a hang ends that
section only; its error is recorded and the check goes on):

- ``cuda_tests``: the tests that skip without CUDA (``torch.cuda.is_available()`` in their
  file, ``cuda`` in their name), pytest's summary line;
- ``train_step``: one bf16 (autocast) training step per registered family (each stage of a
  staged one) at paper size, random weights, batch 1 at the paper's training side (the memory
  budget's, ``paper_scale.paper_side``; LiteSDMatte with its SDMatte teacher, as the
  release trains it; ``family_step.py``): the memory held between steps, the step's peak
  above it and its time after one warm-up step;
- ``ddp``: ``mattekit fit`` under ``strategy=ddp`` with one process (NCCL), bf16, 3 steps;
- ``fsdp``: the same under ``configs/trainer/fsdp.yaml`` (``MattingFSDPStrategy``), SDMatte
  tiny (its CPU twin runs in ``tests/integration/test_fsdp.py``);
- ``sdmatte_attention``: SDMatte's UNet at 1024 px, SDPA vs the classic attention processor:
  peak memory, time and the outputs' difference (``benchmarks/sdmatte.py``'s inputs);
- ``zim_vs_sam``: ZIM's whole forward vs segment-anything's SAM, ViT-B at 1024
  (``benchmarks/zim.py``'s comparison);
- ``teachmatte``: TeachMatte's student and teacher forward at 512 px vs the paper's 95 / 143 ms
  on an RTX 3090 (``benchmarks/teachmatte.py``'s networks).

Every section has a time limit and the whole check a budget (``--budget_s``, 450 s on a GPU, so
the 8 minutes of one device call are never exceeded); what the budget leaves no time for is
listed as skipped. ``--dry_run`` runs every section at tiny sizes on the CPU (under a minute):
the check is known to work before a GPU is ever lent. Without a CUDA device and without
``--dry_run`` it exits with code 2 and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from mattekit.pipelines.benchmark.resident import GIB

REPOSITORY = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
NO_CUDA_RC = 2
#: The whole check's budget: 8 minutes on one H100 less a margin for the header and the table.
GPU_BUDGET_S = 450.0
#: A dry run's, generous: a shared CPU runs it in seconds or minutes of wall clock.
DRY_BUDGET_S = 900.0

#: Every side in a dry run (the tiny variants run at any multiple of 32).
DRY_SIDE = 64
#: The paper's TeachMatte forward times on an RTX 3090 (ms).
TEACHMATTE_PAPER_MS = {"student": 95.0, "teacher": 143.0}


@dataclass(frozen=True)
class Context:
    """What every section reads: where it runs, at which size, and until when."""

    device: str
    dry_run: bool
    deadline: float

    def left_s(self) -> float:
        return self.deadline - time.monotonic()


class Rows:
    """A section's markdown lines, written to ``path`` after each one (a section killed later
    still leaves what it had measured)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)
        self.path.write_text(json.dumps(self.lines))


# ------------------------------------------------------------------------------------ sections


def cuda_tests(ctx: Context, rows: Rows) -> None:
    """pytest over the tests that need CUDA (they skip on a CPU: the dry run shows them
    skipped)."""
    files = sorted(
        str(path.relative_to(REPOSITORY))
        for path in (REPOSITORY / "tests").rglob("test_*.py")
        if "cuda.is_available()" in path.read_text(encoding="utf-8")
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "-k", "cuda"]
    done = subprocess.run(
        [*command, *files], cwd=REPOSITORY, capture_output=True, text=True, timeout=ctx.left_s()
    )
    lines = done.stdout.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else done.stderr.strip()[-300:]
    rows.add(
        f"`pytest -k cuda` over {len(files)} files ({', '.join(files)}): **{summary}** "
        f"(return code {done.returncode})"
    )
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    rows.add(*(f"- {line}" for line in failed))


def train_step(ctx: Context, rows: Rows) -> None:
    """One bf16 training step per family (autocast, as Lightning's ``bf16-mixed``), batch 1
    (``family_step.py``: the memory held between steps, the step's peak above it, its time),
    and the kernel of every SDPA call in it (``sdpa_backends.py``'s table, on CUDA)."""
    from family_step import family_step
    from paper_scale import paper_side
    from sdpa_backends import backend_rows, table

    from mattekit.models.registry import list_models
    from mattekit.nn.attention_backend import recorded_sdpa_calls

    rows.add(
        "| family | variant | side | parameters | held between steps: weights + AdamW (GiB) "
        "| step peak above that (GiB) | step (ms) | loss |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    )
    cases = [(entry, stage) for entry in list_models() for stage in entry.stages or [None]]
    kernels: dict[str, dict] = {}
    for entry, stage in cases:
        kwargs = entry.tiny if ctx.dry_run else entry.paper_size
        side = DRY_SIDE if ctx.dry_run else paper_side(entry.alias)
        name = entry.alias if stage is None else f"{entry.alias} ({stage})"
        label = f"| {name} | {kwargs.get('variant', 'default')} | {side} |"
        if ctx.left_s() < 5:
            rows.add(f"{label} skipped: the section's time was spent | | | | |")
            continue
        try:
            with recorded_sdpa_calls() as calls:
                step = family_step(entry, kwargs, side, ctx.device, stage=stage, teacher=True)
            kernels[name] = {"bf16": backend_rows(calls)}
            rows.add(
                f"{label} {step.parameters / 1e6:.1f} M | {step.held_gib:.2f} | "
                f"{step.peak_gib:.2f} | {step.step_ms:.0f} | {step.loss:.4g} |"
            )
        except Exception as error:
            oom = isinstance(error, torch.OutOfMemoryError)
            why = "out of memory" if oom else f"{type(error).__name__}: {error}"
            rows.add(f"{label} failed: {one_line(why)} | | | | |")
        if ctx.device == "cuda":
            torch.cuda.empty_cache()
    rows.add("", "SDPA kernels in those steps (a warm-up step included on CUDA):", "",
             *table(kernels))  # fmt: skip


def fit_three_steps(ctx: Context, model: list[str], trainer: list[str]) -> tuple[str, str]:
    """``mattekit fit`` of a tiny model for 3 bf16 steps with one process (``trainer``: the
    strategy's arguments): the flags as run, and what came of it."""
    import tempfile

    accelerator = "cpu" if ctx.device == "cpu" else "gpu"
    side = 32 if ctx.dry_run else 128
    flags = [*model, *trainer, "--trainer.devices=1", "--trainer.precision=bf16-mixed",
             "--trainer.max_steps=3"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gpu_check_fit_") as folder:
        command = [
            sys.executable, "-m", "mattekit.cli", "fit", *flags, f"--data.image_size={side}",
            "--data.batch_size=2", "--data.num_workers=0", "--data.synthetic_train_samples=8",
            "--data.synthetic_eval_samples=2", f"--trainer.accelerator={accelerator}",
            "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={folder}",
        ]  # fmt: skip
        began = time.perf_counter()
        done = subprocess.run(
            command, cwd=REPOSITORY, capture_output=True, text=True, timeout=ctx.left_s()
        )
        seconds = time.perf_counter() - began
        last = Path(folder) / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
        step = torch.load(last, weights_only=True)["global_step"] if last.exists() else None
    error = "" if done.returncode == 0 else f", {one_line(done.stderr.strip()[-400:])}"
    outcome = (
        f"at {side} px ({accelerator}): return code {done.returncode}, global_step in "
        f"last.ckpt {step}, {seconds:.0f} s{error}"
    )
    return " ".join(flags), outcome


def ddp(ctx: Context, rows: Rows) -> None:
    """``mattekit fit`` with ``strategy=ddp`` and one process: NCCL on a GPU, gloo on the CPU."""
    flags, outcome = fit_three_steps(ctx, ["--model=zim", "--model.variant=tiny"],
                                     ["--trainer.strategy=ddp"])  # fmt: skip
    rows.add(f"zim tiny, `{flags}` {outcome}")


def fsdp(ctx: Context, rows: Rows) -> None:
    """``mattekit fit`` under ``configs/trainer/fsdp.yaml`` (:class:`MattingFSDPStrategy`) with
    one process, SDMatte tiny: the GPU path that ``tests/integration/test_fsdp.py`` runs on
    CPU processes only."""
    config = "configs/trainer/fsdp_cpu.yaml" if ctx.dry_run else "configs/trainer/fsdp.yaml"
    flags, outcome = fit_three_steps(
        ctx, ["--model=sdmatte", "--model.variant=tiny"], [f"--config={config}"]
    )
    rows.add(f"sdmatte tiny, `{flags}` {outcome}")


def sdmatte_attention(ctx: Context, rows: Rows) -> None:
    """One SDMatte UNet forward at 1024 px under each attention processor (bf16, batch 1)."""
    import contextlib

    import sdmatte
    from timing import timed

    from mattekit.pipelines.benchmark.measure import PeakMemory

    side = DRY_SIDE if ctx.dry_run else 1024
    args = SimpleNamespace(variant="tiny" if ctx.dry_run else "sd2", dtype="bf16")
    from family_step import on_device

    net = on_device(lambda: sdmatte.build(args), ctx.device).to(ctx.device)
    captured = {}

    def hook(module, call_args, call_kwargs):
        captured["args"], captured["kwargs"] = call_args, call_kwargs
        raise sdmatte._Captured

    handle = net.unet.register_forward_pre_hook(hook, with_kwargs=True)
    image, prompt = sdmatte.denoise_inputs(side, torch.bfloat16)
    prompt = type(prompt)(**{
        k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in vars(prompt).items()
    })  # fmt: skip
    with torch.no_grad(), contextlib.suppress(sdmatte._Captured):
        net.denoise(image.to(ctx.device), prompt)
    handle.remove()
    rows.add(
        f"SDMatte {args.variant}, one UNet forward at {side} px (latent {side // 8}), bf16, "
        "batch 1, no_grad",
        "",
        "| processor | peak above weights + inputs (GiB) | forward (ms) |",
        "| --- | ---: | ---: |",
    )
    outputs, peaks = {}, {}
    for name, explicit in sdmatte.PROCESSORS.items():
        net.set_processors(explicit=explicit)
        with torch.no_grad():

            def forward(name=name):
                outputs[name] = net.unet(*captured["args"], **captured["kwargs"]).sample

            forward()
            meter = PeakMemory(ctx.device).start()
            forward_ms = timed(forward, ctx.device) * 1e3
            peaks[name] = meter.stop()
        rows.add(f"| {name} (explicit={explicit}) | {peaks[name] / GIB:.3f} | {forward_ms:.0f} |")
    ratio = peaks["sdpa"] / max(peaks["classic"], 1)
    difference = float((outputs["sdpa"].float() - outputs["classic"].float()).abs().max())
    rows.add(
        f"| peak sdpa / classic (goal <= 0.1) | {ratio:.3f} | |",
        f"| max abs difference of the outputs (bf16) | {difference:.2e} | |",
    )


def zim_vs_sam(ctx: Context, rows: Rows) -> None:
    """ZIM's whole forward and a click vs segment-anything's SAM on the same image and box."""
    import torch.nn.functional as F
    from sam_reference import sam_reference
    from segment_anything import sam_model_registry
    from segment_anything.build_sam import _build_sam
    from timing import paired

    from mattekit.models.zim.torch_model import build_zim

    variant, sam_variant = ("tiny", "gpu_check_tiny") if ctx.dry_run else ("vit_b", "vit_b")
    runs = 2 if ctx.dry_run else 10
    # A dry run's SAM: segment-anything's own model at a tiny width (its input stays 1024).
    sam_model_registry.setdefault(
        "gpu_check_tiny",
        lambda checkpoint=None: _build_sam(32, 1, 1, [0], checkpoint),
    )
    reference = sam_reference(sam_variant, ctx.device)
    torch.manual_seed(0)
    zim = build_zim(variant).to(ctx.device).eval()
    scale = zim.image_size / reference.images.shape[-1]
    images = (
        F.interpolate(reference.images, size=zim.image_size) if scale != 1 else reference.images
    )
    corners = reference.corners * scale
    with torch.no_grad():
        embedding = reference.sam.image_encoder(reference.images)
        features = zim.encode(images)
        passes = {
            "forward (image encoder + decoder)": paired(
                reference.forward, lambda: zim(images, corners, reference.labels), runs, ctx.device
            ),
            "decoder only (cached image features)": paired(
                lambda: reference.decode(embedding),
                lambda: zim.decode(features, corners, reference.labels),
                runs,
                ctx.device,
            ),
        }
    rows.add(
        f"ZIM {variant} at {zim.image_size} px vs SAM {sam_variant} at 1024 px, fp32, "
        f"no_grad, median of {runs} paired runs (goal: forward <= 1.10, click <= 1.5)",
        "",
        "| pass | SAM (ms) | ZIM (ms) | ZIM / SAM |",
        "| --- | ---: | ---: | ---: |",
    )
    for name, (sam_ms, zim_ms, ratio) in passes.items():
        rows.add(f"| {name} | {sam_ms:.1f} | {zim_ms:.1f} | {ratio:.3f} |")


def teachmatte(ctx: Context, rows: Rows) -> None:
    """TeachMatte's teacher and student forward (one soft-grounding pass each) at 512 px."""
    import teachmatte as bench
    from timing import paired

    variant, side, runs = ("tiny", DRY_SIDE, 2) if ctx.dry_run else ("sd21", 512, 10)
    from family_step import on_device

    teacher, student = on_device(lambda: bench.networks(variant), ctx.device)
    teacher, student = teacher.to(ctx.device), student.to(ctx.device)
    image, _, ids = bench.inputs(side, 1)
    image, ids = image.to(ctx.device), ids.to(ctx.device)
    with torch.no_grad(), torch.autocast(ctx.device, dtype=torch.bfloat16):
        teacher_ms, student_ms, ratio = paired(
            lambda: teacher(image, ids), lambda: student(image, ids), runs, ctx.device
        )
    paper = TEACHMATTE_PAPER_MS
    rows.add(
        f"TeachMatte {variant} at {side} px, bf16 autocast, batch 1, no_grad, median of {runs} "
        "paired runs; the paper's times are fp16 on an RTX 3090",
        "",
        "| network | here (ms) | paper, RTX 3090 (ms) |",
        "| --- | ---: | ---: |",
        f"| teacher (SD UNet + region head) | {teacher_ms:.1f} | {paper['teacher']:.0f} |",
        f"| student (BK-SDM-Tiny, sparse attention) | {student_ms:.1f} | {paper['student']:.0f} |",
        f"| student / teacher | {ratio:.2f} | {paper['student'] / paper['teacher']:.2f} |",
    )


#: name -> (function, title, time limit in seconds on a GPU).
SECTIONS: dict[str, tuple[Callable[[Context, Rows], None], str, float]] = {
    "cuda_tests": (cuda_tests, "CUDA-only tests", 60),
    "train_step": (train_step, "One bf16 training step per family at paper size", 210),
    "ddp": (ddp, "DDP with one process", 60),
    "fsdp": (fsdp, "FSDP with one process", 60),
    "sdmatte_attention": (sdmatte_attention, "SDMatte attention at 1024: SDPA vs classic", 50),
    "zim_vs_sam": (zim_vs_sam, "ZIM vs SAM, whole forward", 40),
    "teachmatte": (teachmatte, "TeachMatte student / teacher at 512", 60),
}


# ---------------------------------------------------------------------------------- the driver


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one table-safe line."""
    flat = " ".join(str(text).split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def run_section(name: str, args: argparse.Namespace, budget_end: float) -> dict:
    """Run one section in a subprocess within its limit (a dry run: none, since a shared CPU
    can be slow) and what is left of the budget."""
    left = budget_end - time.monotonic()
    if left < 10:
        skipped = "skipped: the check's time budget was spent"
        return {"status": skipped, "lines": [], "seconds": 0, "cpu_seconds": 0}
    timeout = left if args.dry_run else min(SECTIONS[name][2], left)
    result = Path(args.work) / f"{name}.json"
    command = [sys.executable, __file__, "--section", name, "--result", str(result)]
    command += ["--timeout_s", str(timeout)] + (["--dry_run"] if args.dry_run else [])
    began, cpu_began = time.monotonic(), children_cpu_seconds()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 15)
        status = "ok" if done.returncode == 0 else f"failed (return code {done.returncode})"
        error = done.stderr.strip().splitlines()[-1] if done.returncode and done.stderr else ""
    except subprocess.TimeoutExpired:
        status, error = f"timed out after {timeout:.0f} s", ""
    lines = json.loads(result.read_text()) if result.exists() else []
    if error:
        lines.append(f"Error: `{one_line(error)}`")
    seconds, cpu_seconds = time.monotonic() - began, children_cpu_seconds() - cpu_began
    return {"status": status, "lines": lines, "seconds": seconds, "cpu_seconds": cpu_seconds}


def children_cpu_seconds() -> float:
    """User + system CPU seconds of the finished subprocesses so far (a dry run's cost on a
    shared machine, where the wall clock says little)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def section_entry(args: argparse.Namespace) -> None:
    """A section's subprocess: run it, its lines written as they come."""
    sys.path.insert(0, str(BENCHMARKS))
    device = "cpu" if args.dry_run else "cuda"
    ctx = Context(device, args.dry_run, time.monotonic() + args.timeout_s - 5)
    rows = Rows(Path(args.result))
    rows.add()
    try:
        SECTIONS[args.section][0](ctx, rows)
    except Exception:
        traceback.print_exc()
        sys.exit(1)


def header(args: argparse.Namespace) -> list[str]:
    """Machine, software and command, and whether mattekit imports here."""
    if args.dry_run:
        device = f"CPU only (dry run): {platform.processor() or platform.machine()}"
    else:
        properties = torch.cuda.get_device_properties(0)
        device = f"{properties.name}, {properties.total_memory / GIB:.0f} GiB"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True,
            text=True, timeout=10,
        ).stdout.strip() or "unknown (no git)"  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = "unknown (no git)"
    probe = subprocess.run(
        [sys.executable, "-c", "import mattekit.models, mattekit.cli"],
        capture_output=True,
        text=True,
    )
    imports = "yes" if probe.returncode == 0 else one_line(probe.stderr.strip().splitlines()[-1])
    return [
        "# GPU check (issue 26)",
        "",
        f"- device: {device}; {os.cpu_count()} CPUs",
        f"- torch {torch.__version__} (CUDA {torch.version.cuda}), Python "
        f"{platform.python_version()}, commit {commit}",
        f"- command: `{shlex.join(['python', *sys.argv])}`",
        f"- mattekit imports: {imports}",
    ]


def default_output() -> Path:
    folder = os.environ.get("OUT")
    return Path(folder) / "gpu_check.md" if folder else Path("gpu_check.md")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="default: $OUT/gpu_check.md "
                        "if $OUT is set, else ./gpu_check.md")  # fmt: skip
    parser.add_argument("--dry_run", action="store_true", help="every section tiny, on the CPU")
    parser.add_argument(
        "--budget_s", type=float, default=None, help="the whole check's budget in seconds "
        f"(default {GPU_BUDGET_S:.0f}; a dry run {DRY_BUDGET_S:.0f})",
    )  # fmt: skip
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    parser.add_argument("--section", choices=sorted(SECTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--timeout_s", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.section:
        section_entry(args)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print(
            f"no CUDA device: torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no "
            "GPU; run this on a GPU machine, or pass --dry_run for the CPU rehearsal",
            file=sys.stderr,
        )
        return NO_CUDA_RC
    names = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--sections: unknown {unknown}; known: {', '.join(SECTIONS)}")
    output = args.output or default_output()
    began = time.monotonic()
    args.budget_s = args.budget_s or (DRY_BUDGET_S if args.dry_run else GPU_BUDGET_S)
    budget_end = began + args.budget_s
    lines = header(args)
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        args.work = work
        for name in names:
            print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
            results[name] = run_section(name, args, budget_end)
            print(f"gpu_check: {name} {results[name]['status']}", file=sys.stderr, flush=True)
    total = time.monotonic() - began
    lines += [f"- total: {total:.0f} s of a {args.budget_s:.0f} s budget", ""]
    lines += ["| section | status | seconds | CPU seconds |", "| --- | --- | ---: | ---: |"]
    lines += [
        f"| {n} | {r['status']} | {r['seconds']:.0f} | {r['cpu_seconds']:.0f} |"
        for n, r in results.items()
    ]
    for name, result in results.items():
        lines += ["", f"## {SECTIONS[name][1]} (`{name}`)", ""]
        lines += result["lines"] or [f"_{result['status']}_"]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"gpu_check: wrote {output} ({total:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
