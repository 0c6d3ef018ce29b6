"""SAMA's Local-Adapter (paper eq. 4-9): injects the local views' features into SAM's decoder.

One adapter follows each of the two SAM decoder layers and works region by region (the 2 x 2
quadrants of :mod:`mattekit.models.sama.mvle`): the decoder's image tokens of quadrant m only meet
the local tokens of view m, which cover the same part of the image at twice the density.

1. Global -> local (eq. 4-7): queries the image-stream tokens F_out of region m; keys / values
   region m's local tokens fused with the encoder's early features, ``F'^{P_m} + F_early``
   (eq. 5-6; given ``early`` only: the second adapter's local input already holds them, see
   :class:`~mattekit.models.sama.torch_model.Sama`'s ``early_fusion``). Output F'' (no residual:
   it only enters through the gate of step 3).
2. Local -> global (roles swapped, "the keys and values produced in the previous layer become the
   queries"): queries the fused local tokens, keys / values F_out of region m; residual + LayerNorm
   (as SAM's decoder). Its output is the local input of the next adapter (and of the heads).
3. Gate (eq. 8-9): ``F'_out = F_out + sigmoid(conv1x1(F_out)) * F''``.

Eq. 4-6 write W^A, W^{K_A}, W^{V_A} without a region index, so one attention module per step is
shared by the four regions (they are folded into the batch). Step 1's output projection starts at
zero: F'' = 0, so a fresh adapter passes the image stream through unchanged and the model starts as
SAM (the gate's stated purpose is to keep SAM's zero-shot behaviour).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mattekit.models.sama.mvle import REGIONS, split_token_regions, tile_token_regions
from mattekit.nn.sam_attention import MaskedAttention


class LocalAdapter(nn.Module):
    """Bidirectional region-wise cross-attention between the decoder's image stream and the local
    views, gated into the image stream.

    Args:
        dim: channels C (SAM's decoder width, 256).
        num_heads: attention heads.
        downsample_rate: internal attention width C / rate (SAM's cross-attentions use 2).
        gate_channels: channels of the confidence map: 1 (one confidence per position,
            broadcast over C, like MVANet's ``sal_conv``) or C (per channel).
        zero_init: zero step 1's output projection so that a fresh adapter is the identity on
            the image stream.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        downsample_rate: int = 2,
        gate_channels: int = 1,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        if gate_channels not in (1, dim):
            raise ValueError(f"gate_channels must be 1 or dim ({dim}), got {gate_channels}")
        self.global_to_local = MaskedAttention(dim, num_heads, downsample_rate)  # step 1
        self.local_to_global = MaskedAttention(dim, num_heads, downsample_rate)  # step 2
        self.norm_local = nn.LayerNorm(dim)
        self.gate = nn.Conv2d(dim, gate_channels, kernel_size=1)  # step 3, eq. 8
        if zero_init:
            nn.init.zeros_(self.global_to_local.out_proj.weight)
            nn.init.zeros_(self.global_to_local.out_proj.bias)

    def forward(
        self,
        image: Tensor,
        local: Tensor,
        early: Tensor | None,
        image_pe: Tensor,
        local_pe: Tensor,
        grid: tuple[int, int],
    ) -> tuple[Tensor, Tensor]:
        """One adapter pass.

        Args:
            image: B x L x C decoder image stream F_out after a SAM decoder layer (L = h w).
            local: B x 4 x Ll x C local tokens: the MVLE output F'^{P_m} for the first adapter,
                the previous adapter's second output for the next.
            early: B x 4 x Ll x C early encoder features of each view, projected to C, added
                to ``local`` (eq. 5-6); None: ``local`` is used as it is.
            image_pe: (B or 1) x L x C positional encoding of the image tokens (SAM's dense PE,
                flattened as the decoder does).
            local_pe: [B or 1 x] 4 x Ll x C positional encoding of the local tokens in
                global-image coordinates (second output of
                :func:`~mattekit.models.sama.mvle.region_positional_encodings`).
            grid: ``(h, w)`` of the image stream.

        Returns:
            B x L x C updated image stream F'_out (eq. 9) and B x 4 x Ll x C updated local tokens.
        """
        b, _, c = image.shape
        if local.shape[1] != REGIONS or (early is not None and early.shape != local.shape):
            raise ValueError(
                f"local and early must both be B x 4 x Ll x C, got {tuple(local.shape)} and "
                f"{None if early is None else tuple(early.shape)}"
            )
        # Regions folded into the batch: the shared weights see (4B) independent regions.
        image_regions = split_token_regions(image, grid)  # B x 4 x L/4 x C
        image_region_pe = split_token_regions(image_pe, grid).expand(b, -1, -1, -1)
        local_pe = local_pe.expand(b, REGIONS, -1, -1)
        fused = local if early is None else local + early  # eq. 5-6: a residual connection

        detail = self.global_to_local(
            _fold(image_regions + image_region_pe), _fold(fused + local_pe), _fold(fused)
        )  # eq. 7: F'' per region, (4B) x L/4 x C
        detail = tile_token_regions(detail.unflatten(0, (b, REGIONS)), grid)  # B x L x C

        update = self.local_to_global(
            _fold(fused + local_pe), _fold(image_regions + image_region_pe), _fold(image_regions)
        )
        local_out = self.norm_local(fused + update.unflatten(0, (b, REGIONS)))

        image_map = image.transpose(1, 2).reshape(b, c, *grid)
        confidence = torch.sigmoid(self.gate(image_map)).flatten(2).transpose(1, 2)  # B x L x g
        return image + confidence * detail, local_out  # eq. 8-9


def _fold(regions: Tensor) -> Tensor:
    """B x 4 x N x C -> (4B) x N x C (batch-major: sample b's regions are rows 4b .. 4b + 3)."""
    return regions.flatten(0, 1)
