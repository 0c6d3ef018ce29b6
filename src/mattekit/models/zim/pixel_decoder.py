"""Pixel decoders: from the transformer's image tokens to per-pixel mask features.

ZIM's hierarchical decoder (paper Sec. 3.2) computes a light conv pyramid from the input image at
strides 2, 4, ..., patch / 2 and upsamples the image embedding one step at a time, concatenating
the pyramid level of each resolution; mask features come out at stride 2. The pyramid depends on
the image only: like the official release (whose encoder returns it with the image embedding),
``image_features`` computes it once per image, and each prompt re-runs only ``forward``.

SAM's decoder (two transposed convolutions, stride 4 for a 16 px patch) is kept for the ablation
of Table 3a.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import Tensor, nn

from mattekit.nn.blocks import ConvNormAct


class HierarchicalPixelDecoder(nn.Module):
    """Image pyramid + step-by-step upsampling of the image embedding to stride 2.

    Args:
        embed_dim: channels of the image embedding (SAM's transformer dim, 256).
        out_dim: channels of the mask features (must match the hypernetwork MLPs: dim // 8).
        patch_size: stride of the image embedding (16 for SAM).
        pyramid_channels: channels of the stride-2 pyramid level, doubled at each coarser level.
    """

    def __init__(
        self, embed_dim: int, out_dim: int, patch_size: int = 16, pyramid_channels: int = 16
    ) -> None:
        super().__init__()
        levels = int(math.log2(patch_size)) - 1  # strides 2, 4, ..., patch / 2
        if 2 ** (levels + 1) != patch_size or levels < 1:
            raise ValueError(f"patch_size must be a power of two >= 4, got {patch_size}")
        pyramid = [pyramid_channels * 2**level for level in range(levels)]
        self.pyramid = nn.ModuleList(
            ConvNormAct(3 if level == 0 else pyramid[level - 1], pyramid[level], stride=2)
            for level in range(levels)
        )
        # Fusion widths halve from embed_dim down to out_dim at stride 2.
        widths = [max(out_dim, embed_dim // 2 ** (step + 1)) for step in range(levels - 1)]
        widths.append(out_dim)
        inputs = [embed_dim, *widths[:-1]]
        self.fuse = nn.ModuleList(
            ConvNormAct(inputs[step] + pyramid[levels - 1 - step], widths[step])
            for step in range(levels)
        )

    def image_features(self, image: Tensor) -> tuple[Tensor, ...]:
        """The image pyramid: depends on the image only, so it is computed once per image.

        Args:
            image: B x 3 x H x W normalised input image.

        Returns:
            Levels at strides 2, 4, ..., patch / 2 (fine to coarse): B x c_l x H / s x W / s.
        """
        features = []
        x = image
        for level in self.pyramid:
            x = level(x)
            features.append(x)
        return tuple(features)

    def forward(self, embedding: Tensor, image_features: tuple[Tensor, ...]) -> Tensor:
        """Mask features.

        Args:
            embedding: B x C x h x w image tokens (stride ``patch_size``).
            image_features: :meth:`image_features` of the same images.

        Returns:
            B x out_dim x H/2 x W/2.
        """
        x = embedding
        for fuse, skip in zip(self.fuse, reversed(image_features), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(torch.cat([x, skip], dim=1))
        return x


class SamPixelDecoder(nn.Module):
    """SAM's original pixel decoder: two 2x transposed convolutions (stride patch / 4).

    Parameter names follow SAM's ``output_upscaling`` under ``upscaling``, so SAM checkpoints
    load into it (see :func:`mattekit.weights.sam.load_sam_checkpoint`).
    """

    def __init__(self, embed_dim: int, out_dim: int) -> None:
        super().__init__()
        self.upscaling = nn.Sequential(
            nn.ConvTranspose2d(embed_dim, embed_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(embed_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(embed_dim // 4, out_dim, kernel_size=2, stride=2),
            nn.GELU(),
        )

    def image_features(self, image: Tensor) -> tuple[Tensor, ...]:
        """None: SAM's decoder does not look at the image."""
        return ()

    def forward(self, embedding: Tensor, image_features: tuple[Tensor, ...] = ()) -> Tensor:
        """B x C x h x w -> B x out_dim x 4h x 4w (``image_features`` is empty)."""
        return self.upscaling(embedding)
