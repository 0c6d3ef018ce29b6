import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mattekit.models.sam.inputs import (
    FILLER_LABEL,
    batch_tokens,
    normalize,
    sam_batch_tokens,
    sam_image,
    sam_tokens,
)

NO_POINTS = torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)


def test_a_box_is_sent_alone_corners_sorted():
    box = torch.tensor([60.0, 90.0, 10.0, 20.0])  # bottom-right corner given first
    coords, labels = sam_tokens(*NO_POINTS, box, "box")
    assert coords.tolist() == [[10.0, 20.0], [60.0, 90.0]]
    assert labels.tolist() == [2, 3]  # no padding point after a box (SAM's ONNX convention)


def test_clicks_are_followed_by_exactly_one_padding_point():
    points = torch.tensor([[5.0, 6.0], [0.0, 0.0], [7.0, 8.0], [0.0, 0.0]])
    point_labels = torch.tensor([1, -1, 0, -1])  # padding may sit anywhere in the batch's list
    coords, labels = sam_tokens(points, point_labels, torch.zeros(4), "points")
    assert coords.tolist() == [[5.0, 6.0], [7.0, 8.0], [0.0, 0.0]]
    assert labels.tolist() == [1, 0, -1]


def test_no_clicks_is_the_padding_point_alone():
    coords, labels = sam_tokens(torch.zeros(3, 2), torch.full((3,), -1), torch.zeros(4), "points")
    assert coords.shape == (1, 2) and labels.tolist() == [-1]


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="mask"):
        sam_tokens(*NO_POINTS, torch.zeros(4), "mask")


def test_shorter_samples_are_filled_up_with_fillers():
    points = torch.arange(4 * 3 * 2, dtype=torch.float32).view(4, 3, 2)
    point_labels = torch.tensor([[1, 1, 0], [1, -1, -1], [1, -1, -1], [1, 0, -1]])
    box = torch.tensor([[1.0, 2.0, 3.0, 4.0]]).repeat(4, 1)
    coords, labels = batch_tokens(points, point_labels, box, ["points", "box", "points", "points"])
    f = FILLER_LABEL
    # 3 clicks + pad = 4 tokens, the most; the others keep their own tokens, then fillers.
    assert labels.tolist() == [[1, 1, 0, -1], [2, 3, f, f], [1, -1, f, f], [1, 0, -1, f]]
    assert torch.equal(coords[2, 0], points[2, 0]) and coords[1, 2:].eq(0).all()
    with pytest.raises(ValueError, match="kinds"):
        batch_tokens(points, point_labels, box, ["box"])


def test_normalize_is_sams_per_channel_mean_and_std():
    grey = torch.full((1, 3, 1, 1), 0.5)
    expected = [(127.5 - 123.675) / 58.395, (127.5 - 116.28) / 57.12, (127.5 - 103.53) / 57.375]
    assert normalize(grey).flatten().tolist() == pytest.approx(expected)


def test_letterbox_padding_is_zero_after_normalising():
    images = torch.rand(2, 3, 8, 8)
    content = torch.tensor([[3, 5], [8, 8]])
    out = sam_image(images, content, 8)
    assert torch.equal(out[0, :, 3:], torch.zeros(3, 5, 8))  # rows below the content
    assert torch.equal(out[0, :, :, 5:], torch.zeros(3, 8, 3))  # columns right of it
    assert torch.allclose(out[0, :, :3, :5], normalize(images)[0, :, :3, :5])
    assert torch.allclose(out[1], normalize(images)[1])  # no padding: the plain normalisation


def test_letterbox_padding_values_never_reach_the_model_input():
    content = torch.tensor([[40, 64]])
    black, white = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    white[:, :, 40:] = 1.0
    black[:, :, :40] = white[:, :, :40]
    black[:, :, 40:] = 0.0
    for size in (64, 128, 32):  # same size, upscaled, downscaled
        assert torch.equal(sam_image(black, content, size), sam_image(white, content, size))


def test_resizing_to_the_model_size_is_antialiased_bilinear():
    images = torch.rand(1, 3, 64, 64)
    full = torch.tensor([[64, 64]])
    up = F.interpolate(normalize(images), (128, 128), mode="bilinear", align_corners=False)
    assert torch.allclose(sam_image(images, full, 128), up, atol=1e-5)
    # Downscaling a stripe pattern (one lit column in four) by 4: antialiasing keeps its mean,
    # 0.25, where a plain bilinear would sample the unlit columns only and give 0.
    stripes = torch.zeros(1, 3, 64, 64)
    stripes[..., ::4] = 1.0
    down = sam_image(stripes, full, 16)
    grey = normalize(torch.full((1, 3, 1, 1), 0.25))
    assert torch.allclose(down[..., 1:-1], grey.expand(-1, -1, 16, 14), atol=1e-5)


def test_batch_prompts_are_scaled_to_the_model_input(synthetic_batch):
    batch = synthetic_batch(64, 2)
    batch = dataclasses.replace(
        batch,
        points=torch.tensor([[[10.0, 20.0]], [[30.0, 40.0]]]),
        point_labels=torch.tensor([[1], [0]]),
        box=torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]),
    )
    coords, labels = sam_batch_tokens(batch, ["box", "points"], 128)
    assert coords[0].tolist() == [[2.0, 4.0], [6.0, 8.0]]
    assert coords[1, 0].tolist() == [60.0, 80.0]
    assert labels.tolist() == [[2, 3], [0, -1]]  # a box and one click + padding: two tokens
