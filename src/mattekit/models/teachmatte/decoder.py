"""The matting decoder of stage 3: a detail encoder-decoder (after ViTMatte's detail capture
module, which the paper adopts) fed the image, the upsampled coarse alpha and sigmoid(R).

The detail stream downsamples the 5-channel input three times (H/2, H/4, H/8). At H/8 its last
features join the student's last UNet features, aligned by one ConvBNReLU (the paper's single
learnable block on the student side); the decoder then upsamples, fusing each detail level, to
the alpha at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.nn.blocks import ConvBNReLU

#: Image (3) + coarse alpha (1) + transparency probability (1).
DECODER_INPUTS = 5


class DetailDecoder(nn.Module):
    """(image, coarse alpha, transparency, student features) -> alpha and its context features.

    Args:
        feature_channels: width of the student's features (SD's last up stage: 320).
        stream: widths of the detail stream at H/2, H/4, H/8.
        fusion: widths after fusing at H/8, H/4, H/2, H.
    """

    def __init__(
        self,
        feature_channels: int,
        stream: tuple[int, int, int] = (48, 96, 192),
        fusion: tuple[int, int, int, int] = (256, 128, 64, 32),
    ) -> None:
        super().__init__()
        widths = [DECODER_INPUTS, *stream]
        self.stream = nn.ModuleList(
            ConvBNReLU(widths[i], widths[i + 1], stride=2) for i in range(len(stream))
        )
        self.align = ConvBNReLU(feature_channels, fusion[0])
        skips = [*reversed(widths)]  # H/8, H/4, H/2, H
        inputs = [fusion[0], *fusion[:-1]]
        self.fuse = nn.ModuleList(
            ConvBNReLU(inputs[i] + skips[i], fusion[i]) for i in range(len(fusion))
        )
        self.head = nn.Sequential(
            ConvBNReLU(fusion[-1], fusion[-1] // 2), nn.Conv2d(fusion[-1] // 2, 1, 1)
        )
        self.context_channels = fusion[-1]

    def forward(
        self, image: Tensor, coarse_alpha: Tensor, transparency: Tensor, features: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Args: image B x 3 x H x W (normalised as the network's input), coarse_alpha and
        transparency B x 1 x H x W in [0, 1], features B x C x H/8 x W/8.

        Returns:
            alpha B x 1 x H x W in [0, 1], and the context B x 32 x H x W (the refiner's input).
        """
        details = [torch.cat([image, coarse_alpha, transparency], 1)]
        for layer in self.stream:
            details.append(layer(details[-1]))
        x = self.align(features)
        for index, (fuse, detail) in enumerate(zip(self.fuse, reversed(details), strict=True)):
            if index:
                x = F.interpolate(x, size=detail.shape[-2:], mode="bilinear", align_corners=False)
            elif x.shape[-2:] != detail.shape[-2:]:
                raise ValueError(
                    f"student features {tuple(x.shape[-2:])} do not match the detail stream's "
                    f"H/8 grid {tuple(detail.shape[-2:])}"
                )
            x = fuse(torch.cat([x, detail], 1))
        return torch.sigmoid(self.head(x)), x
