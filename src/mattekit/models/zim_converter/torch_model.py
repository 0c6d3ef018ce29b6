"""ZIM's label converter: image + segmentation mask -> matte (MGMatting decoder on Hiera).

The network (ZIM, section 3.1 and 5.1): the normalised RGB image and the mask, concatenated into
a B x 4 x H x W input, go through a Hiera encoder (features at strides 4-32) and a light conv
stem (strides 1 and 2, for detail the transformer's stride-4 patches cannot see). An upsampling
decoder with skip connections predicts alpha at strides 8, 4 and 1, fused by MGMatting's
Progressive Refinement: a finer prediction replaces the coarser one only within the coarser
one's uncertain band. Unlike MGMatting, the mask also joins every decoder scale (see
:class:`UpBlock`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor, nn

from mattekit.models.zim_converter.backbone import HieraEncoder, build_hiera, load_hiera_weights
from mattekit.nn.blocks import ConvNormAct

logger = logging.getLogger(__name__)

# A prediction within this distance of 0 or 1 counts as certain (MGMatting: 1 / 255).
CERTAINTY_TOLERANCE = 1.0 / 255.0


@dataclass(frozen=True)
class ConverterVariant:
    """One size of the converter.

    Attributes:
        hiera_name: the timm Hiera the encoder is built from.
        hiera_args: overrides of that Hiera's configuration.
        stem_channels: conv stem widths at strides 1 and 2.
        decoder_channels: decoder widths at strides 16, 8, 4, 2 and 1.
    """

    hiera_name: str
    hiera_args: dict = field(default_factory=dict)
    stem_channels: tuple[int, int] = (32, 64)
    decoder_channels: tuple[int, int, int, int, int] = (256, 128, 64, 32, 32)


VARIANTS: dict[str, ConverterVariant] = {
    # The paper's backbone; decoder widths halve per stride, like MGMatting's ResNet decoder.
    "hiera_base_plus": ConverterVariant("hiera_base_plus_224"),
    # For tests and CPU runs: one block per stage, 16 channels at stride 4.
    "tiny": ConverterVariant(
        "hiera_tiny_224",
        {"embed_dim": 16, "num_heads": 1, "stages": (1, 1, 1, 1)},
        stem_channels=(8, 16),
        decoder_channels=(32, 32, 16, 16, 8),
    ),
}


class UpBlock(nn.Module):
    """Upsample to the skip's size, concatenate the skip and the mask, two 3 x 3 conv blocks.

    The mask (area-averaged to the skip's size) joins every scale: through a transformer's
    patch embedding one input channel of 4 is diluted, and the coarse heads should start from
    the mask they are asked to refine rather than having to recover it.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            ConvNormAct(in_channels + skip_channels + 1, out_channels),
            ConvNormAct(out_channels, out_channels),
        )

    def forward(self, x: Tensor, skip: Tensor, mask: Tensor) -> Tensor:
        """x: B x C_in x h x w; skip: B x C_skip x H' x W'; mask: B x 1 x H x W.

        Returns:
            B x C_out x H' x W'.
        """
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        mask = F.adaptive_avg_pool2d(mask, skip.shape[-2:])
        return self.convs(torch.cat([x, skip, mask], dim=1))


class DetailStem(nn.Module):
    """Two conv blocks on the 4-channel input: features at strides 1 and 2."""

    def __init__(self, in_channels: int, channels: tuple[int, int]) -> None:
        super().__init__()
        self.stride1 = ConvNormAct(in_channels, channels[0])
        self.stride2 = ConvNormAct(channels[0], channels[1], stride=2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """B x 4 x H x W -> (B x c0 x H x W, B x c1 x ceil(H/2) x ceil(W/2))."""
        full = self.stride1(x)
        return full, self.stride2(full)


class ProgressiveDecoder(nn.Module):
    """Upsampling decoder with skips; alpha logits at strides 8, 4 and 1.

    Args:
        encoder_channels: backbone channels at strides 4, 8, 16, 32.
        stem_channels: detail-stem channels at strides 1, 2.
        decoder_channels: widths at strides 16, 8, 4, 2, 1.
    """

    def __init__(
        self,
        encoder_channels: list[int],
        stem_channels: tuple[int, int],
        decoder_channels: tuple[int, int, int, int, int],
    ) -> None:
        super().__init__()
        s4, s8, s16, s32 = encoder_channels
        d16, d8, d4, d2, d1 = decoder_channels
        self.up16 = UpBlock(s32, s16, d16)
        self.up8 = UpBlock(d16, s8, d8)
        self.up4 = UpBlock(d8, s4, d4)
        self.up2 = UpBlock(d4, stem_channels[1], d2)
        self.up1 = UpBlock(d2, stem_channels[0], d1)
        self.head8 = nn.Conv2d(d8, 1, 3, padding=1)
        self.head4 = nn.Conv2d(d4, 1, 3, padding=1)
        self.head1 = nn.Conv2d(d1, 1, 3, padding=1)

    def forward(
        self, features: list[Tensor], details: tuple[Tensor, Tensor], mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Backbone features (strides 4-32), stem features (strides 1, 2) and the B x 1 x H x W
        mask -> logits B x 1 x H/8 x W/8, B x 1 x H/4 x W/4, B x 1 x H x W."""
        f4, f8, f16, f32 = features
        full, half = details
        x = self.up8(self.up16(f32, f16, mask), f8, mask)
        logits8 = self.head8(x)
        x = self.up4(x, f4, mask)
        logits4 = self.head4(x)
        x = self.up1(self.up2(x, half, mask), full, mask)
        return logits8, logits4, self.head1(x)


def uncertain_band(alpha: Tensor, radius: int) -> Tensor:
    """Where ``alpha`` is neither 0 nor 1, dilated by ``radius`` pixels.

    Args:
        alpha: B x 1 x H x W in [0, 1].
        radius: dilation radius in pixels (0: no dilation).

    Returns:
        B x 1 x H x W bool.
    """
    uncertain = (alpha > CERTAINTY_TOLERANCE) & (alpha < 1 - CERTAINTY_TOLERANCE)
    if radius <= 0:
        return uncertain
    dilated = F.max_pool2d(uncertain.float(), 2 * radius + 1, stride=1, padding=radius)
    return dilated > 0


def progressive_refinement(
    alpha_os8: Tensor, alpha_os4: Tensor, alpha_os1: Tensor, radii: tuple[int, int]
) -> Tensor:
    """MGMatting's PRN: each finer alpha replaces the fused one only in its uncertain band.

    Args:
        alpha_os8, alpha_os4, alpha_os1: B x 1 x H x W predictions (all at full size).
        radii: dilation radii (pixels) of the stride-8 band and of the band after the stride-4
            step.

    Returns:
        B x 1 x H x W fused alpha.
    """
    alpha = torch.where(uncertain_band(alpha_os8, radii[0]), alpha_os4, alpha_os8)
    return torch.where(uncertain_band(alpha, radii[1]), alpha_os1, alpha)


class LabelConverter(nn.Module):
    """Image + segmentation mask -> matte.

    Args:
        encoder: Hiera encoder over the 4-channel input.
        stem: detail stem over the same input.
        decoder: progressive decoder over both.
        band_radii: PRN band radii in pixels, in evaluation, of the stride-8 band and of the band
            after the stride-4 step; training draws each uniformly from 1 to twice this, per
            batch. MGMatting's 15 / 7 (random up to 30 / 15 in training): pixels and not
            fractions of the image, because a coarse output's error scales with its stride.
    """

    def __init__(
        self,
        encoder: HieraEncoder,
        stem: DetailStem,
        decoder: ProgressiveDecoder,
        band_radii: tuple[int, int] = (15, 7),
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.stem = stem
        self.decoder = decoder
        self.band_radii = band_radii
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1), False)

    def _radii(self) -> tuple[int, int]:
        if not self.training:
            return self.band_radii
        first, second = (int(torch.randint(1, 2 * r + 1, ())) for r in self.band_radii)
        return first, second

    def forward(self, image: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Convert a mask into a matte.

        Args:
            image: B x 3 x H x W RGB in [0, 1] (ImageNet-normalised here).
            mask: B x 1 x H x W segmentation mask in {0, 1}; with the image, the network's
                B x 4 x H x W input.

        Returns:
            ``"alpha"``: B x 1 x H x W fused matte in [0, 1]; ``"alpha_os8"``, ``"alpha_os4"``,
            ``"alpha_os1"``: the three predictions, each upsampled to B x 1 x H x W.
        """
        x = torch.cat([(image - self.mean) / self.std, mask.to(image.dtype)], dim=1)
        logits = self.decoder(self.encoder(x), self.stem(x), x[:, 3:])
        size = x.shape[-2:]
        # Sigmoid before upsampling (as MGMatting): a coarse output's edge then stays uncertain
        # over a whole stride, so PRN hands every edge it cannot resolve to the finer output.
        alphas = [
            F.interpolate(logit.sigmoid(), size=size, mode="bilinear", align_corners=False)
            for logit in logits
        ]
        fused = progressive_refinement(*alphas, radii=self._radii())
        return {
            "alpha": fused,
            "alpha_os8": alphas[0],
            "alpha_os4": alphas[1],
            "alpha_os1": alphas[2],
        }


def build_label_converter(
    variant: str = "hiera_base_plus",
    image_size: int = 1024,
    backbone_checkpoint: str | Path | None = None,
) -> LabelConverter:
    """A :class:`LabelConverter` of a named size.

    Builds on the current default device, so ``with torch.device("meta"):`` sizes the paper
    variant without allocating it (no checkpoint may be given then).

    Args:
        variant: a key of :data:`VARIANTS` (``"hiera_base_plus"``, the paper's, or ``"tiny"``).
        image_size: the backbone's input side (divisible by 32; the paper trains at 1024).
        backbone_checkpoint: local Hiera weights (format: :mod:`.backbone`); None starts the
            backbone from random initialisation.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    config = VARIANTS[variant]
    hiera = build_hiera(config.hiera_name, image_size, in_chans=4, **config.hiera_args)
    if backbone_checkpoint is not None:
        load_hiera_weights(hiera, backbone_checkpoint)
    else:
        logger.info(
            "label converter backbone: %s (%s) from random initialisation "
            "(no backbone_checkpoint given; weights are never downloaded)",
            config.hiera_name,
            variant,
        )
    encoder = HieraEncoder(hiera)
    stem = DetailStem(4, config.stem_channels)
    decoder = ProgressiveDecoder(encoder.channels, config.stem_channels, config.decoder_channels)
    return LabelConverter(encoder, stem, decoder)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())
