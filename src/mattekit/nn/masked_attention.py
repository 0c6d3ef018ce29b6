"""Masked attention shared by the families: prompt-aware (ZIM) and masked self-attention (SDMatte).

Three kinds of masking cover every family:

- ``key_bias``: an additive bias per key, the same for every query (B x 1 x 1 x Lk): ZIM's box
  mask (0 inside, -inf outside, paper eq. 4) and SDMatte's ``(1 - m) * -10000`` bias. Passed to
  ``F.scaled_dot_product_attention``, so no Lq x Lk score matrix is built by us.
- ``score_scale``: a factor on the scaled scores before the softmax, ``softmax(M * QK^T / sqrt d)``
  (ZIM's point map, eq. 5). This needs the scores, so it takes the explicit path.
- ``query_gate``: a factor on each query's output row (B x 1 x Lq x 1). With a box in ZIM's
  image-to-token direction the queries are image positions; those outside the box receive no
  update (their key bias would be constant along the row and cancel in the softmax).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def attention_scores(
    q: Tensor, k: Tensor, key_bias: Tensor | None = None, score_scale: Tensor | None = None
) -> Tensor:
    """Masked pre-softmax scores ``score_scale * QK^T / sqrt(d) + key_bias``.

    Args:
        q: B x h x Lq x d.
        k: B x h x Lk x d.
        key_bias: broadcastable to B x h x Lq x Lk (typically B x 1 x 1 x Lk).
        score_scale: broadcastable to B x h x Lq x Lk.

    Returns:
        B x h x Lq x Lk.
    """
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if score_scale is not None:
        scores = scores * score_scale
    if key_bias is not None:
        scores = scores + key_bias
    return scores


def masked_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_bias: Tensor | None = None,
    score_scale: Tensor | None = None,
    query_gate: Tensor | None = None,
    explicit: bool = False,
) -> Tensor:
    """``softmax(score_scale * QK^T / sqrt(d) + key_bias) V``, rows gated by ``query_gate``.

    Args:
        q: B x h x Lq x d.
        k, v: B x h x Lk x d.
        key_bias: additive, broadcastable to B x h x Lq x Lk; -inf blocks a key. A query whose
            keys are all blocked yields NaN, as a softmax over nothing must.
        score_scale: multiplicative, broadcastable to B x h x Lq x Lk.
        query_gate: broadcastable to B x h x Lq x 1; multiplies each query's output.
        explicit: build the Lq x Lk scores even without ``score_scale``: the classic
            processors' path, kept as the reference that tests and benchmarks compare against.

    Returns:
        B x h x Lq x d.
    """
    if score_scale is None and not explicit:
        bias = None if key_bias is None else key_bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    else:
        probabilities = torch.softmax(attention_scores(q, k, key_bias, score_scale), dim=-1)
        # A float32 bias promotes a bf16 / fp16 model's scores; the probabilities return to the
        # values' dtype, as diffusers' classic processor casts them back to the query's.
        out = probabilities.to(v.dtype) @ v
    if query_gate is not None:
        out = out * query_gate
    return out


def key_bias_from_mask(mask: Tensor, blocked_value: float = float("-inf")) -> Tensor:
    """B x L keep-mask (1 keep, 0 block; may be soft) -> B x 1 x 1 x L additive key bias.

    ``blocked_value=-inf`` is ZIM's hard box mask; SDMatte uses a finite ``-10000`` so that a
    soft prompt map gives a graded bias ``(1 - m) * -10000``.
    """
    mask = mask.to(torch.float32)
    if math.isinf(blocked_value):
        bias = torch.zeros_like(mask).masked_fill(mask <= 0, blocked_value)
    else:
        bias = (1.0 - mask) * blocked_value
    return bias[:, None, None, :]
