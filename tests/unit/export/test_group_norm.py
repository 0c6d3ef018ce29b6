"""GroupNorm in an exported graph: the same function as PyTorch's, and onnxruntime computes it
to PyTorch's accuracy where its InstanceNormalization kernel does not (a prompt map's constant
regions)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mattekit.export import exporter
from mattekit.export.exporter import onnx_outputs
from mattekit.export.graphs import ExportGraph
from mattekit.export.group_norm import BlockedGroupNorm, accurate_group_norms, block_length


def test_the_block_length_divides_the_count_near_its_square_root():
    assert block_length(262_144) == 512  # 4 channels x 256 x 256
    assert block_length(12) == 4 and block_length(36) == 6
    assert block_length(13) == 1 and block_length(1) == 1  # a prime: one level


@pytest.mark.parametrize("shape", [(2, 12, 5, 7), (2, 12, 35), (1, 12, 4, 4, 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_blocked_group_norm_is_pytorchs_group_norm(shape, affine):
    torch.manual_seed(0)
    norm = nn.GroupNorm(4, 12, eps=1e-5, affine=affine)
    if affine:
        nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    x = torch.randn(shape) * 3 + 2
    expected = F.group_norm(x, 4, norm.weight, norm.bias, 1e-5)
    torch.testing.assert_close(BlockedGroupNorm(norm)(x), expected, atol=1e-5, rtol=1e-5)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(2, 4)
        self.inner = nn.Sequential(nn.Conv2d(4, 4, 1), nn.GroupNorm(1, 4))

    def forward(self, x):
        return self.inner(self.norm(x))


def test_the_swap_covers_nested_norms_and_is_undone_even_on_error():
    block = Block()
    with accurate_group_norms(block) as swapped:
        assert swapped == 2
        assert isinstance(block.norm, BlockedGroupNorm) and block.norm.norm.num_groups == 2
        assert isinstance(block.inner[1], BlockedGroupNorm)
    assert type(block.norm) is nn.GroupNorm and type(block.inner[1]) is nn.GroupNorm
    with pytest.raises(RuntimeError, match="during export"), accurate_group_norms(block):
        raise RuntimeError("during export")
    assert type(block.norm) is nn.GroupNorm


def test_onnxruntime_runs_the_blocked_norm_to_pytorchs_accuracy(tmp_path):
    """Random spots on a constant map (a prompt map's kind of input), 32 groups over
    128 x 128 x 128, against fp64. Measured over these four maps: PyTorch 3e-8 to 2e-7, the
    plain export 3.4e-5 to 6.6e-5, blocked 2e-8 to 1e-7."""
    # the swap replaces a module's children: a bare norm is wrapped, as a family's graph is
    network = nn.Sequential(nn.GroupNorm(32, 128, eps=1e-6)).eval()
    graph = ExportGraph("norm", network, {"x": torch.zeros(1, 128, 128, 128)}, ("out",))
    exporter._write_onnx(graph, tmp_path / "plain.onnx", threshold=2**31)
    with accurate_group_norms(network):
        exporter._write_onnx(graph, tmp_path / "blocked.onnx", threshold=2**31)
    for seed in range(4):
        spots = torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(seed)) < 0.2
        x = torch.where(spots, 7.0, 3.0).expand(1, 128, 128, 128).contiguous()
        reference = F.group_norm(x.double(), 32, None, None, 1e-6)

        def error(path, x=x, reference=reference) -> float:
            out = torch.from_numpy(onnx_outputs(path, {"x": x})[0]).double()
            return float((out - reference).abs().max())

        plain, blocked = error(tmp_path / "plain.onnx"), error(tmp_path / "blocked.onnx")
        assert blocked < 1e-6 and plain > 1e-5, (seed, blocked, plain)
