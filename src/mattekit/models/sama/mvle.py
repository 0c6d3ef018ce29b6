"""SAMA's Multi-View Localization Encoder (MVLE, paper eq. 2-3) and the 2 x 2 region geometry.

The input image is cut into four non-overlapping quadrants ("local views"), each resized back to
the encoder's input size and encoded by the same frozen SAM encoder. The MVLE then lets every
local view's tokens (queries) attend to the average-pooled global feature map restricted to the
same quadrant (keys / values), with one attention module per quadrant.

Every module of the family indexes quadrants the same way: ``m = 2 * row + col`` (0 top-left,
1 top-right, 2 bottom-left, 3 bottom-right), as MVANet's ``(hg wg b)`` patch order. All splitting
and tiling goes through :func:`split_regions` / :func:`tile_regions`, so the local views, the
pooled regions, the positional encodings and the Local-Adapter's image regions line up by
construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.nn.sam_attention import MaskedAttention

REGIONS = 4  # 2 x 2 quadrants
POOL_MODES = ("paper", "mvanet")

PositionalEncoder = Callable[[Tensor], Tensor]
"""``pe(coords) -> encodings``: coords 1 x N x 2, ``(x, y)`` normalised to [0, 1] over the network
input; returns 1 x N x C. SAM's frozen encoder fits as
``functools.partial(prompt_encoder.pe_layer.forward_with_coords, image_size=(1, 1))``."""


def region_slices(height: int, width: int) -> list[tuple[slice, slice]]:
    """``(rows, cols)`` slices of the four quadrants of an ``height x width`` map, m = 2 row + col.

    The reference description of the geometry (tests and readers); the modules use the reshape in
    :func:`split_regions`, which gives the same quadrants without a Python loop.
    """
    _check_even(height, width, "map")
    rows = (slice(0, height // 2), slice(height // 2, height))
    cols = (slice(0, width // 2), slice(width // 2, width))
    return [(rows[m // 2], cols[m % 2]) for m in range(REGIONS)]


def split_regions(maps: Tensor) -> Tensor:
    """B x C x H x W -> B x 4 x C x H/2 x W/2, the quadrants in order m = 2 row + col."""
    b, c, h, w = maps.shape
    _check_even(h, w, "map")
    quads = maps.reshape(b, c, 2, h // 2, 2, w // 2)
    return quads.permute(0, 2, 4, 1, 3, 5).reshape(b, REGIONS, c, h // 2, w // 2)


def tile_regions(regions: Tensor) -> Tensor:
    """B x 4 x C x h x w -> B x C x 2h x 2w: the inverse of :func:`split_regions`."""
    b, n, c, h, w = regions.shape
    if n != REGIONS:
        raise ValueError(f"expected {REGIONS} regions in dim 1, got shape {tuple(regions.shape)}")
    quads = regions.reshape(b, 2, 2, c, h, w)
    return quads.permute(0, 3, 1, 4, 2, 5).reshape(b, c, 2 * h, 2 * w)


def regions_to_tokens(regions: Tensor) -> Tensor:
    """B x 4 x C x h x w region maps -> B x 4 x hw x C tokens (row-major, as SAM flattens)."""
    return regions.flatten(3).transpose(2, 3)


def tokens_to_regions(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """B x 4 x hw x C tokens -> B x 4 x C x h x w region maps, ``grid = (h, w)``."""
    b, n, _, c = tokens.shape
    return tokens.transpose(2, 3).reshape(b, n, c, *grid)


def split_token_regions(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """B x L x C tokens of an ``(h, w)`` grid -> B x 4 x L/4 x C tokens of each quadrant."""
    b, length, c = tokens.shape
    if length != grid[0] * grid[1]:
        raise ValueError(f"{length} tokens do not fill the grid {tuple(grid)}")
    maps = tokens.transpose(1, 2).reshape(b, c, *grid)
    return regions_to_tokens(split_regions(maps))


def tile_token_regions(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """B x 4 x L/4 x C quadrant tokens -> B x L x C tokens of the full ``(h, w)`` grid."""
    _check_even(*grid, "grid")
    regions = tokens_to_regions(tokens, (grid[0] // 2, grid[1] // 2))
    return tile_regions(regions).flatten(2).transpose(1, 2)


def local_views(images: Tensor, view_size: int) -> Tensor:
    """The four quadrant crops of each image, resized bilinearly to the encoder's input size.

    Crop after SAM's normalisation and zero padding, so the padding of a letterboxed image stays
    exactly 0 in every view.

    Args:
        images: B x 3 x S x S (S even).
        view_size: side of each view (the paper upsamples to S: a 2x zoom).

    Returns:
        B x 4 x 3 x view_size x view_size, m = 2 row + col.
    """
    crops = split_regions(images)
    if crops.shape[-2:] == (view_size, view_size):
        return crops  # bilinear at scale 1 is the identity: skip the copy
    flat = F.interpolate(
        crops.flatten(0, 1), size=(view_size, view_size), mode="bilinear", align_corners=False
    )
    return flat.unflatten(0, (images.shape[0], REGIONS))


def pool_windows(kernels: Sequence[int], grid: tuple[int, int], mode: str = "paper") -> list[int]:
    """Check ``kernels`` against the global grid; return the avg-pool window for each.

    ``"paper"`` (default, the text's order): pool the whole global map with kernel = stride = k,
    then split each pooled map into quadrants. Every pooled cell lies inside one quadrant only if
    k divides the grid and the pooled side (grid / k) is even.

    ``"mvanet"``: MVANet's MCRM order: split first, pool each quadrant to grid / k cells a side
    (with grid the *full* side), i.e. a window of k / 2 on the global map: k must be even and
    divide the grid. Four times as many tokens as ``"paper"``.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
    kernels = tuple(kernels)
    if not kernels or any(not isinstance(k, int) or k < 1 for k in kernels):
        raise ValueError(f"kernels must be positive integers, got {kernels}")
    h, w = grid
    windows = []
    for k in kernels:
        if h % k or w % k:
            raise ValueError(f"kernels={kernels}: kernel {k} does not divide the {h} x {w} grid")
        if mode == "paper" and ((h // k) % 2 or (w // k) % 2):
            raise ValueError(
                f"kernels={kernels}: kernel {k} pools the {h} x {w} grid to "
                f"{h // k} x {w // k}, which has no 2 x 2 split into quadrants"
            )
        if mode == "mvanet" and k % 2:
            raise ValueError(f"kernels={kernels}: mode 'mvanet' needs even kernels, got {k}")
        windows.append(k if mode == "paper" else k // 2)
    return windows


def pooled_regions(global_map: Tensor, kernels: Sequence[int], mode: str = "paper") -> Tensor:
    """Multi-scale average pooling of the global map, split into the four quadrants.

    Args:
        global_map: B x C x h x w (SAM's image embedding F^I).
        kernels: receptive fields, e.g. (4, 8, 16) on a 64 x 64 grid (see :func:`pool_windows`).
        mode: ``"paper"`` or ``"mvanet"``.

    Returns:
        B x 4 x T x C: region m's pooled cells, kernel by kernel in the given order, each kernel's
        cells row-major. T = sum_k (h / 2k)(w / 2k) in paper mode (84 for (4, 8, 16) on 64).
    """
    windows = pool_windows(kernels, tuple(global_map.shape[-2:]), mode)
    tokens = [
        regions_to_tokens(split_regions(F.avg_pool2d(global_map, window, window)))
        for window in windows
    ]
    return torch.cat(tokens, dim=2)


def token_centres(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """1 x 2 x h x w map of token centres ``(x, y)`` normalised to [0, 1], as SAM's dense PE."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=0)[None]


def region_positional_encodings(
    pe: PositionalEncoder,
    global_grid: tuple[int, int],
    local_grid: tuple[int, int],
    kernels: Sequence[int],
    mode: str = "paper",
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Positional encodings, in global-image coordinates, of the MVLE's keys and queries.

    Both are ``pe`` evaluated at the centre of what a token covers in the network input:

    - pooled cells: the centre coordinates are themselves pooled by :func:`pooled_regions` (the
      mean of the k x k token centres is the cell centre), so the encodings line up with the
      pooled tokens by construction;
    - local tokens: view m covers quadrant m at twice the local grid's density, so its token
      (i, j) sits at token (i, j) of quadrant m of a (2 hl) x (2 wl) grid.

    With SAM's PE these are the values SAM's own dense PE would have at those points (a pooled
    cell of kernel 1 gets SAM's ``get_dense_pe`` value there, to float rounding).

    Args:
        pe: see :data:`PositionalEncoder`.
        global_grid: ``(h, w)`` of the global map.
        local_grid: ``(hl, wl)`` of each local view's map (equal to the global grid when the views
            are upsampled to the input size, as in the paper).
        kernels, mode: as :func:`pooled_regions`.
        device: where to build the coordinates (the PE's device).

    Returns:
        4 x T x C for the pooled cells (MVLE ``global_pe``) and 4 x hl wl x C for the local tokens
        (MVLE and Local-Adapter ``local_pe``).
    """
    pooled = pooled_regions(token_centres(*global_grid, device=device), kernels, mode)[0]
    return _encode(pe, pooled), local_positional_encoding(pe, local_grid, device)


def local_positional_encoding(
    pe: PositionalEncoder, local_grid: tuple[int, int], device: torch.device | str | None = None
) -> Tensor:
    """4 x hl wl x C: the PE of each local view's tokens in global-image coordinates (view m
    covers quadrant m at twice the density: its token (i, j) sits at token (i, j) of quadrant m
    of a (2 hl) x (2 wl) grid)."""
    hl, wl = local_grid
    local = regions_to_tokens(split_regions(token_centres(2 * hl, 2 * wl, device=device)))[0]
    return _encode(pe, local)


class MultiViewLocalizationEncoder(nn.Module):
    """Cross-attention from each local view to its quadrant of the pooled global map (eq. 2-3).

    Per region m: ``F'^{P_m} = LN_m(F^{L_m} + Attn_m(F^{L_m} + PE_L, pool_m + PE_P, pool_m))``.
    The projections are per region (eq. 2's W^{Q_m}, W^{K_m}, W^{V_m}): four SAM-style attention
    modules. The residual + LayerNorm is ours: without it eq. 3's output is a convex mix of pooled
    *global* values and the local detail the views were encoded for would be lost (MVANet's MCRM
    has the residual, a LayerNorm and an FFN; the FFN is left out, eq. 2-3 have none). Positional
    encodings are added to queries and keys, not values, as in SAM's decoder.

    Args:
        dim: channels C of the maps (SAM's 256).
        num_heads: attention heads.
        pool_kernels: receptive fields of the pooling (:func:`pooled_regions`).
        downsample_rate: internal width C / rate (SAM's cross-attentions use 2).
        pool_mode: ``"paper"`` or ``"mvanet"``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        pool_kernels: Sequence[int],
        downsample_rate: int = 2,
        pool_mode: str = "paper",
    ) -> None:
        super().__init__()
        if pool_mode not in POOL_MODES:
            raise ValueError(f"pool_mode must be one of {POOL_MODES}, got {pool_mode!r}")
        self.pool_kernels = tuple(pool_kernels)
        self.pool_mode = pool_mode
        self.attentions = nn.ModuleList(
            MaskedAttention(dim, num_heads, downsample_rate) for _ in range(REGIONS)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(REGIONS))

    def positional_encodings(
        self,
        pe: PositionalEncoder,
        global_grid: tuple[int, int],
        local_grid: tuple[int, int] | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(global_pe, local_pe)`` for this module's kernels: :func:`region_positional_encodings`
        (``local_grid`` defaults to ``global_grid``)."""
        local_grid = global_grid if local_grid is None else local_grid
        return region_positional_encodings(
            pe, global_grid, local_grid, self.pool_kernels, self.pool_mode, device
        )

    def forward(
        self, global_map: Tensor, local_maps: Tensor, global_pe: Tensor, local_pe: Tensor
    ) -> Tensor:
        """Refine each local view's features with its quadrant's pooled global context.

        Args:
            global_map: B x C x h x w, SAM's embedding of the whole image (F^I).
            local_maps: B x 4 x C x hl x wl, SAM's embeddings of the four views (F^{L_m}).
            global_pe: [B or 1 x] 4 x T x C, the PE of the pooled cells in global-image
                coordinates (first output of :meth:`positional_encodings`).
            local_pe: [B or 1 x] 4 x hl wl x C, the PE of each local token in global-image
                coordinates (second output of :meth:`positional_encodings`).

        Returns:
            B x 4 x C x hl x wl refined local features F'^{P_m}.
        """
        if local_maps.shape[1] != REGIONS:
            raise ValueError(f"local_maps must be B x 4 x C x h x w, got {tuple(local_maps.shape)}")
        pooled = pooled_regions(global_map, self.pool_kernels, self.pool_mode)  # B x 4 x T x C
        local = regions_to_tokens(local_maps)  # B x 4 x Ll x C
        refined = []
        for m, (attention, norm) in enumerate(zip(self.attentions, self.norms, strict=True)):
            query = local[:, m]
            keys = pooled[:, m]
            update = attention(query + local_pe[..., m, :, :], keys + global_pe[..., m, :, :], keys)
            refined.append(norm(query + update))
        return tokens_to_regions(torch.stack(refined, dim=1), tuple(local_maps.shape[-2:]))


def _encode(pe: PositionalEncoder, coords: Tensor) -> Tensor:
    """n x t x 2 coordinates -> n x t x C encodings through one ``pe`` call (1 x N x 2 input)."""
    n, t, _ = coords.shape
    return pe(coords.reshape(1, n * t, 2)).reshape(n, t, -1)


def _check_even(height: int, width: int, what: str) -> None:
    if height % 2 or width % 2:
        raise ValueError(f"a 2 x 2 split needs an even {what} size, got {height} x {width}")
