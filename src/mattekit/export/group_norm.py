"""GroupNorm written into an ONNX graph so that onnxruntime computes it as accurately as PyTorch.

PyTorch's ``group_norm`` exports as ``InstanceNormalization``, and onnxruntime's CPU kernel for
it loses digits in its sums over a group (64 K values for 4 channels of 128 x 128; a 512 px
input's first VAE layer holds 1 M). On a prompt map (constant regions, sparse edges) the error
reaches the alpha: paper-size SDMatte's graph drifted 7.1e-3 from PyTorch at 512 px, and
5.7e-4 at 256, while PyTorch's fp32 stayed within 1.2e-5 of fp64. Written as a mean of block
means (about sqrt(n) values each), the same graph drifts 1.1e-5 at 256. On a 32-group norm
over 128 x 128 x 128 (``tests/unit/export/test_group_norm.py``, against fp64): the kernel
3.4e-5 to 6.6e-5, the blocked means at most 1e-7, as PyTorch.

:func:`accurate_group_norms` swaps each ``nn.GroupNorm`` of a module for
:class:`BlockedGroupNorm` (same weights, same function) while the exporter traces it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn


def block_length(count: int) -> int:
    """The largest divisor of ``count`` that is at most ``ceil(sqrt(count))``: a mean over
    ``count`` values becomes a mean of means over about sqrt(count) values each."""
    for length in range(math.isqrt(count - 1) + 1 if count > 1 else 1, 0, -1):
        if count % length == 0:
            return length
    return 1


class BlockedGroupNorm(nn.Module):
    """``norm``'s function with every mean over a group taken as a mean of block means.

    Args:
        norm: the ``nn.GroupNorm`` whose groups, eps and affine weights are used.
    """

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        """B x C x ... -> the same shape."""
        norm, shape = self.norm, x.shape
        if not all(isinstance(size, int) for size in shape):
            return norm(x)  # a dynamic axis: the block length is not known at export
        count = math.prod(shape[1:]) // norm.num_groups
        length = block_length(count)
        grouped = x.reshape(shape[0], norm.num_groups, count // length, length)

        def mean(values: Tensor) -> Tensor:
            return values.mean(-1, keepdim=True).mean(-2, keepdim=True)

        centred = grouped - mean(grouped)
        normalised = (centred / (mean(centred * centred) + norm.eps).sqrt()).reshape(shape)
        if not norm.affine:
            return normalised
        per_channel = (1, -1) + (1,) * (x.ndim - 2)
        return normalised * norm.weight.view(per_channel) + norm.bias.view(per_channel)


@contextmanager
def accurate_group_norms(module: nn.Module) -> Iterator[int]:
    """Within the block, every ``nn.GroupNorm`` below ``module`` (its children's, at any depth;
    not ``module`` itself) is a :class:`BlockedGroupNorm` around it; yields how many were
    swapped. The originals are back on exit, errors included."""
    swapped: list[tuple[nn.Module, str, nn.GroupNorm]] = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.GroupNorm):
                swapped.append((parent, name, child))
                setattr(parent, name, BlockedGroupNorm(child))
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
