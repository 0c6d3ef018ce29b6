"""Writing one :class:`~mattekit.export.graphs.ExportGraph` and checking it against PyTorch.

ONNX first, through torch's exporter (``torch.export`` based; the older TorchScript-based one when
that fails); TorchScript (``torch.jit.trace``) where neither can express the network. A graph
whose weights exceed :data:`EXTERNAL_DATA_THRESHOLD` keeps them in a side file,
``<file>.onnx.data`` (ONNX external data: a protobuf file cannot exceed 2 GiB). The files are
written in a private folder beside their destination and moved into place (the side file first)
only after the parity check passes, so a failed export never leaves a file that looks usable.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import Tensor

from mattekit.export.graphs import ExportGraph
from mattekit.export.group_norm import accurate_group_norms

logger = logging.getLogger(__name__)

#: The ONNX opset written (onnxruntime >= 1.16 runs it).
OPSET = 18

#: Initializer bytes above which a graph's weights go to external data. Protobuf refuses files
#: over 2 GiB; this leaves 512 MiB of it for the nodes and inline constants, and is the size at
#: which torch's own ``ONNXProgram.save`` switches too (SD 2's UNet alone is 3.5 GB in fp32).
EXTERNAL_DATA_THRESHOLD = 1536 * 2**20


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
        data_files: the external-data files holding the graph's weights, names in the folder of
            ``path`` (empty when the weights are inside ``path``).
    """

    path: Path
    format: str
    max_abs_diff: dict[str, float]
    fallback_reason: str | None = None
    data_files: tuple[str, ...] = ()

    @property
    def files(self) -> list[str]:
        """Every file name of the graph, in the order they are moved into place (the graph's
        own file last, so it never names a side file not yet there)."""
        return [*self.data_files, self.path.name]


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


def _write_onnx(graph: ExportGraph, path: Path, threshold: int) -> None:
    """torch.export-based ONNX; the TorchScript-based exporter when that one fails. Weights over
    ``threshold`` bytes go to ``<path>.data``."""
    names = {"input_names": list(graph.inputs), "output_names": list(graph.outputs)}
    args = tuple(graph.inputs.values())
    try:
        program = torch.onnx.export(
            graph.module, args, dynamo=True, opset_version=OPSET,
            dynamic_shapes=_dynamic_shapes(graph), **names,
        )  # fmt: skip
    except Exception as error:  # the exporters raise many types; the next one is tried
        logger.info("%s: torch.export-based ONNX failed (%s); trying TorchScript-based ONNX",
                    graph.name, str(error).splitlines()[0][:200])  # fmt: skip
    else:
        initializers = program.model.graph.initializers.values()
        size = sum(v.const_value.nbytes for v in initializers if v.const_value is not None)
        # save writes the side file as f"{path.name}.data", beside path
        program.save(path, external_data=size > threshold)
        return
    # Over 2 GiB this exporter writes one side file per tensor: written apart, then re-saved.
    raw = path.parent / "torchscript"
    raw.mkdir()
    torch.onnx.export(
        graph.module, args, str(raw / path.name), dynamo=False, opset_version=OPSET,
        dynamic_axes=graph.dynamic or None, **names,
    )  # fmt: skip
    model = onnx.load(raw / path.name)  # with its side files' tensors
    size = sum(tensor.ByteSize() for tensor in model.graph.initializer)
    onnx.save_model(
        model, path, save_as_external_data=size > threshold, all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )  # fmt: skip
    shutil.rmtree(raw)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of ``graph``: its initializers and those in node attributes, subgraphs'
    included (where external data may point)."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            yield from [attribute.t, *attribute.tensors]
            for subgraph in [attribute.g, *attribute.graphs]:
                yield from _tensors(subgraph)


def external_data_files(path: Path) -> list[str]:
    """The external-data files an ONNX file's tensors point to, as it names them (relative to
    its folder), in first-use order; read without loading the weights."""
    model = onnx.load(path, load_external_data=False)
    locations = [
        entry.value
        for tensor in _tensors(model.graph)
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    ]
    return list(dict.fromkeys(locations))


def onnx_outputs(path: Path, inputs: dict[str, Tensor]) -> list[np.ndarray]:
    """Run an ONNX file in onnxruntime (CPU) on ``inputs`` (those it declares); its external
    data, if any, is read from its folder.

    Raises:
        FileNotFoundError: a side file the graph names is missing; the message names it.
    """
    return onnx_runs(path, [inputs])[0]


def onnx_runs(path: Path, inputs: list[dict[str, Tensor]]) -> list[list[np.ndarray]]:
    """:func:`onnx_outputs` on each of ``inputs`` in turn, from one onnxruntime session (at
    paper size a session holds the weights once more, and its arena the activations)."""
    import onnxruntime

    for name in external_data_files(path):
        if not (path.parent / name).is_file():
            raise FileNotFoundError(
                f"{path.parent / name}: the weights (ONNX external data) of {path} are missing; "
                "copy the export folder whole"
            )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = [item.name for item in session.get_inputs()]
    feeds = [{name: one[name].cpu().numpy() for name in declared} for one in inputs]
    return [session.run(None, feed) for feed in feeds]


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


def export_graph(
    graph: ExportGraph,
    folder: Path,
    prefix: str,
    tolerance: float,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> ExportedGraph:
    """Write ``graph`` to ``folder/<prefix>_<name>.onnx`` (or ``.pt``), its weights to
    ``<prefix>_<name>.onnx.data`` beside it when they exceed ``external_data_threshold`` bytes,
    and check it on its example and on each of ``graph.checks``.

    Raises:
        ExportParityError naming the graph and the output when the exported network's output
        differs from PyTorch's by more than ``tolerance`` (nothing is left at the destination).
    """
    folder.mkdir(parents=True, exist_ok=True)
    graph.module.eval()
    stem = f"{prefix}_{graph.name}"
    # PyTorch's outputs first, so that the network's activations are gone before the exporter
    # and onnxruntime take their share of memory (a paper-size SAMA needs every GiB).
    examples = [graph.inputs, *graph.checks]
    expected = [torch_outputs(graph, inputs) for inputs in examples]
    gc.collect()
    # The files get their final names in a private folder: an ONNX file names its side file
    # relative to itself, so both move out unchanged once the check passes.
    work = folder / f".{stem}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    fallback, data_files = None, ()
    try:
        try:
            path = work / f"{stem}.onnx"
            with accurate_group_norms(graph.module):
                _write_onnx(graph, path, external_data_threshold)
            gc.collect()  # what the exporter left in reference cycles, before onnxruntime loads
            data_files = tuple(external_data_files(path))
            kind = "onnx"
        except Exception as error:
            fallback = str(error).splitlines()[0][:300]
            logger.warning(
                "%s: ONNX cannot express it (%s); writing TorchScript", graph.name, fallback
            )
            path = work / f"{stem}.pt"
            with torch.no_grad():
                traced = torch.jit.trace(graph.module, tuple(graph.inputs.values()), strict=False)
            torch.jit.save(traced, str(path))
            loaded = torch.jit.load(str(path))
            with torch.no_grad():
                exported_outputs = [list(_as_tuple(loaded(*one.values()))) for one in examples]
            del traced, loaded
            kind = "torchscript"
        if kind == "onnx":
            exported_outputs = onnx_runs(path, examples)
        differences: dict[str, float] = {}
        for ours, reference in zip(exported_outputs, expected, strict=True):
            found = _differences(graph, ours, reference)
            # NaN (a non-finite output) is kept as the worst difference: it never passes.
            differences = {k: _worse(v, differences.get(k, 0.0)) for k, v in found.items()}
        failing = [name for name, value in differences.items() if not value <= tolerance]
        worst = failing[0] if failing else max(differences, key=differences.get)
        if failing:
            raise ExportParityError(
                f"{graph.name}: the exported {worst} differs from PyTorch's by "
                f"{differences[worst]:.3g} (tolerance {tolerance:g}); nothing written"
            )
        exported = ExportedGraph(folder / path.name, kind, differences, fallback, data_files)
        for name in exported.files:
            os.replace(work / name, folder / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return exported
