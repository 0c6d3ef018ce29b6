"""The parts every custom processor for Stable Diffusion's attention layers shares.

A diffusers attention processor receives the layer (``Attention``) and its tokens, and must
project, attend, project out, add the residual and rescale, as diffusers' own processors do.
SDMatte's and TeachDiffusionMatting's processors differ only in how they attend; the rest is
here, once, with the precision the layer asks for (:func:`attend`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.models.attention_processor import Attention
from torch import Tensor


def check_sd_layout(
    attn: Attention, hidden_states: Tensor, attention_mask: Tensor | None, processor: str
) -> None:
    """Raise a ValueError naming ``processor`` unless this is SD's layout: B x L x C tokens, no
    diffusers ``attention_mask``, no spatial or group norm."""
    if attention_mask is not None or attn.spatial_norm is not None or attn.group_norm:
        raise ValueError(
            f"{processor} supports the SD UNet's attention layers only (no diffusers "
            "attention_mask, spatial or group norm)"
        )
    if hidden_states.ndim != 3:
        raise ValueError(f"expected B x L x C hidden states, got {tuple(hidden_states.shape)}")


def split_heads(x: Tensor, heads: int) -> Tensor:
    """B x L x (h d) -> B x h x L x d."""
    batch, length, width = x.shape
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def cross_context(attn: Attention, encoder_hidden_states: Tensor) -> Tensor:
    """The cross-attention context, normed when the layer norms it."""
    if attn.norm_cross:
        return attn.norm_encoder_hidden_states(encoder_hidden_states)
    return encoder_hidden_states


def project(attn: Attention, hidden_states: Tensor, context: Tensor) -> tuple[Tensor, ...]:
    """``(query, key, value)``, each B x h x L x d, with the layer's query / key norms."""
    query = split_heads(attn.to_q(hidden_states), attn.heads)
    key = split_heads(attn.to_k(context), attn.heads)
    value = split_heads(attn.to_v(context), attn.heads)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return query, key, value


def attend(
    attn: Attention,
    attention: Callable[[Tensor, Tensor, Tensor], Tensor],
    query: Tensor,
    key: Tensor,
    value: Tensor,
) -> Tensor:
    """``attention(query, key, value)`` (each B x h x L x d) in the precision the layer asks for.

    diffusers' classic ``AttnProcessor`` (the SDMatte release's) computes the scores in float32
    when the layer's ``upcast_attention`` is set (SD 2.1's UNet config; SD 2.0's and SDMatte's
    leave it False) and the softmax in float32 when ``upcast_softmax`` is: in fp16 / bf16 the
    scores of a large ``q . k`` overflow or lose the digits the softmax needs. Either flag runs
    the whole attention here in float32 with autocast off (under autocast a matmul or SDPA
    would cast float32 inputs back down); the result keeps that dtype and :func:`finish`
    casts it back. Without either flag, or at float32, the call is unchanged.
    """
    if not (attn.upcast_attention or attn.upcast_softmax):
        return attention(query, key, value)
    with torch.autocast(query.device.type, enabled=False):
        return attention(query.float(), key.float(), value.float())


def finish(attn: Attention, attended: Tensor, hidden_states: Tensor) -> Tensor:
    """B x h x L x d attended values -> B x L x C: heads merged, output projection, residual,
    rescale (diffusers' order)."""
    out = attended.transpose(1, 2).flatten(2).to(hidden_states.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + hidden_states
    return out / attn.rescale_output_factor
