"""SDMatte and LiteSDMatte as a whole: the network's step, the families' prompts and opacity flag,
the official-checkpoint converter, Stable Diffusion folders and LiteSDMatte's distillation.

The parts (processors, embeddings, pruning, paper-size structure) are tested in
``test_sdmatte_parts.py``.
"""

import dataclasses

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from sdmatte_cases import net_inputs, randomise_coordinate_embedding, same_weights
from torch import nn

from mattekit.models.base import restoring_from_checkpoint
from mattekit.models.sdmatte.configs import sd_unet_config, vae_config
from mattekit.models.sdmatte.lightning_model import LiteSDMatte, SDMatte
from mattekit.models.sdmatte.text_context import END_TOKEN, START_TOKEN, TEXT_TOKENS
from mattekit.models.sdmatte.torch_model import build_sdmatte
from mattekit.models.sdmatte.weights import from_official, load_sdmatte_weights, to_official


def perturb(module: nn.Module, seed: int = 1) -> None:
    """Not the initial weights (zero layers included): a load must really load."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))


def grad_norm(parameter: nn.Parameter) -> float:
    return 0.0 if parameter.grad is None else float(parameter.grad.abs().sum())


# --- the network --------------------------------------------------------------------------------


def test_one_step_forward_backward_reaches_every_added_module():
    torch.manual_seed(0)
    net = build_sdmatte("tiny").train()
    inputs = net_inputs()
    target = torch.rand(2, 1, 64, 64)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    embedding = net.coordinate_embedding
    for step in range(2):
        alpha = net(*inputs)
        assert alpha.shape == (2, 1, 64, 64)
        assert alpha.min() >= 0 and alpha.max() <= 1
        optimizer.zero_grad()
        (alpha - target).abs().mean().backward()
        mid = net.unet.mid_block.attentions[0].transformer_blocks[0]
        up = net.unet.up_blocks[2].attentions[0].transformer_blocks[0]
        for name, parameter in [
            ("conv_in", net.unet.conv_in.weight),
            ("mid attn2 to_k", mid.attn2.to_k.weight),
            ("up attn1 to_q", up.attn1.to_q.weight),
            ("projection", net.visual_prompt_projection.weight),
            ("points output", embedding.points.linear_2.weight),
            ("box output", embedding.box.linear_2.weight),
        ]:  # fmt: skip
            assert grad_norm(parameter) > 0, (step, name)
        # the zero output layer passes no gradient to the hidden one until it has moved
        hidden = [
            grad_norm(embedding.points.linear_1.weight),
            grad_norm(embedding.box.linear_1.weight),
        ]
        assert all(g == 0 for g in hidden) if step == 0 else all(g > 0 for g in hidden), hidden
        optimizer.step()


def test_sides_not_divisible_by_8_raise_naming_the_size():
    net = build_sdmatte("tiny")
    with pytest.raises(ValueError, match=r"divisible by 8, got \(36, 64\)"):
        net(*net_inputs(36, 64))


def test_mixed_prompt_kinds_in_one_batch_give_each_samples_own_output(synthetic_batch):
    torch.manual_seed(0)
    module = SDMatte(variant="tiny").eval()
    randomise_coordinate_embedding(module.model.coordinate_embedding)
    batch = synthetic_batch(64, 4)
    kinds = ["points", "box", "mask", "points"]
    with torch.no_grad():
        together = module.model(*module.network_inputs(batch, kinds))
        for i, kind in enumerate(kinds):
            alone = module.model(*module.network_inputs(batch.select([i]), [kind]))
            assert torch.allclose(together[i : i + 1], alone, atol=1e-5), (i, kind)
        other_kind = module.model(*module.network_inputs(batch.select([0]), ["box"]))
    assert (together[:1] - other_kind).abs().max() > 1e-4  # the kind matters


def test_the_opacity_flag_replaces_the_timestep(synthetic_batch):
    batch = dataclasses.replace(synthetic_batch(32, 2), is_transparent=torch.tensor([True, False]))

    def latent(module, transparent):
        module.hparams.transparent = transparent
        with torch.no_grad():
            return module.model.denoise(*module.network_inputs(batch, ["box", "box"]))

    torch.manual_seed(0)
    module = SDMatte(variant="tiny").eval()
    from_data, opaque, clear = (latent(module, t) for t in (None, False, True))
    assert (opaque - clear).abs().amax((1, 2, 3)).min() > 1e-4
    # None follows the data: the first sample is transparent, the second opaque
    assert torch.allclose(from_data[0], clear[0], atol=1e-6)
    assert torch.allclose(from_data[1], opaque[1], atol=1e-6)
    module.train()  # training reads the data whatever the run setting
    module.hparams.transparent = False
    assert torch.equal(
        module.network_inputs(batch, ["box", "box"])[1].transparent, torch.tensor([1.0, 0.0])
    )

    torch.manual_seed(0)
    without = SDMatte(variant="tiny", opacity_embedding=False).eval()
    assert torch.equal(latent(without, True), latent(without, False))


def test_sdmatte_overfits_one_batch(synthetic_batch, train_on_batch):
    """The autoencoder trains too: a frozen random decoder barely expresses an alpha (the loss
    stays above 0.9 x its start in 20 steps), a pretrained one would."""
    torch.manual_seed(0)
    module = SDMatte(variant="tiny", lr=1e-3, warmup_steps=0, train_vae=True)
    losses = train_on_batch(module, synthetic_batch(64, 2, stage="train"), 20)
    assert losses[-1] < 0.7 * losses[0], losses


# --- official checkpoints -----------------------------------------------------------------------


def tiny_text_encoder():
    """A CLIP text encoder as wide as the tiny UNet's context (1 head of 32)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(3)
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=1, max_position_embeddings=TEXT_TOKENS, hidden_act="gelu",
    )  # fmt: skip
    return CLIPTextModel(config).eval()


def transformers4_state(encoder) -> dict[str, torch.Tensor]:
    """transformers 4's names (``text_model.`` level, the position ids buffer), as in SD 2."""
    state = {
        key if key.startswith("text_model.") else "text_model." + key: value
        for key, value in encoder.state_dict().items()
    }
    state["text_model.embeddings.position_ids"] = torch.arange(TEXT_TOKENS)[None]
    return state


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A perturbed tiny SDMatte and its text encoder in the release's layout, as .pth
    (wrapped in ``{"model": ...}``) and .safetensors."""
    torch.manual_seed(0)
    net = build_sdmatte("tiny")
    perturb(net)
    encoder = tiny_text_encoder()
    state = to_official(net.state_dict(), transformers4_state(encoder))
    folder = tmp_path_factory.mktemp("sdmatte_official")
    torch.save({"model": state}, folder / "SDMatte.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "SDMatte.safetensors"))
    ids = torch.tensor([[START_TOKEN, END_TOKEN] + [0] * (TEXT_TOKENS - 2)])
    with torch.no_grad():
        caption = encoder(input_ids=ids).last_hidden_state
    return net, state, caption, folder


def test_official_layout_names_the_releases_keys(official):
    net, state, _, _ = official
    assert {
        "unet.aux_conv_in.weight",
        "unet.point_embedding.linear_1.weight",
        "unet.bbox_embedding.linear_2.bias",
        "unet.conv_in.weight",
        "vae.decoder.conv_out.weight",
        "text_encoder.text_model.embeddings.token_embedding.weight",
    } <= set(state)
    assert state["unet.conv_in.weight"].shape[1] == 8
    ours = ("visual_prompt_projection.", "coordinate_embedding.", "text_context")
    assert not any(key.startswith(ours) for key in state)
    network, text = from_official({"module." + k: v for k, v in state.items()})
    assert set(network) == set(net.state_dict()) - {"text_context"}
    assert "text_model.encoder.layers.1.mlp.fc2.bias" in text


@pytest.mark.parametrize("name", ["SDMatte.pth", "SDMatte.safetensors"])
def test_official_file_round_trip(official, name):
    net, _, caption, folder = official
    torch.manual_seed(7)
    fresh = build_sdmatte("tiny")
    load_sdmatte_weights(fresh, folder / name)
    loaded, expected = fresh.state_dict(), net.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        if key != "text_context":
            assert torch.equal(loaded[key], value), key
    assert fresh.text_context.shape == (1, TEXT_TOKENS, 32)
    assert torch.allclose(fresh.text_context, caption, atol=1e-6)


def test_official_file_loads_into_a_meta_network_by_assignment(official):
    folder = official[3]
    torch.manual_seed(7)
    reference = build_sdmatte("tiny").eval()
    load_sdmatte_weights(reference, folder / "SDMatte.pth")
    with torch.device("meta"):
        net = build_sdmatte("tiny")
    load_sdmatte_weights(net, folder / "SDMatte.pth", assign=True)
    net.eval()
    tensors = {**dict(net.named_parameters()), **dict(net.named_buffers())}
    assert not [name for name, t in tensors.items() if t.device.type == "meta"]
    assert all(p.requires_grad for p in net.parameters())
    assigned = net.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(assigned[key], value), key
    with torch.no_grad():
        assert torch.equal(net(*net_inputs(32, 32)), reference(*net_inputs(32, 32)))


def test_unknown_keys_and_other_switches_are_refused(official, tmp_path):
    _, state, _, folder = official
    extra = tmp_path / "extra.pth"
    torch.save({**state, "ema.decay": torch.tensor(0.999)}, extra)
    with pytest.raises(ValueError, match=r"ema\.decay"):
        load_sdmatte_weights(build_sdmatte("tiny"), extra)
    with pytest.raises(ValueError, match=r"unexpected \['visual_prompt_projection.weight'"):
        load_sdmatte_weights(build_sdmatte("tiny", visual_prompt_blocks=()), folder / "SDMatte.pth")
    no_visual = tmp_path / "no_visual.pth"
    torch.save(to_official(build_sdmatte("tiny", visual_prompt_blocks=()).state_dict()), no_visual)
    with pytest.raises(ValueError, match=r"no_visual.pth.*missing \['visual_prompt_projection"):
        load_sdmatte_weights(build_sdmatte("tiny"), no_visual)


# --- Stable Diffusion folders -------------------------------------------------------------------


def test_a_diffusers_folder_is_grafted(tmp_path):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**sd_unet_config("tiny"))
    vae = AutoencoderKL(**vae_config("tiny"))
    unet.save_pretrained(tmp_path / "sd2" / "unet")
    vae.save_pretrained(tmp_path / "sd2" / "vae")
    net = SDMatte(variant="tiny", pretrained=str(tmp_path / "sd2")).model
    conv_in = unet.conv_in
    assert torch.equal(net.unet.conv_in.weight, torch.cat([conv_in.weight] * 2, 1) / 2)
    assert torch.equal(net.unet.conv_in.bias, conv_in.bias)
    assert torch.equal(net.visual_prompt_projection.weight, conv_in.weight)  # 32 of 32 channels
    grafted = net.unet.state_dict()
    for key, value in unet.state_dict().items():
        if not key.startswith("conv_in."):
            assert torch.equal(grafted[key], value), key
    assert all(torch.equal(net.vae.state_dict()[k], v) for k, v in vae.state_dict().items())
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SDMatte(variant="tiny", pretrained=str(tmp_path / "nowhere"))
    with restoring_from_checkpoint():  # a restored run does not read its starting folder
        SDMatte(variant="tiny", pretrained=str(tmp_path / "nowhere"))


# --- LiteSDMatte --------------------------------------------------------------------------------


def lightning_checkpoint(module, path) -> None:
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": "2.6.0",
        },
        path,
    )


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A tiny SDMatte run's checkpoint (weights moved off their initial values)."""
    torch.manual_seed(0)
    module = SDMatte(variant="tiny")
    perturb(module.model)
    path = tmp_path_factory.mktemp("teacher") / "sdmatte.ckpt"
    lightning_checkpoint(module, path)
    return module.model, path


def test_lite_teacher_is_frozen_unsaved_and_the_student_its_pruned_copy(teacher_file):
    trained, path = teacher_file
    module = LiteSDMatte(variant="tiny", teacher_checkpoint=str(path)).train()
    teacher, student = module.teacher, module.model
    assert same_weights(teacher, trained)
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not any(m.training for m in teacher.modules())
    assert student.training
    optimised = {id(p) for group in module.parameter_groups() for p in group["params"]}
    assert not any(id(p) in optimised for p in teacher.parameters())
    assert any(id(p) in optimised for p in student.unet.parameters())
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert not any(key.startswith("teacher.") for key in checkpoint["state_dict"])
    assert any(key.startswith("model.unet.") for key in checkpoint["state_dict"])
    assert module.loss_weights["distillation"] == 0.01
    assert "distillation" not in LiteSDMatte(variant="tiny").loss_weights

    unet, teacher_unet = student.unet, teacher.unet
    for down, teacher_down in zip(unet.down_blocks, teacher_unet.down_blocks, strict=True):
        assert len(down.resnets) == 1 and same_weights(down.resnets[0], teacher_down.resnets[0])
    for up, teacher_up in zip(unet.up_blocks, teacher_unet.up_blocks, strict=True):
        assert same_weights(up.resnets[1], teacher_up.resnets[2])
    for part in ("mid_block", "conv_in", "conv_out", "time_embedding"):
        assert same_weights(getattr(unet, part), getattr(teacher_unet, part)), part
    assert same_weights(student.visual_prompt_projection, teacher.visual_prompt_projection)
    assert same_weights(student.coordinate_embedding, teacher.coordinate_embedding)
    assert torch.equal(student.text_context, teacher.text_context)
    assert student.tiny_autoencoder and not teacher.tiny_autoencoder


def test_lite_distillation_pulls_the_student_to_the_teacher(
    teacher_file, synthetic_batch, train_on_batch
):
    _, path = teacher_file
    torch.manual_seed(0)
    module = LiteSDMatte(
        variant="tiny", teacher_checkpoint=str(path), prompt_kinds=["box"], lr=1e-3,
        loss_weights={"l1": 0.0, "laplacian": 0.0, "distillation": 1.0},
    )  # fmt: skip
    teacher_before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    batch = synthetic_batch(64, 2, stage="train")

    def distillation() -> float:
        with torch.no_grad():
            return float(module.train().training_outputs(batch)["distillation"])

    before = distillation()
    losses = train_on_batch(module, batch, 4)
    after = distillation()
    assert before > 0 and after < 0.5 * before, (before, losses, after)
    assert all(torch.equal(v, teacher_before[k]) for k, v in module.teacher.state_dict().items())


def test_lite_restores_without_its_teacher_file_but_cannot_train(tmp_path):
    missing = str(tmp_path / "gone.ckpt")
    with restoring_from_checkpoint():
        module = LiteSDMatte(variant="tiny", teacher_checkpoint=missing)
    assert module.teacher is None
    assert not any(part.name == "teacher" for part in module.frozen_parts)
    with pytest.raises(FileNotFoundError, match=r"gone\.ckpt"):
        module.on_fit_start()
    with pytest.raises(FileNotFoundError, match=r"teacher_checkpoint .*gone\.ckpt"):
        LiteSDMatte(variant="tiny", teacher_checkpoint=missing)  # a new run needs it


def test_a_decoded_pixel_outside_the_clip_still_gets_a_gradient():
    """The release's clip to [-1, 1] in values, straight through in gradients: a latent decoded
    entirely below -1 (alpha 0 everywhere) is still pulled towards a non-zero target."""
    net = build_sdmatte("tiny").eval()
    latent = torch.zeros(1, 4, 4, 4, requires_grad=True)
    with torch.no_grad():
        net.vae.decoder.conv_out.bias.fill_(-5.0)  # every decoded value far below -1
    alpha = net.decode(latent)
    assert torch.equal(alpha, torch.zeros_like(alpha))
    (alpha - 1).abs().mean().backward()
    assert latent.grad.abs().sum() > 0


def test_a_restored_lite_reads_its_teacher_only_when_fitting(teacher_file):
    """Test and predict of a trained LiteSDMatte need no teacher: a 12 GB file is not read."""
    teacher, path = teacher_file
    with restoring_from_checkpoint():
        module = LiteSDMatte(variant="tiny", teacher_checkpoint=str(path))
    assert module.teacher is None
    module.on_fit_start()  # a resumed fit
    assert same_weights(module.teacher, teacher) and not module.teacher.training
    assert not any(p.requires_grad for p in module.teacher.parameters())
    assert any(part.name == "teacher" and not part.in_checkpoint for part in module.frozen_parts)
    teacher_params = {id(p) for p in module.teacher.parameters()}
    assert not teacher_params & {id(p) for g in module.parameter_groups() for p in g["params"]}


def test_official_lite_layout_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build_sdmatte("tiny", lite=True)
    perturb(net)
    state = to_official(net.state_dict())
    assert state["unet.conv_in.weight"].shape[1] == 8
    assert any(key.startswith("vae.encoder.layers.") for key in state)  # TAESD's names
    torch.save({"model": state}, tmp_path / "LiteSDMatte.pth")
    module = LiteSDMatte(variant="tiny", checkpoint=str(tmp_path / "LiteSDMatte.pth"))
    assert module.hparams.checkpoint and module.trains_autoencoder is False
    loaded = module.model.state_dict()
    for key, value in net.state_dict().items():
        if key != "text_context":  # no text encoder in the file: the placeholder
            assert torch.equal(loaded[key], value), key
    assert all(p.device.type == "cpu" for p in module.model.parameters())


def test_a_family_checkpoint_is_assigned_without_a_random_start(official, monkeypatch):
    """With ``checkpoint``, the network is built on the meta device (no random initialisation,
    no memory) and takes the file's memory-mapped tensors as its parameters."""
    from mattekit.models.sdmatte import lightning_model

    net, _, _, folder = official
    seen = []

    def spy(network, path, assign=False):
        seen.append(({p.device.type for p in network.parameters()}, assign))
        return load_sdmatte_weights(network, path, assign=assign)

    monkeypatch.setattr(lightning_model, "load_sdmatte_weights", spy)
    module = SDMatte(variant="tiny", checkpoint=str(folder / "SDMatte.pth"))
    assert seen == [({"meta"}, True)]
    assert all(p.device.type == "cpu" for p in module.model.parameters())
    for key, value in net.state_dict().items():
        if key != "text_context":
            assert torch.equal(module.model.state_dict()[key], value), key


def test_a_folders_text_encoder_gives_the_empty_caption_context(tmp_path):
    torch.manual_seed(0)
    UNet2DConditionModel(**sd_unet_config("tiny")).save_pretrained(tmp_path / "unet")
    AutoencoderKL(**vae_config("tiny")).save_pretrained(tmp_path / "vae")
    encoder = tiny_text_encoder()
    encoder.save_pretrained(tmp_path / "text_encoder")
    net = SDMatte(variant="tiny", pretrained=str(tmp_path)).model
    ids = torch.tensor([[START_TOKEN, END_TOKEN] + [0] * (TEXT_TOKENS - 2)])
    with torch.no_grad():
        expected = encoder(input_ids=ids).last_hidden_state
    torch.testing.assert_close(net.text_context, expected)


def test_lite_reads_a_tiny_autoencoder_folder_and_prunes_a_pretrained_folder(tmp_path):
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**sd_unet_config("tiny"))
    unet.save_pretrained(tmp_path / "sd2" / "unet")
    AutoencoderKL(**vae_config("tiny")).save_pretrained(tmp_path / "sd2" / "vae")
    taesd = AutoencoderTiny(**vae_config("tiny", tiny_autoencoder=True))
    perturb(taesd)
    taesd.save_pretrained(tmp_path / "taesd")
    module = LiteSDMatte(
        variant="tiny", pretrained=str(tmp_path / "sd2"), tiny_autoencoder=str(tmp_path / "taesd")
    )
    assert same_weights(module.model.vae, taesd)
    assert module.trains_autoencoder is False  # it starts from trained weights
    student = module.model.unet
    assert student.config.layers_per_block == 1
    torch.testing.assert_close(
        student.up_blocks[1].resnets[1].conv1.weight, unet.up_blocks[1].resnets[2].conv1.weight
    )
