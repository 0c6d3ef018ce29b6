"""TeachDiffusionMatting's attention: sparse self-attention, removed self-attention, and the
recording of what the transparency-mining losses compare.

- **Sparse self-attention** (paper Sec. 3.3): keys and values come from ``phi(f)``, a k x k,
  stride-k convolution of the token grid, so a level of L tokens attends to L / k^2 keys
  (a grid not divisible by k is zero-padded at the bottom-right first). ``phi`` starts as a
  k x k average pool.
- **Removed self-attention** (64 x 64 in the paper): the transformer block's ``attn1`` (and the
  norm that only feeds it) become a zero branch, so the residual passes the tokens through.
- **Recording** (:class:`AttentionRecorder`, passed as ``cross_attention_kwargs["recorder"]``):
  per level, the head-averaged self-attention applied to the GT alpha, ``A x alpha``, computed
  by a fused SDPA kernel (:func:`~mattekit.nn.attention_backend.attend_to_column`: no L x L
  map), and the head-averaged cross-attention map ``softmax(Q K_text^T / sqrt(d))`` (L x T,
  small).

Every processor needs ``cross_attention_kwargs["latent_size"]``, the UNet input's ``(h, w)``,
to know its token grid (:func:`~mattekit.nn.token_grid.level_grid`).
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from mattekit.nn.attention_backend import attend_to_column
from mattekit.nn.sd_attention import check_sd_layout, cross_context, finish, project
from mattekit.nn.token_grid import level_grid

Grid = tuple[int, int]


class AttentionRecorder:
    """Collects the STM and CTM quantities of one UNet forward, grouped by token grid.

    Args:
        alpha: B x 1 x H x W ground-truth alpha; resized (bilinear) to each key grid.
    """

    def __init__(self, alpha: Tensor) -> None:
        self.alpha = alpha
        self.propagated: dict[Grid, list[Tensor]] = defaultdict(list)
        self.cross_maps: dict[Grid, list[Tensor]] = defaultdict(list)
        self._alpha_tokens: dict[Grid, Tensor] = {}

    def alpha_tokens(self, grid: Grid) -> Tensor:
        """B x 1 x L x 1: the alpha on ``grid`` as an attention value (one head, broadcast)."""
        if grid not in self._alpha_tokens:
            resized = F.interpolate(self.alpha.float(), size=grid, mode="bilinear")
            self._alpha_tokens[grid] = resized.flatten(2).transpose(1, 2).unsqueeze(1)
        return self._alpha_tokens[grid]

    def self_attention(self, query: Tensor, key: Tensor, query_grid: Grid, key_grid: Grid) -> None:
        """Record ``A x alpha`` averaged over heads (B x L x 1) for ``query_grid``.

        Args:
            query: B x h x L x d; key: B x h x L_k x d (L_k < L for sparse attention).
        """
        propagated = attend_to_column(query, key, self.alpha_tokens(key_grid))
        self.propagated[query_grid].append(propagated.mean(1))

    def cross_attention(self, probabilities: Tensor, grid: Grid) -> None:
        """Record the head-averaged cross-attention map (B x h x L x T -> B x L x T)."""
        self.cross_maps[grid].append(probabilities.mean(1))

    def by_level(self, kind: str) -> dict[Grid, Tensor]:
        """Per grid, the mean over layers of the recorded ``propagated`` or ``cross`` maps."""
        recorded = self.propagated if kind == "propagated" else self.cross_maps
        return {grid: torch.stack(maps).mean(0) for grid, maps in recorded.items()}


class TeachAttnProcessor(nn.Module):
    """Attention for the SD UNet's transformer blocks: dense or sparse keys, optionally recorded.

    Args:
        channels: the level's width (needed for the sparse convolution).
        kernel: 1 = dense; k > 1 = keys and values from a k x k, stride-k convolution of the
            token grid (self-attention only).
    """

    def __init__(self, channels: int = 0, kernel: int = 1) -> None:
        super().__init__()
        if kernel < 1:
            raise ValueError(f"kernel must be >= 1, got {kernel}")
        self.kernel = kernel
        self.reduce = None
        if kernel > 1:
            self.reduce = nn.Conv2d(channels, channels, kernel, stride=kernel)
            average_pool_init(self.reduce)

    def __call__(  # diffusers reads the keyword names it may pass from this signature
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        latent_size: Grid | None = None,
        recorder: AttentionRecorder | None = None,
    ) -> Tensor:
        """B x L x C -> B x L x C (SD's attention layout: no group or spatial norm, no mask)."""
        check_sd_layout(attn, hidden_states, attention_mask, "TeachAttnProcessor")
        if latent_size is None:
            raise ValueError("TeachAttnProcessor needs cross_attention_kwargs latent_size")
        grid = level_grid(latent_size, hidden_states.shape[1])
        if encoder_hidden_states is None:
            context, key_grid = self._keys_source(hidden_states, grid)
        else:
            context, key_grid = cross_context(attn, encoder_hidden_states), None
        query, key, value = project(attn, hidden_states, context)
        if key_grid is None and recorder is not None:
            probabilities = (query @ key.transpose(-1, -2) * attn.scale).softmax(-1)
            recorder.cross_attention(probabilities, grid)
            out = probabilities @ value
        else:
            if recorder is not None:
                recorder.self_attention(query, key, grid, key_grid)
            out = F.scaled_dot_product_attention(query, key, value)
        return finish(attn, out, hidden_states)

    def _keys_source(self, hidden_states: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        """The tokens keys and values are computed from, and their grid."""
        if self.reduce is None:
            return hidden_states, grid
        batch, _, channels = hidden_states.shape
        tokens = hidden_states.transpose(1, 2).reshape(batch, channels, *grid)
        # A grid not divisible by k (small inputs) is zero-padded at the bottom-right: the last
        # keys summarise partial windows. Paper-size grids (32, 16) never need it.
        k = self.kernel
        tokens = F.pad(tokens, (0, -grid[1] % k, 0, -grid[0] % k))
        reduced = self.reduce(tokens)
        return reduced.flatten(2).transpose(1, 2), tuple(reduced.shape[-2:])


def average_pool_init(conv: nn.Conv2d) -> None:
    """Make a C -> C, k x k convolution an average pool: weight I / k^2 per channel, bias 0.

    Every block the student keeps is copied from the teacher, so phi starting as a pool gives
    keys and values that summarise the teacher's (the mean of each window's projections);
    PyTorch's random init would scramble them at 32 x 32 and 16 x 16.
    """
    out_channels, in_channels, height, width = conv.weight.shape
    if out_channels != in_channels:
        raise ValueError(f"an average pool keeps the width, got {in_channels} -> {out_channels}")
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[range(out_channels), range(in_channels)] = 1.0 / (height * width)
        if conv.bias is not None:
            conv.bias.zero_()


class SkippedSelfAttention(nn.Module):
    """A removed self-attention: the branch adds 0, the block's residual passes tokens through."""

    def forward(self, hidden_states: Tensor, *args, **kwargs) -> Tensor:
        return torch.zeros_like(hidden_states)


def transformer_blocks_by_level(unet: nn.Module) -> list[tuple[int, nn.Module]]:
    """``(level, BasicTransformerBlock)`` for every transformer block of a diffusers UNet; level
    0 is the highest resolution (down stage i and up stage n - 1 - i work on level i)."""
    stages = len(unet.down_blocks)
    located: list[tuple[int, nn.Module]] = []
    groups = [(i, block) for i, block in enumerate(unet.down_blocks)]
    groups += [(stages - 1 - i, block) for i, block in enumerate(unet.up_blocks)]
    if getattr(unet, "mid_block", None) is not None:
        groups.append((stages - 1, unet.mid_block))
    for level, stage in groups:
        for transformer in getattr(stage, "attentions", []):
            located += [(level, block) for block in transformer.transformer_blocks]
    return located


def set_attention(unet: nn.Module, kernels: list[int] | tuple[int, ...]) -> None:
    """Install :class:`TeachAttnProcessor` in every attention layer of ``unet``.

    Args:
        kernels: per level from the highest resolution, the self-attention's kernel: -1 removes
            it, 1 keeps it dense, k > 1 makes it sparse. Levels past the list stay dense. The
            cross-attention stays dense everywhere.
    """
    for level, block in transformer_blocks_by_level(unet):
        kernel = kernels[level] if level < len(kernels) else 1
        if kernel == -1:
            block.attn1, block.norm1 = SkippedSelfAttention(), nn.Identity()
        elif isinstance(block.attn1, Attention):
            width = block.attn1.to_q.in_features
            block.attn1.set_processor(TeachAttnProcessor(width, kernel))
        block.attn2.set_processor(TeachAttnProcessor())


def check_kernels(kernels: list[int] | tuple[int, ...]) -> None:
    """Raise a ValueError naming ``attention_kernels`` unless every entry is -1 or >= 1."""
    bad = [k for k in kernels if k != -1 and k < 1]
    if bad:
        raise ValueError(
            f"attention_kernels: each level's kernel is -1 (removed), 1 (dense) or k > 1 "
            f"(sparse), got {list(kernels)}"
        )
