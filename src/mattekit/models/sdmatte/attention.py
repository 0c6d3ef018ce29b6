"""SDMatte's attention processors for diffusers' ``Attention`` layers.

Two changes to Stable Diffusion's attention, each switched per block:

- **Masked self-attention** (``attn1``): the prompt map, nearest-resized to the level's token
  grid, becomes the key bias ``(1 - m) x -10000``, the same for every query. It is handed to
  ``F.scaled_dot_product_attention`` as a B x 1 x 1 x L mask through the shared
  :func:`~mattekit.nn.masked_attention.masked_attention`, so no L x L score matrix is built
  (the release builds it, which is why 1024 px needs fp16 and sliced attention there).
- **Visual-prompt cross-attention** (``attn2``): the context is the prompt latent's tokens
  instead of the text embedding.

Like the release's classic processor, a layer whose ``upcast_attention`` / ``upcast_softmax``
is set attends in float32 (:func:`~mattekit.nn.sd_attention.attend`).

Both arrive through the UNet's ``cross_attention_kwargs`` (``prompt_bias``, ``visual_prompt``).
Diffusers' own ``attention_mask`` path is not used: ``Attention.prepare_attention_mask`` pads a
mask whose length differs from the level's token count instead of resizing it.
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor

from mattekit.nn.masked_attention import key_bias_from_mask, masked_attention
from mattekit.nn.sd_attention import attend, check_sd_layout, cross_context, finish, project
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
        """B x L x C hidden states -> B x L x C (the SD 2 attention layout only; prompts
        arrive as ``prompt_bias``)."""
        check_sd_layout(attn, hidden_states, attention_mask, "SDMatteAttnProcessor")
        key_bias = None
        if encoder_hidden_states is None:
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
            context = cross_context(attn, encoder_hidden_states)
        query, key, value = project(attn, hidden_states, context)
        attention = partial(masked_attention, key_bias=key_bias, explicit=self.explicit)
        return finish(attn, attend(attn, attention, query, key, value), hidden_states)
