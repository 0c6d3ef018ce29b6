"""Forward time and peak memory of SAMA vs plain SAM at 1024 x 1024 (random init, same run).

    python benchmarks/sama.py                      # vit_b, box prompt, 3 timed runs each
    python benchmarks/sama.py --clock cpu          # CPU time: steadier on a shared machine
    python benchmarks/sama.py --device cuda --runs 20

The paper claims "marginal latency", but its Multi-View Localization Encoder encodes the image
five times: the whole image and its four quadrants, each zoomed back to 1024. Timed here, each
against segment-anything's own SAM in the same run (passes alternate; ratio = median of the
per-pair ratios):

- the whole forward (encoder + decoder), SAMA as the paper (views at 1024) and with the cheaper
  option (``local_view_size=512``: each quadrant at its own resolution);
- a click: the decoder alone on what the predictor caches per image (SAM: the embedding; SAMA:
  the embedding, the local features after the MVLE and the early features), SAMA's adapters and
  heads included;
- peak memory of one forward above the level before it (CPU: resident memory sampled every
  2 ms; CUDA: the allocator's peak), through the benchmark's own meter
  (:mod:`mattekit.pipelines.benchmark.measure`).
"""

from __future__ import annotations

import torch
from sam_reference import sam_benchmark_parser, sam_reference
from timing import CLOCKS, paired

from mattekit.models.sama.torch_model import build_sama
from mattekit.pipelines.benchmark.measure import PeakMemory


def peak_mib(function, device: str) -> float:
    """MiB one call needs above the level before it."""
    memory = PeakMemory(device).start()
    function()
    return memory.stop() / 2**20


@torch.no_grad()
def main() -> None:
    parser = sam_benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args()
    clock, device = CLOCKS[args.clock], args.device

    reference = sam_reference(args.variant, device)
    images, corners, labels = reference.images, reference.corners, reference.labels
    sam_decode, sam_forward = reference.decode, reference.forward
    samas = {
        "SAMA (views at 1024, paper)": build_sama(args.variant).to(device).eval(),
        "SAMA (views at 512)": build_sama(args.variant, local_view_size=512).to(device).eval(),
    }
    embedding = reference.sam.image_encoder(images)
    rows = {}
    for name, sama in samas.items():
        features = sama.encode(images)
        rows[f"{name}: forward"] = paired(
            sam_forward, lambda s=sama: s(images, corners, labels), args.runs, device, clock
        )
        rows[f"{name}: a click (cached image features)"] = paired(
            lambda: sam_decode(embedding),
            lambda s=sama, f=features: s.decode(f, corners, labels),
            args.runs * 5,
            device,
            clock,
        )
    memory = {"SAM": peak_mib(sam_forward, device)}
    for name, sama in samas.items():
        memory[name] = peak_mib(lambda s=sama: s(images, corners, labels), device)

    threads = torch.get_num_threads()
    print(f"\n{args.variant} at 1024 x 1024, {device} ({threads} threads), {args.clock} clock")
    print("| pass | SAM ms | SAMA ms | SAMA / SAM (median of paired runs) |")
    print("| --- | --- | --- | --- |")
    for name, (sam_ms, sama_ms, ratio) in rows.items():
        print(f"| {name} | {sam_ms:.0f} | {sama_ms:.0f} | {ratio:.2f} |")
    print("\n| forward | peak memory above the level before it (MiB) | / SAM |")
    print("| --- | --- | --- |")
    for name, mib in memory.items():
        print(f"| {name} | {mib:.0f} | {mib / memory['SAM']:.2f} |")


if __name__ == "__main__":
    main()
