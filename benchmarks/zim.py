"""Forward time of ZIM vs plain SAM at 1024 x 1024 (random init, same run, same machine).

    python benchmarks/zim.py                   # vit_b, box prompt, 3 timed runs each
    python benchmarks/zim.py --device cuda --runs 20

The paper: the hierarchical decoder adds about 10 ms on a V100. Goals: ZIM's whole forward at
most 10 % slower than SAM's, and a click (decoder only) at most 1.5 x SAM's. SAM here is
segment-anything's own model; ZIM shares its image encoder and prompt encoder, so the difference
is the decoder (masked attention + pixel decoder). Both are timed as whole forwards and as
decoder-only passes on what their predictors cache per image: SAM's image embedding, ZIM's
embedding and pixel-decoder pyramid (``Zim.encode``). The pyramid alone is timed too, and a
decode that re-runs it (what every click cost before ``Zim.encode`` returned it).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from segment_anything import sam_model_registry
from tqdm import tqdm

from mattekit.models.zim.torch_model import ZimImageFeatures, build_zim


def timed(function, device: str) -> float:
    """Seconds of one call."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def paired(sam_pass, zim_pass, runs: int, device: str) -> tuple[float, float, float]:
    """Median ms of SAM's and of ZIM's pass and the median of the per-run ratios ZIM / SAM.

    The two passes alternate after one warm-up call each, so that on a shared machine both see
    the same load; the ratio of each pair is then steadier than the ratio of the medians.
    """
    sam_pass(), zim_pass()
    pairs = [
        (timed(sam_pass, device), timed(zim_pass, device)) for _ in tqdm(range(runs), leave=False)
    ]
    sam_s, zim_s = zip(*pairs, strict=True)
    ratios = [z / s for s, z in pairs]
    return statistics.median(sam_s) * 1e3, statistics.median(zim_s) * 1e3, statistics.median(ratios)


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
    features = zim.encode(images)
    pixel_decoder = zim.mask_decoder.pixel_decoder
    rows = {
        "forward (image encoder + decoder)": paired(
            lambda: sam_decode(sam.image_encoder(images)),
            lambda: zim(images, corners, labels),
            args.runs,
            args.device,
        ),
        "decoder only (cached image features)": paired(
            lambda: sam_decode(embedding),
            lambda: zim.decode(features, corners, labels),
            args.runs * 5,
            args.device,
        ),
        "decoder re-running the pyramid (no cache)": paired(
            lambda: sam_decode(embedding),
            lambda: zim.decode(
                ZimImageFeatures(features.embedding, pixel_decoder.image_features(images)),
                corners,
                labels,
            ),
            args.runs * 5,
            args.device,
        ),
    }
    pyramid = [timed(lambda: pixel_decoder.image_features(images), args.device) for _ in range(5)]
    pyramid_ms = statistics.median(pyramid) * 1e3
    threads = torch.get_num_threads()
    print(f"{args.variant} at 1024 x 1024, {args.device} ({threads} threads), medians of runs")
    print("| pass | SAM ms | ZIM ms | ZIM / SAM (median of paired runs) |")
    print("| --- | --- | --- | --- |")
    for name, (sam_ms, zim_ms, ratio) in rows.items():
        print(f"| {name} | {sam_ms:.0f} | {zim_ms:.0f} | {ratio:.3f} |")
    print(f"ZIM's pixel-decoder pyramid (computed in encode, once per image): {pyramid_ms:.0f} ms")


if __name__ == "__main__":
    main()
