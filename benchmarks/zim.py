"""Forward time of ZIM vs plain SAM at 1024 x 1024 (random init, same run, same machine).

    python benchmarks/zim.py                   # vit_b, box prompt, 3 timed runs each
    python benchmarks/zim.py --device cuda --runs 20

The paper: the hierarchical decoder adds about 10 ms on a V100. Goal (issue 3): ZIM's whole
forward at most 10 % slower than SAM's. SAM here is segment-anything's own model; ZIM shares its
image encoder and prompt encoder, so the difference is the decoder (masked attention + pixel
decoder). Both are timed as whole forwards and as decoder-only passes on a fixed embedding.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from segment_anything import sam_model_registry
from tqdm import tqdm

from mattekit.models.zim.torch_model import build_zim


def timed(function, runs: int, device: str) -> float:
    """Median seconds of ``runs`` calls after one warm-up call."""
    function()
    times = []
    for _ in tqdm(range(runs), leave=False):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    sam = sam_model_registry[args.variant]().to(args.device).eval()
    zim = build_zim(args.variant).to(args.device).eval()
    images = torch.randn(1, 3, 1024, 1024, device=args.device)
    box = torch.tensor([[200.0, 300.0, 700.0, 900.0]], device=args.device)
    corners, labels = box.view(1, 2, 2), torch.tensor([[2, 3]], device=args.device)

    def sam_decode(embedding):
        sparse, dense = sam.prompt_encoder(points=None, boxes=box, masks=None)
        pe = sam.prompt_encoder.get_dense_pe()
        return sam.mask_decoder(embedding, pe, sparse, dense, multimask_output=False)

    embedding = sam.image_encoder(images)
    results = {
        "SAM forward": timed(lambda: sam_decode(sam.image_encoder(images)), args.runs, args.device),
        "ZIM forward": timed(lambda: zim(images, corners, labels), args.runs, args.device),
        "SAM decoder only": timed(lambda: sam_decode(embedding), args.runs * 5, args.device),
        "ZIM decoder only": timed(
            lambda: zim.decode(embedding, images, corners, labels), args.runs * 5, args.device
        ),
    }
    threads = torch.get_num_threads()
    print(f"{args.variant} at 1024 x 1024, {args.device} ({threads} threads), median of runs")
    print("| pass | SAM ms | ZIM ms | ZIM / SAM |")
    print("| --- | --- | --- | --- |")
    for name in ("forward", "decoder only"):
        sam_ms, zim_ms = results[f"SAM {name}"] * 1e3, results[f"ZIM {name}"] * 1e3
        print(f"| {name} | {sam_ms:.0f} | {zim_ms:.0f} | {zim_ms / sam_ms:.3f} |")


if __name__ == "__main__":
    main()
