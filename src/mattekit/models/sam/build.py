"""SAM's sizes per variant and its image and prompt encoders (segment-anything's modules).

The mask decoder is built by the family (ZIM's masked transformer and pixel decoders:
:func:`mattekit.models.zim.torch_model.build_zim`), from the same :class:`SamVariant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from segment_anything.modeling import ImageEncoderViT, PromptEncoder
from torch import nn


@dataclass(frozen=True)
class SamVariant:
    """Sizes of one SAM variant (image encoder + prompt encoder + mask decoder).

    ``pyramid_channels`` is the stride-2 width of ZIM's hierarchical pixel decoder, kept in this
    one table so that every size of a variant is in one row.
    """

    image_size: int
    patch_size: int
    encoder_dim: int
    encoder_depth: int
    encoder_heads: int
    global_attention: tuple[int, ...]
    window_size: int
    prompt_dim: int = 256
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    iou_head_dim: int = 256
    pyramid_channels: int = 16


VARIANTS: dict[str, SamVariant] = {
    "vit_b": SamVariant(1024, 16, 768, 12, 12, (2, 5, 8, 11), 14),
    "vit_l": SamVariant(1024, 16, 1024, 24, 16, (5, 11, 17, 23), 14),
    "vit_h": SamVariant(1024, 16, 1280, 32, 16, (7, 15, 23, 31), 14),
    # For tests and CPU runs: 128 px, 16 x 16 tokens of stride 8.
    "tiny": SamVariant(128, 8, 64, 2, 2, (1,), 4, 32, 2, 64, 32, 8),
}


def build_image_encoder(v: SamVariant) -> ImageEncoderViT:
    """SAM's ViT at ``v``'s sizes: S x S images -> an embedding of ``prompt_dim`` channels on
    an S / patch x S / patch grid (randomly initialised)."""
    return ImageEncoderViT(
        img_size=v.image_size, patch_size=v.patch_size, embed_dim=v.encoder_dim,
        depth=v.encoder_depth, num_heads=v.encoder_heads, mlp_ratio=4, out_chans=v.prompt_dim,
        qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
        window_size=v.window_size, global_attn_indexes=v.global_attention,
    )  # fmt: skip


def build_prompt_encoder(v: SamVariant) -> PromptEncoder:
    """SAM's prompt encoder at ``v``'s sizes (its grid is the image encoder's)."""
    grid = v.image_size // v.patch_size
    return PromptEncoder(
        embed_dim=v.prompt_dim, image_embedding_size=(grid, grid),
        input_image_size=(v.image_size, v.image_size), mask_in_chans=16,
    )  # fmt: skip
