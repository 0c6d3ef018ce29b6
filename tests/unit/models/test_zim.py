from functools import partial

import numpy as np
import pytest
import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from torch import nn

from mattekit.models.zim.lightning_model import ZIM, sam_prompts
from mattekit.models.zim.predictor import ZimPredictor
from mattekit.models.zim.torch_model import VARIANTS, build_zim, load_sam_weights
from mattekit.models.zim.transformer import MaskedAttention

BOX = torch.tensor([[[16.0, 24.0], [63.0, 95.0]]])  # corners, model pixels (tiny: 128 px)
BOX_LABELS = torch.tensor([[2, 3]])


def tiny_sam() -> Sam:
    """A segment-anything Sam with the tiny variant's sizes: the official format, small."""
    v = VARIANTS["tiny"]
    grid = v.image_size // v.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=v.image_size, patch_size=v.patch_size, embed_dim=v.encoder_dim,
            depth=v.encoder_depth, num_heads=v.encoder_heads, out_chans=v.prompt_dim,
            qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
            window_size=v.window_size, global_attn_indexes=v.global_attention,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=v.prompt_dim, image_embedding_size=(grid, grid),
            input_image_size=(v.image_size, v.image_size), mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(2, v.prompt_dim, v.decoder_heads, v.decoder_mlp_dim),
            transformer_dim=v.prompt_dim, iou_head_depth=3, iou_head_hidden_dim=v.iou_head_dim,
        ),
    )  # fmt: skip


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    sam = tiny_sam()
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    return sam, path


def probabilities_outside(model, coords, labels, outside):
    """Attention mass the first t2i cross-attention puts on image tokens where ``outside``."""
    captured = {}
    attention = model.mask_decoder.transformer.layers[0].cross_attn_token_to_image

    def capture(module, args, kwargs, output):
        q, k = module.q_proj(args[0]), module.k_proj(args[1])
        q, k = module._separate_heads(q, module.num_heads), module._separate_heads(k, 2)
        indicator = outside.flatten(1)[:, None, :, None].expand(-1, 2, -1, 1).float()
        masks = {name: kwargs.get(name) for name in ("key_bias", "score_scale")}
        from mattekit.nn.masked_attention import masked_attention

        captured["mass"] = masked_attention(q, k, indicator, **masks)

    handle = attention.register_forward_hook(capture, with_kwargs=True)
    images = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        model(images, coords, labels)
    handle.remove()
    return captured["mass"]


def test_box_blocks_token_to_image_attention():
    torch.manual_seed(0)
    model = build_zim("tiny").eval()
    mask = model.attention_mask(BOX, BOX_LABELS)
    inside = mask.box.view(1, 16, 16)
    # 8 px tokens: x 16..63 -> tokens 2..7, y 24..95 -> tokens 3..11 (inclusive)
    expected = torch.zeros(16, 16)
    expected[3:12, 2:8] = 1
    assert torch.equal(inside[0], expected)
    mass = probabilities_outside(model, BOX, BOX_LABELS, inside == 0)
    assert mass.max() < 1e-6
    unmasked = build_zim("tiny", masked_directions=()).eval()
    unmasked.load_state_dict(model.state_dict())
    assert probabilities_outside(unmasked, BOX, BOX_LABELS, inside == 0).min() > 0.1


def test_point_map_peaks_at_clicks_negatives_included():
    model = build_zim("tiny")
    coords = torch.tensor([[[20.0, 20.0], [100.0, 90.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0, -1]])
    mask = model.attention_mask(coords, labels)
    points = mask.points.view(16, 16)
    assert points[2, 2] == 1.0 and points[11, 12] == 1.0  # cells floor(p / 8)
    sigma = 21 * 16 / 64
    assert points[2, 3].item() == pytest.approx(np.exp(-1 / (2 * sigma**2)), rel=1e-5)
    assert mask.box.min() == 1  # a click-prompted sample is not box-masked


def test_point_prompts_scale_scores_in_the_model():
    model = build_zim("tiny").eval()
    coords, labels = torch.tensor([[[20.0, 20.0], [0.0, 0.0]]]), torch.tensor([[1, -1]])
    far = model.attention_mask(coords, labels).points.view(1, 16, 16) < 0.05
    near_mass = probabilities_outside(model, coords, labels, ~far)
    unmasked = build_zim("tiny", masked_directions=()).eval()
    unmasked.load_state_dict(model.state_dict())
    baseline_mass = probabilities_outside(unmasked, coords, labels, ~far)
    # Scores far from the click are scaled towards 0, i.e. towards the average: the attention
    # on the click's neighbourhood changes, which it would not without the mask.
    assert not torch.allclose(near_mass, baseline_mass)


@pytest.mark.parametrize(("decoder", "stride"), [("hierarchical", 2), ("sam", 2)])
def test_mask_logits_at_stride_two(decoder, stride):
    model = build_zim("tiny", decoder=decoder)
    logits, iou = model(torch.randn(2, 3, 128, 128), BOX.repeat(2, 1, 1), BOX_LABELS.repeat(2, 1))
    assert logits.shape == (2, 4, 128 // stride, 128 // stride) and iou.shape == (2, 4)


def test_paper_size_structure_on_meta_device():
    with torch.device("meta"):
        zim = build_zim("vit_b")
        sam_decoder = build_zim("vit_b", decoder="sam")
        images = torch.empty(1, 3, 1024, 1024)
        box, labels = BOX.to("meta") * 8, BOX_LABELS.to("meta")
        logits, _ = zim(images, box, labels)
        sam_logits, _ = sam_decoder(images, box, labels)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    pixel_decoder = count(zim.mask_decoder.pixel_decoder)
    sam_parts = count(zim) - pixel_decoder
    sam_upscaling = count(sam_decoder.mask_decoder.pixel_decoder)
    assert sam_parts + sam_upscaling == pytest.approx(93.7e6, rel=1e-3)  # SAM ViT-B
    assert 0.3e6 < pixel_decoder < 0.8e6  # "lightweight"
    assert logits.shape == (1, 4, 512, 512)  # stride 2
    assert sam_logits.shape == (1, 4, 256, 256)  # SAM: stride 4


@pytest.mark.parametrize("decoder", ["hierarchical", "sam"])
def test_sam_checkpoint_round_trip(sam_checkpoint, decoder):
    sam, path = sam_checkpoint
    model = build_zim("tiny", decoder=decoder)
    report = load_sam_weights(model, str(path))
    reference = sam.state_dict()
    for name, value in model.state_dict().items():
        source = name.replace("pixel_decoder.upscaling", "output_upscaling")
        if source in reference:
            assert torch.equal(value, reference[source]), name
    if decoder == "hierarchical":
        assert all(k.startswith("mask_decoder.pixel_decoder.") for k in report.left_at_init)
        assert all(k.startswith("mask_decoder.output_upscaling.") for k in report.unused)
    else:
        assert report.left_at_init == [] and report.unused == []


def test_without_zim_additions_it_computes_what_sam_computes(sam_checkpoint):
    sam, path = sam_checkpoint
    model = build_zim("tiny", decoder="sam", masked_directions=())
    load_sam_weights(model, str(path))
    sam.eval(), model.eval()
    images = torch.randn(2, 3, 128, 128)
    boxes = torch.tensor([[16.0, 24.0, 63.0, 95.0], [5.0, 5.0, 120.0, 60.0]])
    with torch.no_grad():
        logits, iou = model(images, boxes.view(2, 2, 2), BOX_LABELS.repeat(2, 1))
        for i in range(2):  # SAM's decoder takes one image with its prompts at a time
            embedding = sam.image_encoder(images[i : i + 1])
            sparse, dense = sam.prompt_encoder(points=None, boxes=boxes[i : i + 1], masks=None)
            expected, expected_iou = sam.mask_decoder.predict_masks(
                embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense
            )
            assert torch.allclose(logits[i : i + 1], expected, atol=1e-4)
            assert torch.allclose(iou[i : i + 1], expected_iou, atol=1e-5)


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"other\.pth"):
        load_sam_weights(build_zim("tiny"), str(path))


def test_prompt_conversion_and_resizing(synthetic_batch):
    batch = synthetic_batch(64, 2)
    coords, labels = sam_prompts(batch, ["box", "points"], (2.0, 2.0))
    assert labels[0, :2].tolist() == [2, 3] and (labels[0, 2:] == -1).all()
    assert torch.equal(coords[0, :2].flatten(), batch.box[0] * 2)
    assert torch.equal(labels[1, : batch.point_labels.shape[1]], batch.point_labels[1])


def test_masked_attention_switches():
    assert (
        ZIM(variant="tiny", masked_attention=False).model.mask_decoder.transformer.masked_directions
        == ()
    )
    both = ZIM(variant="tiny", attention_directions=["t2i", "i2t"])
    assert both.model.mask_decoder.transformer.masked_directions == ("t2i", "i2t")
    assert isinstance(
        both.model.mask_decoder.transformer.final_attn_token_to_image, MaskedAttention
    )
    with pytest.raises(ValueError, match="mask"):
        ZIM(variant="tiny", prompt_kinds=["mask"])


def test_zim_overfits_one_batch(synthetic_batch, train_on_batch):
    torch.manual_seed(0)
    module = ZIM(variant="tiny", lr=1e-2, prompt_kinds=["box"])
    batch = synthetic_batch(64, 2)
    # Predicting background everywhere already lowers the loss a lot (small objects): a model
    # that really fits must go well below that, by using the prompt and the image.
    background = module.compute_loss({"alpha": torch.zeros_like(batch.alpha)}, batch)
    background_loss = sum(term.item() for term in background.values())
    losses = train_on_batch(module, batch, steps=40)
    assert losses[-1] < 0.5 * background_loss


def test_predictor_returns_alpha_at_photo_size():
    predictor = ZimPredictor(build_zim("tiny"))
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(box=np.array([0, 0, 5, 5]))
    predictor.set_image(np.zeros((90, 160, 3), np.uint8))
    alpha = predictor.predict(box=np.array([10, 10, 80, 60]))
    assert alpha.shape == (90, 160) and alpha.dtype == np.float32
    assert alpha.min() >= 0 and alpha.max() <= 1
    clicks = predictor.predict(point_coords=np.array([[30, 40]]), point_labels=np.array([1]))
    assert clicks.shape == (90, 160)


def test_segmentation_objective_is_bce_plus_iou_on_binarised_gt(synthetic_batch):
    torch.manual_seed(0)
    module = ZIM(variant="tiny", objective="segmentation", decoder="sam")
    batch = synthetic_batch(64, 2)
    outputs = module(batch)
    terms = module.compute_loss(outputs, batch)
    logits, target = outputs["logits"], (batch.alpha > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    probabilities = logits.sigmoid()
    intersection = (probabilities * target).sum((2, 3))
    union = (probabilities + target - probabilities * target).sum((2, 3))
    iou = (1 - (intersection + 1) / (union + 1)).mean()
    assert set(terms) == {"bce", "iou"}
    assert torch.allclose(terms["bce"], bce) and torch.allclose(terms["iou"], iou)
    with pytest.raises(ValueError, match="objective"):
        ZIM(variant="tiny", objective="detection")


def lightning_checkpoint(module: ZIM, path) -> None:
    """What ``Trainer.save_checkpoint`` writes, reduced to the keys loading reads."""
    torch.save(
        {
            "pytorch-lightning_version": "2.6.0",
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
        },
        path,
    )


@pytest.mark.parametrize("decoder", ["hierarchical", "sam"])
def test_a_tiny_sam_trained_here_initialises_zim(tmp_path, decoder):
    torch.manual_seed(0)
    pretrained = ZIM(variant="tiny", decoder="sam", masked_attention=False)
    path = tmp_path / "tiny_sam.ckpt"
    lightning_checkpoint(pretrained, path)
    module = ZIM(variant="tiny", decoder=decoder, checkpoint=str(path))
    source = pretrained.model.state_dict()
    loaded = module.model.state_dict()
    for name, value in loaded.items():
        if decoder == "hierarchical" and name.startswith("mask_decoder.pixel_decoder."):
            assert name not in source  # ZIM's new decoder: left at its initialisation
        else:
            assert torch.equal(value, source[name]), name


def test_a_lightning_checkpoint_without_a_network_is_a_clear_error(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0", "state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match=r"other\.ckpt.*no 'model\.' weights"):
        load_sam_weights(build_zim("tiny"), str(path))


def test_a_trained_zim_restores_without_the_sam_file_it_started_from(sam_checkpoint, tmp_path):
    _, sam_path = sam_checkpoint
    started = tmp_path / "sam_tiny.pth"
    started.write_bytes(sam_path.read_bytes())
    trained = ZIM(variant="tiny", checkpoint=str(started))
    with torch.no_grad():
        trained.model.mask_decoder.iou_token.weight.add_(1.0)  # weights the SAM file lacks
    saved = tmp_path / "trained.ckpt"
    lightning_checkpoint(trained, saved)
    started.unlink()
    with pytest.raises(FileNotFoundError, match=r"sam_tiny\.pth"):
        ZIM(variant="tiny", checkpoint=str(started))  # building anew does read it
    restored = ZIM.load_from_checkpoint(saved)
    assert restored.hparams.checkpoint == str(started)
    for name, value in trained.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[name], value), name
