"""``mattekit export``: a checkpoint's networks to ONNX, each checked against PyTorch.

    mattekit export --ckpt_path CKPT --output_dir exported/ [--kind box] [--tolerance 1e-4]

Writes ``<alias>_<graph>.onnx`` per network (SAM-based families: ``encoder`` and ``decoder``;
the others one ``model``), its weights in ``<alias>_<graph>.onnx.data`` beside it where they
exceed 1.5 GiB (ONNX external data), and ``export.json``: what each file takes and gives, the input
convention, and each output's largest difference from PyTorch on a sample scene. The set is
written as a unit (:mod:`mattekit.export.staging`): an export whose difference exceeds the
tolerance fails (exit 1), and a failed or killed one leaves the folder's previous export as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from mattekit.data.convention import InputConvention
from mattekit.data.sample import MattingBatch, collate_samples
from mattekit.data.synthetic import SyntheticSource
from mattekit.export.exporter import (
    EXTERNAL_DATA_THRESHOLD,
    OPSET,
    ExportedGraph,
    ExportParityError,
    export_graph,
)
from mattekit.export.graphs import ExportGraph
from mattekit.export.manifest import MANIFEST
from mattekit.export.staging import commit, staging_folder
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.prompts import with_kind

logger = logging.getLogger(__name__)

#: Default largest absolute difference from PyTorch accepted on any output (fp32).
TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_checkpoint` wrote: the files and the manifest."""

    graphs: list[ExportedGraph]
    manifest: Path


def sample_batch(runner: CheckpointModel, seed: int = 0) -> MattingBatch:
    """One synthetic scene at the model's input, with prompts of every kind (and a referring
    expression), transformed as inference transforms it: what an export traces and checks."""
    source = SyntheticSource(num_samples=1, image_size=runner.side, seed=seed, name="export")
    return collate_samples([runner.dataset(source, seed)[0]]).to(runner.device)


def export_checkpoint(
    runner: CheckpointModel,
    output_dir: str | Path,
    alias: str,
    kind: str | None = None,
    tolerance: float = TOLERANCE,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> ExportSummary:
    """Export the family's :meth:`~mattekit.models.base.MattingModule.export_graphs` for
    prompt ``kind`` (default: the family's evaluation prompt) into ``output_dir``, replacing an
    export already there only once every graph has passed (other files are left alone). A
    graph's weights over ``external_data_threshold`` bytes go to a side file beside it.

    Raises:
        ValueError: a kind the family does not take.
        ExportParityError: an exported network's outputs differ from PyTorch's.
    """
    model, output_dir = runner.model, Path(output_dir)
    kind = kind or model.hparams.eval_prompt
    model.check_kind(kind, "--kind")
    with torch.no_grad():
        graphs = model.export_graphs(with_kind(sample_batch(runner, seed=0), kind))
        # Another scene (other prompts) checks that no value of the first froze into a graph.
        second = with_kind(sample_batch(runner, seed=1), kind)
        others = {g.name: g for g in model.export_graphs(second)}
    for graph in graphs:
        graph.checks.append(others[graph.name].inputs)
    with staging_folder(output_dir) as staging:
        exported = [
            export_graph(graph, staging, alias, tolerance, external_data_threshold)
            for graph in graphs
        ]
        manifest = _manifest(runner, kind, tolerance, graphs, exported)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        path = commit(staging, output_dir, [name for done in exported for name in done.files])
    return ExportSummary([replace(e, path=output_dir / e.path.name) for e in exported], path)


#: How the alpha maps back to the photo, by fit (``h x w``: the photo's size).
ALPHA_TO_PHOTO = {
    "stretch": "resize the side x side output to h x w",
    "letterbox": "keep the top-left round(h * s) x round(w * s) of the output, s = side / "
    "max(h, w), then resize it to h x w",
}


def input_record(convention: InputConvention) -> dict:
    """The input convention as ``export.json`` holds it: what the graphs take (the value range,
    the prompts' coordinate frame) and how their alpha maps back to the photo."""
    return {
        **convention.record(),
        "image": "RGB in [0, 1], 1 x 3 x side x side; the network applies (x - mean) / std "
        "itself, and sees the letterbox padding as pad_value",
        "prompts": "pixels of the network input (x right, y down, from the top-left pixel "
        "centre), after the fit; boxes (x0, y0, x1, y1) with inclusive corners",
        "alpha_to_photo": ALPHA_TO_PHOTO[convention.resize]
        + " (bilinear; where the graph gives alpha_logits, resize those, then the sigmoid)",
    }


def _manifest(
    runner: CheckpointModel,
    kind: str,
    tolerance: float,
    graphs: list[ExportGraph],
    exported: list[ExportedGraph],
) -> dict:
    """``export.json``: what each file takes and gives and how far it is from PyTorch."""
    model = runner.model
    return {
        "family": type(model).__name__,
        "checkpoint": str(runner.path),
        "prompt_kind": kind,
        "input": input_record(runner.convention),
        "opset": OPSET,
        "torch": torch.__version__,
        "tolerance": tolerance,
        "graphs": [
            {
                "name": graph.name,
                "file": done.path.name,
                "data_files": list(done.data_files),
                "format": done.format,
                "inputs": {n: list(t.shape) for n, t in graph.inputs.items()},
                "dynamic": graph.dynamic,
                "outputs": list(graph.outputs),
                "max_abs_diff": done.max_abs_diff,
                "fallback_reason": done.fallback_reason,
                "note": graph.note,
            }
            for graph, done in zip(graphs, exported, strict=True)
        ],
    }


def export_main(argv: list[str]) -> int:
    """``mattekit export``: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="mattekit export",
        description="Export a checkpoint's networks to ONNX, checked against PyTorch.",
    )
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a run's Lightning .ckpt")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--kind", help="the prompt kind (default: the family's evaluation one)")
    parser.add_argument(
        "--tolerance", type=float, default=TOLERANCE,
        help=f"largest accepted difference from PyTorch (default {TOLERANCE:g})",
    )  # fmt: skip
    parser.add_argument("--image_size", type=int, help="network input side (default: the run's)")
    parser.add_argument("--resize", choices=["stretch", "letterbox"], help="default: the run's")
    parser.add_argument("--config", type=Path, help="the run's config.yaml, if not beside it")
    args = parser.parse_args(argv)
    from mattekit.checkpoint_config import checkpoint_entry

    try:
        runner = CheckpointModel(args.ckpt_path, "cpu", args.image_size, args.resize, args.config)
        alias = checkpoint_entry(args.ckpt_path).alias
        summary = export_checkpoint(runner, args.output_dir, alias, args.kind, args.tolerance)
    except ExportParityError as error:  # the network's fault, not the user's input
        parser.exit(1, f"mattekit export: error: {error}\n")
    except (OSError, ValueError) as error:  # a refused or missing checkpoint, a bad flag
        parser.exit(2, f"mattekit export: error: {error}\n")
    for done in summary.graphs:
        worst = max(done.max_abs_diff.values(), default=0.0)
        print(f"{done.path} ({done.format}): max |exported - PyTorch| = {worst:.2e}")
    print(f"manifest: {summary.manifest}")
    return 0
