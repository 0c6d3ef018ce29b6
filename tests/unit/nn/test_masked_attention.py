import math

import pytest
import torch

from mattekit.nn.masked_attention import attention_scores, key_bias_from_mask, masked_attention


@pytest.fixture
def qkv():
    torch.manual_seed(0)
    return torch.randn(2, 3, 5, 8), torch.randn(2, 3, 12, 8), torch.randn(2, 3, 12, 8)


def test_unmasked_equals_plain_softmax_attention(qkv):
    q, k, v = qkv
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1) @ v
    assert torch.allclose(masked_attention(q, k, v), expected, atol=1e-6)


def test_key_bias_really_blocks_keys(qkv):
    q, k, _ = qkv
    keep = torch.zeros(2, 12)
    keep[:, 3:7] = 1
    blocked = (1 - keep)[:, None, :, None].expand(2, 3, 12, 1)
    # Attending to the indicator of the blocked keys returns the probability mass on them.
    mass = masked_attention(q, k, blocked, key_bias=key_bias_from_mask(keep))
    assert mass.abs().max() < 1e-7
    unmasked = masked_attention(q, k, blocked)
    assert unmasked.min() > 0.05


def test_sdpa_path_matches_explicit_scores(qkv):
    q, k, v = qkv
    bias = key_bias_from_mask((torch.rand(2, 12) > 0.3).float())
    bias[:, ..., 0] = 0  # keep at least one key per sample
    explicit = torch.softmax(attention_scores(q, k, key_bias=bias), dim=-1) @ v
    fused = masked_attention(q, k, v, key_bias=bias)
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_score_scale_multiplies_scores_before_softmax(qkv):
    q, k, v = qkv
    scale = torch.rand(2, 1, 1, 12)
    expected = torch.softmax(scale * (q @ k.transpose(-2, -1)) / math.sqrt(8), dim=-1) @ v
    assert torch.allclose(masked_attention(q, k, v, score_scale=scale), expected, atol=1e-6)
    # A zero scale makes the attention uniform: the output is the mean value.
    flat = masked_attention(q, k, v, score_scale=torch.zeros(2, 1, 1, 12))
    assert torch.allclose(flat, v.mean(dim=2, keepdim=True).expand_as(flat), atol=1e-6)


def test_query_gate_zeroes_rows(qkv):
    q, k, v = qkv
    gate = torch.ones(2, 1, 5, 1)
    gate[:, :, 2] = 0
    out = masked_attention(q, k, v, query_gate=gate)
    assert out[:, :, 2].abs().max() == 0 and out[:, :, 0].abs().max() > 0


def test_finite_bias_is_graded():
    bias = key_bias_from_mask(torch.tensor([[1.0, 0.5, 0.0]]), blocked_value=-10000.0)
    assert bias.shape == (1, 1, 1, 3)
    assert bias.flatten().tolist() == [0.0, -5000.0, -10000.0]


def test_explicit_scores_of_a_bf16_model_with_a_float32_bias():
    """The classic path in a model cast to bf16: a float32 key bias promotes the scores, and the
    probabilities return to the values' dtype (before: "expected m1 and m2 to have the same
    dtype"); the result agrees with the SDPA path."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=generator).bfloat16() for _ in range(3))
    bias = torch.zeros(1, 1, 1, 5)
    bias[..., 1] = float("-inf")
    explicit = masked_attention(q, k, v, key_bias=bias, explicit=True)
    fused = masked_attention(q, k, v, key_bias=bias)
    assert explicit.dtype == torch.bfloat16
    torch.testing.assert_close(explicit.float(), fused.float(), atol=0.03, rtol=0.02)
