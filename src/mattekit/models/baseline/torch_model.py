"""A small prompt-conditioned U-Net: the smoke model and the reference row of every comparison."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.nn.blocks import ConvNormAct


class PromptUNet(nn.Module):
    """U-Net over the image concatenated with prompt maps.

    Args:
        prompt_channels: number of prompt maps concatenated to the RGB image.
        base_channels: channels at full resolution; doubled at each of ``depth`` downsamplings.
        depth: number of downsamplings (the input side must be divisible by ``2 ** depth``).
    """

    def __init__(self, prompt_channels: int = 3, base_channels: int = 32, depth: int = 4) -> None:
        super().__init__()
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.stem = nn.Sequential(
            ConvNormAct(3 + prompt_channels, widths[0]), ConvNormAct(widths[0], widths[0])
        )
        self.down = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(widths[i], widths[i + 1], stride=2),
                ConvNormAct(widths[i + 1], widths[i + 1]),
            )
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(widths[i + 1] + widths[i], widths[i]), ConvNormAct(widths[i], widths[i])
            )
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], 1, 1)
        self.depth = depth

    def forward(self, image: Tensor, prompts: Tensor) -> Tensor:
        """Predict alpha logits.

        Args:
            image: B x 3 x H x W in [0, 1].
            prompts: B x P x H x W prompt maps in [0, 1].

        Returns:
            B x 1 x H x W logits.
        """
        multiple = 2**self.depth
        if image.shape[-1] % multiple or image.shape[-2] % multiple:
            raise ValueError(
                f"image side must be divisible by {multiple}, got {tuple(image.shape[-2:])}"
            )
        x = self.stem(torch.cat([image * 2 - 1, prompts], dim=1))
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)
