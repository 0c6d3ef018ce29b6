"""LiteSDMatte's distillation as the SDMatte release's: the three tensors of
``utils/replace.py:491, 507, 539`` (after the down stack, the mid block, the up stack), their MSEs
summed (``criterion.py:33-38``), weight 0.01."""

import pytest
import torch
from diffusers import UNet2DConditionModel

from mattekit.losses import FeatureMSELoss
from mattekit.models.sdmatte.lightning_model import LiteSDMatte, SDMatte
from mattekit.nn.unet_features import captured_trunk_features


def tiny_unet(mid_block_type: str | None = "UNetMidBlock2DCrossAttn") -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), norm_num_groups=8, cross_attention_dim=16,
        attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), mid_block_type=mid_block_type,
    ).eval()  # fmt: skip


def trunk_inputs(unet: UNet2DConditionModel):
    """Context manager and list: the inputs of the mid block (or the first up block), of the
    first up block and of ``conv_norm_out``: where the release's three tensors go next."""
    seen = []
    after_down = unet.mid_block if unet.mid_block is not None else unet.up_blocks[0]
    modules = [after_down, unet.up_blocks[0], unet.conv_norm_out]

    def keep(_module, args, kwargs) -> None:
        seen.append(args[0] if args else kwargs["hidden_states"])

    handles = [m.register_forward_pre_hook(keep, with_kwargs=True) for m in modules]
    return handles, seen


def run(unet: UNet2DConditionModel) -> None:
    with torch.no_grad():
        unet(torch.randn(2, 4, 8, 8), 1, encoder_hidden_states=torch.randn(2, 3, 16))


@pytest.mark.parametrize("mid", ["UNetMidBlock2DCrossAttn", None])
def test_the_three_captured_tensors_are_what_the_next_stages_read(mid):
    unet = tiny_unet(mid)
    handles, seen = trunk_inputs(unet)
    with captured_trunk_features(unet) as features:
        run(unet)
    for handle in handles:
        handle.remove()
    assert [tuple(f.shape) for f in features] == [(2, 64, 4, 4), (2, 64, 4, 4), (2, 32, 8, 8)]
    if mid is None:
        # the release appends the down stack's output again where the mid block would be
        seen[1] = seen[0]
    assert all(torch.equal(f, s) for f, s in zip(features, seen, strict=True))


def test_feature_mse_sums_the_pairs():
    student = [torch.ones(1, 2, 2, 2), torch.full((1, 3, 1, 1), 2.0)]
    teacher = [torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 1, 1)]
    # MSEs 1 and 4: summed 5 (the mean, 2.5, was mattekit's earlier reduction)
    assert FeatureMSELoss()(student, teacher).item() == pytest.approx(5.0)


def test_feature_mse_matches_the_releases_distillation_criterion():
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 64, 4, 4), (2, 64, 4, 4), (2, 32, 8, 8)]
    student = [torch.randn(s, generator=generator) for s in shapes]
    teacher = [torch.randn(s, generator=generator) for s in shapes]
    # release DistillationCriterion(["mse_loss"])(student, teacher), x 0.01 included
    assert 0.01 * FeatureMSELoss()(student, teacher).item() == pytest.approx(0.0603924505, abs=1e-8)


def test_lite_distillation_term_is_the_summed_mse_of_the_three_tensors(tmp_path, synthetic_batch):
    torch.manual_seed(0)
    teacher = SDMatte(variant="tiny")
    path = tmp_path / "teacher.ckpt"
    lightning = {"hyper_parameters": dict(teacher.hparams), "pytorch-lightning_version": "2.6.0"}
    torch.save({"state_dict": teacher.state_dict(), **lightning}, path)
    module = LiteSDMatte(variant="tiny", teacher_checkpoint=str(path), prompt_kinds=["box"])
    with torch.no_grad():
        module.model.unet.mid_block.resnets[0].conv1.weight.add_(0.1)  # differ from the teacher
    student_handles, student_seen = trunk_inputs(module.model.unet)
    teacher_handles, teacher_seen = trunk_inputs(module.teacher.unet)
    with torch.no_grad():
        distillation = module.train().training_outputs(synthetic_batch(64, 2, stage="train"))
    for handle in student_handles + teacher_handles:
        handle.remove()
    expected = sum(
        torch.nn.functional.mse_loss(s, t) for s, t in zip(student_seen, teacher_seen, strict=True)
    )
    assert len(student_seen) == 3 and expected > 0
    assert distillation["distillation"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert module.loss_weights["distillation"] == 0.01
