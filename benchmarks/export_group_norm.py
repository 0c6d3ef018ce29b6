"""What exporting GroupNorm as a mean of block means (``mattekit.export.group_norm``) buys in
accuracy and costs in onnxruntime time, against the exporter's plain ``InstanceNormalization``.

    python benchmarks/export_group_norm.py            # SD's VAE encoder at 512, the baseline
    python benchmarks/export_group_norm.py --side 128 --runs 3   # a quick check

Per network, random weights (seed 0): the same module exported twice (plain, blocked), each run
by one onnxruntime session on the same input. Reported: each graph's largest difference from
PyTorch in float64 (the reference), PyTorch fp32's own, and the time of one run of each
(median of ``--runs`` alternating pairs, ``timing.paired``) with the ratio blocked / plain.

- ``sd_vae_encoder``: Stable Diffusion 2's autoencoder encoder (SDMatte's, paper size) on
  SDMatte's second input, a box prompt map as an image (constant outside and inside the box).
- ``baseline``: the baseline family's whole network at paper size (ConvGNAct blocks) on a photo-
  like random image with a box prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from timing import paired
from torch import Tensor, nn

from mattekit.export import exporter
from mattekit.export.graphs import ExportGraph
from mattekit.export.group_norm import accurate_group_norms

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "experiments" / "results" / "export_group_norm.json"


class Encoder(nn.Module):
    """The autoencoder's encoder alone (its moments, B x 8 x H/8 x W/8)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: Tensor) -> Tensor:
        return self.encoder(image)


def sd_vae_encoder(side: int) -> ExportGraph:
    from diffusers import AutoencoderKL

    from mattekit.models.sdmatte.configs import vae_config

    torch.manual_seed(0)
    vae = AutoencoderKL(**vae_config("sd2", tiny_autoencoder=False))
    box = torch.full((1, 3, side, side), -1.0)
    box[..., side // 5 : side * 4 // 5, side // 4 : side * 3 // 4] = 1.0
    return ExportGraph("sd_vae_encoder", Encoder(vae.encoder), {"image": box}, ("moments",))


def baseline(side: int) -> ExportGraph:
    from mattekit.data.datamodule import synthetic_batch
    from mattekit.export.graphs import batch_graph
    from mattekit.models.registry import get_model_entry

    entry = get_model_entry("baseline")
    torch.manual_seed(0)
    family = entry.cls(**entry.paper_size).eval()
    with torch.no_grad():
        return batch_graph(family, synthetic_batch(side, 1, stage="test"))


NETWORKS = {"sd_vae_encoder": sd_vae_encoder, "baseline": baseline}


def measure(name: str, side: int, runs: int, work: Path) -> dict:
    """Both exports of network ``name`` at ``side``: errors against fp64 and onnxruntime time
    (the first output: the encoder's moments, the baseline's alpha)."""
    import onnxruntime

    graph = NETWORKS[name](side)
    module, inputs = graph.module.eval(), graph.inputs
    with torch.no_grad():
        output = exporter.torch_outputs(graph, inputs)[0].double()
        as_double = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
        module.double()
        reference = exporter.torch_outputs(graph, as_double)[0]
        module.float()
    paths = {kind: work / f"{name}_{kind}.onnx" for kind in ("plain", "blocked")}
    exporter._write_onnx(graph, paths["plain"], exporter.EXTERNAL_DATA_THRESHOLD)
    with accurate_group_norms(module) as swapped:
        exporter._write_onnx(graph, paths["blocked"], exporter.EXTERNAL_DATA_THRESHOLD)
    sessions = {kind: onnxruntime.InferenceSession(str(path)) for kind, path in paths.items()}

    def run(kind: str) -> Tensor:
        session = sessions[kind]
        feed = {item.name: inputs[item.name].numpy() for item in session.get_inputs()}
        return torch.from_numpy(session.run(None, feed)[0]).double()

    errors = {kind: float((run(kind) - reference).abs().max()) for kind in paths}
    plain_ms, blocked_ms, ratio = paired(lambda: run("plain"), lambda: run("blocked"), runs, "cpu")
    return {
        "side": side,
        "group_norms": swapped,
        "pytorch_fp32_error": float((output - reference).abs().max()),
        "plain_error": errors["plain"],
        "blocked_error": errors["blocked"],
        "plain_ms": plain_ms,
        "blocked_ms": blocked_ms,
        "time_ratio": ratio,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = {}
    for name in filter(None, args.networks.split(",")):
        print(f"export_group_norm: {name} ...", file=sys.stderr)
        with tempfile.TemporaryDirectory() as work:
            results[name] = measure(name, args.side, args.runs, Path(work))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print("| network | side | GroupNorms | PyTorch fp32 vs fp64 | plain ONNX vs fp64 "
          "| blocked ONNX vs fp64 | plain (ms) | blocked (ms) | blocked / plain |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['side']} | {r['group_norms']} | {r['pytorch_fp32_error']:.1e} "
              f"| {r['plain_error']:.1e} | {r['blocked_error']:.1e} | {r['plain_ms']:.0f} "
              f"| {r['blocked_ms']:.0f} | {r['time_ratio']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
