"""ViTMatte: release structure, input handling, the trimap's role, weights, losses, learning."""

import json
import re

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mattekit.models.vitmatte.lightning_model import ViTMatte
from mattekit.models.vitmatte.torch_model import IMAGENET_DEFAULT_MEAN, ViTMatteNet
from mattekit.models.vitmatte.weights import from_release, load_vitmatte_weights

# transformers' VitMatteForImageMatting in the release's configuration, counted on the meta
# device; hustvl/vitmatte-small-composition-1k's model card lists 25.8M parameters.
PAPER_PARAMETERS = {"vit_s": 25_814_753, "vit_b": 96_686_561}


@pytest.fixture
def batch(synthetic_batch):
    return synthetic_batch(32, 4, stage="train")


def tiny_net(seed: int = 0) -> ViTMatteNet:
    torch.manual_seed(seed)
    return ViTMatteNet("tiny").eval()


def inputs(height: int = 40, width: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, height, width, generator=generator)
    trimap = torch.randint(0, 3, (2, 1, height, width), generator=generator) / 2
    return image, trimap


@pytest.mark.parametrize("variant", ["vit_s", "vit_b"])
def test_paper_sizes_have_the_release_structure_and_parameter_count(variant):
    with torch.device("meta"):
        module = ViTMatte(variant=variant)
    assert sum(p.numel() for p in module.parameters()) == PAPER_PARAMETERS[variant]
    layers = module.model.vitmatte.backbone.encoder.layer
    assert len(layers) == 12
    # Global attention with a residual conv block in blocks 2, 5, 8, 11; 14 x 14 windows else.
    assert [i for i, layer in enumerate(layers) if layer.window_size == 0] == [2, 5, 8, 11]
    assert [i for i, layer in enumerate(layers) if layer.use_residual_block] == [2, 5, 8, 11]
    assert {layer.window_size for layer in layers} == {0, 14}
    embeddings = module.model.vitmatte.backbone.embeddings
    assert embeddings.projection.in_channels == 4 and embeddings.projection.stride == (16, 16)


def test_tiny_output_shape_range_and_padding_to_32():
    net = tiny_net()
    image, trimap = inputs(40, 50)
    with torch.no_grad():
        alpha = net(image, trimap)
        # The same input padded by hand as the release does: normalised zeros (the mean
        # colour) and trimap 0 to 64 x 64, then the alpha cropped.
        mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
        padded_image = mean.expand(2, 3, 64, 64).clone()
        padded_image[..., :40, :50] = image
        padded_trimap = torch.zeros(2, 1, 64, 64)
        padded_trimap[..., :40, :50] = trimap
        by_hand = net(padded_image, padded_trimap)[..., :40, :50]
    assert alpha.shape == (2, 1, 40, 50)
    assert alpha.min() >= 0 and alpha.max() <= 1
    torch.testing.assert_close(alpha, by_hand, atol=1e-5, rtol=0)
    assert sum(p.numel() for p in net.parameters()) < 500_000


def test_the_trimap_changes_the_output():
    net = tiny_net()
    image, trimap = inputs()
    with torch.no_grad():
        given = net(image, trimap)
        all_unknown = net(image, torch.full_like(trimap, 0.5))
    assert (given - all_unknown).abs().max() > 1e-3


def test_forward_reads_only_the_image_and_the_trimap(batch):
    torch.manual_seed(0)
    module = ViTMatte(variant="tiny").eval()
    with torch.no_grad():
        expected = module(batch)["alpha"]
        for name in ("alpha", "point_map", "box", "coarse_mask", "seg_mask"):
            setattr(batch, name, torch.zeros_like(getattr(batch, name)))
        assert torch.equal(module(batch)["alpha"], expected)
        batch.trimap = torch.full_like(batch.trimap, 0.5)
        assert not torch.equal(module(batch)["alpha"], expected)


def perturbed(net: ViTMatteNet) -> ViTMatteNet:
    """Weights moved off the initialisation, so that a load must really copy them."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_weights_round_trip_through_a_transformers_folder(tmp_path):
    source = perturbed(tiny_net(0))
    source.vitmatte.save_pretrained(tmp_path / "folder")
    target = tiny_net(1)
    load_vitmatte_weights(target, tmp_path / "folder")
    image, trimap = inputs()
    with torch.no_grad():
        assert torch.equal(target(image, trimap), source(image, trimap))
    # The same folder through the family's ``pretrained`` argument.
    module = ViTMatte(variant="tiny", pretrained=str(tmp_path / "folder")).eval()
    with torch.no_grad():
        assert torch.equal(module.model(image, trimap), source(image, trimap))


def test_weights_round_trip_through_a_pytorch_bin_folder(tmp_path):
    """The older transformers layout (``pytorch_model.bin``; transformers 5 writes only
    safetensors, so the file is made by hand)."""
    source = perturbed(tiny_net(0))
    source.vitmatte.save_pretrained(tmp_path / "folder")
    (tmp_path / "folder" / "model.safetensors").unlink()
    torch.save(source.vitmatte.state_dict(), tmp_path / "folder" / "pytorch_model.bin")
    target = tiny_net(1)
    load_vitmatte_weights(target, tmp_path / "folder")
    image, trimap = inputs()
    with torch.no_grad():
        assert torch.equal(target(image, trimap), source(image, trimap))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_round_trip_through_a_state_dict_file(tmp_path, suffix):
    source = perturbed(tiny_net(0))
    state = {k: v.contiguous() for k, v in source.vitmatte.state_dict().items()}
    path = tmp_path / f"vitmatte{suffix}"
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    target = tiny_net(1)
    load_vitmatte_weights(target, path)
    image, trimap = inputs()
    with torch.no_grad():
        assert torch.equal(target(image, trimap), source(image, trimap))


def test_wrong_keys_and_another_size_are_errors_naming_the_file(tmp_path):
    state = tiny_net().vitmatte.state_dict()
    state["decoder.extra.weight"] = torch.zeros(1)
    del state["decoder.matting_head.matting_convs.0.weight"]
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    pattern = r"wrong\.pth does not fit ViTMatte \(tiny\): missing \['decoder\.matting_head"
    with pytest.raises(ValueError, match=pattern) as error:
        load_vitmatte_weights(tiny_net(), path)
    assert "decoder.extra.weight" in str(error.value)
    # A folder of another size: its config.json is named before any weight is read.
    tiny_net().vitmatte.save_pretrained(tmp_path / "folder")
    with torch.device("meta"):
        vit_s = ViTMatteNet("vit_s")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'folder' / 'config.json'}")):
        load_vitmatte_weights(vit_s, tmp_path / "folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors or pytorch_model\.bin"):
        load_vitmatte_weights(tiny_net(), tmp_path / "empty")


def test_release_key_names_map_to_transformers_names():
    release = {
        "backbone.pos_embed": 0,
        "backbone.patch_embed.proj.weight": 1,
        "backbone.blocks.0.attn.qkv.weight": 2,
        "backbone.blocks.2.residual.norm1.weight": 3,
        "decoder.convstream.convs.0.bn.running_mean": 4,
        "decoder.fusion_blks.3.conv.bn.weight": 5,
        "decoder.matting_head.matting_convs.0.weight": 6,
    }
    assert from_release(release) == {
        "backbone.embeddings.position_embeddings": 0,
        "backbone.embeddings.projection.weight": 1,
        "backbone.encoder.layer.0.attention.qkv.weight": 2,
        "backbone.encoder.layer.2.residual.norm1.weight": 3,
        "decoder.convstream.convs.0.batch_norm.running_mean": 4,
        "decoder.fusion_blocks.3.conv.batch_norm.weight": 5,
        "decoder.matting_head.matting_convs.0.weight": 6,
    }
    with torch.device("meta"):
        own = set(ViTMatteNet("vit_s").vitmatte.state_dict())
    assert set(from_release(release)) <= own


def test_loss_terms_of_a_perfect_prediction_leave_the_gradient_penalty(batch):
    module = ViTMatte(variant="tiny")
    terms = module.loss_terms({"alpha": batch.alpha}, batch)
    assert terms["l1"] == 0 and terms["laplacian"] == 0
    # 0.01 x the mean un-normalised Sobel magnitude |d/dx| + |d/dy| of the GT in the unknown
    # band, the release's kernels through a zero-padded convolution (matting_criterion.py)
    unknown = (batch.trimap - 0.5).abs() < 0.25
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None]
    magnitude = F.conv2d(batch.alpha, kernels, padding=1).abs().sum(dim=1, keepdim=True)
    expected = 0.01 * magnitude[unknown].mean()
    torch.testing.assert_close(terms["grad"], expected)
    assert expected > 0


def test_layer_decay_follows_the_release():
    with torch.device("meta"):
        module = ViTMatte(variant="vit_b")
    lr_of = {}
    for group in module.parameter_groups():
        for p in group["params"]:
            lr_of[id(p)] = group["lr"] / 5e-4
    backbone = module.model.vitmatte.backbone
    layers = backbone.encoder.layer
    assert lr_of[id(layers[11].mlp.fc1.weight)] == pytest.approx(0.65)
    assert lr_of[id(layers[0].attention.qkv.weight)] == pytest.approx(0.65**12)
    assert lr_of[id(backbone.embeddings.projection.weight)] == pytest.approx(0.65**13)
    assert lr_of[id(layers[2].residual.conv1.weight)] == 1
    assert lr_of[id(module.model.vitmatte.decoder.matting_head.matting_convs[0].weight)] == 1
    decayed = {id(p) for g in module.parameter_groups() if g["weight_decay"] for p in g["params"]}
    assert id(backbone.embeddings.position_embeddings) not in decayed


def test_a_few_steps_decrease_the_loss(batch, train_on_batch):
    torch.manual_seed(0)
    module = ViTMatte(variant="tiny")
    losses = train_on_batch(module, batch, 30)
    assert min(losses[-5:]) < 0.8 * losses[0], losses
