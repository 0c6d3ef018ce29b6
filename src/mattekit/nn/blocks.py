"""Small convolutional building blocks shared by the families' decoders and heads."""

from __future__ import annotations

from torch import Tensor, nn


class ConvNormAct(nn.Sequential):
    """Conv2d -> GroupNorm -> GELU, padding chosen to keep the spatial size at stride 1.

    GroupNorm rather than BatchNorm because matting batches are small (often 1-4 per GPU).
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
            nn.GroupNorm(min(groups, out_channels), out_channels),
            nn.GELU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
