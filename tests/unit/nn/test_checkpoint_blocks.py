"""``checkpoint_blocks``: when a block is recomputed, and what it refuses."""

import copy

import pytest
import torch
from torch import nn

from mattekit.nn.activation_checkpointing import checkpoint_blocks, is_checkpointed


class Counted(nn.Module):
    """A block whose body counts its runs (a recomputation runs it again)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.runs = 0

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        self.runs += 1
        return torch.tanh(self.linear(x)) * scale


def step(block: nn.Module, x: torch.Tensor) -> None:
    block(x, scale=2.0).square().sum().backward()


def test_a_trained_block_runs_again_in_backward_with_the_same_gradients():
    torch.manual_seed(0)
    plain, block = Counted(), Counted()
    block.load_state_dict(plain.state_dict())
    checkpoint_blocks([block], "Owner")
    x = torch.randn(3, 4)
    step(plain, x)
    step(block, x)
    assert (plain.runs, block.runs) == (1, 2)
    for name, parameter in block.named_parameters():
        assert torch.equal(parameter.grad, dict(plain.named_parameters())[name].grad)
    assert list(block.state_dict()) == ["linear.weight", "linear.bias"]  # names unchanged


def test_without_grad_or_frozen_and_fed_no_gradient_the_plain_forward_runs_once():
    block = Counted()
    checkpoint_blocks([block], "Owner")
    with torch.no_grad():
        block(torch.randn(3, 4))
    assert block.runs == 1
    block.requires_grad_(False)
    x = torch.randn(3, 4)
    assert not block(x).requires_grad
    assert block.runs == 2
    # Frozen, but its input needs a gradient: the activations are kept, so it is recomputed.
    x.requires_grad_(True)
    block(x).sum().backward()
    assert block.runs == 4 and x.grad is not None


def test_a_copy_recomputes_itself_not_the_original():
    block = Counted()
    checkpoint_blocks([block], "Owner")
    twin = copy.deepcopy(block)
    assert is_checkpointed(twin)
    step(twin, torch.randn(3, 4))
    assert (block.runs, twin.runs) == (0, 2)


def test_no_blocks_or_a_block_with_batchnorm_is_refused_naming_the_owner():
    with pytest.raises(ValueError, match="Owner: activation_checkpointing is on but"):
        checkpoint_blocks([], "Owner")
    with pytest.raises(ValueError, match=r"Owner: Sequential .* BatchNorm 1"):
        checkpoint_blocks([nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))], "Owner")
