"""SDMatte's foreground duplication: two copies of the object, the ground truth on one."""

import dataclasses

import cv2
import numpy as np
import pytest

from mattekit.data.composition import composite
from mattekit.data.duplication import duplicate_foreground
from mattekit.data.sample import RawSample
from mattekit.data.transforms import AugmentConfig, MattingTransform

HEIGHT, WIDTH = 32, 16  # duplicated: 32 x 32, so a whole-image crop needs no aspect change
BG_COLOUR = (60, 60, 60)


def sample(with_fg_bg: bool = True, width: int = WIDTH, **fields) -> RawSample:
    """A soft red disc with a textured fg over a uniform grey bg, composited exactly."""
    yy, xx = np.mgrid[:HEIGHT, :width]
    alpha = np.clip(7 - np.hypot(xx - 7.5, yy - 15.5), 0, 1).astype(np.float32)
    fg = np.zeros((HEIGHT, width, 3), np.uint8)
    fg[..., 0] = 200
    fg[..., 1] = (xx * 5 + yy * 3).astype(np.uint8)  # texture, so a misplaced copy shows
    bg = np.empty_like(fg)
    bg[:] = BG_COLOUR
    raw = RawSample("disc", composite(fg, bg, alpha), alpha, fg=fg, bg=bg, **fields)
    return raw if with_fg_bg else dataclasses.replace(raw, fg=None, bg=None)


def kept_half(alpha: np.ndarray) -> str:
    """Which half of an H x 2W alpha holds the target; asserts the other half is empty."""
    left, right = alpha[:, :WIDTH], alpha[:, WIDTH:]
    assert (left > 0).any() != (right > 0).any(), "the alpha must cover exactly one half"
    return "left" if (left > 0).any() else "right"


def train_transform(probability: float, **augment) -> MattingTransform:
    config = AugmentConfig(
        duplicate_foreground=probability, crop_scale=(1, 1), flip=0, color_jitter=0, **augment
    )
    return MattingTransform((HEIGHT, 2 * WIDTH), train=True, config=config)


def test_image_is_twice_as_wide_and_shows_the_object_twice():
    raw = sample()
    out = duplicate_foreground(raw, np.random.default_rng(0))
    assert out.image.shape == (HEIGHT, 2 * WIDTH, 3)
    assert out.fg.shape == out.bg.shape == out.image.shape
    assert out.alpha.shape == (HEIGHT, 2 * WIDTH) and out.alpha.dtype == np.float32
    # A uniform bg stays uniform when stretched, so each half is the original composite.
    np.testing.assert_array_equal(out.image[:, :WIDTH], out.image[:, WIDTH:])
    np.testing.assert_array_equal(out.image[:, :WIDTH], raw.image)


@pytest.mark.parametrize("seed", range(6))
def test_alpha_is_the_original_on_one_half_and_zero_on_the_other(seed):
    raw = sample()
    out = duplicate_foreground(raw, np.random.default_rng(seed))
    half = kept_half(out.alpha)
    kept = out.alpha[:, :WIDTH] if half == "left" else out.alpha[:, WIDTH:]
    np.testing.assert_array_equal(kept, raw.alpha)


def test_returned_fg_and_bg_still_composite_to_the_image():
    """The transform recomposites from (alpha, fg, bg): that must not erase the other copy."""
    out = duplicate_foreground(sample(), np.random.default_rng(1))
    np.testing.assert_array_equal(composite(out.fg, out.bg, out.alpha), out.image)


def test_target_dependent_fields_follow_the_kept_copy_or_are_resampled():
    seg = sample().alpha > 0.5
    trimap = np.full((HEIGHT, WIDTH), 128, np.uint8)
    raw = sample(
        seg_mask=seg,
        trimap=trimap,
        coarse_mask=seg.astype(np.uint8),
        points=np.float32([[7, 15, 1]]),
        box=np.float32([0, 8, 15, 23]),
    )
    for seed in range(6):
        out = duplicate_foreground(raw, np.random.default_rng(seed))
        half = kept_half(out.alpha)
        expected = [seg, np.zeros_like(seg)] if half == "left" else [np.zeros_like(seg), seg]
        np.testing.assert_array_equal(out.seg_mask, np.concatenate(expected, axis=1))
        assert out.trimap is None and out.coarse_mask is None
        assert out.points is None and out.box is None


def test_sample_without_fg_and_bg_is_unchanged():
    raw = sample(with_fg_bg=False)
    assert duplicate_foreground(raw, np.random.default_rng(0)) is raw
    out = train_transform(1.0)(raw, np.random.default_rng(0))
    assert out.image.shape == (HEIGHT, 2 * WIDTH, 3)  # stretched, not duplicated
    assert (out.alpha[:, :WIDTH] > 0).any() and (out.alpha[:, WIDTH:] > 0).any()


def test_both_copies_are_chosen_over_many_draws():
    rng = np.random.default_rng(123)
    halves = [kept_half(duplicate_foreground(sample(), rng).alpha) for _ in range(200)]
    assert 60 < halves.count("left") < 140


@pytest.mark.parametrize("seed", range(5))
def test_transform_always_duplicates_at_probability_one(seed):
    raw = sample()
    out = train_transform(1.0)(raw, np.random.default_rng(seed))
    np.testing.assert_array_equal(out.image[:, :WIDTH], out.image[:, WIDTH:])
    half = kept_half(out.alpha)
    kept = out.alpha[:, :WIDTH] if half == "left" else out.alpha[:, WIDTH:]
    np.testing.assert_allclose(kept, raw.alpha, atol=1e-6)


def test_transform_at_probability_zero_changes_nothing():
    raw = sample(width=2 * WIDTH)  # already the network size: a whole-image crop is identity
    for seed in range(5):
        out = train_transform(0.0)(raw, np.random.default_rng(seed))
        np.testing.assert_array_equal(out.image, raw.image)
        np.testing.assert_array_equal(out.alpha, raw.alpha)


def test_evaluation_never_duplicates():
    raw = sample()
    config = AugmentConfig(duplicate_foreground=1.0)
    out = MattingTransform((HEIGHT, WIDTH), train=False, config=config)(
        raw, np.random.default_rng(0)
    )
    np.testing.assert_array_equal(out.image, raw.image)
    np.testing.assert_array_equal(out.alpha, raw.alpha)


def test_other_copy_survives_the_recomposite_after_colour_jitter():
    """Jitter recomposites the image from (alpha, fg, bg); the untargeted copy must stay."""
    raw = sample()
    transform = MattingTransform(
        (HEIGHT, 2 * WIDTH),
        train=True,
        config=AugmentConfig(duplicate_foreground=1.0, crop_scale=(1, 1), flip=0, color_jitter=1),
    )
    for seed in range(5):
        out = transform(raw, np.random.default_rng(seed))
        other = slice(WIDTH, None) if kept_half(out.alpha) == "left" else slice(None, WIDTH)
        image = out.image[:, other].astype(int)
        # Red channel: the copy's centre (alpha 1, fg red 200) against a corner (grey bg 60).
        assert image[15, 7, 0] - image[0, 0, 0] > 50


def test_referring_expression_is_dropped_with_the_second_copy():
    raw = sample(text="the red disc", is_transparent=True)
    out = duplicate_foreground(raw, np.random.default_rng(0))
    assert out.text == "" and out.is_transparent


@pytest.mark.parametrize("seed", range(4))
def test_background_blur_leaves_both_copies_equally_sharp(seed):
    """Blurred after duplication, the untargeted copy would be blurred and the target sharp: a
    give-away. The blur comes first, so both copies are the same pixels. (At 16x the test
    sample's size, so that the blur's sigma, 1-4 px per 512 px, is more than a pixel.)"""
    small, scale = sample(), 16
    grown = {
        name: cv2.resize(
            getattr(small, name), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST
        )
        for name in ("image", "alpha", "fg", "bg")
    }
    raw = dataclasses.replace(small, **grown)
    config = AugmentConfig(
        duplicate_foreground=1.0, background_blur=1.0, crop_scale=(1, 1), flip=0, color_jitter=0
    )
    size = (HEIGHT * scale, 2 * WIDTH * scale)
    out = MattingTransform(size, train=True, config=config)(raw, np.random.default_rng(seed))
    half = WIDTH * scale
    np.testing.assert_allclose(
        out.image[:, :half].astype(int), out.image[:, half:].astype(int), atol=1
    )
