"""A graph whose weights exceed the threshold keeps them in one side file (ONNX external data),
beside it: staged and moved with it, listed in the manifest, read back by onnxruntime from the
folder, and refused with the file's name when it is missing. The threshold is forced low here;
by default it sits under protobuf's 2 GiB limit."""

import json
import re

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mattekit.export import exporter
from mattekit.export.exporter import (
    EXTERNAL_DATA_THRESHOLD,
    export_graph,
    external_data_files,
    onnx_outputs,
)
from mattekit.export.graphs import ExportGraph
from mattekit.export.manifest import MANIFEST, read_export

WIDTH = 256
#: What goes to the side file: tensors over 256 bytes (the biases of 8 and 256 floats stay
#: inline). 264 KiB: tens of times the graph's own nodes and metadata.
MATRIX_BYTES = (WIDTH * WIDTH + WIDTH * 8) * 4


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, 8)

    def forward(self, x: Tensor) -> Tensor:
        return self.second(self.first(x).relu())


def mlp_graph() -> ExportGraph:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    return ExportGraph(
        "model", Mlp(), {"x": torch.randn(2, WIDTH, generator=generator)}, ("y",),
        checks=[{"x": torch.randn(2, WIDTH, generator=generator)}],
    )  # fmt: skip


def test_weights_over_the_threshold_go_to_one_side_file_that_onnxruntime_reads(tmp_path):
    graph = mlp_graph()
    done = export_graph(graph, tmp_path, "mlp", tolerance=1e-5, external_data_threshold=1024)
    assert done.format == "onnx" and done.data_files == ("mlp_model.onnx.data",)
    assert done.files == ["mlp_model.onnx.data", "mlp_model.onnx"]
    # Only the two files: the private folder the check ran in is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp_model.onnx", "mlp_model.onnx.data"]
    assert (tmp_path / "mlp_model.onnx.data").stat().st_size >= MATRIX_BYTES
    assert done.path.stat().st_size < MATRIX_BYTES / 16
    assert external_data_files(done.path) == ["mlp_model.onnx.data"]
    x = torch.randn(2, WIDTH, generator=torch.Generator().manual_seed(2))
    (y,) = onnx_outputs(done.path, {"x": x})
    with torch.no_grad():
        np.testing.assert_allclose(y, graph.module(x).numpy(), atol=1e-5)


def test_weights_under_the_threshold_stay_in_the_graph_file(tmp_path):
    assert EXTERNAL_DATA_THRESHOLD == 1536 * 2**20
    done = export_graph(mlp_graph(), tmp_path, "mlp", tolerance=1e-5)
    assert done.data_files == () and done.files == ["mlp_model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["mlp_model.onnx"]
    assert done.path.stat().st_size > MATRIX_BYTES and external_data_files(done.path) == []


def test_the_torchscript_based_exporter_writes_the_same_one_side_file(tmp_path, monkeypatch):
    """Where torch.export fails, the older exporter's file (one side file per tensor when over
    2 GiB) is re-saved with a single side file of the same name."""
    export = torch.onnx.export

    def no_torch_export(*args, dynamo: bool, **kwargs):
        if dynamo:
            raise RuntimeError("torch.export cannot trace it")
        return export(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(exporter.torch.onnx, "export", no_torch_export)
    graph = mlp_graph()
    done = export_graph(graph, tmp_path, "mlp", tolerance=1e-5, external_data_threshold=1024)
    assert done.format == "onnx" and done.data_files == ("mlp_model.onnx.data",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp_model.onnx", "mlp_model.onnx.data"]
    assert done.path.stat().st_size < MATRIX_BYTES / 16 and done.max_abs_diff["y"] < 1e-5


def test_a_graph_whose_side_file_is_missing_is_refused_naming_it(tmp_path):
    done = export_graph(mlp_graph(), tmp_path, "mlp", tolerance=1e-5, external_data_threshold=0)
    (tmp_path / "mlp_model.onnx.data").unlink()
    missing = re.escape(str(tmp_path / "mlp_model.onnx.data"))
    with pytest.raises(FileNotFoundError, match=f"^{missing}: the weights .* of .*mlp_model.onnx"):
        onnx_outputs(done.path, {"x": torch.zeros(1, WIDTH)})


def test_an_export_lists_its_side_files_in_the_manifest_and_replaces_them(
    tiny_checkpoint, tmp_path
):
    from mattekit.inference.checkpoint_model import CheckpointModel
    from mattekit.pipelines.export import export_checkpoint

    runner, out = CheckpointModel(tiny_checkpoint("baseline"), image_size=32), tmp_path / "exported"
    export_checkpoint(runner, out, "baseline", external_data_threshold=0)
    files = ["baseline_model.onnx", "baseline_model.onnx.data"]
    assert sorted(p.name for p in out.iterdir()) == [*files, MANIFEST]
    (graph,) = read_export(out)["graphs"]
    assert graph["file"] == files[0] and graph["data_files"] == [files[1]]
    assert graph["max_abs_diff"]["alpha"] <= 1e-4

    (out / files[1]).rename(tmp_path / files[1])
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(str(out / files[1]))}: named by"):
        read_export(out)
    (tmp_path / files[1]).rename(out / files[1])
    # Exported again under the default threshold: the previous side file goes with its set.
    export_checkpoint(runner, out, "baseline")
    assert sorted(p.name for p in out.iterdir()) == [files[0], MANIFEST]
    assert read_export(out)["graphs"][0]["data_files"] == []


def test_a_manifest_naming_a_side_file_elsewhere_is_refused(tmp_path):
    (tmp_path / "m_model.onnx").write_bytes(b"onnx")
    graphs = [{"name": "model", "file": "m_model.onnx", "data_files": ["../m_model.onnx.data"]}]
    (tmp_path / MANIFEST).write_text(json.dumps({"graphs": graphs}))
    with pytest.raises(ValueError, match="and so does each of its data_files"):
        read_export(tmp_path)
