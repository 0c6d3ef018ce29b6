"""Evaluation letterbox = SAM's ResizeLongestSide (antialiased), then black bottom-right padding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from segment_anything.utils.transforms import ResizeLongestSide

from mattekit.data.letterbox import letterbox_size, resize_antialiased
from mattekit.data.synthetic import SyntheticSource
from mattekit.data.transforms import MattingTransform


def photo_like(height: int, width: int):
    """A synthetic scene (textured background, furry strands) as a photo: no fg / bg layers, so
    the pipeline resizes the image itself instead of recompositing it."""
    raw = SyntheticSource(2, image_size=(height, width), seed=3, kinds=["furry"])[1]
    return dataclasses.replace(raw, fg=None, bg=None)


def letterbox(raw, side: int):
    return MattingTransform((side, side), train=False, resize="letterbox")(
        raw, np.random.default_rng(0)
    )


@pytest.mark.parametrize(("size", "side"), [((240, 320), 100), ((320, 240), 64)])
def test_image_matches_sam_resize_longest_side(size, side):
    raw = photo_like(*size)
    sam = ResizeLongestSide(side).apply_image(raw.image)
    height, width = sam.shape[:2]
    out = letterbox(raw, side)
    assert out.image.shape == (side, side, 3)
    assert out.content_size == (height, width)
    difference = np.abs(out.image[:height, :width].astype(int) - sam.astype(int))
    # Unantialiased bilinear (OpenCV's, the old resize) is off by up to 81 grey levels here.
    assert difference.max() <= 1
    assert not out.image[height:].any() and not out.image[:, width:].any()  # black padding


def test_alpha_is_filtered_like_the_image():
    raw = photo_like(240, 320)
    grey = np.repeat(np.round(raw.alpha * 255).astype(np.uint8)[..., None], 3, axis=2)
    sam = ResizeLongestSide(100).apply_image(grey)[..., 0].astype(np.float32)
    out = letterbox(raw, 100)
    assert out.alpha.dtype == np.float32
    assert np.abs(out.alpha[:75] * 255 - sam).max() <= 1
    assert not out.alpha[75:].any()


def test_prompts_are_scaled_as_sam_scales_coordinates():
    raw = photo_like(240, 320)
    # The last pixel centre (319, 239) lands at (99.69, 74.69), past W - 1 = 99: still a click.
    points = np.array([[10, 20, 1], [319, 239, 0], [150.5, 7.25, 1]], np.float32)
    box = np.array([12, 30, 290, 200], np.float32)
    raw = dataclasses.replace(raw, points=points, box=box)
    out = letterbox(raw, 100)
    resize = ResizeLongestSide(100)
    np.testing.assert_allclose(out.points[:, :2], resize.apply_coords(points[:, :2], (240, 320)))
    assert out.points[:, 2].tolist() == [1, 0, 1]
    np.testing.assert_allclose(out.box, resize.apply_boxes(box[None], (240, 320))[0], rtol=1e-6)


def test_output_size_rounds_half_up_as_sam_does():
    # 5 x 8 into 4 x 4: 2.5 rows. SAM rounds half up (3); Python's round() would give 2.
    sam = ResizeLongestSide.get_preprocess_shape(5, 8, 4)
    assert letterbox_size((5, 8), (4, 4)) == (3, 4) == sam
    assert letterbox_size((90, 120), (32, 32)) == (24, 32)
    assert letterbox_size((100, 100), (20, 40)) == (20, 20)  # a non-square fit keeps the aspect


def test_float_layers_keep_dtype_and_channels():
    layers = np.random.default_rng(0).random((30, 40, 2), dtype=np.float32)
    resized = resize_antialiased(layers, (15, 20))
    assert resized.shape == (15, 20, 2) and resized.dtype == np.float32
    # Halving with an antialiased (triangle) filter averages neighbours: a 2 x 2 block mean is
    # a close reference, far closer than the corner sample a plain bilinear would take.
    block_mean = layers.reshape(15, 2, 20, 2, 2).mean(axis=(1, 3))
    assert np.abs(resized - block_mean)[1:-1, 1:-1].max() < 0.25
    with pytest.raises(TypeError, match="uint8 or float32"):
        resize_antialiased(np.zeros((4, 4), np.int32), (2, 2))
