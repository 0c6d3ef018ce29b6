"""TeachMatte's three stages as a family: chaining through checkpoints, what each stage freezes,
stores and trains, its switches, and that each stage's loss really falls.

The parts are tested in ``test_teachmatte_parts.py``; the contract and CLI tests run every stage.
"""

import pytest
import torch
from torch import nn

from mattekit.models.base import restoring_from_checkpoint
from mattekit.models.teachmatte.attention import SkippedSelfAttention
from mattekit.models.teachmatte.lightning_model import TeachMatte

TINY = {"variant": "tiny"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory, save_module):
    """A teacher checkpoint (perturbed away from initialisation) and a student one from it."""
    folder = tmp_path_factory.mktemp("teachmatte")
    torch.manual_seed(0)
    teacher = TeachMatte(stage="teacher", **TINY)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.01 * torch.randn_like(p))
    teacher_path = save_module(teacher, folder / "teacher.ckpt")
    student = TeachMatte(stage="student", previous_stage=str(teacher_path), **TINY)
    student_path = save_module(student, folder / "student.ckpt")
    return {"teacher": teacher, "teacher_path": teacher_path, "student_path": student_path}


@pytest.fixture
def batch(synthetic_batch):
    return synthetic_batch(64, 2, stage="train")


def test_the_student_starts_as_the_pruned_teacher_and_keeps_it_frozen_and_unstored(chain):
    teacher = chain["teacher"]
    student = TeachMatte(stage="student", previous_stage=str(chain["teacher_path"]), **TINY)
    s_unet, t_unet = student.model.unet, teacher.model.unet
    assert s_unet.mid_block is None and len(s_unet.down_blocks) == 3
    assert torch.equal(s_unet.down_blocks[1].resnets[0].conv1.weight,
                       t_unet.down_blocks[1].resnets[0].conv1.weight)  # fmt: skip
    assert torch.equal(student.model.adapter.mlp[0].weight, teacher.model.adapter.mlp[0].weight)
    # its own 2-output head, not the teacher's 3-way one
    assert s_unet.conv_out[-1].out_channels == 2
    # the teacher: frozen, in eval mode, outside the optimiser and the checkpoint
    assert not any(p.requires_grad for p in student.teacher.parameters())
    student.train()
    assert not student.teacher.training
    optimised = {id(p) for group in student.parameter_groups() for p in group["params"]}
    assert not optimised & {id(p) for p in student.teacher.parameters()}
    state = torch.load(chain["student_path"], weights_only=True)["state_dict"]
    assert not any(key.startswith("teacher.") for key in state)
    assert any(key.startswith("projectors.") for key in state)


def test_a_restored_student_never_reads_its_teacher(chain, tmp_path, synthetic_batch):
    path = chain["student_path"]
    student = TeachMatte.load_from_checkpoint(path).eval()
    assert student.teacher is None
    batch = synthetic_batch(64, 2)
    with torch.no_grad():
        expected = student(batch)["alpha"]
    missing = dict(torch.load(path, weights_only=True))
    missing["hyper_parameters"] = {**missing["hyper_parameters"], "previous_stage": "/gone.ckpt"}
    torch.save(missing, tmp_path / "moved.ckpt")
    restored = TeachMatte.load_from_checkpoint(tmp_path / "moved.ckpt").eval()
    with torch.no_grad():
        assert torch.equal(restored(batch)["alpha"], expected)


def test_a_resumed_fit_reads_its_teacher_sharing_the_students_frozen_parts(chain):
    student = TeachMatte.load_from_checkpoint(chain["student_path"])
    student.on_fit_start()
    teacher = student.teacher
    assert teacher.vae is student.model.vae
    assert teacher.text_encoder is student.model.text_encoder
    trained = chain["teacher"].model
    assert torch.equal(teacher.unet.conv_in.weight, trained.unet.conv_in.weight)
    assert torch.equal(teacher.adapter.mlp[0].weight, trained.adapter.mlp[0].weight)
    assert not any(p.requires_grad for p in teacher.unet.parameters())


def test_the_decoder_stage_freezes_and_stores_the_student(chain, batch):
    decoder = TeachMatte(stage="decoder", previous_stage=str(chain["student_path"]), **TINY)
    student = TeachMatte.load_from_checkpoint(chain["student_path"])
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            decoder.model.student.state_dict().values(),
            student.model.state_dict().values(),
            strict=True,
        )
    )
    trainable = {n for n, p in decoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.decoder.") for n in trainable)
    outputs = decoder.eval()(batch)
    assert outputs["alpha"].shape == batch.alpha.shape
    assert outputs["alpha_lr"].shape == (2, 1, 8, 8)


def test_later_stages_inherit_what_shapes_their_networks(chain):
    student = TeachMatte(
        stage="student", previous_stage=str(chain["teacher_path"]), variant="sd21",
        attention_kernels=[1, 1, 1],
    )  # fmt: skip
    assert student.hparams.variant == "tiny"  # the teacher's, not the given one
    assert student.hparams.attention_kernels == [1, 1, 1]  # the student's own choice
    decoder = TeachMatte(stage="decoder", previous_stage=str(chain["student_path"]),
                         attention_kernels=[2, 2, 2], **TINY)  # fmt: skip
    assert decoder.hparams.attention_kernels is None  # the student's (default) kernels


def test_stage_errors_name_the_argument(chain):
    with pytest.raises(ValueError, match="previous_stage"):
        TeachMatte(stage="decoder", **TINY)
    with pytest.raises(ValueError, match="'teacher' stage checkpoint; the decoder stage"):
        TeachMatte(stage="decoder", previous_stage=str(chain["teacher_path"]), **TINY)
    with pytest.raises(FileNotFoundError, match="previous_stage"):
        TeachMatte(stage="student", previous_stage="/nowhere.ckpt", **TINY)
    with pytest.raises(ValueError, match="stage must be one of"):
        TeachMatte(stage="refiner", **TINY)
    with pytest.raises(ValueError, match="attention_kernels"):
        TeachMatte(stage="student", attention_kernels=[0, 2], **TINY)


def test_switches_shape_the_student(chain):
    path = str(chain["teacher_path"])
    unpruned = TeachMatte(stage="student", previous_stage=path, prune=False,
                          attention_kernels=[1, 1, 1, 1], projector=False, **TINY)  # fmt: skip
    assert unpruned.model.unet.mid_block is not None
    assert all(isinstance(p, nn.Identity) for p in unpruned.projectors)
    default = TeachMatte(stage="student", previous_stage=path, **TINY)
    first = default.model.unet.down_blocks[0].attentions[0].transformer_blocks[0]
    assert isinstance(first.attn1, SkippedSelfAttention)
    direct = TeachMatte(stage="student", **TINY)  # Table 3 row 1: no teacher, no distillation
    assert set(direct.loss_weights) == {"alpha_lr", "r"} and direct.teacher is None
    off = TeachMatte(stage="student", previous_stage=path,
                     loss_weights={"sg": 0, "stm": 0, "ctm": 0}, **TINY)  # fmt: skip
    assert off.teacher is None  # initialised from the teacher, never distilled from


def test_the_paper_loss_weights_are_the_defaults(chain):
    student = TeachMatte(stage="student", previous_stage=str(chain["teacher_path"]), **TINY)
    assert student.loss_weights == {"stm": 10, "ctm": 0.1, "sg": 0.5, "alpha_lr": 10, "r": 1}
    assert student.hparams.lr == 5e-5
    assert student.hparams.lr_milestones == [[10000, 0.4], [35000, 0.25]]
    assert TeachMatte(stage="teacher", **TINY).hparams.lr_milestones == [
        [15000, 0.5],
        [40000, 0.25],
    ]


@pytest.mark.parametrize("stage", ["teacher", "student", "decoder"])
def test_each_stage_loss_falls_on_one_batch(stage, chain, batch, train_on_batch):
    previous = {"student": chain["teacher_path"], "decoder": chain["student_path"]}.get(stage)
    torch.manual_seed(0)
    lr = 1e-2 if stage == "decoder" else 2e-3  # the tiny decoder is a quarter of the paper's width
    module = TeachMatte(
        stage=stage, previous_stage=previous and str(previous), lr=lr, lr_milestones=[], **TINY
    )
    losses = train_on_batch(module, batch, 12)
    assert losses[-1] < 0.8 * losses[0], losses


def test_distillation_terms_are_logged_and_vanish_for_identical_networks(chain, batch):
    """A student that is the teacher (unpruned, dense, no projector) has zero SG/STM/CTM."""
    module = TeachMatte(stage="student", previous_stage=str(chain["teacher_path"]), prune=False,
                        attention_kernels=[1, 1, 1, 1], projector=False, **TINY)  # fmt: skip
    module.model.unet.conv_out = module.teacher.unet.conv_out  # the head is not distilled
    with torch.no_grad():
        outputs = module.train().training_outputs(batch)
    assert outputs["sg"] < 1e-10 and outputs["stm"] < 1e-10 and outputs["ctm"] < 1e-10
    moved = TeachMatte(stage="student", previous_stage=str(chain["teacher_path"]), **TINY)
    with torch.no_grad():
        outputs = moved.train().training_outputs(batch)
    assert outputs["sg"] > 0 and outputs["stm"] > 0 and outputs["ctm"] > 0


def test_restoring_reads_no_previous_stage_file(chain):
    with restoring_from_checkpoint():
        module = TeachMatte(stage="decoder", previous_stage="/gone.ckpt", **TINY)
    assert module.model.decoder is not None


def test_a_diffusers_folder_and_a_text_encoder_file_start_the_teacher(
    tmp_path, synthetic_batch, save_module
):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from mattekit.models.teachmatte.configs import autoencoder_config, text_config, unet_config
    from mattekit.models.teachmatte.text_encoder import OpenCLIPTextEncoder

    torch.manual_seed(3)
    unet = UNet2DConditionModel.from_config(unet_config("tiny"))
    vae = AutoencoderKL(**autoencoder_config("tiny"))
    unet.save_pretrained(tmp_path / "sd" / "unet")
    vae.save_pretrained(tmp_path / "sd" / "vae")
    text = OpenCLIPTextEncoder(text_config("tiny"))
    torch.save({f"text_encoder.{k}": v for k, v in text.tower.state_dict().items()},
               tmp_path / "clip.pth")  # fmt: skip
    module = TeachMatte(stage="teacher", pretrained=str(tmp_path / "sd"),
                        text_encoder=str(tmp_path / "clip.pth"), **TINY)  # fmt: skip
    assert torch.equal(module.model.unet.conv_in.weight, unet.conv_in.weight)
    assert torch.equal(module.model.vae.encoder.conv_in.weight, vae.encoder.conv_in.weight)
    assert torch.equal(module.model.text_encoder.tower.token_embedding.weight,
                       text.tower.token_embedding.weight)  # fmt: skip
    # the text encoder file is read again by every run: out of the checkpoint, back on restore
    path = save_module(module, tmp_path / "teacher.ckpt")
    state = torch.load(path, weights_only=True)["state_dict"]
    assert not any(k.startswith("model.text_encoder.") for k in state)
    assert any(k.startswith("model.vae.") for k in state)
    restored = TeachMatte.load_from_checkpoint(path).eval()
    batch = synthetic_batch(64, 2)
    with torch.no_grad():
        # equal up to float rounding: the loaded tensors differ in memory layout, not value
        assert torch.allclose(restored(batch)["alpha"], module.eval()(batch)["alpha"], atol=1e-6)


def test_paper_size_stages_have_the_structure_the_readme_reports():
    with torch.device("meta"):
        teacher = TeachMatte(stage="teacher", variant="sd15")
        student = TeachMatte(stage="student", variant="sd15")
    learnable = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert learnable(teacher) == 861_649_795  # the paper: 861M
    assert learnable(student) == 348_863_554  # without the projectors (no teacher given)
    with torch.device("meta"):
        from mattekit.models.teachmatte.configs import decoder_widths
        from mattekit.models.teachmatte.decoder import DetailDecoder

        decoder = DetailDecoder(320, *decoder_widths("sd15"))
    assert learnable(decoder) == 2_512_545  # the paper: 2.67M


def test_the_refiner_trains_with_the_decoder_and_returns_the_input_size(chain, synthetic_batch):
    batch = synthetic_batch(128, 2, stage="train")
    module = TeachMatte(stage="decoder", previous_stage=str(chain["student_path"]), refiner=True,
                        **TINY)  # fmt: skip
    outputs = module.train().training_outputs(batch)
    assert outputs["alpha"].shape == (2, 1, 128, 128)
    assert outputs["alpha_lr"].shape == (2, 1, 4, 4)  # the student saw 32 px
    loss, _ = module.weighted_loss(outputs, batch)
    loss.backward()
    refiner = module.model.refiner
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in refiner.parameters())


@pytest.mark.parametrize("weights", [{"sg": 0, "stm": 0, "ctm": 0}, {"stm": 0, "ctm": 0, "r": 0}])
def test_ablated_students_train_every_trainable_parameter(weights, chain, batch):
    module = TeachMatte(stage="student", previous_stage=str(chain["teacher_path"]),
                        loss_weights=weights, **TINY)  # fmt: skip
    loss, _ = module.train().weighted_loss(module.training_outputs(batch), batch)
    loss.backward()
    idle = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not idle, idle[:5]


def test_the_reference_row_is_the_empty_alpha(batch):
    module = TeachMatte(stage="teacher", **TINY)
    assert module.reference_name == "empty alpha (reference)"
    assert torch.equal(module.reference_prediction(batch), torch.zeros_like(batch.alpha))
