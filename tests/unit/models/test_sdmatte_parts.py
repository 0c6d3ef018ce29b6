"""SDMatte's parts: attention processors, prompt key bias, coordinate embeddings, grafting,
BK-SDM pruning and the paper-size structure.

The network and the families as a whole are tested in ``test_sdmatte.py``.
"""

import copy
import dataclasses
import logging
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor
from sdmatte_cases import net_inputs, randomise_coordinate_embedding, same_weights
from torch import nn

from mattekit.models.sdmatte.attention import BLOCKED_KEY_BIAS, PromptKeyBias, SDMatteAttnProcessor
from mattekit.models.sdmatte.configs import (
    LATENT_CHANNELS,
    sd_unet_config,
    unet_config,
    vae_config,
)
from mattekit.models.sdmatte.embeddings import CoordinateEmbedding, sinusoidal
from mattekit.models.sdmatte.torch_model import build_sdmatte, graft, widen_conv_in
from mattekit.nn.prompt_maps import mask_boxes
from mattekit.nn.token_grid import level_grid
from mattekit.nn.unet_pruning import kept_pairs, prune_unet

SD2_UNET_PARAMETERS = 865_910_724  # stabilityai/stable-diffusion-2's unet
SD2_VAE_PARAMETERS = 83_653_863
TINY_POINT_DIM = 8  # POINT_DIMS["tiny"]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- attention ----------------------------------------------------------------------------------


def test_sdpa_path_equals_the_explicit_score_matrix():
    torch.manual_seed(0)
    net = build_sdmatte("tiny").eval()
    randomise_coordinate_embedding(net.coordinate_embedding)
    inputs = net_inputs()
    with torch.no_grad():
        fast = net.denoise(*inputs)
        net.set_processors(explicit=True)
        assert all(p.explicit for p in net.unet.attn_processors.values())
        slow = net.denoise(*inputs)
    assert torch.allclose(fast, slow, atol=1e-5), (fast - slow).abs().max()


def test_unmasked_without_visual_prompt_equals_diffusers_classic_processor():
    torch.manual_seed(0)
    net = build_sdmatte("tiny", masked_blocks=(), visual_prompt_blocks=()).eval()
    randomise_coordinate_embedding(net.coordinate_embedding)
    inputs = net_inputs()
    with torch.no_grad():
        ours = net.denoise(*inputs)
        net.unet.set_attn_processor(AttnProcessor())
        classic = net.denoise(*inputs)
    assert torch.allclose(ours, classic, atol=1e-5), (ours - classic).abs().max()


def test_a_box_blocks_self_attention_to_the_tokens_outside_it():
    """The output at any query depends on its own token and the tokens inside the box only."""
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    box = torch.zeros(1, 1, 4, 6)
    box[..., 1:3, 2:5] = 1
    inside = box.flatten().bool()
    bias = PromptKeyBias(box, (4, 6))
    hidden = torch.randn(1, 24, 16)
    masked, plain = SDMatteAttnProcessor(masked=True), SDMatteAttnProcessor()

    def run(processor, states):
        with torch.no_grad():
            return processor(attn, states, prompt_bias=bias)[0]

    base = run(masked, hidden)
    for query in range(24):
        others = torch.ones(24, dtype=torch.bool)
        others[query] = False
        outside_changed, inside_changed = hidden.clone(), hidden.clone()
        outside_changed[0, ~inside & others] += 3 * torch.randn(int((~inside & others).sum()), 16)
        inside_changed[0, inside & others] += 3 * torch.randn(int((inside & others).sum()), 16)
        assert torch.allclose(run(masked, outside_changed)[query], base[query], atol=1e-4), query
        assert (run(masked, inside_changed)[query] - base[query]).abs().max() > 1e-3, query
        unmasked = run(plain, outside_changed)[query] - run(plain, hidden)[query]
        assert unmasked.abs().max() > 1e-3, query


def test_prompt_key_bias_grids_values_and_errors():
    prompt = torch.zeros(1, 1, 5, 7)
    prompt[..., 1:4, 2:6] = 1
    bias = PromptKeyBias(prompt, (5, 7))
    # ceil(h / 2^k): the grids of a UNet's stride-2 convolutions on a 5 x 7 latent
    assert [level_grid((5, 7), n) for n in (35, 12, 4, 1)] == [(5, 7), (3, 4), (2, 2), (1, 1)]
    with pytest.raises(ValueError, match="has 20 tokens"):
        level_grid((5, 7), 20)
    with pytest.raises(ValueError, match="no level"):
        bias.for_tokens(6)

    full = bias.for_tokens(35)
    assert full.shape == (1, 1, 1, 35)
    assert torch.equal(full.flatten(), torch.where(prompt.flatten() > 0, 0.0, BLOCKED_KEY_BIAS))
    assert BLOCKED_KEY_BIAS == -10000.0
    # nearest to 3 x 4 reads rows 0, 1, 3 and columns 0, 1, 3, 5 of the 5 x 7 map
    keep = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float32)
    assert torch.equal(bias.for_tokens(12).flatten(), (1 - keep.flatten()) * -10000.0)
    assert bias.for_tokens(12) is bias.for_tokens(12)  # computed once per grid

    soft = torch.rand(2, 1, 5, 7)
    graded = PromptKeyBias(soft, (5, 7)).for_tokens(35)
    assert graded.shape == (2, 1, 1, 35)
    assert torch.allclose(graded[:, 0, 0], (1 - soft.flatten(1)) * -10000.0)


@pytest.mark.parametrize(
    ("masked_blocks", "expected"),
    [
        (("down", "mid", "up"), {35: 5, 12: 5, 4: 1}),  # 2 + 3 layers at 5 x 7 and at 3 x 4
        (("mid",), {4: 1}),
        (("down",), {35: 2, 12: 2}),
    ],
)
def test_every_masked_self_attention_gets_the_bias_of_its_own_grid(
    monkeypatch, masked_blocks, expected
):
    """A 40 x 56 image: latent 5 x 7, then 3 x 4 and 2 x 2 (mid block), sides rounded up."""
    torch.manual_seed(0)
    net = build_sdmatte("tiny", masked_blocks=masked_blocks).eval()
    requested, tokens = [], []
    original = PromptKeyBias.for_tokens

    def recording(self, num_tokens):
        bias = original(self, num_tokens)
        requested.append((num_tokens, bias.shape))
        return bias

    monkeypatch.setattr(PromptKeyBias, "for_tokens", recording)
    hooks = [
        module.register_forward_pre_hook(lambda _m, args: tokens.append(args[0].shape[1]))
        for name, module in net.unet.named_modules()
        if name.endswith("attn1") and name.split(".")[0].split("_")[0] in masked_blocks
    ]
    with torch.no_grad():
        net.denoise(*net_inputs(40, 56))
    for hook in hooks:
        hook.remove()
    assert [n for n, _ in requested] == tokens
    assert Counter(tokens) == expected
    assert all(shape == (2, 1, 1, n) for n, shape in requested)


def test_visual_prompt_cross_attention_is_in_the_mid_block_only_by_default():
    net = build_sdmatte("tiny")
    for name, processor in net.unet.attn_processors.items():
        is_self = name.endswith("attn1.processor")
        assert processor.masked == is_self, name
        assert processor.visual_prompt == (name.startswith("mid_block") and not is_self), name
    assert net.visual_prompt_projection.out_channels == net.unet.config.cross_attention_dim
    without = build_sdmatte("tiny", visual_prompt_blocks=())
    assert without.visual_prompt_projection is None
    assert not any(p.visual_prompt for p in without.unet.attn_processors.values())
    assert not any(k.startswith("visual_prompt_projection") for k in without.state_dict())
    with pytest.raises(ValueError, match="visual_prompt_blocks"):
        build_sdmatte("tiny", visual_prompt_blocks=("middle",))


def test_the_prompt_map_reaches_the_mid_block_through_the_projection():
    """Without masking, coordinates and conv_in's prompt channels, the prompt map reaches the
    UNet only through the mid block's visual-prompt tokens: zeroing the projection cuts it."""
    torch.manual_seed(0)
    net = build_sdmatte("tiny", masked_blocks=(), coordinate_embedding=False).eval()
    with torch.no_grad():
        net.unet.conv_in.weight[:, LATENT_CHANNELS:] = 0
    image, prompt = inputs = net_inputs()
    other_map = torch.rand_like(prompt.prompt_map)
    other_prompt = (image, dataclasses.replace(prompt, prompt_map=other_map))
    with torch.no_grad():
        assert (net.denoise(*inputs) - net.denoise(*other_prompt)).abs().max() > 1e-4
        net.visual_prompt_projection.weight.zero_()
        net.visual_prompt_projection.bias.zero_()
        assert torch.equal(net.denoise(*inputs), net.denoise(*other_prompt))


# --- coordinate embeddings ----------------------------------------------------------------------

HEIGHT, WIDTH = 48, 64
EMBEDDING_LOGGER = "mattekit.models.sdmatte.embeddings"


def coordinate_embedding() -> CoordinateEmbedding:
    torch.manual_seed(0)
    embedding = CoordinateEmbedding(embed_dim=16, point_dim=8, box_dim=8)
    randomise_coordinate_embedding(embedding)
    return embedding


def clicks(count_: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(1, count_, 2, generator=generator) * torch.tensor([WIDTH, HEIGHT])
    return points, torch.ones(1, count_, dtype=torch.long)


def by_hand(value: float, dim: int) -> list[float]:
    """diffusers' get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0)."""
    half = dim // 2
    angles = [value * math.exp(-math.log(10000) * k / half) for k in range(half)]
    return [math.cos(a) for a in angles] + [math.sin(a) for a in angles]


def test_coordinate_embeddings_run_in_a_model_cast_to_bf16():
    """A model cast to bf16 (not autocast) takes float32 pixel coordinates: the sinusoids,
    float32, go through the embedding in its own dtype (before: "mat1 and mat2 must have the
    same dtype")."""
    full = coordinate_embedding()
    half = copy.deepcopy(full).to(torch.bfloat16)
    boxes = torch.tensor([[4.0, 6.0, 40.0, 30.0]])
    points, labels = clicks(3)
    for name, embed in [
        ("box", lambda e: e.embed_boxes(boxes, (HEIGHT, WIDTH))),
        ("points", lambda e: e.embed_points(points, labels, (HEIGHT, WIDTH))),
    ]:
        expected, got = embed(full), embed(half)
        assert got.dtype == torch.bfloat16, name
        torch.testing.assert_close(got.float(), expected, atol=0.05, rtol=0.02, msg=name)


def test_point_embeddings_of_1_3_and_25_clicks(caplog):
    embedding = coordinate_embedding()
    one, three = (embedding.embed_points(*clicks(n), (HEIGHT, WIDTH)) for n in (1, 3))
    assert one.shape == three.shape == (1, 16)
    assert torch.isfinite(one).all() and torch.isfinite(three).all()
    assert (one - three).abs().max() > 1e-3
    # Fewer than ten clicks: the rest of the ten slots are zeros (the release's "no point").
    points, _ = clicks(3)
    slots = torch.zeros(1, 20)
    slots[0, :6] = (points[0] / torch.tensor([WIDTH, HEIGHT])).flatten()
    torch.testing.assert_close(three, embedding.points(sinusoidal(slots, 8)))
    points, labels = clicks(25)
    with caplog.at_level(logging.WARNING, logger=EMBEDDING_LOGGER):
        many = embedding.embed_points(points, labels, (HEIGHT, WIDTH))
        embedding.embed_points(points, labels, (HEIGHT, WIDTH))
    first_ten = embedding.embed_points(points[:, :10], labels[:, :10], (HEIGHT, WIDTH))
    assert torch.equal(many, first_ten)
    warnings = [r for r in caplog.records if r.name == EMBEDDING_LOGGER]
    assert len(warnings) == 1 and "25 positive clicks" in warnings[0].getMessage()


def test_negative_and_padding_clicks_are_ignored_and_positives_come_first():
    embedding = coordinate_embedding()
    positives, ones = clicks(3)
    negatives, _ = clicks(3, seed=1)
    mixed = torch.stack(
        [negatives[0, 0], positives[0, 0], negatives[0, 1], positives[0, 1], negatives[0, 2],
         positives[0, 2]]
    )[None]  # fmt: skip
    labels = torch.tensor([[0, 1, -1, 1, 0, 1]])
    alone = embedding.embed_points(positives, ones, (HEIGHT, WIDTH))
    assert torch.equal(embedding.embed_points(mixed, labels, (HEIGHT, WIDTH)), alone)
    # a batch: each sample as alone, whatever the other's clicks
    batch_points = torch.cat([mixed, clicks(6, seed=2)[0]])
    batch_labels = torch.cat([labels, torch.tensor([[1, 1, 1, 1, -1, -1]])])
    both = embedding.embed_points(batch_points, batch_labels, (HEIGHT, WIDTH))
    assert torch.allclose(both[:1], alone, atol=1e-6)
    four = embedding.embed_points(clicks(6, seed=2)[0][:, :4], ones[:, :1].expand(1, 4), (48, 64))
    assert torch.allclose(both[1:], four, atol=1e-6)


def test_sinusoidal_inputs_normalise_points_by_width_and_height_and_boxes_by_whwh():
    embedding = coordinate_embedding()
    seen = {}
    embedding.points.linear_1.register_forward_pre_hook(lambda m, a: seen.update(points=a[0]))
    embedding.box.linear_1.register_forward_pre_hook(lambda m, a: seen.update(box=a[0]))
    embedding.embed_points(torch.tensor([[[16.0, 36.0]]]), torch.tensor([[1]]), (HEIGHT, WIDTH))
    embedding.embed_boxes(torch.tensor([[8.0, 12.0, 40.0, 36.0]]), (HEIGHT, WIDTH))
    dim = 8
    # x1 / W = 0.25, y1 / H = 0.75, then 9 zero-padded clicks (cos 0 = 1, sin 0 = 0)
    expected_points = by_hand(0.25, dim) + by_hand(0.75, dim) + by_hand(0.0, dim) * 18
    assert seen["points"].shape == (1, 2 * 10 * dim)
    assert torch.allclose(seen["points"][0], torch.tensor(expected_points), atol=1e-6)
    expected_box = [v for x in (8 / 64, 12 / 48, 40 / 64, 36 / 48) for v in by_hand(x, dim)]
    assert torch.allclose(seen["box"][0], torch.tensor(expected_box), atol=1e-6)


def test_mask_boxes_are_inclusive_pixel_bounds_and_an_empty_mask_is_the_image():
    masks = torch.zeros(2, 1, 10, 12)
    masks[0, 0, 2, 3] = 1
    masks[0, 0, 5, 7] = 0.5
    assert torch.equal(
        mask_boxes(masks), torch.tensor([[3.0, 2.0, 7.0, 5.0], [0.0, 0.0, 12.0, 10.0]])
    )


# --- grafting -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained_parts():
    """A tiny Stable Diffusion UNet and VAE with random weights, standing in for SD 2's."""
    torch.manual_seed(0)
    return UNet2DConditionModel(**sd_unet_config("tiny")), AutoencoderKL(**vae_config("tiny"))


def test_zero_initialised_coordinate_embedding_leaves_the_pretrained_output_unchanged(
    pretrained_parts,
):
    unet, vae = pretrained_parts
    context = torch.randn(1, 77, unet.config.cross_attention_dim)
    with_embedding, without = (
        graft(copy.deepcopy(unet), vae, context, TINY_POINT_DIM, coordinate_embedding=flag).eval()
        for flag in (True, False)
    )
    state, grafted = without.state_dict(), with_embedding.state_dict()
    added = {k for k in grafted if k not in state}
    assert added and all(k.startswith("coordinate_embedding.") for k in added)
    assert all(torch.equal(grafted[k], v) for k, v in state.items())
    with torch.no_grad():
        assert torch.equal(with_embedding.denoise(*net_inputs()), without.denoise(*net_inputs()))


def test_widened_conv_in_reads_the_image_latent_twice_as_the_original_once(pretrained_parts):
    unet = copy.deepcopy(pretrained_parts[0])
    original = widen_conv_in(unet)
    assert original.in_channels == 4 and unet.conv_in.in_channels == unet.config.in_channels == 8
    z = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(unet.conv_in(torch.cat([z, z], 1)), original(z), atol=1e-5)


def test_visual_prompt_projection_starts_as_conv_in_then_zeros(pretrained_parts):
    """Paper size: 320 of 1024 channels copied; a tiny UNet with a wider context shows it."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{**sd_unet_config("tiny"), "cross_attention_dim": 48})
    original = copy.deepcopy(unet.conv_in)
    net = graft(unet, pretrained_parts[1], torch.randn(1, 77, 48), TINY_POINT_DIM)
    z = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        tokens = net.visual_prompt_projection(z)
    width = original.out_channels
    assert tokens.shape == (2, 48, 8, 8) and width == 32
    assert torch.allclose(tokens[:, :width], original(z).detach(), atol=1e-6)
    assert torch.equal(tokens[:, width:], torch.zeros_like(tokens[:, width:]))


# --- pruning ------------------------------------------------------------------------------------


def test_kept_pairs_follow_bk_sdm():
    assert kept_pairs("down", 2, 1) == [0]
    assert kept_pairs("up", 2, 1) == [0, 2]
    assert kept_pairs("up", 2, 2) == [0, 1, 2]
    with pytest.raises(ValueError, match="at most the teacher's 2 pairs"):
        kept_pairs("down", 2, 3)


def test_pruned_unet_copies_the_teachers_kept_pairs(pretrained_parts):
    teacher = pretrained_parts[0]
    student = prune_unet(teacher, 1)
    assert student.config.layers_per_block == 1
    for down, teacher_down in zip(student.down_blocks, teacher.down_blocks, strict=True):
        assert len(down.resnets) == 1
        assert same_weights(down.resnets[0], teacher_down.resnets[0])
        if hasattr(down, "attentions"):
            assert same_weights(down.attentions[0], teacher_down.attentions[0])
        if down.downsamplers is not None:
            assert same_weights(down.downsamplers, teacher_down.downsamplers)
    for up, teacher_up in zip(student.up_blocks, teacher.up_blocks, strict=True):
        assert len(up.resnets) == 2
        assert same_weights(up.resnets[0], teacher_up.resnets[0])
        assert same_weights(up.resnets[1], teacher_up.resnets[2])
        if hasattr(up, "attentions"):
            assert same_weights(up.attentions[1], teacher_up.attentions[2])
    for part in ("mid_block", "conv_in", "time_embedding", "conv_out"):
        assert same_weights(getattr(student, part), getattr(teacher, part)), part
    with pytest.raises(ValueError, match="layers_per_block=3"):
        prune_unet(teacher, 3)


# --- paper size, on the meta device -------------------------------------------------------------


def test_paper_size_parameter_counts():
    with torch.device("meta"):
        sd_unet = UNet2DConditionModel(**sd_unet_config("sd2"))
        net = build_sdmatte("sd2")
        lite = build_sdmatte("sd2", lite=True)
        lite_unet = UNet2DConditionModel(**unet_config("sd2", 1))
        bk_sdm_v2_base = UNet2DConditionModel(**{**sd_unet_config("sd2"), "layers_per_block": 1})
    assert all(p.device.type == "meta" for p in net.parameters())
    assert count(sd_unet) == SD2_UNET_PARAMETERS
    added = {
        "conv_in widening": count(net.unet.conv_in) - (320 * 4 * 9 + 320),
        "visual_prompt_projection": count(net.visual_prompt_projection),
        "point embedding": count(net.coordinate_embedding.points),
        "box embedding": count(net.coordinate_embedding.box),
        "vae": count(net.vae),
    }
    expected = {
        "conv_in widening": 320 * 4 * 9,  # 11,520
        "visual_prompt_projection": 4 * 1024 * 9 + 1024,
        "point embedding": 1680 * 1280 + 1280 + 1280 * 1280 + 1280,
        "box embedding": 1280 * 1280 + 1280 + 1280 * 1280 + 1280,
        "vae": SD2_VAE_PARAMETERS,
    }
    assert added == expected, added
    assert count(net) == SD2_UNET_PARAMETERS + sum(expected.values()) == 956_684_715
    assert count(net.unet) == SD2_UNET_PARAMETERS + 320 * 4 * 9
    # LiteSDMatte: BK-SDM-v2-Base's UNet (one pair per down stage, mid block kept), 8 channels
    assert count(lite.unet) == count(lite_unet) == 583_492_484
    assert count(bk_sdm_v2_base) == 583_492_484 - 320 * 4 * 9
    assert 2_400_000 < count(lite.vae) < 2_500_000  # TAESD
    assert count(lite) - count(lite.unet) - count(lite.vae) == sum(
        expected[k] for k in ("visual_prompt_projection", "point embedding", "box embedding")
    )


def test_masked_self_attention_matches_a_hand_computed_softmax():
    """One head, a 2 x 2 grid with two keys blocked: the SDPA output is the softmax over the
    two kept keys only (values of the blocked keys do not appear)."""
    torch.manual_seed(0)
    attn = Attention(query_dim=4, heads=1, dim_head=4).eval()
    hidden = torch.randn(1, 4, 4)
    prompt = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    with torch.no_grad():
        out = SDMatteAttnProcessor(masked=True)(
            attn, hidden, prompt_bias=PromptKeyBias(prompt, (2, 2))
        )
        q, k, v = attn.to_q(hidden)[0], attn.to_k(hidden)[0], attn.to_v(hidden)[0]
        kept = torch.tensor([0, 3])
        weights = F.softmax(q @ k[kept].T / 2.0, dim=-1)
        expected = attn.to_out[0](weights @ v[kept])
    assert torch.allclose(out[0], expected, atol=1e-5)


def test_at_step_0_the_grafted_unet_is_the_pretrained_one_on_a_repeated_latent(pretrained_parts):
    """With the prompt modules that change the computation switched off (masks, visual prompt)
    and the zero-initialised ones on (coordinate embeddings), the grafted UNet on
    ``cat(z, z)`` with timestep 1 (opaque) is the pretrained UNet on ``z``: the graft itself
    changes nothing until training does."""
    unet, vae = pretrained_parts
    context = torch.randn(1, 77, unet.config.cross_attention_dim)
    net = graft(
        copy.deepcopy(unet), vae, context, TINY_POINT_DIM, visual_prompt_blocks=(),
        masked_blocks=(),
    ).eval()  # fmt: skip
    z = torch.randn(2, LATENT_CHANNELS, 8, 8)
    opaque = torch.ones(2)
    _, prompt = net_inputs(64, 64)
    coordinates = net.coordinates(prompt, (64, 64))
    with torch.no_grad():
        grafted = net.unet(
            torch.cat([z, z], 1), opaque, encoder_hidden_states=context.expand(2, -1, -1),
            class_labels=coordinates,
        ).sample  # fmt: skip
        original = unet.eval()(z, opaque, encoder_hidden_states=context.expand(2, -1, -1)).sample
    torch.testing.assert_close(grafted, original, atol=1e-5, rtol=1e-5)


def test_masked_self_attention_equals_the_releases_route_through_diffusers(monkeypatch):
    """The release passes ``(1 - m) x -10000`` (B x 1 x L) as diffusers' ``attention_mask`` to the
    classic processor, which repeats it per head and adds it to the L x L scores (baddbmm); ours
    hands SDPA a B x 1 x 1 x L bias. Same layer, same map: same output."""
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    soft = torch.rand(2, 1, 4, 6)  # a soft map (the Gaussian of clicks is not binarised)
    hidden = torch.randn(2, 24, 16)
    bias = PromptKeyBias(soft, (4, 6))
    with torch.no_grad():
        ours = SDMatteAttnProcessor(masked=True)(attn, hidden, prompt_bias=bias)
        release_mask = ((1 - soft.flatten(1)) * BLOCKED_KEY_BIAS)[:, None, :]  # B x 1 x L
        release = AttnProcessor()(attn, hidden, attention_mask=release_mask)
    torch.testing.assert_close(ours, release, atol=1e-5, rtol=1e-5)
