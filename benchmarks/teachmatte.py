"""TeachDiffusionMatting at paper size: student vs teacher forward time, and the memory of the
self-attention transparency-mining quantity (L_STM) through SDPA vs explicit attention maps.

    nice python benchmarks/teachmatte.py                   # SD 2.1 size, 512 x 512, fp32, CPU
    nice python benchmarks/teachmatte.py --variant tiny --side 128   # a quick check
    python benchmarks/teachmatte.py --memory_only --batch 1 --kernels=1,1,1  # dense student
    python benchmarks/teachmatte.py --layer_only --batch 1 --threads 1      # one layer, seconds

**Time.** The teacher (SD's UNet with the region head) and the student (BK-SDM-Tiny, no
self-attention at 64 x 64, sparse k = 2 at 32 and 16) each do one soft-grounding forward
(autoencoder encoding, text encoder and adapter, UNet, head) on the same random 512 x 512 image
and prompt, random weights (seed 0), batch 1, ``torch.no_grad()``; the passes alternate
(``timing.paired``) and the ratio is the median of the per-pair ratios. The paper: 95 ms vs
143 ms on an RTX 3090 (0.66), for the whole model with the unpruned student as the reference.

**Memory.** What L_STM needs from one training step: the teacher's forward (no gradients) and
the student's forward and backward, each recording ``A x alpha`` per self-attention layer. Two
recorders: ``sdpa`` (mattekit's: ``scaled_dot_product_attention(Q, K, alpha)``) and
``explicit`` (the head-averaged ``softmax(Q K^T / sqrt(d))`` materialised per layer, then
multiplied by alpha). Each runs in its own fresh subprocess; the peak resident memory above the
level after the networks are built is sampled every 2 ms (:mod:`mattekit.pipelines.benchmark.
measure`). Both give the same loss (checked).

**One layer** (``--layer_only``): a 64 x 64 level's ``A x alpha`` (5 heads of 64, SD 2.1 at 512
px), forward and backward into Q and K, three ways, each in its own process: mattekit's fused
kernel (:func:`mattekit.nn.attention_backend.attend_to_column`), SDPA on the one-channel alpha
as before issue 27 (the CPU runs it with MATH) and explicit maps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
import torch.nn.functional as F
from timing import paired, timed

from mattekit.losses import PerLevelMSELoss
from mattekit.models.teachmatte.attention import AttentionRecorder
from mattekit.models.teachmatte.configs import TEXT_TOKENS
from mattekit.models.teachmatte.torch_model import (
    DEFAULT_KERNELS,
    STUDENT_OUTPUTS,
    TEACHER_OUTPUTS,
    build_grounding,
    build_unet,
    student_unet,
)
from mattekit.nn.attention_backend import attend_to_column
from mattekit.nn.clip_tokens import PromptTokenizer
from mattekit.pipelines.benchmark.measure import PeakMemory
from mattekit.pipelines.benchmark.resident import GIB


class ExplicitRecorder(AttentionRecorder):
    """The STM quantity through materialised attention maps (the reference for memory)."""

    def self_attention(self, query, key, query_grid, key_grid) -> None:
        scale = query.shape[-1] ** -0.5
        maps = (query @ key.transpose(-1, -2) * scale).softmax(-1).mean(1)  # B x L x L_k
        value = self.alpha_tokens(key_grid)[:, 0].to(query.dtype)  # B x L_k x 1
        self.propagated[query_grid].append(maps @ value)


RECORDERS = {"sdpa": AttentionRecorder, "explicit": ExplicitRecorder}


def one_channel_sdpa(query, key, column):
    """``A x alpha`` as mattekit computed it before issue 27: SDPA on a value of head dimension
    1, which the CPU runs with MATH (the L x L map built and kept)."""
    return F.scaled_dot_product_attention(query, key, column.expand(-1, query.shape[1], -1, -1))


def explicit_product(query, key, column):
    maps = (query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5).softmax(-1)
    return maps @ column


#: One 64 x 64 self-attention layer's ``A x alpha`` (SD 2.1 at 512 px: 5 heads of 64).
LAYER_WAYS = {"fused": attend_to_column, "one_channel": one_channel_sdpa,
              "explicit": explicit_product}  # fmt: skip


def layer_worker(args) -> None:
    """Forward and backward of one layer's ``A x alpha`` (gradients to Q and K, as L_STM's);
    prints its peak memory above the inputs and its time."""
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    tokens = 64 * 64 * args.batch
    query = torch.randn(args.batch, 5, tokens // args.batch, 64, generator=generator)
    key = torch.randn(args.batch, 5, tokens // args.batch, 64, generator=generator)
    column = torch.rand(args.batch, 1, tokens // args.batch, 1, generator=generator)
    query.requires_grad_(), key.requires_grad_()
    way = LAYER_WAYS[args.layer]

    def step():
        way(query, key, column).square().mean().backward()

    step()  # the kernels' one-off costs
    meter = PeakMemory().start()
    seconds = timed(step, "cpu")
    print(json.dumps({"peak_bytes": meter.stop(), "seconds": seconds}))


def networks(variant: str, kernels: tuple[int, ...] = DEFAULT_KERNELS):
    """Teacher and student with random weights (seed 0); they share autoencoder and text."""
    torch.manual_seed(0)
    teacher = build_grounding(build_unet(variant), TEACHER_OUTPUTS, variant).eval()
    unet = student_unet(teacher.unet, variant, prune=True)
    student = build_grounding(
        unet, STUDENT_OUTPUTS, variant, teacher.vae, teacher.text_encoder, kernels=kernels
    )
    return teacher, student.eval()


def inputs(side: int, batch: int):
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(batch, 3, side, side, generator=generator)
    alpha = torch.rand(batch, 1, side, side, generator=generator)
    ids = PromptTokenizer(TEXT_TOKENS)(["the white and transparent net on the left"] * batch)
    return image, alpha, ids


def stm_step(teacher, student, recorder_class, image, alpha, ids) -> float:
    """One step's L_STM: teacher forward (no gradients), student forward and backward."""
    teacher_record, student_record = recorder_class(alpha), recorder_class(alpha)
    with torch.no_grad():
        teacher(image, ids, teacher_record)
    student(image, ids, student_record)
    loss = PerLevelMSELoss("mean")(
        student_record.by_level("propagated"), teacher_record.by_level("propagated")
    )
    loss.backward()
    return float(loss)


def memory_worker(args) -> None:
    torch.set_num_threads(args.threads)
    teacher, student = networks(args.variant, args.kernels)
    image, alpha, ids = inputs(args.side, args.batch)
    meter = PeakMemory().start()
    loss = stm_step(teacher, student, RECORDERS[args.recorder], image, alpha, ids)
    print(json.dumps({"peak_bytes": meter.stop(), "loss": loss}))


def time_forwards(args) -> None:
    torch.set_num_threads(args.threads)
    teacher, student = networks(args.variant)
    image, _, ids = inputs(args.side, 1)
    count = lambda m: sum(p.numel() for p in m.unet.parameters())  # noqa: E731
    with torch.no_grad():
        teacher_ms, student_ms, ratio = paired(
            lambda: teacher(image, ids), lambda: student(image, ids), args.runs, "cpu"
        )
    print(f"| network | UNet parameters | forward at {args.side} px (ms) |")
    print("| --- | ---: | ---: |")
    print(f"| teacher (SD UNet + region head) | {count(teacher):,} | {teacher_ms:.0f} |")
    print(f"| student (BK-SDM-Tiny, sparse attention) | {count(student):,} | {student_ms:.0f} |")
    print(f"| student / teacher (median of {args.runs} paired runs) | | {ratio:.2f} |")


def layer_table(args) -> None:
    """One layer's ``A x alpha``, forward and backward, each way in its own process."""
    results = {}
    for way in LAYER_WAYS:
        command = [sys.executable, __file__, *sys.argv[1:], "--layer", way]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[way] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"One 64 x 64 layer's A x alpha (batch {args.batch}, 5 heads of 64), forward and "
          f"backward, {args.threads} threads:\n")  # fmt: skip
    print("| way | kernel | peak above the inputs (MiB) | time (ms) |")
    print("| --- | --- | ---: | ---: |")
    fused = results["fused"]
    kernels = {"fused": "flash (widened value)", "one_channel": "MATH (1-channel value)",
               "explicit": "explicit maps"}  # fmt: skip
    for way, r in results.items():
        print(
            f"| {way} | {kernels[way]} | {r['peak_bytes'] / 2**20:.0f} | {r['seconds'] * 1e3:.0f} |"
        )
    for way in ("one_channel", "explicit"):
        memory = fused["peak_bytes"] / max(results[way]["peak_bytes"], 1)
        time = fused["seconds"] / results[way]["seconds"]
        print(f"| fused / {way} | | {memory:.3f} | {time:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="sd21", choices=["sd15", "sd20", "sd21", "tiny"])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2, help="batch of the memory measurement")
    parser.add_argument("--runs", type=int, default=3, help="paired timing runs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--kernels", type=lambda v: tuple(int(k) for k in v.split(",")), default=DEFAULT_KERNELS,
        help="the student's self-attention per level for the memory measurement (-1 removed, "
        "1 dense, k sparse; default -1,2,2, the paper's; 1,1,1 the dense student)",
    )  # fmt: skip
    parser.add_argument("--memory_only", action="store_true", help="skip the timing")
    parser.add_argument("--layer_only", action="store_true",
                        help="only one 64 x 64 layer's A x alpha, three ways")  # fmt: skip
    parser.add_argument("--recorder", choices=sorted(RECORDERS), help=argparse.SUPPRESS)
    parser.add_argument("--layer", choices=sorted(LAYER_WAYS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.recorder:
        memory_worker(args)
        return
    if args.layer:
        layer_worker(args)
        return
    if args.layer_only:
        layer_table(args)
        return
    print(f"TeachMatte {args.variant}, {args.side} px, fp32, CPU, {args.threads} threads\n")
    if not args.memory_only:
        time_forwards(args)
    results = {}
    for name in RECORDERS:
        command = [sys.executable, __file__, *sys.argv[1:], "--recorder", name]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    sdpa, explicit = results["sdpa"], results["explicit"]
    kernels = ",".join(map(str, args.kernels))
    print(
        f"\nL_STM step (teacher forward, student forward + backward), batch {args.batch}, "
        f"student kernels {kernels}:\n"
    )
    print("| recorder | peak above the networks (GiB) | L_STM |")
    print("| --- | ---: | ---: |")
    for name, result in results.items():
        print(f"| {name} | {result['peak_bytes'] / GIB:.2f} | {result['loss']:.6g} |")
    ratio = sdpa["peak_bytes"] / max(explicit["peak_bytes"], 1)
    print(f"| sdpa / explicit | {ratio:.2f} | |")
    relative = abs(sdpa["loss"] - explicit["loss"]) / max(abs(explicit["loss"]), 1e-12)
    print(f"\nL_STM relative difference between the two: {relative:.1e}")


if __name__ == "__main__":
    main()
