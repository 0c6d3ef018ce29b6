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

``--stages`` breaks a click down instead: each fusion step of the hierarchical decoder
(upsampling, then the 3 x 3 convolution with its norm and activation) and the einsum of the
hypernetwork tokens with the stride-2 features, each as a fraction of SAM's whole decoder timed
in the same run. The upsampling to stride 2 and that einsum are the floor of any decoder that
builds per-prompt features at stride 2, whatever its convolutions.
"""

from __future__ import annotations

import statistics
from functools import partial

import torch
import torch.nn.functional as F
from sam_reference import sam_benchmark_parser, sam_reference
from timing import median_ms, paired, timed

from mattekit.models.zim.torch_model import ZimImageFeatures, build_zim


@torch.no_grad()
def main() -> None:
    parser = sam_benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--stages",
        action="store_true",
        help="time each step of a click's pixel decoder (instead of the passes)",
    )
    args = parser.parse_args()

    reference = sam_reference(args.variant, args.device)
    sam, images, sam_decode = reference.sam, reference.images, reference.decode
    corners, labels = reference.corners, reference.labels
    zim = build_zim(args.variant).to(args.device).eval()

    pixel_decoder = zim.mask_decoder.pixel_decoder
    if args.stages:
        # Any embedding of the right shape: the steps' cost does not depend on its values.
        embedding = torch.randn(1, 256, 64, 64, device=args.device)
        features = ZimImageFeatures(embedding, pixel_decoder.image_features(images))
        sam_ms = median_ms(lambda: sam_decode(embedding), args.runs * 5, args.device)
        print(f"\nA click's pixel decoder, step by step (SAM's whole decoder: {sam_ms:.0f} ms)")
        print("| step | ms | / SAM's decoder |")
        print("| --- | --- | --- |")
        for name, function in click_steps(pixel_decoder, features, zim.image_size):
            step_ms = median_ms(function, args.runs * 5, args.device)
            print(f"| {name} | {step_ms:.0f} | {step_ms / sam_ms:.2f} |")

        return
    embedding = sam.image_encoder(images)
    features = zim.encode(images)
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


def click_steps(
    pixel_decoder, features: ZimImageFeatures, image_size: int
) -> list[tuple[str, object]]:
    """(name, call) for each step of the hierarchical decoder on what a click computes.

    The image embedding stands in for the transformer's output (same shape); the steps replay
    :meth:`HierarchicalPixelDecoder.forward` one operation at a time.
    """
    steps, x = [], features.embedding
    for fuse, skip in zip(pixel_decoder.fuse, reversed(features.pyramid), strict=True):
        size = skip.shape[-2:]
        stride = image_size // size[-1]
        upsampled = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        stacked = torch.cat([upsampled, skip], dim=1)
        steps.append((
            f"upsample {x.shape[1]} channels to stride {stride}",
            partial(F.interpolate, x, size=size, mode="bilinear", align_corners=False),
        ))  # fmt: skip
        steps.append((
            f"3 x 3 conv + norm + act, {stacked.shape[1]} -> {fuse[0].out_channels} channels"
            f" at stride {stride}",
            partial(fuse, stacked),
        ))  # fmt: skip
        x = fuse(stacked)
    hyper = torch.randn(x.shape[0], 4, x.shape[1], device=x.device)
    steps.append(("einsum of 4 mask tokens with the stride-2 features", partial(
        torch.einsum, "bmc,bchw->bmhw", hyper, x
    )))  # fmt: skip
    return steps


if __name__ == "__main__":
    main()
