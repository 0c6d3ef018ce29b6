"""Which SDPA kernel runs: attention to a one-channel value takes a fused kernel (not MATH, the
L x L fallback) and equals the explicit product; every call is recorded with its kernel."""

import torch
import torch.nn.functional as F

from mattekit.nn.attention_backend import attend_to_column, recorded_sdpa_calls, sdpa_backend


def explicit(query, key, column):
    scale = query.shape[-1] ** -0.5
    return (query @ key.transpose(-1, -2) * scale).softmax(-1) @ column


def test_attention_to_a_column_equals_the_explicit_product_with_its_gradients():
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(2, 3, 20, 8, generator=generator, requires_grad=True)
    key = torch.randn(2, 3, 12, 8, generator=generator, requires_grad=True)
    column = torch.rand(2, 1, 12, 1, generator=generator)
    ours = attend_to_column(query, key, column)
    reference = explicit(query, key, column.expand(-1, 3, -1, -1))
    assert ours.shape == (2, 3, 20, 1)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    grads = torch.autograd.grad(ours.square().sum(), (query, key))
    expected = torch.autograd.grad(reference.square().sum(), (query, key))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_a_one_channel_value_falls_back_to_math_and_the_widened_one_does_not():
    """The cause of L_STM's O(L^2) memory on the CPU (issue 27), at a 64 x 64 level's shape."""
    query = torch.randn(1, 5, 4096, 64, requires_grad=True)
    column = torch.rand(1, 5, 4096, 1)
    assert sdpa_backend(query, query, column) == "math"
    assert sdpa_backend(query, query, column.expand(-1, -1, -1, 64)) == "math"  # stride 0
    with recorded_sdpa_calls() as calls:
        attend_to_column(query, query, column[:, :1])
    assert [call.backend for call in calls] == ["flash_attention"]
    assert calls[0].caller.startswith("mattekit.nn.attention_backend.attend_to_column <- ")
    assert calls[0].value == (1, 5, 4096, 64) and not calls[0].masked


def test_recording_leaves_the_function_and_its_results_unchanged():
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    bias = torch.zeros(1, 1, 1, 6)
    bias[..., :2] = -1e4
    original = F.scaled_dot_product_attention
    with recorded_sdpa_calls() as calls:
        out = F.scaled_dot_product_attention(q, k, v, bias)
    assert F.scaled_dot_product_attention is original
    torch.testing.assert_close(out, original(q, k, v, bias))
    assert calls[0].masked and calls[0].dtype == "float32" and calls[0].device == "cpu"
    assert calls[0].caller.startswith(f"{__name__}.test_recording_leaves")
