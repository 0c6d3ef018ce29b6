import numpy as np
import pytest

from mattekit.data.prompts import (
    PromptConfig,
    PromptSampler,
    blur_mask,
    box_from_alpha,
    convex_hull_mask,
    degrade_coarse_mask,
    downscale_mask,
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
    mask = sample_coarse_mask(alpha, threshold=0.5, steps=[("erode", 0.2)], side=32)
    assert mask.any() and mask[10, 5:25].all()


def test_source_prompts_keep_every_click_beyond_max_points():
    points = np.array([[1, 2, 1], [3, 4, 0]], np.float32)
    box = np.array([0, 0, 10, 10], np.float32)
    cfg = PromptConfig(positive_points=(1, 1), negative_points=(0, 0))  # max_points 1
    prompts = PromptSampler(cfg)(disc(), np.random.default_rng(0), "x", points=points, box=box)
    assert prompts.points.tolist() == [[1, 2], [3, 4]] and prompts.labels.tolist() == [1, 0]
    assert prompts.box.tolist() == [0, 0, 10, 10]


def test_source_prompts_padded_to_max_points_after_the_clicks():
    # A click the crop pushed out (label -1) is dropped: padding only trails the real clicks.
    points = np.array([[1, 2, 1], [9, 9, -1], [3, 4, 0]], np.float32)
    prompts = PromptSampler()(disc(), np.random.default_rng(0), "x", points=points)
    assert prompts.labels.tolist() == [1, 0, -1, -1, -1, -1, -1]  # max_points 7
    assert prompts.points.tolist() == [[1, 2], [3, 4]] + [[0, 0]] * 5


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


# --- optional coarse-mask degradations (ZIM's label converter) ---------------------------------


def test_mask_degradations_change_the_outline_not_the_object():
    mask = (disc(soft=False) > 0).astype(np.uint8)
    blocky = downscale_mask(mask, 0.25)
    assert blocky.dtype == np.uint8 and set(np.unique(blocky)) <= {0, 1}
    assert (blocky != mask).any() and abs(int(blocky.sum()) - int(mask.sum())) < 0.2 * mask.sum()
    line = np.zeros((32, 32), np.uint8)
    line[10, 4:28] = 1
    square = np.zeros((32, 32), np.uint8)
    square[16:28, 16:28] = 1
    smoothed = blur_mask(line | square, sigma=2.0)
    assert not smoothed[10].any() and smoothed[20, 20] == 1  # thin part gone, body kept
    cup = np.zeros((32, 32), np.uint8)
    cup[8:24, 8:12] = cup[8:24, 20:24] = cup[20:24, 8:24] = 1  # a U: the gap is not convex
    hull = convex_hull_mask(cup)
    assert hull[12, 16] == 1 and (hull >= cup).all()
    apart = np.zeros((32, 32), np.uint8)
    apart[2:6, 2:6] = apart[26:30, 26:30] = 1
    assert convex_hull_mask(apart)[16, 16] == 0  # a hull per part, not one around both


def test_mask_degradations_off_draw_no_random_numbers():
    mask = (disc(soft=False) > 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert degrade_coarse_mask(mask, PromptConfig(), rng, 64) is mask
    assert rng.bit_generator.state == state
    always = PromptConfig(
        mask_downscale_probability=1.0,
        mask_blur_probability=1.0,
        mask_convex_hull_probability=1.0,
    )
    degraded = degrade_coarse_mask(mask, always, np.random.default_rng(0), 64)
    assert degraded.any() and (degraded != mask).any()


def test_mask_degradation_that_would_empty_the_mask_is_skipped():
    speck = np.zeros((64, 64), np.uint8)
    speck[30, 30] = 1  # down-scaling to a tenth averages it away
    config = PromptConfig(mask_downscale_probability=1.0, mask_downscale=(0.1, 0.1))
    assert np.array_equal(degrade_coarse_mask(speck, config, np.random.default_rng(0), 64), speck)


def test_sampler_applies_mask_degradations():
    alpha = disc(soft=False)
    plain = PromptSampler()(alpha, np.random.default_rng(0), "disc")
    config = PromptConfig(mask_downscale_probability=1.0, mask_downscale=(0.1, 0.1))
    blocky = PromptSampler(config)(alpha, np.random.default_rng(0), "disc")
    assert (blocky.coarse_mask != plain.coarse_mask).any()


def test_bad_degradation_settings_are_rejected():
    with pytest.raises(ValueError, match="mask_blur_probability"):
        PromptConfig(mask_blur_probability=1.5)
    with pytest.raises(ValueError, match="mask_downscale"):
        PromptConfig(mask_downscale=(0.0, 0.5))
