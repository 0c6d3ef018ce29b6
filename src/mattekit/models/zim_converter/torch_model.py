"""ZIM's label converter: image + segmentation mask -> matte (MGMatting decoder on Hiera).

The network (ZIM, section 3.1 and 5.1): the normalised RGB image and the mask, concatenated into
a B x 4 x H x W input, go through a Hiera encoder (features at strides 4-32) and a light conv
stem (strides 1 and 2, for detail the transformer's stride-4 patches cannot see). An upsampling
decoder with skip connections predicts alpha at strides 8, 4 and 1, fused by MGMatting's
Progressive Refinement: a finer prediction replaces the coarser one only within the coarser
one's uncertain band, which is also where the finer prediction's loss is computed. Unlike
MGMatting, the mask also joins every decoder scale (see :class:`UpBlock`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor, nn

from mattekit.models.zim_converter.backbone import HieraEncoder, build_hiera, load_hiera_weights
from mattekit.nn.blocks import ConvNormAct

logger = logging.getLogger(__name__)

# A prediction within this distance of 0 or 1 counts as certain (MGMatting: 1 / 255).
CERTAINTY_TOLERANCE = 1.0 / 255.0

# MGMatting's refinement bands are dilations by an elliptical kernel whose SIZE (diameter, in
# full-resolution pixels) it draws per sample: at test 15 for the stride-8 band and 7 after the
# stride-4 step (its widths 30 and 15, halved); in training uniform in 1..29 and 1..14.
EVAL_BAND_SIZES = (15, 7)
TRAIN_BAND_SIZES = (29, 14)


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


@cache
def _elliptical_runs(size: int) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
    """OpenCV's ``MORPH_ELLIPSE`` element of this size (MGMatting's), as horizontal runs.

    Returns:
        ``(first, last, rows)`` per distinct run: the run covers column offsets ``first`` to
        ``last`` from the anchor (``size // 2``, OpenCV's), in every row offset of ``rows``.
        An ellipse is convex, so each of its rows is one run.
    """
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    anchor = size // 2
    runs: dict[tuple[int, int], list[int]] = {}
    for row in range(size):
        columns = np.flatnonzero(element[row])
        if columns.size:
            run = (int(columns[0]) - anchor, int(columns[-1]) - anchor)
            runs.setdefault(run, []).append(row - anchor)
    return tuple((first, last, tuple(rows)) for (first, last), rows in runs.items())


def _dilate_by_ellipse(mask: Tensor, size: int) -> Tensor:
    """N x 1 x H x W bool mask dilated by the ``size`` ellipse (see :func:`dilate`)."""
    height, width = mask.shape[-2:]
    reach = size // 2  # the anchor: no offset of the element lies further from it
    # prefix sums along x with a leading 0: a run's window sum is a difference of two of them,
    # O(H W) per run whatever its length (int32: exact)
    counts = F.pad(mask.to(torch.int32), (reach + 1, reach)).cumsum(-1)
    grown = torch.zeros_like(mask)
    for first, last, rows in _elliptical_runs(size):
        start, stop = first + reach, last + reach + 1
        covered = (counts[..., stop : stop + width] - counts[..., start : start + width]) > 0
        for dy in rows:  # grown(y) |= covered(y + dy), within the image
            low, high = max(0, -dy), min(height, height - dy)
            grown[..., low:high, :] |= covered[..., low + dy : high + dy, :]
    return grown


def dilate(mask: Tensor, kernel_sizes: Sequence[int]) -> Tensor:
    """Binary dilation of each sample by an elliptical kernel of its own size, as ``cv2.dilate``
    with ``cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))`` (MGMatting's bands).

    The element is applied unflipped about OpenCV's anchor ``size // 2``, so a lone pixel grows
    to exactly ``size`` pixels along each axis, one more to the right / below than to the left /
    above for an even size. Computed as a union of shifted horizontal runs, each from prefix
    sums: O(H W size) per sample, exact in any precision, and no host synchronisation.

    Args:
        mask: B x 1 x H x W bool.
        kernel_sizes: B kernel sizes (diameters) >= 1; 1 leaves the sample unchanged.

    Returns:
        B x 1 x H x W bool.
    """
    if len(kernel_sizes) != len(mask) or min(kernel_sizes) < 1:
        raise ValueError(f"need {len(mask)} kernel sizes >= 1, got {list(kernel_sizes)}")
    if len(set(kernel_sizes)) == 1:
        return _dilate_by_ellipse(mask, kernel_sizes[0])
    # sample by sample: integer slices stay on the device, where a list index would be copied
    # there and synchronise
    return torch.cat([_dilate_by_ellipse(mask[i : i + 1], k) for i, k in enumerate(kernel_sizes)])


def uncertain_band(alpha: Tensor, kernel_sizes: Sequence[int]) -> Tensor:
    """Where ``alpha`` is neither 0 nor 1 (MGMatting: 1/255 < alpha < 254/255), dilated by an
    elliptical kernel of each sample's size: around a straight edge the band is the uncertain
    run widened by ``size - 1`` pixels, so a one-pixel uncertain line becomes ``size`` wide.

    Args:
        alpha: B x 1 x H x W in [0, 1].
        kernel_sizes: B kernel sizes (diameters, pixels) >= 1.

    Returns:
        B x 1 x H x W bool.
    """
    uncertain = (alpha > CERTAINTY_TOLERANCE) & (alpha < 1 - CERTAINTY_TOLERANCE)
    return dilate(uncertain, kernel_sizes)


def progressive_refinement(
    alpha_os8: Tensor,
    alpha_os4: Tensor,
    alpha_os1: Tensor,
    kernel_sizes: tuple[Sequence[int], Sequence[int]],
) -> tuple[Tensor, Tensor, Tensor]:
    """MGMatting's PRN: each finer alpha replaces the fused one only in its uncertain band.

    Args:
        alpha_os8, alpha_os4, alpha_os1: B x 1 x H x W predictions (all at full size).
        kernel_sizes: per-sample kernel sizes (B each) of the stride-8 band and of the band
            after the stride-4 step.

    Returns:
        The B x 1 x H x W fused alpha, and the two bands (B x 1 x H x W bool) where the stride-4
        and the stride-1 predictions were taken: MGMatting computes their losses there only.
    """
    band_os4 = uncertain_band(alpha_os8, kernel_sizes[0])
    alpha = torch.where(band_os4, alpha_os4, alpha_os8)
    band_os1 = uncertain_band(alpha, kernel_sizes[1])
    return torch.where(band_os1, alpha_os1, alpha), band_os4, band_os1


class LabelConverter(nn.Module):
    """Image + segmentation mask -> matte.

    Args:
        encoder: Hiera encoder over the 4-channel input.
        stem: detail stem over the same input.
        decoder: progressive decoder over both.
        band_sizes: PRN kernel sizes (diameters, pixels) in evaluation, of the stride-8 band and
            of the band after the stride-4 step (MGMatting's 15 and 7).
        train_band_sizes: in training each sample draws its kernel sizes uniformly from 1 to
            these (MGMatting's 29 and 14). Pixels and not fractions of the image, because a
            coarse output's error scales with its stride.
    """

    def __init__(
        self,
        encoder: HieraEncoder,
        stem: DetailStem,
        decoder: ProgressiveDecoder,
        band_sizes: tuple[int, int] = EVAL_BAND_SIZES,
        train_band_sizes: tuple[int, int] = TRAIN_BAND_SIZES,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.stem = stem
        self.decoder = decoder
        self.band_sizes = band_sizes
        self.train_band_sizes = train_band_sizes
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1), False)

    def _band_sizes(self, batch: int) -> tuple[list[int], list[int]]:
        """Kernel sizes of the two PRN bands, one per sample (random in training)."""
        if not self.training:
            first, second = ([size] * batch for size in self.band_sizes)
        else:
            first, second = (
                torch.randint(1, largest + 1, (batch,)).tolist()
                for largest in self.train_band_sizes
            )
        return first, second

    def forward(self, image: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Convert a mask into a matte.

        Args:
            image: B x 3 x H x W RGB in [0, 1] (ImageNet-normalised here).
            mask: B x 1 x H x W segmentation mask in {0, 1}; with the image, the network's
                B x 4 x H x W input.

        Returns:
            ``"alpha"``: B x 1 x H x W fused matte in [0, 1]; ``"alpha_os8"``, ``"alpha_os4"``,
            ``"alpha_os1"``: the three predictions, each upsampled to B x 1 x H x W;
            ``"band_os4"``, ``"band_os1"``: B x 1 x H x W bool, where PRN took the stride-4 and
            the stride-1 prediction (where their losses belong).
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
        fused, band_os4, band_os1 = progressive_refinement(
            *alphas, kernel_sizes=self._band_sizes(len(x))
        )
        return {
            "alpha": fused,
            "alpha_os8": alphas[0],
            "alpha_os4": alphas[1],
            "alpha_os1": alphas[2],
            "band_os4": band_os4,
            "band_os1": band_os1,
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
