"""TeachMatte under bf16 on the CPU: the UNets' strided convolutions on 1-wide inputs.

oneDNN's bf16 backward-weights kernel leaves part of such a convolution's weight gradient
unwritten (:mod:`mattekit.nn.narrow_conv`): it holds whatever the allocator's
block held. Each check frees NaN-filled blocks of the gradient's size first, so that the
unwritten part reads as NaN.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mattekit.models import MODELS
from mattekit.nn.narrow_conv import NarrowInputConv2d, guard_narrow_strided_convs

REPEATS = 5
#: The tiny teacher's one strided convolution that meets a 1-wide input at 32 px.
NARROW = "down_blocks.2.downsamplers.0.conv"


def free_nan_blocks(numel: int) -> None:
    """Blocks of ``numel`` float32 NaNs allocated and freed: the kernel's float32 buffer for
    a gradient of ``numel`` elements gets one back, uninitialised (without them a fresh
    process's first backward reads zeroed pages and passes)."""
    for _ in range(4):
        torch.full((numel,), float("nan"))


def test_teacher_bf16_weight_gradients_are_exact_on_a_one_wide_latent(synthetic_batch):
    """The tiny teacher at 32 px: its last downsampler (3 x 3, stride 2, padding 1) meets a
    1 x 1 input. Its weight gradient's outer columns only see padding: exactly 0, and every
    gradient finite, in each of :data:`REPEATS` bf16 backward passes."""
    torch.manual_seed(0)
    batch = synthetic_batch(32, 2, stage="train")
    entry = MODELS["teachmatte"]
    module = entry.cls(**entry.tiny, stage="teacher").train()
    batch = module.prompted(batch, "train")
    downsampler = module.model.unet.get_submodule(NARROW)
    widths = {}
    for name, conv in module.model.unet.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.stride[-1] > 1:
            conv.register_forward_hook(
                lambda _, inputs, __, name=name: widths.__setitem__(name, inputs[0].shape[-1])
            )
    for _ in range(REPEATS):
        module.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = module.weighted_loss(module.training_outputs(batch), batch)
        free_nan_blocks(downsampler.weight.numel())
        loss.backward()
        assert [name for name, width in widths.items() if width == 1] == [NARROW]
        weight = downsampler.weight.grad
        outer = weight[..., [0, 2]].float()
        unwritten = int(torch.count_nonzero(outer))  # NaN counts too
        assert unwritten == 0, f"{unwritten} taps not 0, largest {outer.abs().max().item()}"
        nonfinite = [
            name
            for name, p in module.named_parameters()
            if p.grad is not None and not torch.isfinite(p.grad).all()
        ]
        assert nonfinite == []


def test_narrow_input_conv_under_bf16_autocast_is_the_float32_convolution():
    """On a 1-wide input under bf16 autocast: the float32 convolution's gradients exactly, its
    output rounded to bf16 (without the detour the outer columns hold garbage)."""
    for trial in range(REPEATS):
        torch.manual_seed(trial)
        guarded = NarrowInputConv2d(64, 64, 3, stride=2, padding=1)
        plain = nn.Conv2d(64, 64, 3, stride=2, padding=1)
        plain.load_state_dict(guarded.state_dict())
        image = torch.randn(2, 64, 1, 1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = guarded(image)
        expected = plain(image)
        free_nan_blocks(guarded.weight.numel())
        output.float().sum().backward()
        expected.sum().backward()
        assert output.dtype == torch.bfloat16
        assert torch.equal(output, expected.bfloat16())
        assert torch.equal(guarded.weight.grad, plain.weight.grad)
        assert torch.equal(guarded.bias.grad, plain.bias.grad)


@pytest.mark.parametrize(
    ("precision", "width"),
    [("float32", 1), ("float32", 4), ("fp16-autocast", 1), ("fp16-autocast", 4), ("bf16", 4)],
)
def test_narrow_input_conv_is_nn_conv2d_everywhere_else(precision, width):
    """float32, fp16 autocast, and bf16 autocast on an input wider than 1: ``nn.Conv2d``'s
    outputs and gradients, bit for bit."""
    torch.manual_seed(0)
    guarded = NarrowInputConv2d(8, 4, 3, stride=2, padding=1)
    plain = nn.Conv2d(8, 4, 3, stride=2, padding=1)
    plain.load_state_dict(guarded.state_dict())
    image = torch.randn(2, 8, 5, width)
    dtype = {"fp16-autocast": torch.float16, "bf16": torch.bfloat16}.get(precision)
    outputs = []
    for conv in (guarded, plain):
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            output = conv(image)
        output.float().square().sum().backward()
        outputs.append(output)
    assert outputs[0].dtype == outputs[1].dtype
    assert torch.equal(outputs[0], outputs[1])
    assert torch.equal(guarded.weight.grad, plain.weight.grad)


def test_guard_swaps_only_horizontally_strided_plain_convolutions():
    """Strided ``nn.Conv2d`` become :class:`NarrowInputConv2d` with their weights and state
    dict keys; stride-1 and subclassed convolutions stay as they are."""

    class Own(nn.Conv2d):
        pass

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 3, 3, stride=2), nn.Conv2d(3, 3, 3), nn.Conv2d(3, 3, 3, stride=(2, 1)),
        Own(3, 3, 3, stride=2),
    )  # fmt: skip
    before = {key: value.clone() for key, value in net.state_dict().items()}
    guard_narrow_strided_convs(net)
    assert [type(conv) for conv in net] == [NarrowInputConv2d, nn.Conv2d, nn.Conv2d, Own]
    after = net.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[key], value) for key, value in before.items())
    image = torch.randn(1, 3, 9, 9)
    assert torch.equal(net[0](image), F.conv2d(image, net[0].weight, net[0].bias, stride=2))


def test_teacher_float32_step_is_unchanged_by_the_guard(synthetic_batch):
    """The tiny teacher's float32 loss and gradients with its guarded convolutions are those of
    the same network with plain ``nn.Conv2d`` back, bit for bit."""
    torch.manual_seed(0)
    batch = synthetic_batch(32, 2, stage="train")
    entry = MODELS["teachmatte"]
    module = entry.cls(**entry.tiny, stage="teacher").train()
    batch = module.prompted(batch, "train")
    guarded = [conv for conv in module.modules() if type(conv) is NarrowInputConv2d]
    assert module.model.unet.get_submodule(NARROW) in guarded
    results = []
    for conv_class in (NarrowInputConv2d, nn.Conv2d):
        for conv in guarded:
            conv.__class__ = conv_class
        module.zero_grad()
        loss, _ = module.weighted_loss(module.training_outputs(batch), batch)
        loss.backward()
        results.append(
            (loss.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None])
        )
    (loss, grads), (plain_loss, plain_grads) = results
    assert torch.equal(loss, plain_loss)
    assert len(grads) == len(plain_grads) and all(map(torch.equal, grads, plain_grads))
