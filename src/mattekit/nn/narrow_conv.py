"""A float32 detour around a CPU bf16 convolution bug that the tiny UNets meet at test sizes.

oneDNN's bf16 backward-weights kernel on the CPU (``jit_bf16:avx512_core_bf16``, seen with torch
2.14 on an AVX512-BF16 CPU) leaves part of the weight gradient unwritten when the input is one
column wide and the horizontal stride is 2 or more: the taps that only ever meet padding should
get exactly 0 and get whatever the allocator's block held (up to 1e38, inf or NaN, varying
from run to run). SD's UNet downsamplers (3 x 3, stride 2, padding 1) meet such an input when
the latent is at most 4 wide (images up to 32 px): the tiny variant's CPU tests under
``bf16-mixed``. Those convolutions run in float32 instead, which is exact there; every other
call, float32 and fp16 ones included, takes ``nn.Conv2d``'s own path unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _meets_the_bug(conv: nn.Conv2d, input: Tensor) -> bool:
    """The convolution would run oneDNN's bf16 backward-weights kernel on a 1-wide input."""
    # dtype and autocast first: float32 runs (and their exports) never look at the shape
    bf16 = input.dtype == torch.bfloat16 or (
        torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )
    return (
        bf16
        and input.device.type == "cpu"
        and conv.stride[-1] > 1
        and input.shape[-1] == 1
        and conv.weight.requires_grad
    )


class NarrowInputConv2d(nn.Conv2d):
    """``nn.Conv2d`` computed in float32 (output cast back to bf16) where :func:`_meets_the_bug`;
    same parameters and state dict keys."""

    def forward(self, input: Tensor) -> Tensor:
        """B x C x H x W -> B x C' x H' x W' (bf16 where the input or autocast is bf16)."""
        if not _meets_the_bug(self, input):
            return super().forward(input)
        bias = None if self.bias is None else self.bias.float()
        with torch.autocast("cpu", enabled=False):
            output = self._conv_forward(input.float(), self.weight.float(), bias)
        return output.to(torch.bfloat16)


def guard_narrow_strided_convs(module: nn.Module) -> None:
    """Every plain ``nn.Conv2d`` of ``module`` with a horizontal stride above 1 becomes a
    :class:`NarrowInputConv2d` in place (its class swapped: loaded weights, hooks and state
    dict keys stay)."""
    for conv in module.modules():
        if type(conv) is nn.Conv2d and conv.stride[-1] > 1:
            conv.__class__ = NarrowInputConv2d
