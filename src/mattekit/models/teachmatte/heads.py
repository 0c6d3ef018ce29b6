"""The heads on the UNet's last features (H/8) and the distillation projector Phi."""

from __future__ import annotations

from torch import nn

from mattekit.nn.blocks import ConvBNReLU


class SoftGroundingHead(nn.Sequential):
    """Replaces the UNet's latent output conv: two ConvBNReLU groups and a 1 x 1 classifier.

    B x C x h x w (the UNet's last features after its output norm and SiLU) -> B x ``outputs`` x
    h x w logits: the teacher's 3 region classes (background, foreground, transparent), or the
    student's alpha and transparency logits.
    """

    def __init__(self, in_channels: int, outputs: int, hidden: int | None = None) -> None:
        hidden = hidden or in_channels
        super().__init__(
            ConvBNReLU(in_channels, hidden),
            ConvBNReLU(hidden, hidden),
            nn.Conv2d(hidden, outputs, 1),
        )


class FeatureProjector(nn.Sequential):
    """Phi (paper eq. 4): conv 1 x 1 -> LeakyReLU -> conv 3 x 3 -> conv 3 x 3, student width to
    teacher width; B x C_s x h x w -> B x C_t x h x w."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
