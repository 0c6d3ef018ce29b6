"""The exporter writes a file only when it reproduces PyTorch: on its example, on further input
sets (a graph that froze a value of the example fails them), in ONNX or, where ONNX cannot
express the network, TorchScript."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mattekit.export import exporter
from mattekit.export.exporter import ExportParityError, export_graph, onnx_outputs
from mattekit.export.graphs import ExportGraph
from mattekit.models.sam.export import flatten_features, unflatten_features


class Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, image: Tensor, gain: Tensor) -> tuple[Tensor, Tensor]:
        out = self.conv(image) * gain[:, None, None, None]
        return out.sigmoid(), out


def inputs(seed: int, size: int = 8) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=generator)
    return {"image": image, "gain": torch.rand(1, generator=generator) + 1}


def test_an_onnx_export_reproduces_pytorch_on_every_input_set(tmp_path):
    torch.manual_seed(0)
    module = Scale()
    graph = ExportGraph(
        "model", module, inputs(0), ("alpha", "logits"),
        dynamic={"image": {2: "height", 3: "width"}}, checks=[inputs(1, size=12)],
    )  # fmt: skip
    done = export_graph(graph, tmp_path, "scale", tolerance=1e-5)
    assert done.path == tmp_path / "scale_model.onnx" and done.format == "onnx"
    assert set(done.max_abs_diff) == {"alpha", "logits"}
    assert max(done.max_abs_diff.values()) < 1e-5
    alpha, _ = onnx_outputs(done.path, inputs(2, size=16))  # another size: dynamic axes
    with torch.no_grad():
        expected = module(**inputs(2, size=16))
    np.testing.assert_allclose(alpha, expected[0].numpy(), atol=1e-5)
    assert list(tmp_path.iterdir()) == [done.path]  # no temporary file left


class FrozenBranch(nn.Module):
    """A Python branch on a value: tracing keeps only the branch the example took."""

    def forward(self, x: Tensor) -> Tensor:
        return x * 2 if bool(x.sum() > 0) else x * 3


def test_a_graph_that_froze_a_value_fails_and_leaves_no_file(tmp_path):
    graph = ExportGraph(
        "model", FrozenBranch(), {"x": torch.ones(1, 4)}, ("y",), checks=[{"x": -torch.ones(1, 4)}]
    )
    with pytest.raises(ExportParityError, match=r"model: the exported y differs .* by 1 "):
        export_graph(graph, tmp_path, "frozen", tolerance=1e-4)
    assert list(tmp_path.iterdir()) == []


class NotANumber(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.tensor(float("nan"))


def test_a_graph_with_non_finite_outputs_fails_and_leaves_no_file(tmp_path):
    graph = ExportGraph("model", NotANumber(), {"x": torch.ones(1, 4)}, ("y",))
    with pytest.raises(ExportParityError, match=r"model: the exported y differs .* by nan "):
        export_graph(graph, tmp_path, "nan", tolerance=1e-4)
    assert list(tmp_path.iterdir()) == []


@torch.library.custom_op("mattekit_test::twice", mutates_args=())
def twice(x: Tensor) -> Tensor:
    return x * 2


@twice.register_fake
def _(x: Tensor) -> Tensor:
    return torch.empty_like(x)


class CustomOp(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return twice(x) + 1


def test_what_onnx_cannot_express_is_written_as_torchscript(tmp_path):
    graph = ExportGraph("model", CustomOp(), {"x": torch.rand(2, 3)}, ("y",))
    done = export_graph(graph, tmp_path, "custom", tolerance=1e-6)
    assert done.format == "torchscript" and done.path.suffix == ".pt"
    assert done.fallback_reason and done.max_abs_diff["y"] == 0.0
    x = torch.rand(4, 3)
    assert torch.equal(torch.jit.load(str(done.path))(x), x * 2 + 1)


@dataclass
class Features:
    embedding: Tensor
    pyramid: tuple[Tensor, ...] = ()
    local: Tensor | None = None


def test_image_features_flatten_to_named_tensors_and_back():
    features = Features(torch.rand(1, 4), (torch.rand(1, 2), torch.rand(1, 3)))
    flat = flatten_features(features)
    assert list(flat) == ["embedding", "pyramid_0", "pyramid_1"]
    again = unflatten_features(features, tuple(flat.values()))
    assert again.embedding is features.embedding and again.pyramid[1] is features.pyramid[1]
    assert again.local is None


def test_pytorch_runs_before_the_export_and_one_onnxruntime_session_checks_every_input_set(
    tmp_path, monkeypatch
):
    """At paper size the network's activations and a second copy of the weights in each
    onnxruntime session do not fit together: PyTorch's outputs are computed and cached first,
    then a single session runs every input set."""
    import onnxruntime

    events = []
    real_session = onnxruntime.InferenceSession

    def counted_session(*args, **kwargs):
        events.append("session")
        return real_session(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counted_session)
    torch.manual_seed(0)
    module = Scale()
    graph = ExportGraph(
        "model", module, inputs(0), ("alpha", "logits"),
        dynamic={"image": {2: "height", 3: "width"}}, checks=[inputs(1, 12), inputs(2, 10)],
    )  # fmt: skip
    module.register_forward_hook(lambda *_: events.append("pytorch"))  # tracing calls it too
    write_onnx = exporter._write_onnx

    def recorded_write(*args, **kwargs):
        events.append("write")
        return write_onnx(*args, **kwargs)

    monkeypatch.setattr(exporter, "_write_onnx", recorded_write)
    done = export_graph(graph, tmp_path, "scale", tolerance=1e-5)
    assert done.format == "onnx" and max(done.max_abs_diff.values()) < 1e-5
    assert events[: events.index("write")] == ["pytorch"] * 3  # every input set, first
    assert events.count("session") == 1
