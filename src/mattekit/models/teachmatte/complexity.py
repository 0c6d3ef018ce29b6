"""The paper's operation count of dense vs sparse self-attention (appendix 6.1), from a UNet's
own layer shapes.

One attention over ``n`` tokens of width ``d`` costs ``6nd^2 + 4n^2d + 4n^2 - 1`` additions and
multiplications (Q, K, V projections; Q K^T; the 1/sqrt(d) scale; softmax; A V). With keys and
values from a k x k, stride-k convolution (``j = k^2`` fewer), it costs
``(3 + 4/j) n d^2 + 4n^2d/j + 4n^2/j - 1`` (the convolution counted as ``j x n/j x d x d``).

Eq. 11 counts the convolution's multiplies only, while eq. 10 counts a projection's multiplies
and additions. ``phi_ops_per_mac=2`` counts it like the projections: the ratios at 32 x 32 and
16 x 16 then rise from the paper's 0.4515 / 0.6176 to 0.532 / 0.765.
"""

from __future__ import annotations

from torch import nn

from mattekit.models.teachmatte.attention import (
    SkippedSelfAttention,
    TeachAttnProcessor,
    transformer_blocks_by_level,
)


def dense_attention_ops(n: int, d: int) -> int:
    """Paper eq. 10."""
    return 6 * n * d * d + 4 * n * n * d + 4 * n * n - 1


def sparse_attention_ops(n: int, d: int, j: int, phi_ops_per_mac: int = 1) -> float:
    """Paper eq. 11 (``j = k^2``); ``phi_ops_per_mac``: operations per multiply-add counted
    for phi (eq. 11: 1; eq. 10's projections: 2)."""
    phi = phi_ops_per_mac * n * d * d
    return (2 + 4 / j) * n * d * d + phi + 4 * n * n * d / j + 4 * n * n / j - 1


def attention_cost_ratios(
    unet: nn.Module, latent_size: tuple[int, int] = (64, 64), phi_ops_per_mac: int = 1
) -> dict[int, float]:
    """Per level with self-attention, the cost of its layers as installed (sparse, dense or
    removed: 0) over the dense cost, by the paper's count; ``latent_size`` is the UNet input's
    (64 x 64 at 512 px); ``phi_ops_per_mac`` as in :func:`sparse_attention_ops`."""
    ratios: dict[int, float] = {}
    for level, block in transformer_blocks_by_level(unet):
        height, width = (-(-side // 2**level) for side in latent_size)
        n = height * width
        attention = block.attn1
        if isinstance(attention, SkippedSelfAttention):
            ratios[level] = 0.0
            continue
        d = attention.to_q.in_features
        processor = attention.processor
        kernel = processor.kernel if isinstance(processor, TeachAttnProcessor) else 1
        if kernel > 1:
            cost = sparse_attention_ops(n, d, kernel**2, phi_ops_per_mac)
        else:
            cost = dense_attention_ops(n, d)
        ratios[level] = cost / dense_attention_ops(n, d)
    return ratios
