"""Peak memory and time of one SDMatte UNet forward: mattekit's attention vs the classic one.

    nice python benchmarks/sdmatte.py                      # 1024 x 1024, fp32, paper size
    nice python benchmarks/sdmatte.py --side 512 --dtype bf16 --threads 2

SDMatte's masked self-attention hands the prompt map to ``F.scaled_dot_product_attention`` as a
B x 1 x 1 x L key bias (``set_processors(explicit=False)``); the classic processor
(``explicit=True``, as the release) materialises the L x L scores. At 1024 x 1024 the latent is
128 x 128, so the top level has L = 16,384 tokens: 5 heads x L^2 scores are 5 GiB in fp32, and
the softmax holds a second copy. Goals: peak memory ratio sdpa / classic at most 0.1, outputs
within 1e-4 of each other in fp32.

What is measured: the UNet alone (``net.unet``), on exactly the inputs ``net.denoise`` hands it
(random image, a box over the middle half, its filled prompt map; batch 1; random init, seed 0).
A preparing subprocess runs ``denoise`` up to the UNet call, where a forward pre-hook captures the
call's arguments (prompt bias, visual prompt, coordinate embedding) and stops it; the time of
that part (mostly the VAE encoding image and prompt map) is reported apart. Each processor then
runs in its own fresh subprocess, so their peaks do not mix: it builds the same network (same
seed, checked by a parameter fingerprint), loads the captured inputs, and measures the peak
resident memory above its level at that point (weights and inputs: the baseline), sampled every
2 ms by the benchmark's own meter (:mod:`mattekit.pipelines.benchmark.measure`), under
``torch.no_grad()``. Each saves its output; the parent compares them.

A processor that does not fit is reported as such: each subprocess's data size is capped
(``RLIMIT_DATA``, by default the memory available at the start), so an allocation failure is an
error it reports rather than a machine-wide out-of-memory kill; a kill is caught as a return code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from timing import CLOCKS, timed

from mattekit.models.sdmatte.torch_model import SDMattePrompt, build_sdmatte
from mattekit.pipelines.benchmark.measure import PeakMemory
from mattekit.pipelines.benchmark.resident import GIB, resident_bytes

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
#: processor name -> ``explicit`` flag of ``SDMatteNet.set_processors``.
PROCESSORS = {"sdpa": False, "classic": True}
SEED = 0
# Return code of a worker whose allocation failed (a MemoryError / "can't allocate" error).
NO_MEMORY_RC = 3


class _Captured(Exception):
    """Raised by the pre-hook: the UNet's inputs are captured, the forward is not needed."""


def build(args) -> torch.nn.Module:
    """The network every subprocess builds: same seed, so the same weights."""
    torch.manual_seed(SEED)
    return build_sdmatte(args.variant).to(DTYPES[args.dtype]).eval()


def fingerprint(net: torch.nn.Module) -> float:
    """A checksum of the parameters (the subprocesses must have built the same network)."""
    return float(sum(p.double().abs().sum() for p in net.parameters()))


def denoise_inputs(side: int, dtype: torch.dtype) -> tuple[torch.Tensor, SDMattePrompt]:
    """``denoise``'s arguments: a random image and a box over the middle half of it."""
    generator = torch.Generator().manual_seed(SEED)
    image = torch.rand(1, 3, side, side, generator=generator).to(dtype)
    lo, hi = side // 4, 3 * side // 4
    prompt_map = torch.zeros(1, 1, side, side, dtype=dtype)
    prompt_map[..., lo:hi, lo:hi] = 1
    prompt = SDMattePrompt(
        prompt_map=prompt_map,
        boxes=torch.tensor([[lo, lo, hi, hi]], dtype=torch.float32),
        points=torch.zeros(1, 10, 2),
        point_labels=torch.zeros(1, 10, dtype=torch.long),
        use_points=torch.zeros(1, dtype=torch.bool),
        transparent=torch.zeros(1),
    )
    return image, prompt


def prepare(args, folder: Path) -> dict:
    """Capture the UNet's inputs as ``denoise`` builds them; time ``denoise`` up to the UNet."""
    net = build(args)
    captured = {}

    def hook(module, call_args, call_kwargs):
        captured["args"], captured["kwargs"] = call_args, call_kwargs
        raise _Captured

    handle = net.unet.register_forward_pre_hook(hook, with_kwargs=True)
    inputs = denoise_inputs(args.side, DTYPES[args.dtype])

    def until_unet():
        with contextlib.suppress(_Captured):
            net.denoise(*inputs)

    seconds = timed(until_unet, "cpu", CLOCKS[args.clock])
    handle.remove()
    torch.save(captured, folder / "unet_inputs.pt")
    return {"seconds": seconds, "fingerprint": fingerprint(net)}


def worker(args, folder: Path) -> dict:
    """One processor: peak memory above weights + inputs and time of ``runs`` UNet forwards."""
    net = build(args)
    net.set_processors(explicit=PROCESSORS[args.stage])
    captured = torch.load(folder / "unet_inputs.pt", weights_only=False)
    call_args, call_kwargs = captured["args"], captured["kwargs"]
    outputs = []

    def forward():
        outputs.append(net.unet(*call_args, **call_kwargs).sample)

    baseline = resident_bytes()
    memory = PeakMemory().start()
    seconds = [timed(forward, "cpu", CLOCKS[args.clock]) for _ in range(args.runs)]
    peak = memory.stop()
    torch.save(outputs[-1].float(), folder / f"{args.stage}.pt")
    return {
        "seconds": statistics.median(seconds),
        "peak_bytes": peak,
        "baseline_bytes": baseline,
        "fingerprint": fingerprint(net),
    }


def run_stage(args, stage: str, folder: Path) -> tuple[int, dict | None, str]:
    """Run this script as a subprocess for ``stage``: (return code, its result, its error)."""
    command = [sys.executable, __file__, *sys.argv[1:], "--stage", stage, "--folder", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    result_path = folder / f"{stage}.json"
    result = json.loads(result_path.read_text()) if done.returncode == 0 else None
    error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if done.returncode not in (0, NO_MEMORY_RC):
        sys.stderr.write(done.stderr[-3000:])
    return done.returncode, result, error


def memory_available() -> int:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run_subprocess_stage(args) -> None:
    """Entry of a subprocess: cap the data size, run the stage, write its result."""
    if args.limit_gib > 0:
        limit = int(args.limit_gib * GIB)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    folder = Path(args.folder)
    try:
        with torch.no_grad():
            result = prepare(args, folder) if args.stage == "prepare" else worker(args, folder)
    except (MemoryError, RuntimeError) as error:
        if isinstance(error, MemoryError) or "allocate" in str(error):
            print(str(error).splitlines()[0], file=sys.stderr)
            sys.exit(NO_MEMORY_RC)
        raise
    (folder / f"{args.stage}.json").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1024, help="image side (divisible by 8)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: its)")
    parser.add_argument("--variant", choices=["sd2", "tiny"], default="sd2")
    parser.add_argument("--runs", type=int, default=1, help="timed forwards per processor")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument(
        "--limit-gib",
        type=float,
        default=None,
        help="cap on each subprocess's data size (default: memory available at start; 0: none)",
    )
    parser.add_argument("--stage", choices=["prepare", *PROCESSORS], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.stage is not None:
        run_subprocess_stage(args)
        return

    command_line = shlex.join(["python", *sys.argv])
    if args.limit_gib is None:
        # Passed on to the subprocesses explicitly, so all of them get the same cap.
        args.limit_gib = round(memory_available() / GIB - 0.5, 1)
        sys.argv += ["--limit-gib", str(args.limit_gib)]
    threads = torch.get_num_threads()
    latent = args.side // 8
    with tempfile.TemporaryDirectory(prefix="sdmatte_bench_") as tmp:
        folder = Path(tmp)
        rc, prepared, error = run_stage(args, "prepare", folder)
        if prepared is None:
            raise SystemExit(f"preparing the UNet inputs failed (return code {rc}): {error}")
        results = {}
        for name in PROCESSORS:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = run_stage(args, name, folder)
        outputs = {
            name: torch.load(folder / f"{name}.pt") for name, (_, r, _) in results.items() if r
        }

    print(f"\nCommand: {command_line}")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, {threads} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}, "
        f"subprocess data cap {args.limit_gib} GiB"
    )
    print(
        f"SDMatte {args.variant} (random init), one UNet forward, batch 1, {args.dtype}, "
        f"{args.side} x {args.side} input (latent {latent} x {latent}, {latent**2:,} tokens at "
        f"the top level), box over the middle half; {args.runs} timed run(s), median, "
        f"{args.clock} clock, torch.no_grad()"
    )
    print(f"denoise before the UNet (VAE encode + prompt inputs): {prepared['seconds']:.1f} s\n")
    print("| processor | time (s) | peak above weights + inputs (GiB) | baseline RSS (GiB) |")
    print("| --- | --- | --- | --- |")
    for name, (rc, result, error) in results.items():
        label = f"{name} (explicit={PROCESSORS[name]})"
        if result is None:
            why = "out of memory" if rc == NO_MEMORY_RC else "killed" if rc < 0 else "failed"
            print(f"| {label} | did not fit (return code {rc}, {why}: {error}) | - | - |")
            continue
        if result["fingerprint"] != prepared["fingerprint"]:
            raise SystemExit(f"{name} built different weights than the preparing subprocess")
        print(
            f"| {label} | {result['seconds']:.1f} | {result['peak_bytes'] / GIB:.2f} "
            f"| {result['baseline_bytes'] / GIB:.2f} |"
        )
    sdpa, classic = results["sdpa"][1], results["classic"][1]
    if sdpa and classic:
        ratio = sdpa["peak_bytes"] / classic["peak_bytes"]
        print(f"| peak memory sdpa / classic (goal <= 0.1) | {ratio:.3f} | | |")
        print(f"| time sdpa / classic | {sdpa['seconds'] / classic['seconds']:.2f} | | |")
    else:
        print("| peak memory sdpa / classic (goal <= 0.1) | n/a: one did not run | | |")
    if len(outputs) == 2:
        difference = float((outputs["sdpa"] - outputs["classic"]).abs().max())
        scale = float(outputs["classic"].abs().max())
        goal = " (goal <= 1e-4 in fp32)" if args.dtype == "fp32" else ""
        print(
            f"| max abs difference of the outputs{goal} | {difference:.2e} "
            f"| (max abs output {scale:.3g}) | |"
        )
    else:
        print("| max abs difference of the outputs | n/a: one did not run | | |")


if __name__ == "__main__":
    main()
