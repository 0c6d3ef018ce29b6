"""SAM's two-way transformer with ZIM's prompt-aware masked attention (paper eq. 4-5).

The classes subclass segment-anything's, so parameter names (and SAM checkpoints) are unchanged;
only the forward passes learn to take a :class:`PromptAttentionMask`. Which cross-attention
directions are masked is a per-transformer switch (paper Table 3b): ``"t2i"`` (tokens attend to
the image; the mask acts on keys) and ``"i2t"`` (the image attends to the tokens; the mask acts on
queries).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from segment_anything.modeling.transformer import TwoWayAttentionBlock, TwoWayTransformer
from torch import Tensor, nn

from mattekit.nn.fast_paths import may_branch_on_values
from mattekit.nn.masked_attention import key_bias_from_mask
from mattekit.nn.sam_attention import MaskedAttention

DIRECTIONS = ("t2i", "i2t")


@dataclass
class PromptAttentionMask:
    """Per-sample prompt regions over the L = h x w image tokens.

    Attributes:
        box: B x L, 1 inside the sample's box (all ones for a point-prompted sample).
        points: B x L Gaussian map of the sample's clicks (all ones for a box-prompted sample),
            or None when every sample in the batch has a box (keeps attention on the fused
            ``scaled_dot_product_attention`` path).
    """

    box: Tensor
    points: Tensor | None

    def token_to_image(self) -> dict[str, Tensor | None]:
        """Masks for tokens attending to the image: the image tokens are the keys."""
        scale = None if self.points is None else self.points[:, None, None, :]
        return {"key_bias": key_bias_from_mask(self.box), "score_scale": scale}

    def image_to_token(self) -> dict[str, Tensor | None]:
        """Masks for the image attending to the tokens: the image tokens are the queries."""
        scale = None if self.points is None else self.points[:, None, :, None]
        return {"query_gate": self.box[:, None, :, None], "score_scale": scale}


class MaskedTwoWayBlock(TwoWayAttentionBlock):
    """SAM's block: self-attention, t2i cross-attention, MLP, i2t cross-attention."""

    def __init__(
        self, embedding_dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool
    ) -> None:
        super().__init__(embedding_dim, num_heads, mlp_dim, skip_first_layer_pe=skip_first_layer_pe)
        # Same names and shapes as SAM's layers, so SAM checkpoints load unchanged.
        self.self_attn = MaskedAttention(embedding_dim, num_heads)
        self.cross_attn_token_to_image = MaskedAttention(embedding_dim, num_heads, 2)
        self.cross_attn_image_to_token = MaskedAttention(embedding_dim, num_heads, 2)

    def forward(
        self,
        queries: Tensor,
        keys: Tensor,
        query_pe: Tensor,
        key_pe: Tensor,
        t2i_mask: dict | None = None,
        i2t_mask: dict | None = None,
        token_keys: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``token_keys``: B x 1 x 1 x N key bias, -inf on filler slots (None: no fillers)."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries, key_bias=token_keys)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries, key_bias=token_keys)
        queries = self.norm1(queries)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(
            queries + self.cross_attn_token_to_image(q, k, keys, **(t2i_mask or {}))
        )
        queries = self.norm3(queries + self.mlp(queries))

        q, k = queries + query_pe, keys + key_pe
        i2t = {**(i2t_mask or {}), **({} if token_keys is None else {"key_bias": token_keys})}
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries, **i2t))
        return queries, keys


class MaskedTwoWayTransformer(TwoWayTransformer):
    """SAM's two-way transformer whose cross-attentions take ZIM's prompt masks.

    Args:
        depth, embedding_dim, num_heads, mlp_dim: as SAM's ``TwoWayTransformer``.
        masked_directions: cross-attention directions that apply the prompt mask (``"t2i"``,
            ``"i2t"``); empty turns masked attention off. The final token-to-image attention
            counts as t2i.
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        masked_directions: tuple[str, ...] = ("t2i",),
    ) -> None:
        super().__init__(depth, embedding_dim, num_heads, mlp_dim)
        unknown = set(masked_directions) - set(DIRECTIONS)
        if unknown:
            raise ValueError(f"masked_directions must be among {DIRECTIONS}, got {sorted(unknown)}")
        self.masked_directions = tuple(masked_directions)
        self.layers = nn.ModuleList(
            MaskedTwoWayBlock(embedding_dim, num_heads, mlp_dim, skip_first_layer_pe=(i == 0))
            for i in range(depth)
        )
        self.final_attn_token_to_image = MaskedAttention(embedding_dim, num_heads, 2)

    def forward(
        self,
        image_embedding: Tensor,
        image_pe: Tensor,
        point_embedding: Tensor,
        prompt_mask: PromptAttentionMask | None = None,
        real_tokens: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run the decoder.

        Args:
            image_embedding: B x C x h x w.
            image_pe: B x C x h x w positional encoding.
            point_embedding: B x N x C output + prompt tokens.
            prompt_mask: regions over the h x w tokens; ignored when no direction is masked.
            real_tokens: B x N bool, False for filler slots, which no attention reads as a key
                (a filler's own output is never used). None: every slot is a token.

        Returns:
            B x N x C processed tokens and B x hw x C processed image tokens.
        """
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        use = prompt_mask is not None
        t2i = prompt_mask.token_to_image() if use and "t2i" in self.masked_directions else None
        i2t = prompt_mask.image_to_token() if use and "i2t" in self.masked_directions else None
        token_keys = None if real_tokens is None else key_bias_from_mask(real_tokens)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe, t2i, i2t, token_keys)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(
            queries + self.final_attn_token_to_image(q, k, keys, **(t2i or {}))
        )
        return queries, keys


def make_prompt_mask(
    boxes: Tensor, has_box: Tensor, point_map: Tensor, grid: tuple[int, int]
) -> PromptAttentionMask:
    """Combine per-sample box masks and point maps into one batch mask.

    Args:
        boxes: B x h x w box masks on the token grid.
        has_box: B bool, True for box-prompted samples.
        point_map: B x h x w Gaussian click maps on the token grid.
        grid: ``(h, w)``.
    """
    box = torch.where(has_box[:, None, None], boxes, torch.ones_like(boxes)).flatten(1)
    # All-box batches keep the fused attention path (not in exported graphs: fast_paths.py).
    if may_branch_on_values(has_box) and bool(has_box.all()):
        return PromptAttentionMask(box=box, points=None)
    points = torch.where(has_box[:, None, None], torch.ones_like(point_map), point_map)
    return PromptAttentionMask(box=box, points=points.flatten(1))
