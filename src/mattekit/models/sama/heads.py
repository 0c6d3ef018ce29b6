"""SAMA's task prediction heads (paper "Prediction Heads"): one for segmentation, one for matting.

The paper fixes only the ingredients: interpolation for upsampling, convolutions with batch
normalisation and GELU producing fine feature maps "from the output of the Local-Adapter", and a
task token giving "global priors" (HQ-SAM style: token -> MLP -> dot product with per-pixel
features). Our head, per task:

    x = up2(F_img) [+ local mosaic]                      B x C x 2h x 2w   (stride 8 at 1024 px)
    x = GELU(norm(conv3x3(x)))                           B x m x 2h x 2w
    M = SAM's upscaled features + norm0(conv3x3(up2(x)))  B x m x 4h x 4w   (stride 4, as SAM)
    logits = MLP(token) . M                              B x 1 x 4h x 4w

The local mosaic (the four views' local tokens tiled, 2h x 2w) is where the 2x-zoom views give
real stride-8 detail, and it makes the Local-Adapter's second output reach a loss. ``norm0``'s
weight starts at zero, so a fresh head's mask features are exactly SAM's upscaled features; with
the token and MLP initialised from SAM's mask token 0 and its hyper-MLP, its logits start near
SAM's single-mask output (not exactly: the task token is one more token in the decoder's
attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.mask_decoder import MLP
from torch import Tensor, nn

from mattekit.nn.blocks import group_count

NORMS = ("batch", "group")


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm (the paper) or GroupNorm (mattekit's choice for batches of 1-4)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class PredictionHead(nn.Module):
    """Task token + refined image features -> mask logits at stride 4.

    Args:
        dim: channels C of the decoder's image stream and tokens (256).
        mask_dim: channels of the mask features; must equal SAM's upscaled features (C / 8).
        norm: ``"batch"`` (paper) or ``"group"``.
    """

    def __init__(self, dim: int, mask_dim: int, norm: str = "batch") -> None:
        super().__init__()
        # Same shape as SAM's output_hypernetworks_mlps, so it can start from SAM's weights.
        self.hypernetwork = MLP(dim, dim, mask_dim, 3)
        self.fuse = nn.Sequential(
            nn.Conv2d(dim, mask_dim, 3, padding=1, bias=False),  # the norm carries the bias
            make_norm(norm, mask_dim),
            nn.GELU(),
        )
        self.refine = nn.Sequential(
            nn.Conv2d(mask_dim, mask_dim, 3, padding=1, bias=False),
            make_norm(norm, mask_dim),
        )
        # Zero scale (and the default zero shift): the residual on SAM's features starts at 0.
        nn.init.zeros_(self.refine[1].weight)

    def forward(
        self,
        token: Tensor,
        image: Tensor,
        sam_features: Tensor,
        local_mosaic: Tensor | None = None,
    ) -> Tensor:
        """Mask logits.

        Args:
            token: B x C, the task's output token after the decoder.
            image: B x C x h x w, the final image stream (after the last Local-Adapter).
            sam_features: B x mask_dim x 4h x 4w, SAM's frozen ``output_upscaling(image)``.
            local_mosaic: B x C x H' x W' or None; the tiled local tokens
                (:func:`~mattekit.models.sama.mvle.tile_regions`), normally 2h x 2w; another size
                (views smaller than the input) is resized to 2h x 2w.

        Returns:
            B x 1 x 4h x 4w logits.
        """
        h, w = image.shape[-2:]
        x = F.interpolate(image, size=(2 * h, 2 * w), mode="bilinear", align_corners=False)
        if local_mosaic is not None:
            if local_mosaic.shape[-2:] != x.shape[-2:]:
                local_mosaic = F.interpolate(
                    local_mosaic, size=x.shape[-2:], mode="bilinear", align_corners=False
                )
            x = x + local_mosaic
        x = self.fuse(x)
        x = F.interpolate(x, size=sam_features.shape[-2:], mode="bilinear", align_corners=False)
        features = sam_features + self.refine(x)
        return torch.einsum("bc,bchw->bhw", self.hypernetwork(token), features)[:, None]
