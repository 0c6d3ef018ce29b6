"""ZIM (Kim et al., ICCV 2025): SAM with a hierarchical pixel decoder and prompt-aware masked
attention. Pure PyTorch; parts are injected as in segment-anything's ``Sam``.

Prompts use SAM's ONNX convention: every sample is a list of "points" with labels 1 (positive
click), 0 (negative click), -1 (padding), and a box is two corner points labelled 2 (top-left) and
3 (bottom-right). A batch may mix token counts: a shorter sample is filled up with slots labelled
-2 (``FILLER_LABEL``), which no attention reads, so each sample decodes as it would alone;
:mod:`mattekit.models.sam.inputs` makes the tokens in the official releases' convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from segment_anything.modeling import ImageEncoderViT, PromptEncoder
from segment_anything.modeling.mask_decoder import MLP
from torch import Tensor, nn

from mattekit.models.sam.build import VARIANTS, build_image_encoder, build_prompt_encoder
from mattekit.models.sam.inputs import BOX_LABELS, FILLER_LABEL, PADDING_LABEL
from mattekit.models.zim.pixel_decoder import HierarchicalPixelDecoder, SamPixelDecoder
from mattekit.models.zim.transformer import (
    MaskedTwoWayTransformer,
    PromptAttentionMask,
    make_prompt_mask,
)
from mattekit.nn.fast_paths import may_branch_on_values
from mattekit.nn.prompt_maps import box_mask, gaussian_point_map


@dataclass
class ZimImageFeatures:
    """What depends on the image only, computed once per image by :meth:`Zim.encode`.

    Attributes:
        embedding: B x C x h x w image embedding (SAM's image encoder).
        pyramid: the pixel decoder's image features (strides 2, 4, ..., patch / 2, each
            B x c_l x H / s x W / s); empty for SAM's decoder.
    """

    embedding: Tensor
    pyramid: tuple[Tensor, ...] = field(default_factory=tuple)


class ZimMaskDecoder(nn.Module):
    """SAM's mask decoder with an injected transformer and pixel decoder.

    Parameter names match SAM's ``MaskDecoder`` (``iou_token``, ``mask_tokens``,
    ``output_hypernetworks_mlps``, ``iou_prediction_head``, ``transformer``).
    """

    def __init__(
        self,
        transformer: MaskedTwoWayTransformer,
        pixel_decoder: nn.Module,
        transformer_dim: int,
        num_mask_tokens: int = 4,
        iou_head_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.pixel_decoder = pixel_decoder
        self.num_mask_tokens = num_mask_tokens
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(num_mask_tokens, transformer_dim)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_dim, num_mask_tokens, 3)

    def forward(
        self,
        image_embedding: Tensor,
        image_pe: Tensor,
        sparse_prompts: Tensor,
        dense_prompts: Tensor,
        image_features: tuple[Tensor, ...],
        prompt_mask: PromptAttentionMask | None,
        prompt_slots: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Mask logits and IoU predictions.

        Args:
            image_embedding: B x C x h x w; image_pe: 1 x C x h x w.
            sparse_prompts: B x N x C; dense_prompts: B x C x h x w.
            image_features: the pixel decoder's ``image_features`` of the input images.
            prompt_mask: prompt regions for the masked cross-attention.
            prompt_slots: B x N bool, False for filler slots (None: all are tokens).

        Returns:
            B x num_mask_tokens x H' x W' logits (stride 2 hierarchical, 4 SAM) and
            B x num_mask_tokens IoU predictions.
        """
        batch = sparse_prompts.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.expand(batch, -1, -1), sparse_prompts], dim=1)
        real_tokens = None
        if prompt_slots is not None:
            always = prompt_slots.new_ones(batch, len(output_tokens))
            real_tokens = torch.cat([always, prompt_slots], dim=1)
        src = image_embedding + dense_prompts
        pe = image_pe.expand(batch, -1, -1, -1)
        hs, src = self.transformer(src, pe, tokens, prompt_mask, real_tokens)
        b, c, h, w = image_embedding.shape
        features = self.pixel_decoder(src.transpose(1, 2).reshape(b, c, h, w), image_features)
        mask_tokens = hs[:, 1 : 1 + self.num_mask_tokens]
        hyper = torch.stack(
            [mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        masks = torch.einsum("bmc,bchw->bmhw", hyper, features)
        return masks, self.iou_prediction_head(hs[:, 0])


class Zim(nn.Module):
    """SAM image encoder + prompt encoder + :class:`ZimMaskDecoder`.

    Args:
        image_encoder: SAM's ViT; its ``img_size`` is the model's input size.
        prompt_encoder: SAM's prompt encoder.
        mask_decoder: the decoder (masked transformer + pixel decoder).
        point_sigma: Gaussian sigma of the point attention map, in tokens of a 64 x 64 grid
            (the official 21); scaled with the grid so it covers the same image fraction.
    """

    def __init__(
        self,
        image_encoder: ImageEncoderViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: ZimMaskDecoder,
        point_sigma: float = 21.0,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.point_sigma = point_sigma

    @property
    def image_size(self) -> int:
        return self.image_encoder.img_size

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.prompt_encoder.image_embedding_size)

    def embed_prompts(self, coords: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """SAM's prompt embedding for mixed points / box corners.

        Args:
            coords: B x N x 2 ``(x, y)`` in input pixels; labels: B x N in {-2, -1, 0, 1, 2, 3}.

        Returns:
            B x N x C sparse and B x C x h x w dense ("no mask") embeddings.
        """
        encoder = self.prompt_encoder
        embedding = encoder.pe_layer.forward_with_coords(coords + 0.5, encoder.input_image_size)
        padding = (labels == PADDING_LABEL)[..., None]
        embedding = torch.where(padding, encoder.not_a_point_embed.weight, embedding)
        # A filler slot holds no token; no attention reads it (see decode).
        embedding = embedding.masked_fill((labels == FILLER_LABEL)[..., None], 0.0)
        for label in range(4):  # 0 negative, 1 positive, 2 / 3 box corners
            chosen = (labels == label)[..., None].to(embedding.dtype)
            embedding = embedding + chosen * encoder.point_embeddings[label].weight
        dense = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = dense.expand(coords.shape[0], -1, *self.grid)
        return embedding, dense

    def attention_mask(self, coords: Tensor, labels: Tensor) -> PromptAttentionMask:
        """Prompt regions on the token grid, as the official release builds them.

        A coordinate falls in token cell ``int(x / stride)`` (truncated toward zero, as the
        release). A box covers the cells between its corners, inclusive, after sorting the corners
        (a box given bottom-right first covers the same cells). Clicks, negative ones included,
        give a Gaussian of ``point_sigma`` (scaled to the grid) centred on their cell and
        truncated at 3 sigma + 1 cells, max-combined; a click whose cell lies off the grid adds
        nothing.

        Args:
            coords: B x N x 2 ``(x, y)`` in input pixels; labels: B x N (module docstring).
        """
        grid = self.grid
        stride = self.image_size / grid[1]
        cells = torch.trunc(coords / stride)
        corner0, corner1 = (
            (cells * (labels == label)[..., None]).sum(dim=1) for label in BOX_LABELS
        )
        corners = torch.cat([torch.minimum(corner0, corner1), torch.maximum(corner0, corner1)], 1)
        boxes = box_mask(corners, grid)[:, 0]
        has_box = (labels == BOX_LABELS[0]).any(dim=1)
        on_grid = (cells >= 0).all(dim=-1) & (cells[..., 0] < grid[1]) & (cells[..., 1] < grid[0])
        is_click = (labels == 0) | (labels == 1)
        clicks = torch.where(is_click & on_grid, labels, torch.full_like(labels, -1))
        sigma = self.point_sigma * grid[1] / 64
        point_map = gaussian_point_map(
            cells, clicks, grid, sigma, include_negative=True, radius=3 * sigma + 1
        )[:, 0]
        return make_prompt_mask(boxes, has_box, point_map, grid)

    def encode(self, images: Tensor) -> ZimImageFeatures:
        """Everything that depends on the image only (once per image, reused across prompts).

        Args:
            images: B x 3 x S x S SAM-normalised (:func:`mattekit.models.sam.inputs.sam_image`).

        Returns:
            The image embedding (B x C x S/p x S/p) and the pixel decoder's image pyramid.
        """
        if images.shape[-2:] != (self.image_size, self.image_size):
            size = self.image_size
            raise ValueError(f"images must be {size} x {size}, got {tuple(images.shape[-2:])}")
        pyramid = self.mask_decoder.pixel_decoder.image_features(images)
        return ZimImageFeatures(self.image_encoder(images), pyramid)

    def decode(
        self, features: ZimImageFeatures, coords: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Mask logits from an image's features (reusable across prompts) and prompts.

        Args:
            features: from :meth:`encode` (B samples).
            coords: B x K x 2 prompt coordinates in input pixels.
            labels: B x K prompt labels (see module docstring); a sample with fewer tokens is
                filled up with ``FILLER_LABEL``.

        Returns:
            B x 4 x S/2 x S/2 mask logits (S/4 with SAM's decoder at 16 px patches; mask 0 is
            the single-mask output) and B x 4 IoU predictions.
        """
        sparse, dense = self.embed_prompts(coords, labels)
        image_pe = self.prompt_encoder.get_dense_pe()
        prompt_mask = self.attention_mask(coords, labels)
        fillers = labels == FILLER_LABEL
        no_fillers = may_branch_on_values(fillers) and not bool(fillers.any())
        return self.mask_decoder(
            features.embedding,
            image_pe,
            sparse,
            dense,
            features.pyramid,
            prompt_mask,
            None if no_fillers else ~fillers,
        )

    def forward(self, images: Tensor, coords: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`encode` then :meth:`decode` (``images`` SAM-normalised, S x S)."""
        return self.decode(self.encode(images), coords, labels)


def build_zim(
    variant: str = "vit_b",
    masked_directions: tuple[str, ...] = ("t2i",),
    decoder: str = "hierarchical",
    point_sigma: float = 21.0,
) -> Zim:
    """Build a randomly initialised ZIM (load SAM with :mod:`mattekit.models.sam.weights`).

    Args:
        variant: ``vit_b`` (paper), ``vit_l``, ``vit_h`` or ``tiny``.
        masked_directions: cross-attention directions with the prompt mask; ``()`` turns the
            masked attention off (Table 3a), ``("t2i",)`` is the paper's choice (Table 3b).
        decoder: ``hierarchical`` (ZIM) or ``sam`` (SAM's transposed convolutions).
        point_sigma: point attention sigma in tokens of a 64 x 64 grid.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown ZIM variant {variant!r}; choose from {sorted(VARIANTS)}")
    if decoder not in ("hierarchical", "sam"):
        raise ValueError(f"decoder must be 'hierarchical' or 'sam', got {decoder!r}")
    v = VARIANTS[variant]
    # Built in this order (encoder, prompt encoder, decoder) so a seed gives the same weights.
    image_encoder = build_image_encoder(v)
    prompt_encoder = build_prompt_encoder(v)
    transformer = MaskedTwoWayTransformer(
        2, v.prompt_dim, v.decoder_heads, v.decoder_mlp_dim, masked_directions
    )
    out_dim = v.prompt_dim // 8
    pixel_decoder = (
        HierarchicalPixelDecoder(v.prompt_dim, out_dim, v.patch_size, v.pyramid_channels)
        if decoder == "hierarchical"
        else SamPixelDecoder(v.prompt_dim, out_dim)
    )
    mask_decoder = ZimMaskDecoder(
        transformer, pixel_decoder, v.prompt_dim, iou_head_dim=v.iou_head_dim
    )
    return Zim(image_encoder, prompt_encoder, mask_decoder, point_sigma)
