"""SDMatte's attention processors for diffusers' ``Attention`` layers.

Two changes to Stable Diffusion's attention, each switched per block:

- **Masked self-attention** (``attn1``): the prompt map, nearest-resized to the level's token
  grid, becomes the key bias ``(1 - m) x -10000``, the same for every query. It is handed to
  ``F.scaled_dot_product_attention`` as a B x 1 x 1 x L mask through the shared
  :func:`~mattekit.nn.masked_attention.masked_attention`, so no L x L score matrix is built
  (the release builds it, which is why 1024 px needs fp16 and sliced attention there).
- **Visual-prompt cross-attention** (``attn2``): the context is the prompt latent's tokens
  instead of the text embedding.

Both arrive through the UNet's ``cross_attention_kwargs`` (``prompt_bias``, ``visual_prompt``).
Diffusers' own ``attention_mask`` path is not used: ``Attention.prepare_attention_mask`` pads a
mask whose length differs from the level's token count instead of resizing it.
"""

from __future__ import annotations

import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor

from mattekit.nn.masked_attention import key_bias_from_mask, masked_attention
from mattekit.nn.token_grid import level_grid

#: The release's bias on keys outside the prompt: finite, so a soft map gives a graded bias.
BLOCKED_KEY_BIAS = -10000.0


class PromptKeyBias:
    """The prompt map as a key bias for every token grid of the UNet, computed once per grid.

    Args:
        prompt_map: B x 1 x H x W in [0, 1] (1: inside the prompt).
        latent_size: ``(h, w)`` of the UNet's input; level ``k`` has ``ceil(h / 2^k)`` rows, as
            the UNet's stride-2 convolutions give.
    """

    def __init__(self, prompt_map: Tensor, latent_size: tuple[int, int]) -> None:
        self.prompt_map = prompt_map
        self.latent_size = latent_size
        self._by_length: dict[int, Tensor] = {}

    def for_tokens(self, num_tokens: int) -> Tensor:
        """B x 1 x 1 x L additive key bias for a level with ``num_tokens`` = L tokens."""
        if num_tokens not in self._by_length:
            grid = level_grid(self.latent_size, num_tokens)
            resized = F.interpolate(self.prompt_map.float(), size=grid, mode="nearest")
            keep = resized.flatten(1)
            self._by_length[num_tokens] = key_bias_from_mask(keep, BLOCKED_KEY_BIAS)
        return self._by_length[num_tokens]


class SDMatteAttnProcessor:
    """Scaled dot-product attention for the SD UNet's transformer blocks, with SDMatte's switches.

    Args:
        masked: self-attention (``attn1``) takes the ``prompt_bias`` key bias.
        visual_prompt: cross-attention (``attn2``) attends to ``visual_prompt`` instead of the
            text context.
        explicit: build the L x L scores (the classic processor's memory; a reference only).
    """

    def __init__(self, masked: bool = False, visual_prompt: bool = False, explicit: bool = False):
        self.masked = masked
        self.visual_prompt = visual_prompt
        self.explicit = explicit

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        prompt_bias: PromptKeyBias | None = None,
        visual_prompt: Tensor | None = None,
    ) -> Tensor:
        """B x L x C hidden states -> B x L x C (the SD 2 attention layout only)."""
        if attention_mask is not None or attn.spatial_norm is not None or attn.group_norm:
            raise ValueError(
                "SDMatteAttnProcessor supports the SD UNet's attention layers only (no diffusers "
                "attention_mask, spatial or group norm); prompts arrive as prompt_bias"
            )
        if hidden_states.ndim != 3:
            raise ValueError(f"expected B x L x C hidden states, got {tuple(hidden_states.shape)}")
        is_self = encoder_hidden_states is None
        key_bias = None
        if is_self:
            context = hidden_states
            if self.masked:
                if prompt_bias is None:
                    raise ValueError(
                        "masked self-attention needs cross_attention_kwargs prompt_bias"
                    )
                key_bias = prompt_bias.for_tokens(hidden_states.shape[1]).to(hidden_states.device)
        else:
            if self.visual_prompt:
                if visual_prompt is None:
                    raise ValueError(
                        "visual-prompt cross-attention needs cross_attention_kwargs visual_prompt"
                    )
                encoder_hidden_states = visual_prompt
            context = encoder_hidden_states
            if attn.norm_cross:
                context = attn.norm_encoder_hidden_states(context)
        batch, _, _ = hidden_states.shape

        def heads(x: Tensor) -> Tensor:  # B x L x (h d) -> B x h x L x d
            return x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

        query, key = heads(attn.to_q(hidden_states)), heads(attn.to_k(context))
        value = heads(attn.to_v(context))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = masked_attention(query, key, value, key_bias=key_bias, explicit=self.explicit)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[3]).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor
