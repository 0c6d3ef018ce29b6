"""SAM's attention layer with optional prompt masks: ZIM's two-way transformer and SAMA's
multi-view localisation encoder and local adapters use it.

It subclasses segment-anything's ``Attention``, so parameter names (and SAM checkpoints) are
unchanged; only the forward takes the masks of :func:`~mattekit.nn.masked_attention.
masked_attention`.
"""

from __future__ import annotations

from segment_anything.modeling.transformer import Attention
from torch import Tensor

from mattekit.nn.masked_attention import masked_attention


class MaskedAttention(Attention):
    """SAM's attention layer (same parameters) with optional prompt masks."""

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_bias: Tensor | None = None,
        score_scale: Tensor | None = None,
        query_gate: Tensor | None = None,
    ) -> Tensor:
        """q: B x Lq x C, k / v: B x Lk x C -> B x Lq x C (masks: see masked_attention)."""
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        out = masked_attention(q, k, v, key_bias, score_scale, query_gate)
        return self.out_proj(self._recombine_heads(out))
