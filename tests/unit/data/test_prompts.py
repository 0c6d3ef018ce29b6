import numpy as np
import pytest

from mattekit.data.prompts import (
    PromptConfig,
    PromptSampler,
    box_from_alpha,
    sample_coarse_mask,
    sample_trimap,
)


def disc(size=64, radius=12, soft=True):
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(xx - 40, yy - 24)
    alpha = np.clip(radius + 0.5 - distance, 0, 1) if soft else (distance <= radius) * 1.0
    return alpha.astype(np.float32)


def test_points_lie_on_object_and_background():
    alpha = disc()
    sampler = PromptSampler(PromptConfig(positive_points=(3, 3), negative_points=(2, 2)))
    prompts = sampler(alpha, np.random.default_rng(0), "disc")
    assert prompts.points.shape == (5, 2) and list(prompts.labels) == [1, 1, 1, 0, 0]
    xs, ys = prompts.points[:, 0].astype(int), prompts.points[:, 1].astype(int)
    assert (alpha[ys[:3], xs[:3]] >= 0.8).all()
    assert (alpha[ys[3:], xs[3:]] == 0).all()


def test_padding_when_fewer_points():
    sampler = PromptSampler(PromptConfig(positive_points=(1, 4), negative_points=(0, 3)))
    prompts = sampler(disc(), np.random.default_rng(3), "disc")
    assert prompts.points.shape == (7, 2)
    assert set(prompts.labels.tolist()) <= {1, 0, -1}
    assert (prompts.labels == 1).sum() >= 1


def test_translucent_object_still_gets_clicks():
    alpha = disc() * 0.4  # glass: never reaches 0.8
    prompts = PromptSampler()(alpha, np.random.default_rng(0), "glass")
    assert (prompts.labels == 1).sum() >= 1


def test_box_contains_object_within_jitter():
    alpha = disc()
    x0, y0, x1, y1 = box_from_alpha(alpha)
    ys, xs = np.nonzero(alpha)
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max(), ys.max())
    box = PromptSampler(PromptConfig(box_jitter=0.1))(alpha, np.random.default_rng(1), "d").box
    assert np.all(np.abs(box - [x0, y0, x1, y1]) <= 0.1 * (x1 - x0 + 1) + 1e-4)


def test_trimap_unknown_band_covers_soft_edge():
    alpha = disc()
    trimap = sample_trimap(alpha, width=0.05, side=64)
    assert set(np.unique(trimap)) == {0, 128, 255}
    fractional = (alpha > 0) & (alpha < 1)
    assert (trimap[fractional] == 128).all()
    assert (alpha[trimap == 255] == 1).all() and (alpha[trimap == 0] == 0).all()


def test_coarse_mask_never_empty_for_thin_object():
    alpha = np.zeros((32, 32), np.float32)
    alpha[10, 5:25] = 1.0  # one-pixel line: erosion wipes it out
    mask = sample_coarse_mask(alpha, threshold=0.5, morphology=0.2, dilate=False, side=32)
    assert mask.any() and mask[10, 5:25].all()


def test_source_prompts_kept_and_truncated():
    points = np.array([[1, 2, 1], [3, 4, 0]], np.float32)
    box = np.array([0, 0, 10, 10], np.float32)
    cfg = PromptConfig(positive_points=(1, 1), negative_points=(0, 0))
    prompts = PromptSampler(cfg)(disc(), np.random.default_rng(0), "x", points=points, box=box)
    assert prompts.points.tolist() == [[1, 2]] and prompts.labels.tolist() == [1]
    assert prompts.box.tolist() == [0, 0, 10, 10]


def test_empty_alpha_is_an_error_naming_the_sample():
    with pytest.raises(ValueError, match="sample-7"):
        PromptSampler()(np.zeros((8, 8), np.float32), np.random.default_rng(0), "sample-7")


def test_bad_ranges_are_rejected():
    with pytest.raises(ValueError, match="positive_points"):
        PromptConfig(positive_points=(3, 1))


def test_no_ground_truth_uses_source_prompts_only():
    empty = np.zeros((20, 30), np.float32)
    box = np.array([2, 3, 10, 12], np.float32)
    prompts = PromptSampler()(empty, np.random.default_rng(0), "photo", box=box)
    assert prompts.box.tolist() == box.tolist()
    assert (prompts.labels == -1).all()
    assert (prompts.trimap == 128).all()
    assert prompts.coarse_mask.sum() == 9 * 10 and prompts.coarse_mask[3:13, 2:11].all()
    clicks = np.array([[4, 5, 1], [9, 2, 1], [0, 0, 0]], np.float32)
    prompts = PromptSampler()(empty, np.random.default_rng(0), "photo", points=clicks)
    assert prompts.box.tolist() == [4, 2, 9, 5]
    assert prompts.labels[:3].tolist() == [1, 1, 0]
