"""SAMA's building blocks: quadrant geometry, MVLE (eq. 2-3), Local-Adapter (eq. 4-9), heads.

Tiny sizes (C = 32, 16 x 16 grid) for behaviour; paper sizes (vit_b: C = 256, 64 x 64 grid) on
the meta device for shapes and parameter counts.
"""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from segment_anything import sam_model_registry
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom

from mattekit.models.sama.heads import PredictionHead
from mattekit.models.sama.local_adapter import LocalAdapter
from mattekit.models.sama.mvle import (
    MultiViewLocalizationEncoder,
    local_views,
    pooled_regions,
    region_positional_encodings,
    region_slices,
    regions_to_tokens,
    split_regions,
    split_token_regions,
    tile_regions,
    tile_token_regions,
    tokens_to_regions,
)

DIM, HEADS, GRID = 32, 2, 16
KERNELS = (1, 2, 4)  # vit_b's (4, 8, 16) scaled from a 64- to a 16-token grid: still 84 tokens
POOLED_TOKENS = 8 * 8 + 4 * 4 + 2 * 2


def sam_pe(dim: int = DIM) -> PositionEmbeddingRandom:
    torch.manual_seed(0)
    return PositionEmbeddingRandom(dim // 2)


def pe_fn(layer: PositionEmbeddingRandom):
    """SAM's frozen PE as the MVLE helpers take it: normalised coordinates in, encodings out."""
    return partial(layer.forward_with_coords, image_size=(1, 1))


def quadrant_tokens(tokens: torch.Tensor, m: int, grid=(GRID, GRID)) -> torch.Tensor:
    """B x L x C -> B x L/4 x C tokens of quadrant m, cut with region_slices (the reference)."""
    rows, cols = region_slices(*grid)[m]
    maps = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)
    return maps[..., rows, cols].flatten(2).transpose(1, 2)


# --- quadrant geometry ----------------------------------------------------------------------------


def test_split_regions_follows_region_slices_and_tile_inverts_it():
    x = torch.randn(2, 3, 8, 10)
    regions = split_regions(x)
    assert regions.shape == (2, 4, 3, 4, 5)
    assert region_slices(8, 10)[1] == (slice(0, 4), slice(5, 10))  # m = 1: top-right
    for m, (rows, cols) in enumerate(region_slices(8, 10)):
        assert torch.equal(regions[:, m], x[..., rows, cols])
    assert torch.equal(tile_regions(regions), x)


def test_token_region_helpers_are_the_map_helpers_on_tokens():
    maps = torch.randn(2, 5, 6, 8)
    tokens = maps.flatten(2).transpose(1, 2)  # B x L x C, row-major as SAM flattens
    regions = split_token_regions(tokens, (6, 8))
    assert torch.equal(regions, regions_to_tokens(split_regions(maps)))
    assert torch.equal(tokens_to_regions(regions, (3, 4)), split_regions(maps))
    assert torch.equal(tile_token_regions(regions, (6, 8)), tokens)


def test_split_regions_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        split_regions(torch.zeros(1, 1, 7, 8))


def test_local_views_are_the_quadrants_resized_bilinearly():
    images = torch.randn(2, 3, 32, 32)
    views = local_views(images, 64)
    assert views.shape == (2, 4, 3, 64, 64)
    for m in range(4):
        row, col = divmod(m, 2)
        crop = images[:, :, 16 * row : 16 * (row + 1), 16 * col : 16 * (col + 1)]
        manual = F.interpolate(crop, size=(64, 64), mode="bilinear", align_corners=False)
        assert torch.allclose(views[:, m], manual)
    # Views at the crop size are the crops themselves.
    assert torch.equal(local_views(images, 16), split_regions(images))


# --- pooling and positional encodings -------------------------------------------------------------


def position_map(grid: int = GRID) -> torch.Tensor:
    """1 x 2 x h x w: channel 0 is the row index, channel 1 the column index."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.stack([rows, cols]).float()[None]


def test_pooled_regions_line_up_with_the_global_grid():
    x = position_map()
    pooled = pooled_regions(x, KERNELS)
    assert pooled.shape == (1, 4, POOLED_TOKENS, 2)
    for m, (rows, cols) in enumerate(region_slices(GRID, GRID)):
        start = 0
        for k in KERNELS:
            side = GRID // (2 * k)
            tokens = pooled[0, m, start : start + side * side]
            start += side * side
            # Hand-computed: the mean of the k x k window of quadrant m.
            expected = F.avg_pool2d(x[..., rows, cols], k).flatten(2).transpose(1, 2)[0]
            assert torch.equal(tokens, expected)
            # And in closed form: cell (a, b) of quadrant (r, c) averages rows
            # r h/2 + a k .. + k - 1, so its mean row is r h/2 + a k + (k - 1) / 2.
            a, b = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
            row, col = divmod(m, 2)
            mean_row = row * GRID // 2 + a.flatten() * k + (k - 1) / 2
            mean_col = col * GRID // 2 + b.flatten() * k + (k - 1) / 2
            assert torch.equal(tokens, torch.stack([mean_row, mean_col], dim=1).float())


def test_mvanet_mode_pools_each_quadrant_to_grid_over_k():
    x = position_map()
    pooled = pooled_regions(x, (2, 4, 8), mode="mvanet")
    assert pooled.shape == (1, 4, 8 * 8 + 4 * 4 + 2 * 2, 2)  # paper mode: 4 * 4 + 2 * 2 + 1
    for m, (rows, cols) in enumerate(region_slices(GRID, GRID)):
        expected = torch.cat(
            [
                F.adaptive_avg_pool2d(x[..., rows, cols], GRID // k).flatten(2).transpose(1, 2)
                for k in (2, 4, 8)
            ],
            dim=1,
        )
        assert torch.equal(pooled[:, m], expected)


@pytest.mark.parametrize(
    ("kernels", "mode", "reason"),
    [
        ((3,), "paper", "does not divide"),
        ((2, 16), "paper", "no 2 x 2 split"),  # a 1 x 1 pooled map
        ((2, 3), "mvanet", "does not divide"),
        ((1,), "mvanet", "even kernels"),
        ((0,), "paper", "positive"),
    ],
)
def test_pooled_regions_names_the_bad_kernel(kernels, mode, reason):
    with pytest.raises(ValueError, match=f"kernels.*{reason}"):
        pooled_regions(torch.zeros(1, 2, GRID, GRID), kernels, mode)


def test_positional_encodings_are_sams_pe_at_global_image_coordinates():
    layer = sam_pe()
    global_pe, local_pe = region_positional_encodings(
        pe_fn(layer), (GRID, GRID), (GRID, GRID), (1, 2)
    )
    assert global_pe.shape == (4, 8 * 8 + 4 * 4, DIM)
    assert local_pe.shape == (4, GRID * GRID, DIM)

    def dense_regions(side):  # SAM's own dense PE of a side x side grid, split into quadrants
        return regions_to_tokens(split_regions(layer((side, side))[None]))[0]

    # Kernel 1 cells are the global tokens, kernel 2 cells the tokens of an 8 x 8 grid.
    assert torch.allclose(global_pe[:, :64], dense_regions(GRID), atol=1e-5)
    assert torch.allclose(global_pe[:, 64:], dense_regions(GRID // 2), atol=1e-5)
    # A 2x-zoom view's tokens sit on a grid twice as dense as the global one.
    assert torch.allclose(local_pe, dense_regions(2 * GRID), atol=1e-5)


# --- MVLE -----------------------------------------------------------------------------------------


def mvle_inputs(batch: int = 2, local_grid: int = GRID):
    torch.manual_seed(1)
    mvle = MultiViewLocalizationEncoder(DIM, HEADS, KERNELS)
    global_pe, local_pe = mvle.positional_encodings(
        pe_fn(sam_pe()), (GRID, GRID), (local_grid, local_grid)
    )
    global_map = torch.randn(batch, DIM, GRID, GRID)
    local_maps = torch.randn(batch, 4, DIM, local_grid, local_grid)
    return mvle, global_map, local_maps, global_pe, local_pe


def test_mvle_shapes():
    mvle, global_map, local_maps, global_pe, local_pe = mvle_inputs()
    assert mvle(global_map, local_maps, global_pe, local_pe).shape == (2, 4, DIM, GRID, GRID)
    # Views encoded at the crop size (no upsampling) give a coarser local grid.
    mvle, global_map, local_maps, global_pe, local_pe = mvle_inputs(local_grid=GRID // 2)
    out = mvle(global_map, local_maps, global_pe, local_pe)
    assert out.shape == (2, 4, DIM, GRID // 2, GRID // 2)


def test_mvle_is_a_residual_per_region_cross_attention():
    """Region m's output is LN_m(local_m + Attn_m(local_m + PE, pool_m + PE, pool_m)) with the
    region's own modules, pool_m being the hand-sliced quadrant of each pooled map."""
    mvle, global_map, local_maps, global_pe, local_pe = mvle_inputs()
    with torch.no_grad():
        out = regions_to_tokens(mvle(global_map, local_maps, global_pe, local_pe))
        for m, (rows, cols) in enumerate(region_slices(GRID, GRID)):
            pool = torch.cat(
                [
                    F.avg_pool2d(global_map, k)[..., rows.start // k : rows.stop // k,
                                                cols.start // k : cols.stop // k]
                    .flatten(2).transpose(1, 2)
                    for k in KERNELS
                ],
                dim=1,
            )  # fmt: skip
            local = local_maps[:, m].flatten(2).transpose(1, 2)
            update = mvle.attentions[m](local + local_pe[m], pool + global_pe[m], pool)
            assert torch.allclose(out[:, m], mvle.norms[m](local + update), atol=1e-5)


def test_mvle_uniform_global_context_keeps_the_local_detail():
    """With a spatially uniform global map every value is the same vector, so the attention adds
    one constant per region whatever the query: the local features reach the output through the
    residual path only (a per-region shift, then the LayerNorm), their detail intact."""
    mvle, global_map, local_maps, global_pe, local_pe = mvle_inputs()
    uniform = global_map[:, :, :1, :1].expand_as(global_map)
    with torch.no_grad():
        out = regions_to_tokens(mvle(uniform, local_maps, global_pe, local_pe))
        local = regions_to_tokens(local_maps)
        for m in range(4):
            attention = mvle.attentions[m]
            # softmax weights sum to one over identical values: out_proj(v_proj(g)), per sample.
            value = attention.out_proj(attention.v_proj(uniform[:, :, 0, 0]))[:, None]
            assert torch.allclose(out[:, m], mvle.norms[m](local[:, m] + value), atol=1e-5)


def test_mvle_region_m_reads_only_quadrant_m_and_view_m():
    mvle, global_map, local_maps, global_pe, local_pe = mvle_inputs()
    rows, cols = region_slices(GRID, GRID)[3]
    changed_global = global_map.clone()
    changed_global[..., rows, cols] += 1.0
    changed_local = local_maps.clone()
    changed_local[:, 0] += 1.0
    with torch.no_grad():
        base = mvle(global_map, local_maps, global_pe, local_pe)
        after_global = mvle(changed_global, local_maps, global_pe, local_pe)
        after_local = mvle(global_map, changed_local, global_pe, local_pe)
    assert torch.equal(after_global[:, :3], base[:, :3])
    assert not torch.allclose(after_global[:, 3], base[:, 3])
    assert torch.equal(after_local[:, 1:], base[:, 1:])
    assert not torch.allclose(after_local[:, 0], base[:, 0])


def test_mvle_projections_are_per_region():
    """Eq. 2's W^{Q_m}, W^{K_m}, W^{V_m}: a loss on region 2 trains region 2's modules only."""
    mvle, global_map, local_maps, global_pe, local_pe = mvle_inputs()
    mvle(global_map, local_maps, global_pe, local_pe)[:, 2].square().mean().backward()
    for m in range(4):
        for p in [*mvle.attentions[m].parameters(), *mvle.norms[m].parameters()]:
            if m == 2:
                assert p.grad is not None and p.grad.abs().sum() > 0
            else:  # the regions are stacked, so the others get an exact zero, not None
                assert p.grad is None or p.grad.abs().sum() == 0


# --- Local-Adapter --------------------------------------------------------------------------------


def adapter_inputs(batch: int = 2, **kwargs):
    torch.manual_seed(2)
    adapter = LocalAdapter(DIM, HEADS, **kwargs)
    layer = sam_pe()
    _, local_pe = region_positional_encodings(pe_fn(layer), (GRID, GRID), (GRID, GRID), KERNELS)
    image_pe = layer((GRID, GRID)).flatten(1).T[None]  # 1 x L x C, as the decoder flattens it
    image = torch.randn(batch, GRID * GRID, DIM)
    local = torch.randn(batch, 4, GRID * GRID, DIM)
    early = torch.randn(batch, 4, GRID * GRID, DIM)
    return adapter, (image, local, early, image_pe, local_pe, (GRID, GRID))


@pytest.mark.parametrize("gate_channels", [1, DIM])
def test_local_adapter_shapes(gate_channels):
    adapter, inputs = adapter_inputs(gate_channels=gate_channels)
    image, local = adapter(*inputs)
    assert image.shape == (2, GRID * GRID, DIM)
    assert local.shape == (2, 4, GRID * GRID, DIM)


def test_local_adapter_rejects_other_gate_widths():
    with pytest.raises(ValueError, match="gate_channels"):
        LocalAdapter(DIM, HEADS, gate_channels=4)


def test_fresh_local_adapter_passes_the_image_stream_then_learns():
    adapter, inputs = adapter_inputs()
    image = inputs[0]
    torch.manual_seed(3)
    targets = torch.randn_like(image), torch.randn_like(inputs[1])

    def loss():
        new_image, new_local = adapter(*inputs)
        return new_image, (new_image * targets[0]).mean() + (new_local * targets[1]).mean()

    new_image, value = loss()
    assert torch.equal(new_image, image)  # zero-initialised step 1: the model starts as SAM
    value.backward()
    step1 = adapter.global_to_local
    assert step1.out_proj.weight.grad.abs().sum() > 0
    # Behind the zero projection (F'' = 0) step 1's q / k / v and the gate see a zero gradient
    # on the first step; they are not cut off (grads exist) and move from the second step on.
    for p in [*step1.q_proj.parameters(), *adapter.gate.parameters()]:
        assert p.grad is not None and p.grad.abs().sum() == 0

    optimiser = torch.optim.Adam(adapter.parameters(), lr=1e-2)
    optimiser.step()
    optimiser.zero_grad()
    new_image, value = loss()
    assert not torch.allclose(new_image, image)
    value.backward()
    for name, p in adapter.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_local_adapter_follows_eq_4_to_9_in_each_quadrant():
    """Quadrant 0 by hand, cut with region_slices: F'' from step 1, the gate, step 2's update."""
    adapter, inputs = adapter_inputs(zero_init=False)
    image, local, early, image_pe, local_pe, grid = inputs
    with torch.no_grad():
        new_image, new_local = adapter(*inputs)
        queries = quadrant_tokens(image, 0)
        query_pe = quadrant_tokens(image_pe, 0)
        fused = local[:, 0] + early[:, 0]
        detail = adapter.global_to_local(queries + query_pe, fused + local_pe[0], fused)
        gate_map = adapter.gate(image.transpose(1, 2).reshape(2, DIM, *grid))
        gate = torch.sigmoid(quadrant_tokens(gate_map.flatten(2).transpose(1, 2), 0))
        assert torch.allclose(quadrant_tokens(new_image, 0), queries + gate * detail, atol=1e-5)
        update = adapter.local_to_global(fused + local_pe[0], queries + query_pe, queries)
        assert torch.allclose(new_local[:, 0], adapter.norm_local(fused + update), atol=1e-5)


def hand_set_adapter() -> LocalAdapter:
    """C = 2, one head at full width; weights by hand so that the output is computable by hand:
    step 1 attends uniformly (zero queries and keys) and passes the values (identity v / out),
    so F'' of quadrant m is the mean of its fused local tokens; the gate is sigmoid(0) = 1/2;
    step 2 adds nothing (zero out_proj), so the local output is LayerNorm(fused)."""
    adapter = LocalAdapter(2, 1, downsample_rate=1)
    with torch.no_grad():
        for p in adapter.parameters():
            p.zero_()
        adapter.global_to_local.v_proj.weight.copy_(torch.eye(2))
        adapter.global_to_local.out_proj.weight.copy_(torch.eye(2))
        adapter.norm_local.weight.fill_(1.0)
    return adapter


@pytest.mark.parametrize("with_early", [True, False])
def test_local_adapter_hand_values_with_and_without_early_features(with_early):
    """A 2 x 2 image grid (one token per quadrant, all zero) and two local tokens per quadrant,
    [m + 1, 0] and [m + 3, 0] (mean [m + 2, 0]); F_early = [0, 10] everywhere. Fused with the
    early features (eq. 5-6, the first adapter) the quadrant-m image token becomes
    1/2 [m + 2, 10]; without them (the second adapter, by default) 1/2 [m + 2, 0]. The local
    output is LayerNorm([a, b]) = [-1, 1] where a < b, [1, -1] where a > b."""
    adapter = hand_set_adapter()
    image = torch.zeros(1, 4, 2)
    local = torch.tensor([[[m + 1.0, 0.0], [m + 3.0, 0.0]] for m in range(4)])[None]
    early = torch.tensor([0.0, 10.0]).expand(1, 4, 2, 2)
    image_pe, local_pe = torch.zeros(1, 4, 2), torch.zeros(4, 2, 2)
    with torch.no_grad():
        new_image, new_local = adapter(
            image, local, early if with_early else None, image_pe, local_pe, (2, 2)
        )
    if with_early:
        expected_image = [[1.0, 5.0], [1.5, 5.0], [2.0, 5.0], [2.5, 5.0]]
        expected_local = [-1.0, 1.0]
    else:
        expected_image = [[1.0, 0.0], [1.5, 0.0], [2.0, 0.0], [2.5, 0.0]]
        expected_local = [1.0, -1.0]
    assert torch.allclose(new_image, torch.tensor([expected_image]), atol=1e-6)
    assert torch.allclose(new_local, torch.tensor(expected_local).expand(1, 4, 2, 2), atol=1e-4)


def test_local_adapter_works_region_by_region():
    adapter, inputs = adapter_inputs(zero_init=False)
    image, local = inputs[:2]
    changed = local.clone()
    changed[:, 3] += 1.0
    with torch.no_grad():
        base_image, base_local = adapter(*inputs)
        new_image, new_local = adapter(image, changed, *inputs[2:])
    for m in range(3):
        assert torch.equal(quadrant_tokens(new_image, m), quadrant_tokens(base_image, m))
    assert not torch.allclose(quadrant_tokens(new_image, 3), quadrant_tokens(base_image, 3))
    assert torch.equal(new_local[:, :3], base_local[:, :3])


# --- prediction heads -----------------------------------------------------------------------------

MASK_DIM = DIM // 8


def head_inputs(batch: int = 2):
    torch.manual_seed(4)
    token = torch.randn(batch, DIM)
    image = torch.randn(batch, DIM, GRID, GRID)
    sam_features = torch.randn(batch, MASK_DIM, 4 * GRID, 4 * GRID)
    mosaic = torch.randn(batch, DIM, 2 * GRID, 2 * GRID)
    return token, image, sam_features, mosaic


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_fresh_head_reads_sams_features(norm):
    head = PredictionHead(DIM, MASK_DIM, norm)
    token, image, sam_features, mosaic = head_inputs()
    logits = head(token, image, sam_features, mosaic)
    assert logits.shape == (2, 1, 4 * GRID, 4 * GRID)
    expected = torch.einsum("bc,bchw->bhw", head.hypernetwork(token), sam_features)[:, None]
    assert torch.allclose(logits, expected, atol=1e-5)


def test_head_output_depends_on_the_token():
    head = PredictionHead(DIM, MASK_DIM)
    token, image, sam_features, mosaic = head_inputs()
    with torch.no_grad():
        first = head(token, image, sam_features, mosaic)
        second = head(token.flip(0), image, sam_features, mosaic)
    assert not torch.allclose(first, second)


def test_head_every_parameter_gets_a_gradient():
    head = PredictionHead(DIM, MASK_DIM)
    token, image, sam_features, mosaic = head_inputs()
    mosaic.requires_grad_(True)
    target = torch.rand(2, 1, 4 * GRID, 4 * GRID)

    def backward():
        logits = head(token, image, sam_features, mosaic)
        F.binary_cross_entropy_with_logits(logits, target).backward()

    backward()
    for name, p in head.named_parameters():
        assert p.grad is not None, name
    # The zero scale of the last norm holds back the convolutions' gradient on the first step.
    assert head.refine[1].weight.grad.abs().sum() > 0
    assert head.fuse[0].weight.grad.abs().sum() == 0
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2)
    optimiser.step()
    optimiser.zero_grad()
    mosaic.grad = None
    backward()
    for name, p in head.named_parameters():
        assert p.grad.abs().sum() > 0, name
    assert mosaic.grad.abs().sum() > 0  # the Local-Adapter's local output reaches the loss


def test_head_takes_a_coarser_mosaic_and_no_mosaic():
    head = PredictionHead(DIM, MASK_DIM, "group")
    token, image, sam_features, _ = head_inputs()
    coarse = torch.randn(2, DIM, GRID, GRID)  # views encoded at crop size: one token per token
    assert head(token, image, sam_features, coarse).shape == (2, 1, 4 * GRID, 4 * GRID)
    assert head(token, image, sam_features).shape == (2, 1, 4 * GRID, 4 * GRID)
    with pytest.raises(ValueError, match="norm"):
        PredictionHead(DIM, MASK_DIM, "layer")


# --- paper sizes (vit_b) on the meta device -------------------------------------------------------


def test_vit_b_shapes_on_the_meta_device():
    dim, grid = 256, (64, 64)
    with torch.device("meta"):
        layer = PositionEmbeddingRandom(dim // 2)
        mvle = MultiViewLocalizationEncoder(dim, 8, (4, 8, 16))
        adapter = LocalAdapter(dim, 8)
        head = PredictionHead(dim, dim // 8)
        global_pe, local_pe = mvle.positional_encodings(pe_fn(layer), grid, device="meta")
        assert global_pe.shape == (4, 84, dim)
        assert pooled_regions(torch.empty(1, dim, *grid), (4, 8, 16)).shape == (1, 4, 84, dim)
        assert pooled_regions(torch.empty(1, dim, *grid), (4, 8, 16), "mvanet").shape[2] == 336
        local = mvle(torch.empty(1, dim, *grid), torch.empty(1, 4, dim, *grid), global_pe, local_pe)
        assert local.shape == (1, 4, dim, *grid)
        image_pe = layer(grid).flatten(1).T[None]
        tokens = regions_to_tokens(local)
        image, local_out = adapter(
            torch.empty(1, 64 * 64, dim), tokens, torch.empty_like(tokens), image_pe, local_pe, grid
        )
        assert image.shape == (1, 4096, dim) and local_out.shape == (1, 4, 4096, dim)
        mosaic = tile_regions(tokens_to_regions(local_out, grid))
        assert mosaic.shape == (1, dim, 128, 128)
        logits = head(
            torch.empty(1, dim),
            image.transpose(1, 2).reshape(1, dim, *grid),
            torch.empty(1, dim // 8, 256, 256),
            mosaic,
        )
        assert logits.shape == (1, 1, 256, 256)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_vit_b_parameter_counts_match_the_spec_table():
    """Spec table 1.7 (C = 256, 8 heads, attention downsample 2, mask features 32). The table
    lists the hyper-MLPs apart from the heads' convolutions; our PredictionHead holds both."""
    with torch.device("meta"):
        mvle = MultiViewLocalizationEncoder(256, 8, (4, 8, 16))
        adapter = LocalAdapter(256, 8)
        head = PredictionHead(256, 32)
        sam = sam_model_registry["vit_b"]()
    assert count(mvle) == 528_896  # 4 x Attention (131,712) + 4 LayerNorms
    assert 2 * count(adapter) == 528_386  # 2 x (2 attentions + LayerNorm + 1x1 gate conv)
    assert count(head) - count(head.hypernetwork) == 166_144 // 2  # 2 convs + 2 BatchNorms
    assert count(head.hypernetwork) == 279_616 // 2
    # The model file adds the early projection (768 -> 256 conv + LayerNorm2d) and 2 tokens.
    early_projection, task_tokens = 768 * 256 + 256 + 2 * 256, 2 * 256
    total = count(mvle) + 2 * count(adapter) + 2 * count(head) + early_projection + task_tokens
    assert total == 1_700_930
    assert count(sam) == 93_735_472
    assert round(100 * total / count(sam), 2) == 1.81  # the paper's "only 1.8%"
