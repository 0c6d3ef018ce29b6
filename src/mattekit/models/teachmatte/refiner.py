"""The high-resolution sparse upsampling module (paper appendix 6.3): alpha computed only
where it is uncertain.

Two groups, each doubling the resolution. Each group's input is, as the appendix says, the
up-interpolated alpha (the previous group's), the matting decoder's context features (computed
at 512 px, interpolated to the group's size) and the image at that size. It is convolved only at
*active* pixels, ``0.01 < alpha < 0.99``; elsewhere the upsampled alpha stands. The convolutions
are submanifold sparse convolutions: outputs at active pixels only, from active inputs only.
``context="previous"`` keeps mattekit's earlier form, where group 2 read group 1's features.

Two backends compute the same thing:

- ``dense`` (always available): zero the inactive inputs, convolve densely, keep active outputs,
  batch statistics over active pixels only. It spends the dense cost; it exists so that every
  machine runs the module and trains it.
- ``spconv`` (the optional extra ``pip install mattekit[sparse]``): spconv's ``SubMConv2d`` on
  the active pixels only, with the dense backend's weights. A test checks the two agree.
  On the CPU it runs with one torch thread: with two, spconv 2.3.8's CPU kernels returned
  values off by up to 0.16 here (a replication of the release saw the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVE_RANGE = (0.01, 0.99)


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Torch on one thread inside the block when ``device`` is the CPU (restored after)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class MaskedBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose statistics and output cover the active pixels only (spconv's BatchNorm1d
    over active features). ``forward(x, mask)``: B x C x H x W, mask B x 1 x H x W in {0, 1}."""

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        if not self.training:
            return super().forward(x) * mask
        active = x.permute(1, 0, 2, 3)[:, mask[:, 0] > 0]  # C x N
        if active.shape[1] < 2:
            return x * mask
        mean, var = active.mean(1), active.var(1, unbiased=False)
        with torch.no_grad():
            count = active.shape[1]
            momentum = self.momentum if self.momentum is not None else 0.1
            self.running_mean.lerp_(mean, momentum)
            self.running_var.lerp_(var * count / (count - 1), momentum)
            self.num_batches_tracked += 1
        normed = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + self.eps)
        return (normed * self.weight[:, None, None] + self.bias[:, None, None]) * mask


class RefinementGroup(nn.Module):
    """One doubling: conv 3 x 3 -> BN -> LeakyReLU, twice, then a 1 x 1 alpha head."""

    def __init__(self, in_channels: int, widths: tuple[int, int] = (24, 16)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.Conv2d(*widths, 3, padding=1)]
        )
        self.norms = nn.ModuleList(MaskedBatchNorm(w) for w in widths)
        self.head = nn.Conv2d(widths[1], 1, 1)
        self.out_channels = widths[1]

    def dense(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(alpha residual, features)`` at the active pixels (0 elsewhere)."""
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.leaky_relu(norm(conv(x * mask) * mask, mask), 0.01)
        return self.head(x) * mask, x

    def sparse(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The same with spconv, on the active pixels only (eval-mode statistics)."""
        with one_cpu_thread(x.device):
            return self._sparse(x, mask)

    def _sparse(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        from spconv.pytorch import SparseConvTensor, SubMConv2d

        batch_index, rows, cols = torch.nonzero(mask[:, 0] > 0, as_tuple=True)
        indices = torch.stack([batch_index, rows, cols], 1).int()
        features = x.permute(0, 2, 3, 1)[batch_index, rows, cols]
        tensor = SparseConvTensor(features, indices, list(x.shape[-2:]), x.shape[0])
        for conv, norm in zip(self.convs, self.norms, strict=True):
            layer = SubMConv2d(conv.in_channels, conv.out_channels, 3, bias=True, indice_key="r")
            with torch.no_grad():  # spconv 2 stores kernels as out x kh x kw x in
                layer.weight.copy_(conv.weight.permute(0, 2, 3, 1))
                layer.bias.copy_(conv.bias)
            tensor = layer.to(x.device)(tensor)
            normed = F.batch_norm(
                tensor.features, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                False, 0.0, norm.eps,
            )  # fmt: skip
            tensor = tensor.replace_feature(F.leaky_relu(normed, 0.01))
        dense_features = tensor.dense()
        return self.head(dense_features) * mask, dense_features


class SparseRefiner(nn.Module):
    """Upsamples a 512-px alpha 2x per group, computing only at uncertain pixels.

    Args:
        context_channels: width of the decoder's context features.
        groups: doublings (the paper: 2, 512 -> 2048).
        backend: ``dense`` or ``spconv`` (eval only; needs the ``sparse`` extra).
        context: what groups after the first read: ``decoder``, the decoder's context
            (appendix 6.3), or ``previous``, the previous group's features.
    """

    def __init__(
        self,
        context_channels: int,
        groups: int = 2,
        backend: Literal["dense", "spconv"] = "dense",
        context: Literal["decoder", "previous"] = "decoder",
    ) -> None:
        super().__init__()
        if context not in ("decoder", "previous"):
            raise ValueError(f"context must be 'decoder' or 'previous', got {context!r}")
        first = RefinementGroup(3 + 1 + context_channels)
        width = context_channels if context == "decoder" else first.out_channels
        rest = [RefinementGroup(3 + 1 + width) for _ in range(groups - 1)]
        self.groups = nn.ModuleList([first, *rest])
        self.backend, self.context = backend, context

    def forward(self, image: Tensor, alpha: Tensor, context: Tensor) -> Tensor:
        """Args: image B x 3 x H' x W' at the target size; alpha B x 1 x h x w; context B x C x
        h x w. Returns the alpha B x 1 x H' x W' (each group doubles, the last lands on H')."""
        if self.backend == "spconv" and self.training:
            raise ValueError("the spconv backend runs in eval mode only; train with 'dense'")
        features = context
        for index, group in enumerate(self.groups):
            last = index == len(self.groups) - 1
            size = image.shape[-2:] if last else tuple(2 * s for s in alpha.shape[-2:])
            alpha = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
            source = context if self.context == "decoder" else features
            upsampled = F.interpolate(source, size=size, mode="bilinear", align_corners=False)
            low, high = ACTIVE_RANGE
            mask = ((alpha > low) & (alpha < high)).to(alpha.dtype)
            resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
            x = torch.cat([resized, alpha, upsampled], 1)
            run = group.sparse if self.backend == "spconv" else group.dense
            residual, features = run(x, mask)
            alpha = (alpha + residual).clamp(0, 1)
        return alpha
