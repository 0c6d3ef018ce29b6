import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sam_cases import prompted_batch, release_tokens

from mattekit.models.sam.inputs import normalize
from mattekit.models.sam.weights import load_sam_weights
from mattekit.models.zim.lightning_model import ZIM
from mattekit.models.zim.predictor import ZimPredictor
from mattekit.models.zim.torch_model import ZimImageFeatures, build_zim
from mattekit.nn.sam_attention import MaskedAttention

BOX = torch.tensor([[[16.0, 24.0], [63.0, 95.0]]])  # corners, model pixels (tiny: 128 px)
BOX_LABELS = torch.tensor([[2, 3]])


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
    background_loss, _ = module.weighted_loss({"alpha": torch.zeros_like(batch.alpha)}, batch)
    losses = train_on_batch(module, batch, steps=40)
    assert losses[-1] < 0.5 * background_loss.item()


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
    terms = module.loss_terms(outputs, batch)
    logits, target = outputs["alpha_logits"], (batch.alpha > 0.5).float()
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


# The official release's conventions (naver-ai/ZIM, segment-anything's ONNX export): the same in
# training, evaluation (the lightning forward) and interactive use (ZimPredictor).


def decode_alone(model, image, coords, labels) -> torch.Tensor:
    """What decoding one sample alone gives, as the forward returns it (1 x 1 x 128 x 128)."""
    logits, _ = model(normalize(image[None]), coords, labels)
    return F.interpolate(logits[:, :1], (128, 128), mode="bilinear", align_corners=False)


def test_each_sample_gets_the_release_tokens_whatever_the_batch(synthetic_batch):
    torch.manual_seed(0)
    module = ZIM(variant="tiny", eval_prompt="points").eval()
    batch = prompted_batch(synthetic_batch, [1, 3, 2])
    with torch.no_grad():
        outputs = module(batch)
        for i in range(len(batch)):
            real = batch.point_labels[i] >= 0
            coords, labels = release_tokens(
                batch.points[i][real].tolist(), batch.point_labels[i][real].tolist()
            )
            expected = decode_alone(module.model, batch.image[i], coords, labels)
            assert torch.allclose(outputs["alpha_logits"][i : i + 1], expected, atol=1e-4), i


def test_a_box_is_decoded_alone_without_padding_points(synthetic_batch):
    torch.manual_seed(0)
    module = ZIM(variant="tiny", eval_prompt="box").eval()
    batch = prompted_batch(synthetic_batch, [1, 3])  # a batch with clicks sends the box alone
    with torch.no_grad():
        outputs = module(batch)
        for i in range(len(batch)):
            corners = batch.box[i].view(1, 2, 2)
            expected = decode_alone(module.model, batch.image[i], corners, torch.tensor([[2, 3]]))
            assert torch.allclose(outputs["alpha_logits"][i : i + 1], expected, atol=1e-4), i


def test_letterbox_padding_reaches_the_model_as_zeros(synthetic_batch):
    torch.manual_seed(0)
    module = ZIM(variant="tiny").eval()
    batch = synthetic_batch(128, 2)
    content = torch.tensor([[80, 128], [128, 96]])
    black, white = batch.image.clone(), batch.image.clone()
    for i, (h, w) in enumerate(content.tolist()):
        black[i, :, h:], black[i, :, :, w:] = 0.0, 0.0
        white[i, :, h:], white[i, :, :, w:] = 1.0, 1.0
    with torch.no_grad():
        dark = module(dataclasses.replace(batch, image=black, content_size=content))
        light = module(dataclasses.replace(batch, image=white, content_size=content))
        # SAM's input: the content normalised, zeros elsewhere, whatever the padding's colour.
        zero_padded = normalize(black)
        for i, (h, w) in enumerate(content.tolist()):
            zero_padded[i, :, h:], zero_padded[i, :, :, w:] = 0.0, 0.0
        expected, _ = module.model(zero_padded, batch.box.view(2, 2, 2), torch.tensor([[2, 3]] * 2))
    assert torch.allclose(dark["alpha_logits"], light["alpha_logits"], atol=1e-5)
    expected = F.interpolate(expected[:, :1], (128, 128), mode="bilinear", align_corners=False)
    assert torch.allclose(dark["alpha_logits"], expected, atol=1e-4)


def test_forward_returns_logits_at_batch_size_and_their_sigmoid(synthetic_batch):
    module = ZIM(variant="tiny").eval()
    batch = synthetic_batch(64, 2)  # resized to the model's 128 and back
    with torch.no_grad():
        outputs = module(batch)
    assert set(outputs) == {"alpha", "alpha_logits", "iou"}
    assert outputs["alpha_logits"].shape == outputs["alpha"].shape == (2, 1, 64, 64)
    assert torch.equal(outputs["alpha"], outputs["alpha_logits"].sigmoid())


def test_a_reversed_box_covers_the_same_tokens():
    model = build_zim("tiny")
    reversed_box = BOX.flip(1)  # bottom-right corner first
    assert torch.equal(
        model.attention_mask(reversed_box, BOX_LABELS).box,
        model.attention_mask(BOX, BOX_LABELS).box,
    )


def release_point_map(clicks: list[tuple[float, float]], sigma: float, grid: int, stride: float):
    """The release's point attention map (zim.py, point_attn_mask), re-derived in plain Python:
    cell ``int(x / stride)``, off-grid clicks skipped, Gaussians on a +-(3 sigma + 1) window,
    max-combined."""
    out = torch.zeros(grid, grid)
    radius = 3 * sigma + 1
    for px, py in clicks:
        x, y = int(px / stride), int(py / stride)
        if x < 0 or y < 0 or x >= grid or y >= grid:
            continue
        for row in range(grid):
            for col in range(grid):
                if abs(row - y) <= radius and abs(col - x) <= radius:
                    value = np.exp(-((col - x) ** 2 + (row - y) ** 2) / (2 * sigma**2))
                    out[row, col] = max(out[row, col].item(), value)
    return out


def test_point_map_matches_the_release_and_skips_clicks_off_the_image():
    model = build_zim("tiny")
    # inside; left of the image (cell -3); below it (cell 17); just left of it (int(-0.6) = 0).
    clicks = [(20.0, 100.0), (-20.0, 40.0), (60.0, 140.0), (-5.0, 70.0)]
    coords = torch.tensor([[*clicks, (0.0, 0.0)]])
    labels = torch.tensor([[1, 1, 0, 0, -1]])
    points = model.attention_mask(coords, labels).points.view(16, 16)
    expected = release_point_map(clicks, 21 * 16 / 64, 16, 8.0)
    assert torch.allclose(points, expected, atol=1e-6)
    inside_only = model.attention_mask(coords[:, [0, 3, 4]], labels[:, [0, 3, 4]])
    assert torch.equal(points, inside_only.points.view(16, 16))


def test_encode_returns_the_embedding_and_the_pixel_decoder_pyramid():
    torch.manual_seed(0)
    model = build_zim("tiny").eval()
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        features = model.encode(images)
        assert isinstance(features, ZimImageFeatures)
        assert features.embedding.shape == (2, 32, 16, 16)
        # tiny: 8 px patches, pyramid at strides 2 and 4 with 8 and 16 channels
        assert [tuple(f.shape) for f in features.pyramid] == [(2, 8, 64, 64), (2, 16, 32, 32)]
        logits, _ = model.decode(features, BOX.repeat(2, 1, 1), BOX_LABELS.repeat(2, 1))
        whole, _ = model(images, BOX.repeat(2, 1, 1), BOX_LABELS.repeat(2, 1))
        second = ZimImageFeatures(features.embedding[1:], tuple(f[1:] for f in features.pyramid))
        one, _ = model.decode(second, BOX, BOX_LABELS)
    assert torch.equal(logits, whole)
    assert torch.allclose(one, whole[1:], atol=1e-5)
    assert build_zim("tiny", decoder="sam").encode(images).pyramid == ()


def test_a_click_runs_only_the_decoder():
    model = build_zim("tiny")
    calls = {"pyramid": 0, "encoder": 0}
    model.mask_decoder.pixel_decoder.pyramid[0].register_forward_hook(
        lambda *_: calls.__setitem__("pyramid", calls["pyramid"] + 1)
    )
    model.image_encoder.register_forward_hook(
        lambda *_: calls.__setitem__("encoder", calls["encoder"] + 1)
    )
    predictor = ZimPredictor(model)
    predictor.set_image(np.zeros((90, 160, 3), np.uint8))
    for x in (10, 50, 90):
        predictor.predict(point_coords=np.array([[x, 40]]), point_labels=np.array([1]))
    predictor.predict(box=np.array([10, 10, 80, 60]))
    assert calls == {"pyramid": 1, "encoder": 1}


@pytest.mark.parametrize("prompt", ["box", "points"])
def test_predictor_and_lightning_forward_agree_on_a_letterboxed_photo(synthetic_batch, prompt):
    torch.manual_seed(0)
    module = ZIM(variant="tiny", eval_prompt=prompt).eval()
    photo = (torch.rand(80, 128, 3) * 255).to(torch.uint8)  # already at the model's long side
    clicks, click_labels = [[30.0, 20.0], [100.0, 60.0]], [1, 0]
    box = [12.0, 8.0, 90.0, 70.0]
    predictor = ZimPredictor(module.model)
    predictor.set_image(photo.numpy())
    if prompt == "box":
        expected = predictor.predict(box=np.array(box))
    else:
        expected = predictor.predict(
            point_coords=np.array(clicks), point_labels=np.array(click_labels)
        )
    image = torch.zeros(1, 3, 128, 128)  # black RGB letterbox, as the data pipeline pads
    image[0, :, :80] = photo.permute(2, 0, 1).float() / 255
    batch = dataclasses.replace(
        synthetic_batch(128, 1),
        image=image,
        content_size=torch.tensor([[80, 128]]),
        points=torch.tensor([[*clicks, [0.0, 0.0]]]),
        point_labels=torch.tensor([[*click_labels, -1]]),
        box=torch.tensor([box]),
    )
    with torch.no_grad():
        alpha = module(batch)["alpha"][0, 0, :80]
    assert np.allclose(alpha.numpy(), expected, atol=1e-5)


def test_predictor_rejects_labels_other_than_clicks():
    predictor = ZimPredictor(build_zim("tiny"))
    predictor.set_image(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="point_labels"):
        predictor.predict(point_coords=np.array([[3, 4]]), point_labels=np.array([2]))


@pytest.mark.parametrize("directions", [["t2i"], ["t2i", "i2t"], []])
def test_mixed_token_counts_decode_in_one_call_as_each_alone(synthetic_batch, directions):
    """Fillers (a shorter sample's empty slots) are read by no attention: a box (2 tokens) and
    1 or 3 clicks (2, 4 tokens) in one batch give what each gives decoded alone."""
    torch.manual_seed(0)
    module = ZIM(variant="tiny", attention_directions=directions).eval()
    batch = prompted_batch(synthetic_batch, [1, 3, 2])
    kinds = ["box", "points", "points"]
    with torch.no_grad():
        outputs = module.predict_alpha(batch, kinds)
        for i, kind in enumerate(kinds):
            if kind == "box":
                coords, labels = batch.box[i].view(1, 2, 2), torch.tensor([[2, 3]])
            else:
                real = batch.point_labels[i] >= 0
                coords, labels = release_tokens(
                    batch.points[i][real].tolist(), batch.point_labels[i][real].tolist()
                )
            expected = decode_alone(module.model, batch.image[i], coords, labels)
            assert torch.allclose(outputs["alpha_logits"][i : i + 1], expected, atol=1e-4), i
