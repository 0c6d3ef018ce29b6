"""SDMatte's release training data (``data/dataset.py``) as mattekit's prompt and augmentation
settings express it: the coarse mask's four morphologies, the trimap's two kernels, duplication
on every composite, and the whole image resized. Literal values come from the release's code
(``GenMask`` / ``GenTrimap`` kernels run through cv2) or from mattekit before these settings
existed (the default draws)."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from mattekit.data.prompts import PromptConfig, PromptSampler, draw_mask_steps, sample_trimap
from mattekit.data.sample import RawSample
from mattekit.data.transforms import AugmentConfig, MattingTransform

RELEASE = Path(__file__).parents[3] / "configs" / "recipes" / "sdmatte_release.yaml"


def recipe_configs() -> tuple[PromptConfig, AugmentConfig]:
    """The release recipe's data section as the dataclasses the CLI builds from it."""
    data = yaml.safe_load(RELEASE.read_text())["data"]

    def typed(section: dict) -> dict:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}

    return PromptConfig(**typed(data["prompts"])), AugmentConfig(**typed(data["augment"]))


def square(size: int = 64, side: int = 20, at: int = 20) -> np.ndarray:
    alpha = np.zeros((size, size), np.float32)
    alpha[at : at + side, at : at + side] = 1.0
    return alpha


def digest(config: PromptConfig, seed: int) -> tuple[str, float]:
    """Every sampled prompt hashed, and the generator's next number (what the draws consumed)."""
    yy, xx = np.mgrid[:80, :96]
    alpha = np.clip(14.5 - np.hypot(xx - 50, yy - 30), 0, 1).astype(np.float32)
    alpha[60:70, 10:30] = 0.6
    rng = np.random.default_rng(seed)
    prompts = PromptSampler(config)(alpha, rng, "golden")
    hashed = hashlib.sha256()
    for array in (prompts.points, prompts.labels, prompts.box, prompts.coarse_mask, prompts.trimap):
        hashed.update(np.ascontiguousarray(array).tobytes())
    return hashed.hexdigest()[:16], float(rng.random())


# Computed with mattekit before mask_operations / trimap_separate_widths / trimap_thresholds.
DEFAULT_DRAWS = [
    ("766e5444d8155d32", 0.002738500170148095),
    ("8c288418139efccc", 0.303194829291645),
    ("6f5de5efcad62360", 0.562265662780428),
]
DEGRADED_DRAWS = [
    ("6845c154e8443f14", 0.7296554464299441),
    ("47cc95af8f67d67c", 0.40311298644712923),
    ("3121fea0fd926082", 0.43263079080478717),
]


def test_default_prompts_draw_what_they_drew_before_the_release_settings():
    degraded = PromptConfig(
        mask_downscale_probability=0.5,
        mask_blur_probability=0.5,
        mask_convex_hull_probability=0.5,
        absolute_threshold=True,
        point_threshold=0.5,
    )
    assert [digest(PromptConfig(), seed) for seed in range(3)] == DEFAULT_DRAWS
    assert [digest(degraded, seed) for seed in range(3)] == DEGRADED_DRAWS


# A 20 x 20 square through the release's 5 x 5 ellipse (GenMask.erosion_kernels[5]), by cv2.
@pytest.mark.parametrize(
    ("operation", "pixels"),
    [("erode", 256), ("dilate", 568), ("erode+dilate", 392), ("dilate+erode", 400)],
)
def test_each_mask_operation_gives_the_release_pixel_count(operation, pixels):
    config = PromptConfig(
        mask_threshold=(0.5, 0.5),
        mask_morphology=(2 / 64, 2 / 64),  # half width 2: the 5 x 5 ellipse
        mask_operations=(operation,),
    )
    prompts = PromptSampler(config)(square(), np.random.default_rng(0), "square")
    assert int(prompts.coarse_mask.sum()) == pixels


def test_release_operations_are_drawn_uniformly_each_step_with_its_own_kernel():
    config, _ = recipe_configs()
    rng = np.random.default_rng(0)
    draws = [draw_mask_steps(config, rng) for _ in range(8000)]
    names = ["+".join(name for name, _ in steps) for steps in draws]
    for operation in ("erode", "dilate", "erode+dilate", "dilate+erode"):
        assert names.count(operation) / len(names) == pytest.approx(0.25, abs=0.02)
    # At 512 px every kernel half width is 7-14 px, all eight equally likely (the release's
    # randint(15, 30) kernels), and a two-step operation's kernels differ from each other.
    radii = np.array([round(size * 512) for steps in draws for _, size in steps])
    assert set(radii.tolist()) == set(range(7, 15))
    assert np.bincount(radii)[7:] / len(radii) == pytest.approx(np.full(8, 1 / 8), abs=0.015)
    two_step = [steps for steps in draws if len(steps) == 2]
    assert sum(a[1] != b[1] for a, b in two_step) == len(two_step)


def edge_alpha() -> np.ndarray:
    """512 px wide, opaque left of x = 256, empty from there: a hard vertical edge."""
    alpha = np.zeros((32, 512), np.float32)
    alpha[:, :256] = 1.0
    return alpha


def band(trimap: np.ndarray) -> tuple[int, int]:
    """Unknown columns of the middle row on the foreground side and on the background side."""
    row = trimap[16]
    return int((row[:256] == 128).sum()), int((row[256:] == 128).sum())


def test_trimap_sides_grow_by_their_own_kernels_as_the_release():
    # The release's GenTrimap with kernels 15 (fg) and 29 (bg) gives 7 + 14 unknown columns.
    trimap = sample_trimap(edge_alpha(), 7 / 512, 512, 14 / 512, thresholds=(0.05, 0.95))
    assert band(trimap) == (7, 14)


def test_release_trimap_band_at_512_is_14_to_28_px():
    # The release's GenTrimap on this edge, 2000 seeded draws: 14 to 28 px, mean 21.0.
    config, _ = recipe_configs()
    sampler = PromptSampler(config)
    widths = [
        sum(band(sampler(edge_alpha(), np.random.default_rng(seed), "edge").trimap))
        for seed in range(400)
    ]
    assert min(widths) == 14 and max(widths) == 28
    assert np.mean(widths) == pytest.approx(21.0, abs=0.6)


def test_trimap_thresholds_leave_near_opaque_alpha_certain():
    alpha = np.full((8, 8), 0.97, np.float32)
    alpha[:, 4:] = 0.03
    release = sample_trimap(alpha, 0.0, 8, thresholds=(0.05, 0.95))
    default = sample_trimap(alpha, 0.0, 8)
    assert (release[:, :4] == 255).all() and (release[:, 4:] == 0).all()
    assert (default == 128).all()


def composite_sample(width: int = 48, height: int = 32) -> RawSample:
    """A red disc near the left edge on grey, fg and bg known (a composite): a crop of the
    duplicated image's sides would lose the left copy."""
    yy, xx = np.mgrid[:height, :width]
    alpha = np.clip(6 - np.hypot(xx - 8, yy - height / 2), 0, 1).astype(np.float32)
    fg = np.zeros((height, width, 3), np.uint8)
    fg[..., 0] = 200
    bg = np.full_like(fg, 60)
    image = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.uint8)
    return RawSample("disc", image, alpha, fg=fg, bg=bg)


def test_release_duplicates_every_composite_and_resizes_the_whole_image():
    _, augment = recipe_configs()
    transform = MattingTransform((32, 32), train=True, config=augment)
    for seed in range(20):
        out = transform(composite_sample(), np.random.default_rng(seed))
        left, right = out.alpha[:, :16] > 0, out.alpha[:, 16:] > 0
        assert left.any() != right.any(), seed  # the target on one half only
        red = out.image[..., 0].astype(int) - out.image[..., 1].astype(int) > 50
        # Both copies are in the image (grey may have hit: then no channel differs; skip those).
        if red.any():
            assert red[:, :16].any() and red[:, 16:].any(), seed


def test_whole_image_crop_scale_resizes_instead_of_cropping_the_sides():
    wide = np.zeros((32, 64, 3), np.uint8)
    wide[..., 0] = np.arange(64, dtype=np.uint8)[None, :] * 4  # the column, as a colour ramp
    raw = RawSample("wide", wide, np.ones((32, 64), np.float32))
    config = AugmentConfig(crop_scale=(1.0, 1.0), flip=0.0, color_jitter=0.0)
    out = MattingTransform((32, 32), train=True, config=config)(raw, np.random.default_rng(0))
    # A resize keeps the first and last columns (0 and 252); a 4:3 centre crop lost 21 on each
    # side of the 2:1 image.
    assert out.image[0, 0, 0] <= 6 and out.image[0, -1, 0] >= 246


@pytest.mark.parametrize(
    ("field", "value"),
    [("mask_operations", ("open",)), ("mask_operations", ()), ("trimap_thresholds", (0.9, 0.1))],
)
def test_bad_release_settings_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"PromptConfig.{field}"):
        PromptConfig(**{field: value})
