"""Small convolutional building blocks shared by the families' decoders and heads."""

from __future__ import annotations

from torch import Tensor, nn


def group_count(channels: int, max_groups: int = 8) -> int:
    """The largest number of GroupNorm groups <= ``max_groups`` that divides ``channels``.

    GroupNorm needs ``channels % groups == 0``: 12 channels get 6 groups, 20 get 5, 7 get 7
    (one per channel), 64 get 8; a prime above ``max_groups`` (11) gets a single group.
    """
    return max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)


class ConvNormAct(nn.Sequential):
    """Conv2d -> GroupNorm -> GELU, padding chosen to keep the spatial size at stride 1.

    GroupNorm rather than BatchNorm because matting batches are small (often 1-4 per GPU); its
    group count is :func:`group_count` of the output channels (at most ``groups``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 8,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.GroupNorm(group_count(out_channels, groups), out_channels),
            nn.GELU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)


class ConvBNReLU(nn.Sequential):
    """Conv2d -> BatchNorm -> ReLU, size-preserving at stride 1 (TeachDiffusionMatting's heads
    and decoder, which the paper names ConvBNReLU)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
