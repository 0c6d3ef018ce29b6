"""Which kernel ``F.scaled_dot_product_attention`` runs, and attention to a one-channel value
without falling back to the kernel that builds the L x L map.

PyTorch picks a fused kernel (flash, memory-efficient, cuDNN) only when the inputs fit it; the
fallback, MATH, materialises the h x Lq x Lk softmax and keeps it for backward. On the CPU the
flash kernel needs the value's head dimension to equal the query's and its last axis to be
contiguous, so a 1-channel value (TeachDiffusionMatting's ``A x alpha``) ran MATH: O(L^2)
memory where SDPA was meant to give O(L).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend


def sdpa_backend(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None) -> str:
    """The kernel ``F.scaled_dot_product_attention(query, key, value, attn_mask)`` runs on these
    tensors' device: ``"flash_attention"``, ``"efficient_attention"``, ``"cudnn_attention"``,
    ``"math"`` (the L x L fallback), ...

    Uses ``torch._fused_sdp_choice``, the private function SDPA itself dispatches with.
    """
    choice = torch._fused_sdp_choice(query, key, value, attn_mask, 0.0, False)
    return SDPBackend(choice).name.lower()


def attend_to_column(query: Tensor, key: Tensor, column: Tensor) -> Tensor:
    """``softmax(Q K^T / sqrt(d)) x column`` without the L x L map.

    Args:
        query: B x h x Lq x d; key: B x h x Lk x d.
        column: B x (1 or h) x Lk x 1, the one-channel value (the alpha on the key grid).

    Returns:
        B x h x Lq x 1.

    The column is widened to the head dimension (copies of it, contiguous) so that a fused
    kernel takes the call, and one output channel is kept: d times the value's product, but
    O(L) memory instead of O(Lq x Lk).
    """
    batch, heads, _, width = query.shape
    value = column.to(query.dtype).expand(batch, heads, -1, width).contiguous()
    return F.scaled_dot_product_attention(query, key, value)[..., :1]


@dataclass(frozen=True)
class SdpaCall:
    """One ``F.scaled_dot_product_attention`` call: where from (the calling function and its
    caller), on what, which kernel."""

    caller: str
    query: tuple[int, ...]
    key: tuple[int, ...]
    value: tuple[int, ...]
    masked: bool
    dtype: str
    device: str
    backend: str


def _function(frame: FrameType | None) -> str:
    """``module.function`` of a stack frame."""
    if frame is None:
        return "?"
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"


@contextmanager
def recorded_sdpa_calls() -> Iterator[list[SdpaCall]]:
    """Within the block, every ``F.scaled_dot_product_attention`` call (mattekit's, diffusers',
    timm's: those that look it up on ``torch.nn.functional`` when they call) is appended to the
    yielded list with the kernel it ran, then run unchanged."""
    calls: list[SdpaCall] = []
    original = F.scaled_dot_product_attention

    def recording(query, key, value, attn_mask=None, *args, **kwargs):
        frame = sys._getframe(1)
        caller = f"{_function(frame)} <- {_function(frame.f_back)}"
        backend = sdpa_backend(query, key, value, attn_mask)
        shapes = (tuple(query.shape), tuple(key.shape), tuple(value.shape))
        dtype = str(query.dtype).removeprefix("torch.")
        masked = attn_mask is not None
        calls.append(SdpaCall(caller, *shapes, masked, dtype, query.device.type, backend))
        return original(query, key, value, attn_mask, *args, **kwargs)

    F.scaled_dot_product_attention = recording
    try:
        yield calls
    finally:
        F.scaled_dot_product_attention = original
