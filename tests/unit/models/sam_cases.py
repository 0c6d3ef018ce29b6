"""SAM pieces shared by the SAM-based families' tests (ZIM, SAMA): a tiny SAM in the official
format, and prompts in the official releases' token convention."""

import dataclasses
from functools import partial

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from torch import nn

from mattekit.models.sam.build import VARIANTS


def tiny_sam() -> Sam:
    """A segment-anything Sam with the tiny variant's sizes: the official format, small."""
    v = VARIANTS["tiny"]
    grid = v.image_size // v.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=v.image_size, patch_size=v.patch_size, embed_dim=v.encoder_dim,
            depth=v.encoder_depth, num_heads=v.encoder_heads, out_chans=v.prompt_dim,
            qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
            window_size=v.window_size, global_attn_indexes=v.global_attention,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=v.prompt_dim, image_embedding_size=(grid, grid),
            input_image_size=(v.image_size, v.image_size), mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(2, v.prompt_dim, v.decoder_heads, v.decoder_mlp_dim),
            transformer_dim=v.prompt_dim, iou_head_depth=3, iou_head_hidden_dim=v.iou_head_dim,
        ),
    )  # fmt: skip


def release_tokens(clicks: list[list[float]], labels: list[int]):
    """The release's tokens for clicks: the clicks, then exactly one padding point."""
    coords = torch.tensor([*clicks, [0.0, 0.0]])[None]
    return coords, torch.tensor([*labels, -1])[None]


def prompted_batch(synthetic_batch, clicks_per_sample: list[int]):
    """A 128 px batch whose samples have the given numbers of clicks (label -1 pads the rest)."""
    batch = synthetic_batch(128, len(clicks_per_sample))
    torch.manual_seed(1)
    width = max(clicks_per_sample) + 2  # the batch's point list is longer than any sample's
    points = torch.rand(len(batch), width, 2) * 127
    labels = torch.full((len(batch), width), -1)
    for i, count in enumerate(clicks_per_sample):
        labels[i, :count] = torch.tensor([1, 0, 1, 1, 0][:count])
    return dataclasses.replace(batch, points=points, point_labels=labels)
