"""Writing one :class:`~mattekit.export.graphs.ExportGraph` and checking it against PyTorch.

ONNX first, through torch's exporter (``torch.export`` based; the older TorchScript-based one when
that fails); TorchScript (``torch.jit.trace``) where neither can express the network. The file is
written beside its destination and moved into place only after the parity check passes, so a
failed export never leaves a file that looks usable.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mattekit.export.graphs import ExportGraph

logger = logging.getLogger(__name__)

#: The ONNX opset written (onnxruntime >= 1.16 runs it).
OPSET = 18


class ExportParityError(RuntimeError):
    """The exported network's outputs differ from PyTorch's by more than the tolerance."""


@dataclass(frozen=True)
class ExportedGraph:
    """One written file: its format and how far its outputs are from PyTorch's.

    Attributes:
        path: the file (``.onnx`` or ``.pt``).
        format: ``onnx`` or ``torchscript``.
        max_abs_diff: per output, the largest absolute difference from PyTorch on the example.
        fallback_reason: why ONNX was not written (TorchScript only).
    """

    path: Path
    format: str
    max_abs_diff: dict[str, float]
    fallback_reason: str | None = None


def _as_tuple(outputs: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)


def torch_outputs(graph: ExportGraph, inputs: dict[str, Tensor]) -> tuple[Tensor, ...]:
    with torch.no_grad():
        return _as_tuple(graph.module(*inputs.values()))


def _dynamic_shapes(graph: ExportGraph) -> tuple | None:
    """``graph.dynamic`` as ``torch.export`` takes it for a ``forward(*tensors)``: one spec per
    input, a named dimension shared by the axes that carry the same name."""
    if not graph.dynamic:
        return None
    dims: dict[str, torch.export.Dim] = {}

    def spec(name: str) -> dict | None:
        axes = graph.dynamic.get(name)
        if not axes:
            return None
        return {axis: dims.setdefault(d, torch.export.Dim(d, min=1)) for axis, d in axes.items()}

    return (tuple(spec(name) for name in graph.inputs),)


def _write_onnx(graph: ExportGraph, path: Path) -> None:
    """torch.export-based ONNX; the TorchScript-based exporter when that one fails."""
    names = {"input_names": list(graph.inputs), "output_names": list(graph.outputs)}
    args = tuple(graph.inputs.values())
    try:
        torch.onnx.export(
            graph.module, args, path, dynamo=True, external_data=False, opset_version=OPSET,
            dynamic_shapes=_dynamic_shapes(graph), **names,
        )  # fmt: skip
    except Exception as error:  # the exporters raise many types; the next one is tried
        logger.info("%s: torch.export-based ONNX failed (%s); trying TorchScript-based ONNX",
                    graph.name, str(error).splitlines()[0][:200])  # fmt: skip
        torch.onnx.export(
            graph.module, args, path, dynamo=False, opset_version=OPSET,
            dynamic_axes=graph.dynamic or None, **names,
        )  # fmt: skip


def onnx_outputs(path: Path, inputs: dict[str, Tensor]) -> list[np.ndarray]:
    """Run an ONNX file in onnxruntime (CPU) on ``inputs`` (those it declares)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {item.name: inputs[item.name].cpu().numpy() for item in session.get_inputs()}
    return session.run(None, feeds)


def _differences(graph: ExportGraph, exported: list, expected: tuple[Tensor, ...]) -> dict:
    """Per output, the largest absolute difference (shapes must agree)."""
    if len(exported) != len(expected):
        raise ExportParityError(
            f"{graph.name}: {len(exported)} outputs exported, PyTorch gives {len(expected)}"
        )
    differences = {}
    for name, ours, reference in zip(graph.outputs, exported, expected, strict=True):
        ours = np.asarray(ours.detach().cpu() if isinstance(ours, Tensor) else ours)
        reference = reference.detach().cpu().numpy()
        if ours.shape != reference.shape:
            raise ExportParityError(
                f"{graph.name}: output {name} is {ours.shape}, PyTorch's {reference.shape}"
            )
        differences[name] = float(np.abs(ours.astype(np.float64) - reference).max(initial=0))
    return differences


def _worse(a: float, b: float) -> float:
    """The larger difference, NaN above every number."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def export_graph(graph: ExportGraph, folder: Path, prefix: str, tolerance: float) -> ExportedGraph:
    """Write ``graph`` to ``folder/<prefix>_<name>.onnx`` (or ``.pt``) and check it on its
    example and on each of ``graph.checks``.

    Raises:
        ExportParityError naming the graph and the output when the exported network's output
        differs from PyTorch's by more than ``tolerance`` (nothing is left at the destination).
    """
    folder.mkdir(parents=True, exist_ok=True)
    graph.module.eval()
    fallback = None
    try:
        path = folder / f"{prefix}_{graph.name}.onnx"
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
        _write_onnx(graph, temporary)
        run = lambda inputs: onnx_outputs(temporary, inputs)  # noqa: E731
        kind = "onnx"
    except Exception as error:
        fallback = str(error).splitlines()[0][:300]
        logger.warning("%s: ONNX cannot express it (%s); writing TorchScript", graph.name, fallback)
        path = folder / f"{prefix}_{graph.name}.pt"
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.pt")
        with torch.no_grad():
            traced = torch.jit.trace(graph.module, tuple(graph.inputs.values()), strict=False)
        torch.jit.save(traced, str(temporary))
        loaded = torch.jit.load(str(temporary))

        def run(inputs: dict[str, Tensor]) -> list[Tensor]:
            with torch.no_grad():
                return list(_as_tuple(loaded(*inputs.values())))

        kind = "torchscript"
    try:
        differences: dict[str, float] = {}
        for inputs in [graph.inputs, *graph.checks]:
            found = _differences(graph, run(inputs), torch_outputs(graph, inputs))
            # NaN (a non-finite output) is kept as the worst difference: it never passes.
            differences = {k: _worse(v, differences.get(k, 0.0)) for k, v in found.items()}
        failing = [name for name, value in differences.items() if not value <= tolerance]
        worst = failing[0] if failing else max(differences, key=differences.get)
        if failing:
            raise ExportParityError(
                f"{graph.name}: the exported {worst} differs from PyTorch's by "
                f"{differences[worst]:.3g} (tolerance {tolerance:g}); nothing written"
            )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportedGraph(path, kind, differences, fallback)
