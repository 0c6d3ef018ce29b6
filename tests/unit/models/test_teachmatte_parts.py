"""TeachDiffusionMatting's parts: pruning, sparse attention, the STM quantity, text encoder,
region targets, losses, refiner and the operation count."""

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from mattekit.losses import MaskedFeatureMSELoss, PerLevelMSELoss
from mattekit.models.teachmatte.attention import (
    AttentionRecorder,
    SkippedSelfAttention,
    TeachAttnProcessor,
    set_attention,
    transformer_blocks_by_level,
)
from mattekit.models.teachmatte.complexity import attention_cost_ratios
from mattekit.models.teachmatte.configs import TEXT_TOKENS, TextTowerConfig, unet_config
from mattekit.models.teachmatte.refiner import SparseRefiner
from mattekit.models.teachmatte.regions import (
    BACKGROUND,
    FOREGROUND,
    TRANSPARENT,
    region_targets,
    scaled_kernel,
)
from mattekit.models.teachmatte.text_encoder import (
    OpenCLIPTextEncoder,
    load_text_encoder,
    open_clip_text_state,
)
from mattekit.models.teachmatte.torch_model import DEFAULT_KERNELS, student_unet
from mattekit.nn.clip_tokens import PromptTokenizer
from mattekit.nn.unet_pruning import prune_unet


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel.from_config(unet_config("tiny"))


# --- pruning ---------------------------------------------------------------------------------


def test_tiny_pruning_keeps_the_right_blocks_and_copies_the_teachers_weights():
    teacher = tiny_unet()
    student = prune_unet(teacher, layers_per_block=1, tiny=True)
    assert student.mid_block is None
    assert len(student.down_blocks) == len(teacher.down_blocks) - 1
    assert len(student.up_blocks) == len(teacher.up_blocks) - 1
    assert [len(b.resnets) for b in student.down_blocks] == [1, 1, 1]
    assert [len(b.resnets) for b in student.up_blocks] == [2, 2, 2]
    # the new innermost stage keeps no downsampler; the first up stage keeps its upsampler
    assert student.down_blocks[-1].downsamplers is None
    assert student.up_blocks[0].upsamplers is not None

    def same(a, b):
        return all(
            torch.equal(x, y)
            for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
        )

    for i, block in enumerate(student.down_blocks):
        assert same(block.resnets[0], teacher.down_blocks[i].resnets[0])
        assert same(block.attentions[0], teacher.down_blocks[i].attentions[0])
    for i, block in enumerate(student.up_blocks):  # from teacher up stage i + 1: first and last
        source = teacher.up_blocks[i + 1]
        assert same(block.resnets[0], source.resnets[0])
        assert same(block.resnets[1], source.resnets[2])
        assert same(block.attentions[1], source.attentions[2])
    assert same(student.conv_in, teacher.conv_in)
    assert same(student.time_embedding, teacher.time_embedding)


def test_bk_sdm_tiny_at_paper_size_has_the_published_size():
    with torch.device("meta"):
        sd15 = student_unet(None, "sd15", prune=True)
        sd21 = student_unet(None, "sd21", prune=True)
        full = student_unet(None, "sd21", prune=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(sd15) == 323_384_964  # BK-SDM-Tiny: "about 323M"
    assert count(sd21) == 326_825_604
    assert count(full) == 865_910_724


# --- attention -------------------------------------------------------------------------------


def attention_layer(width=16, heads=2, cross=None):
    torch.manual_seed(1)
    return Attention(width, cross_attention_dim=cross, heads=heads, dim_head=width // heads)


def test_sparse_attention_with_k_1_and_an_identity_projection_equals_dense_attention():
    layer, tokens = attention_layer(), torch.randn(2, 24, 16)
    dense = layer.processor(layer, tokens)  # diffusers' own SDPA processor
    assert isinstance(layer.processor, AttnProcessor2_0)
    sparse = TeachAttnProcessor(16, kernel=1)
    sparse.reduce = torch.nn.Conv2d(16, 16, 1, bias=False)
    with torch.no_grad():
        sparse.reduce.weight.copy_(torch.eye(16)[:, :, None, None])
    ours = sparse(layer, tokens, latent_size=(4, 6))
    assert torch.allclose(ours, dense, atol=1e-6)
    plain = TeachAttnProcessor()(layer, tokens, latent_size=(4, 6))
    assert torch.allclose(plain, dense, atol=1e-6)


def test_sparse_attention_attends_to_the_convolved_keys():
    layer, tokens = attention_layer(), torch.randn(1, 24, 16)
    processor = TeachAttnProcessor(16, kernel=2)
    out = processor(layer, tokens, latent_size=(4, 6))
    grid = tokens.transpose(1, 2).reshape(1, 16, 4, 6)
    keys_from = processor.reduce(grid).flatten(2).transpose(1, 2)  # 1 x 6 x 16
    assert keys_from.shape[1] == 6  # (4 / 2) x (6 / 2) keys for 24 queries
    q = layer.to_q(tokens).view(1, 24, 2, 8).transpose(1, 2)
    k = layer.to_k(keys_from).view(1, 6, 2, 8).transpose(1, 2)
    v = layer.to_v(keys_from).view(1, 6, 2, 8).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2) / 8**0.5).softmax(-1)
    expected = layer.to_out[0]((scores @ v).transpose(1, 2).reshape(1, 24, 16))
    assert torch.allclose(out, expected, atol=1e-5)


def test_stm_through_sdpa_equals_the_explicit_attention_map_times_alpha():
    torch.manual_seed(2)
    query, key = torch.randn(2, 3, 24, 8), torch.randn(2, 3, 6, 8)
    alpha = torch.rand(2, 1, 16, 24)
    recorder = AttentionRecorder(alpha)
    recorder.self_attention(query, key, (4, 6), (2, 3))
    on_keys = F.interpolate(alpha, size=(2, 3), mode="bilinear").flatten(1)  # 2 x 6
    maps = (query @ key.transpose(-1, -2) / 8**0.5).softmax(-1)  # 2 x 3 x 24 x 6
    explicit = maps.mean(1) @ on_keys[:, :, None]  # head-averaged A x alpha
    assert torch.allclose(recorder.by_level("propagated")[(4, 6)], explicit, atol=1e-6)


def test_set_attention_removes_sparsifies_and_keeps_per_level():
    unet = tiny_unet()
    set_attention(unet, DEFAULT_KERNELS)
    by_level = {}
    for level, block in transformer_blocks_by_level(unet):
        by_level.setdefault(level, set()).add(
            "removed"
            if isinstance(block.attn1, SkippedSelfAttention)
            else block.attn1.processor.kernel
        )
        assert isinstance(block.attn2.processor, TeachAttnProcessor)
    assert by_level == {0: {"removed"}, 1: {2}, 2: {2}, 3: {1}}  # level 3: the mid block
    assert not any("attn1" in n for n, _ in unet.down_blocks[0].named_parameters())
    latent = torch.randn(1, 4, 16, 16)
    context = torch.randn(1, 5, 32)
    out = unet(latent, 0, context, cross_attention_kwargs={"latent_size": (16, 16)}).sample
    assert out.shape == latent.shape


def test_removed_self_attention_passes_the_tokens_through_the_residual():
    block = tiny_unet().down_blocks[0].attentions[0].transformer_blocks[0]
    tokens, context = torch.randn(1, 16, 32), torch.randn(1, 5, 32)
    for attention in (block.attn1, block.attn2):
        attention.set_processor(TeachAttnProcessor())
    kwargs = {"latent_size": (4, 4)}
    block.attn1, block.norm1 = SkippedSelfAttention(), torch.nn.Identity()
    out = block(tokens, encoder_hidden_states=context, cross_attention_kwargs=kwargs)
    hidden = tokens + block.attn2(block.norm2(tokens), context, **kwargs)
    expected = hidden + block.ff(block.norm3(hidden))
    assert torch.allclose(out, expected, atol=1e-6)


# --- text ------------------------------------------------------------------------------------


def test_a_transformers_clip_text_model_converts_to_the_same_features():
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu",
    )  # fmt: skip
    hf = CLIPTextModel(config).eval()
    encoder = OpenCLIPTextEncoder(TextTowerConfig(32, 2, 2, skip_last_layers=0, embed_dim=32))
    state = open_clip_text_state(hf.state_dict())
    encoder.tower.load_state_dict(state, strict=False)
    ids = PromptTokenizer(TEXT_TOKENS)(["the white and transparent net", ""])
    assert ids.shape == (2, 40)
    with torch.no_grad():
        assert torch.allclose(encoder(ids), hf(input_ids=ids).last_hidden_state, atol=1e-5)


def test_an_open_clip_checkpoint_loads_with_its_visual_tower_ignored(tmp_path):
    torch.manual_seed(0)
    source = OpenCLIPTextEncoder(TextTowerConfig(32, 2, 2, skip_last_layers=1, embed_dim=32))
    state = {
        **source.tower.state_dict(),
        "visual.proj": torch.zeros(3),
        "logit_scale": torch.ones(()),
    }
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(state, path)
    target = OpenCLIPTextEncoder(source.config)
    load_text_encoder(target, path)
    ids = PromptTokenizer(TEXT_TOKENS)(["a cat"])
    with torch.no_grad():
        assert torch.equal(target(ids), source(ids))
        last = OpenCLIPTextEncoder(TextTowerConfig(32, 2, 2, skip_last_layers=0, embed_dim=32))
        last.load_state_dict(source.state_dict())
        assert not torch.allclose(last(ids), source(ids))  # penultimate really differs
    wrong = OpenCLIPTextEncoder(TextTowerConfig(64, 2, 2, skip_last_layers=1, embed_dim=64))
    with pytest.raises(ValueError, match="not a text encoder of this size"):
        load_text_encoder(wrong, path)


# --- region targets --------------------------------------------------------------------------


def test_region_targets_dilate_the_fractional_band_by_the_kernel():
    alpha = torch.zeros(1, 1, 64, 64)
    alpha[..., :, 32:] = 1.0
    alpha[..., :, 31] = 0.5  # one fractional column
    regions = region_targets(alpha, kernel=15, factor=8)
    # band: columns 24..38 -> cells 3 and 4 transparent; cells 0-2 background, 5-7 foreground
    row = regions.classes[0, 0].tolist()
    assert row == [BACKGROUND] * 3 + [TRANSPARENT] * 2 + [FOREGROUND] * 3
    assert torch.equal(regions.transparent[0, 0, 0], torch.tensor([0, 0, 0, 1, 1, 0, 0, 0.0]))
    assert (
        scaled_kernel(15, 512) == 15 and scaled_kernel(15, 128) == 5 and scaled_kernel(15, 16) == 1
    )


# --- losses ----------------------------------------------------------------------------------


def test_masked_feature_mse_counts_only_the_known_region():
    student = [torch.zeros(1, 2, 2, 2)]
    teacher = [torch.tensor([[[[1.0, 3.0], [0.0, 0.0]], [[1.0, 3.0], [0.0, 0.0]]]])]
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    # over the known elements: errors 1, 0, 0 per channel -> mean 1/3; the blocked 9s do not
    # count (eq. 3's default divides by all 8 elements instead: test_teachmatte_recipe.py)
    over_mask = MaskedFeatureMSELoss(pairs="mean", over="mask")
    assert torch.isclose(over_mask(student, teacher, mask), torch.tensor(1 / 3))
    mask_4x = F.interpolate(mask, scale_factor=4.0)  # resized to each feature's grid
    assert torch.isclose(over_mask(student, teacher, mask_4x), torch.tensor(1 / 3))


def test_per_level_mse_averages_shared_levels_with_mean_or_sum():
    student = {(2, 2): torch.zeros(1, 4, 1), (1, 1): torch.zeros(1, 1, 1)}
    teacher = {(2, 2): torch.tensor([[[1.0], [1.0], [0.0], [0.0]]]), (4, 4): torch.ones(1, 16, 1)}
    assert torch.isclose(PerLevelMSELoss("mean")(student, teacher), torch.tensor(0.5))
    assert torch.isclose(PerLevelMSELoss("sum")(student, teacher), torch.tensor(2.0))
    with pytest.raises(ValueError, match="share no resolution"):
        PerLevelMSELoss()({(1, 1): torch.zeros(1)}, {(2, 2): torch.zeros(1)})


# --- refiner ---------------------------------------------------------------------------------


def uncertain_alpha():
    alpha = torch.zeros(1, 1, 16, 16)
    alpha[..., 8:] = 1
    alpha[..., 7:9, :] = 0.5
    return alpha


def test_the_refiner_changes_only_uncertain_pixels():
    torch.manual_seed(0)
    refiner = SparseRefiner(context_channels=4, groups=2).eval()
    image, context = torch.rand(1, 3, 64, 64), torch.randn(1, 4, 16, 16)
    alpha = uncertain_alpha()
    with torch.no_grad():
        out = refiner(image, alpha, context)
    assert out.shape == (1, 1, 64, 64)
    upsampled = F.interpolate(
        F.interpolate(alpha, size=(32, 32), mode="bilinear"), size=(64, 64), mode="bilinear"
    )
    certain = (upsampled <= 0.01) | (upsampled >= 0.99)
    assert torch.equal(out[certain], upsampled[certain])
    assert (out - upsampled).abs()[~certain].max() > 1e-4


def test_dense_and_spconv_backends_agree():
    """With two torch threads, as Lightning leaves a CPU process: spconv must still agree."""
    pytest.importorskip("spconv.pytorch")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        check_backends_agree()
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads


def check_backends_agree():
    torch.manual_seed(0)
    dense = SparseRefiner(context_channels=4, groups=2)
    for norm in (m for m in dense.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.running_mean.uniform_(-0.2, 0.2)
        norm.running_var.uniform_(0.5, 1.5)
    dense.eval()
    sparse = SparseRefiner(context_channels=4, groups=2, backend="spconv").eval()
    sparse.load_state_dict(dense.state_dict())
    image, context = torch.rand(1, 3, 64, 64), torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        expected = dense(image, uncertain_alpha(), context)
        got = sparse(image, uncertain_alpha(), context)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


# --- operation count -------------------------------------------------------------------------


def test_operation_count_from_our_layer_shapes_reproduces_the_paper():
    with torch.device("meta"):
        unet = student_unet(None, "sd15", prune=True)
    set_attention(unet, DEFAULT_KERNELS)
    ratios = attention_cost_ratios(unet, (64, 64))
    assert ratios[0] == 0.0  # removed at 64 x 64
    assert round(ratios[1], 4) == 0.4515  # 32 x 32, d = 640, k = 2
    assert round(ratios[2], 4) == 0.6176  # 16 x 16, d = 1280, k = 2
