"""TeachDiffusionMatting's training conventions pinned to the paper (issue 25 items 10-13):
L_SG's pairs and reduction (eq. 3), Phi's initialisation, the refiner's inputs (appendix 6.3),
the operation count with Phi counted like the projections, and checkpoints written before these
switches existed."""

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from mattekit.losses import MaskedFeatureMSELoss
from mattekit.models.teachmatte.attention import TeachAttnProcessor, set_attention
from mattekit.models.teachmatte.complexity import attention_cost_ratios
from mattekit.models.teachmatte.configs import unet_config
from mattekit.models.teachmatte.heads import FeatureProjector
from mattekit.models.teachmatte.lightning_model import TeachMatte
from mattekit.models.teachmatte.refiner import SparseRefiner
from mattekit.models.teachmatte.torch_model import (
    DEFAULT_KERNELS,
    SoftGroundingNet,
    build_grounding,
    build_unet,
    sg_pairs,
    student_unet,
    tap_width,
)

TINY = {"variant": "tiny"}


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory, save_module):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tm")
    return save_module(TeachMatte(stage="teacher", **TINY), folder / "t.ckpt")


# --- item 10: L_SG ---------------------------------------------------------------------------


def sg_example():
    """Two pairs: a 2 x 2 one (8 elements, 2 of them blocked) and a 1 x 1 one."""
    student = [torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]
    first = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[1.0, 3.0], [0.0, 0.0]]])[None]
    teacher = [first, torch.full((1, 1, 1, 1), 2.0)]
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])  # the 1 x 1 grid takes the top-left: 1
    return student, teacher, mask


def test_sg_follows_eq_3_summing_each_pairs_mean_of_the_masked_error():
    student, teacher, mask = sg_example()
    # pair 1: (M * error)^2 = 1 + 1 over all 8 elements = 0.25 (the blocked 9s count 0);
    # pair 2: 4 / 1 = 4. Summed over pairs: 4.25.
    assert torch.isclose(MaskedFeatureMSELoss()(student, teacher, mask), torch.tensor(4.25))
    # the earlier form: mean over pairs of the mean over known elements: (2/6 + 4) / 2
    legacy = MaskedFeatureMSELoss(pairs="mean", over="mask")
    assert torch.isclose(legacy(student, teacher, mask), torch.tensor(13 / 6))
    with pytest.raises(ValueError, match="over"):
        MaskedFeatureMSELoss(over="pixels")


def test_sg_pairs_are_bk_sdm_tinys_six_with_the_16x16_encoder_pair():
    with torch.device("meta"):
        teacher, student = build_unet("sd15"), student_unet(None, "sd15", prune=True)
    assert sg_pairs(teacher, student, "sum") == [
        ("down_blocks.0", "down_blocks.0"),
        ("down_blocks.1", "down_blocks.1"),
        ("down_blocks.2.attentions.0.proj_out", "down_blocks.2.attentions.1.proj_out"),
        ("up_blocks.0", "up_blocks.1"),
        ("up_blocks.1", "up_blocks.2"),
        ("up_blocks.2", "up_blocks.3"),
    ]
    legacy = sg_pairs(teacher, student, "masked_mean")
    assert len(legacy) == 5 and all(".attentions." not in s for s, _ in legacy)
    with torch.device("meta"):  # the README's structure table: the six projectors at SD 1.5
        phis = [FeatureProjector(tap_width(student, s), tap_width(teacher, t))
                for s, t in sg_pairs(teacher, student)]  # fmt: skip
    assert sum(p.numel() for phi in phis for p in phi.parameters()) == 81_728_640


@pytest.mark.parametrize("linear", [True, False])  # SD 2's linear proj_out, SD 1.5's conv
def test_the_encoder_tap_is_the_attentions_projection_on_the_token_grid(linear, synthetic_batch):
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(
        {**unet_config("tiny"), "use_linear_projection": linear}
    )
    net: SoftGroundingNet = build_grounding(unet, 2, "tiny")
    transformer = net.unet.down_blocks[2].attentions[1]
    seen = {}
    transformer.register_forward_hook(lambda m, i, o: seen.update(x=i[0], out=o[0]))
    name = "down_blocks.2.attentions.1.proj_out"
    batch = synthetic_batch(64, 2)
    with torch.no_grad():
        out = net(batch.image, torch.zeros(2, 4, dtype=torch.long), taps=[name])
    # the transformer adds its input back after proj_out: the tap is the difference
    assert out.taps[name].shape == (2, 64, 2, 2)  # 64 px -> latent 8 -> 2 x 2 at level 2
    assert torch.allclose(out.taps[name], seen["out"] - seen["x"], atol=1e-5)


def test_a_student_distils_through_six_projectors(teacher_path, synthetic_batch):
    module = TeachMatte(stage="student", previous_stage=str(teacher_path), **TINY)
    assert len(module.projectors) == 6
    with pytest.raises(ValueError, match="sg_form"):
        TeachMatte(stage="student", sg_form="mean", **TINY)
    assert module.projectors[2][0].in_channels == 64  # the 16 x 16 pair (tiny width 64)
    with torch.no_grad():
        outputs = module.train().training_outputs(synthetic_batch(64, 2, stage="train"))
    assert outputs["sg"] > 0


# --- item 11: Phi's initialisation -----------------------------------------------------------


def test_phi_starts_as_average_pooling():
    torch.manual_seed(0)
    processor = TeachAttnProcessor(channels=6, kernel=2)
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        assert torch.allclose(processor.reduce(x), F.avg_pool2d(x, 2), atol=1e-6)
    assert torch.equal(processor.reduce.bias, torch.zeros(6))


# --- item 12: the refiner --------------------------------------------------------------------


def test_each_refiner_group_reads_the_decoders_context():
    torch.manual_seed(0)
    refiner = SparseRefiner(context_channels=4, groups=2).eval()
    assert [g.convs[0].in_channels for g in refiner.groups] == [8, 8]
    image, context = torch.rand(1, 3, 64, 64), torch.randn(1, 4, 16, 16)
    alpha = torch.full((1, 1, 16, 16), 0.5)  # every pixel active: nothing is masked out
    seen = []
    refiner.groups[1].convs[0].register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    with torch.no_grad():
        refiner(image, alpha, context)
    expected = F.interpolate(context, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(seen[0][:, 4:], expected, atol=1e-6)
    previous = SparseRefiner(context_channels=4, groups=2, context="previous")
    assert [g.convs[0].in_channels for g in previous.groups] == [8, 20]  # group 1's 16 features
    with pytest.raises(ValueError, match="context"):
        SparseRefiner(context_channels=4, context="image")


# --- item 13: the operation count ------------------------------------------------------------


def test_phi_counted_like_the_projections_gives_0_532_and_0_765():
    with torch.device("meta"):
        unet = student_unet(None, "sd15", prune=True)
    set_attention(unet, DEFAULT_KERNELS)
    ratios = attention_cost_ratios(unet, (64, 64), phi_ops_per_mac=2)
    assert (round(ratios[1], 3), round(ratios[2], 3)) == (0.532, 0.765)
    paper = attention_cost_ratios(unet, (64, 64))  # eq. 11: Phi's multiplies only
    assert (round(paper[1], 4), round(paper[2], 4)) == (0.4515, 0.6176)


# --- checkpoints written before the switches -------------------------------------------------


def test_checkpoints_from_before_the_switches_restore_their_conventions(
    teacher_path, tmp_path, save_module
):
    old = TeachMatte(stage="student", previous_stage=str(teacher_path), sg_form="masked_mean",
                     **TINY)  # fmt: skip
    path = save_module(old, tmp_path / "student.ckpt", drop=("sg_form", "refiner_context"))
    restored = TeachMatte.load_from_checkpoint(path)
    assert restored.hparams.sg_form == "masked_mean" and len(restored.projectors) == 5
    assert restored.losses["sg"].pairs == "mean" and restored.losses["sg"].over == "mask"
    old_decoder = TeachMatte(stage="decoder", previous_stage=str(path), refiner=True,
                             refiner_context="previous", **TINY)  # fmt: skip
    decoder_path = save_module(old_decoder, tmp_path / "decoder.ckpt", drop=("refiner_context",))
    restored = TeachMatte.load_from_checkpoint(decoder_path)
    assert restored.hparams.refiner_context == "previous"
    assert restored.model.refiner.context == "previous"
    new = TeachMatte(stage="student", previous_stage=str(teacher_path), **TINY)
    restored = TeachMatte.load_from_checkpoint(save_module(new, tmp_path / "new.ckpt"))
    assert restored.hparams.sg_form == "sum" and len(restored.projectors) == 6
