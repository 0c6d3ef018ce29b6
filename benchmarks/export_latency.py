"""SAM-based families exported in SAM's split: encoder and decoder latency in onnxruntime vs
PyTorch on the CPU, in one run.

    nice python benchmarks/export_latency.py                    # ZIM and SAMA at paper size
    nice python benchmarks/export_latency.py --variant tiny     # a quick check

Each family is built at its paper size (``vit_b``, 1024 px) with random weights (seed 0),
exported by ``mattekit export``'s own code (:func:`mattekit.export.exporter.export_graph`, the
parity check included), then each graph is timed on the same inputs in PyTorch
(``torch.no_grad()``) and in onnxruntime (CPU provider, default graph optimisations), the two
alternating (``timing.paired``); the ratio is the median of the per-pair ratios onnxruntime /
PyTorch. The decoder is timed with one positive click (SAM's tokens: the click and a padding
point), what the demo runs per click.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from timing import paired

from mattekit.data.datamodule import MattingDataModule
from mattekit.data.sample import collate_samples
from mattekit.export.exporter import export_graph
from mattekit.models import MODELS

FAMILIES = ("zim", "sama")


def scene(side: int):
    """One seeded synthetic scene at ``side`` px through the shared pipeline."""
    data = MattingDataModule(image_size=side, num_workers=0, synthetic_eval_samples=1)
    return collate_samples([data.dataset("val")[0]])


def onnx_session(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="paper", choices=["paper", "tiny"])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.variant} size, CPU, {args.threads} threads, {args.runs} paired runs\n")
    print("| family | graph | PyTorch (ms) | onnxruntime (ms) | onnxruntime / PyTorch | max diff |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    folder = Path(tempfile.mkdtemp(prefix="mattekit_export_"))
    for alias in args.families:
        entry = MODELS[alias]
        torch.manual_seed(0)
        family = entry.cls(**(entry.tiny if args.variant == "tiny" else entry.paper_size)).eval()
        batch = scene(family.input_convention[0])
        with torch.no_grad():
            graphs = family.export_graphs(family.transform_batch(batch, "test"))
        for graph in graphs:
            done = export_graph(graph, folder, alias, tolerance=1e-3)
            session = onnx_session(done.path, args.threads)
            feeds = {i.name: graph.inputs[i.name].numpy() for i in session.get_inputs()}
            with torch.no_grad():
                torch_ms, onnx_ms, ratio = paired(
                    lambda: graph.module(*graph.inputs.values()),  # noqa: B023
                    lambda: session.run(None, feeds),  # noqa: B023
                    args.runs,
                    "cpu",
                )
            worst = max(done.max_abs_diff.values())
            print(
                f"| {alias} | {graph.name} | {torch_ms:.1f} | {onnx_ms:.1f} | {ratio:.2f} | "
                f"{worst:.1e} |"
            )


if __name__ == "__main__":
    main()
