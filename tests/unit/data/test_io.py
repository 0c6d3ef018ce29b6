"""Readers of mattekit.data.io on tiny files in every encoding data sets use."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mattekit.data.io import (
    ConversionLog,
    ImageReadError,
    read_alpha,
    read_image,
    read_json,
    read_mask,
    read_trimap,
)

RAMP = np.arange(0, 256, 17, dtype=np.uint8).reshape(4, 4)  # 0, 17, ..., 255
TRIMAP = np.array([[0, 128, 255, 128]] * 3, dtype=np.uint8)


def save_pil(path: Path, array: np.ndarray, mode: str, **kwargs) -> Path:
    Image.fromarray(array, mode).save(path, **kwargs)
    return path


def save_palette(
    path: Path, indices: np.ndarray, colours: list[tuple[int, int, int]], **kw
) -> Path:
    image = Image.fromarray(indices.astype(np.uint8), "P")
    image.putpalette([value for colour in colours for value in colour])
    image.save(path, **kw)
    return path


def save_cv2(path: Path, array: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), array)
    return path


# ---- read_image ---------------------------------------------------------------------------------


def test_read_image_rgb_is_exact_and_in_rgb_order(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = read_image(save_pil(tmp_path / "a.png", rgb, "RGB"))
    assert image.dtype == np.uint8 and image.shape == (5, 7, 3)
    np.testing.assert_array_equal(image, rgb)


def test_read_image_grey_becomes_rgb(tmp_path):
    image = read_image(save_pil(tmp_path / "g.png", RAMP, "L"))
    assert image.shape == (4, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], RAMP)


def test_read_image_rgba_drops_alpha_with_a_debug_note(tmp_path, caplog):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 7
    path = save_pil(tmp_path / "c.png", rgba, "RGBA")
    with caplog.at_level(logging.DEBUG, logger="mattekit.data.io"):
        image = read_image(path)
    np.testing.assert_array_equal(image, rgba[..., :3])
    assert any("alpha channel of the image dropped" in r.message for r in caplog.records)


def test_read_image_16_bit_scaled_to_8_bit(tmp_path):
    bgr16 = np.zeros((1, 3, 3), np.uint16)
    bgr16[0, :, 2] = [0, 257 * 100, 65535]  # red channel in cv2's BGR order
    image = read_image(save_cv2(tmp_path / "h.png", bgr16))
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, :, 0], [0, 100, 255])
    np.testing.assert_array_equal(image[..., 1:], 0)


# ---- read_alpha ---------------------------------------------------------------------------------


def test_read_alpha_8_bit_grey(tmp_path):
    alpha = read_alpha(save_pil(tmp_path / "a.png", RAMP, "L"))
    assert alpha.dtype == np.float32 and alpha.shape == (4, 4)
    np.testing.assert_array_equal(alpha, RAMP.astype(np.float32) / 255)


def test_read_alpha_16_bit_grey(tmp_path):
    values = np.array([[0, 1, 32768, 65535]], np.uint16)
    alpha = read_alpha(save_cv2(tmp_path / "a16.png", values))
    np.testing.assert_array_equal(alpha, values.astype(np.float32) / 65535)
    assert alpha[0, 0] == 0 and alpha[0, 3] == 1


def test_read_alpha_rgb_with_equal_channels(tmp_path):
    path = save_pil(tmp_path / "rgb.png", np.repeat(RAMP[..., None], 3, axis=2), "RGB")
    np.testing.assert_array_equal(read_alpha(path), RAMP.astype(np.float32) / 255)


def test_read_alpha_rgb_with_unequal_channels_is_an_error_naming_the_file(tmp_path):
    colour = np.repeat(RAMP[..., None], 3, axis=2)
    colour[1, 1, 2] += 1
    path = save_pil(tmp_path / "unequal.png", colour, "RGB")
    with pytest.raises(ImageReadError, match=r"unequal\.png"):
        read_alpha(path)
    assert issubclass(ImageReadError, ValueError)


def test_read_alpha_palette_png_decodes_to_palette_grey_levels(tmp_path):
    levels = [(0, 0, 0), (64, 64, 64), (200, 200, 200), (255, 255, 255)]
    indices = np.array([[0, 1], [2, 3]])
    path = save_palette(tmp_path / "p.png", indices, levels)
    assert Image.open(path).mode == "P"
    expected = np.array([[0, 64], [200, 255]], np.float32) / 255
    np.testing.assert_array_equal(read_alpha(path), expected)


def test_read_alpha_rgba_cutout_uses_the_alpha_channel(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = [10, 200, 30]  # colour of a cutout, not a matte
    rgba[..., 3] = RAMP
    alpha = read_alpha(save_pil(tmp_path / "cut.png", rgba, "RGBA"))
    np.testing.assert_array_equal(alpha, RAMP.astype(np.float32) / 255)


def test_read_alpha_opaque_rgba_uses_the_grey_colour(tmp_path):
    rgba = np.dstack([RAMP, RAMP, RAMP, np.full_like(RAMP, 255)])
    alpha = read_alpha(save_pil(tmp_path / "opaque.png", rgba, "RGBA"))
    np.testing.assert_array_equal(alpha, RAMP.astype(np.float32) / 255)


def test_read_alpha_rgba_with_two_different_grey_mattes_is_ambiguous(tmp_path):
    rgba = np.dstack([RAMP, RAMP, RAMP, RAMP[::-1]])
    path = save_pil(tmp_path / "ambiguous.png", rgba, "RGBA")
    with pytest.raises(ImageReadError, match=r"ambiguous\.png"):
        read_alpha(path)


def test_read_alpha_grey_jpeg_saved_as_colour_is_accepted(tmp_path):
    grey = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None], 32, axis=0)
    path = save_cv2(tmp_path / "lossy.jpg", np.repeat(grey[..., None], 3, axis=2))
    alpha = read_alpha(path)
    assert np.abs(alpha * 255 - grey).max() <= 8


# ---- read_trimap --------------------------------------------------------------------------------


def test_read_trimap_palette_png(tmp_path):
    colours = [(0, 0, 0), (128, 128, 128), (255, 255, 255)]
    path = save_palette(tmp_path / "t.png", np.array([[0, 1, 2, 1]] * 3), colours)
    trimap = read_trimap(path)
    assert trimap.dtype == np.uint8
    np.testing.assert_array_equal(trimap, TRIMAP)


def test_read_trimap_palette_png_with_transparency_ignores_it(tmp_path):
    colours = [(0, 0, 0), (128, 128, 128), (255, 255, 255)]
    path = save_palette(tmp_path / "t.png", np.array([[0, 1, 2, 1]] * 3), colours, transparency=0)
    np.testing.assert_array_equal(read_trimap(path), TRIMAP)


def test_read_trimap_grey_and_rgb(tmp_path):
    np.testing.assert_array_equal(read_trimap(save_pil(tmp_path / "g.png", TRIMAP, "L")), TRIMAP)
    rgb = np.repeat(TRIMAP[..., None], 3, axis=2)
    np.testing.assert_array_equal(read_trimap(save_pil(tmp_path / "c.png", rgb, "RGB")), TRIMAP)


def test_read_trimap_unknown_127_maps_to_128_without_warning(tmp_path, caplog):
    stored = np.where(TRIMAP == 128, 127, TRIMAP).astype(np.uint8)
    with caplog.at_level(logging.DEBUG, logger="mattekit.data.io"):
        trimap = read_trimap(save_pil(tmp_path / "t127.png", stored, "L"))
    np.testing.assert_array_equal(trimap, TRIMAP)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_read_trimap_snaps_stray_values_and_warns_once_per_file(tmp_path, caplog):
    stored = np.array([[0, 63, 64, 191, 192, 255, 3, 250]], np.uint8)
    path = save_pil(tmp_path / "noisy.png", stored, "L")
    with caplog.at_level(logging.WARNING, logger="mattekit.data.io"):
        first = read_trimap(path)
        second = read_trimap(path)
    np.testing.assert_array_equal(first, [[0, 0, 128, 128, 255, 255, 0, 255]])
    np.testing.assert_array_equal(second, first)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "noisy.png" in warnings[0].getMessage()


def test_read_trimap_16_bit(tmp_path):
    path = save_cv2(tmp_path / "t16.png", TRIMAP.astype(np.uint16) * 257)
    np.testing.assert_array_equal(read_trimap(path), TRIMAP)


# ---- read_mask ----------------------------------------------------------------------------------


def test_read_mask_thresholds_8_bit_at_127(tmp_path):
    stored = np.array([[0, 127, 128, 255]], np.uint8)
    mask = read_mask(save_pil(tmp_path / "m.png", stored, "L"))
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, [[False, False, True, True]])


def test_read_mask_1_bit_and_16_bit(tmp_path):
    bits = np.array([[True, False], [False, True]])
    Image.fromarray(bits).save(tmp_path / "b.png")  # mode "1" (1-bit PNG)
    assert Image.open(tmp_path / "b.png").mode == "1"
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png"), bits)
    wide = np.array([[0, 32767, 32768, 65535]], np.uint16)
    np.testing.assert_array_equal(read_mask(save_cv2(tmp_path / "w.png", wide)), [[0, 0, 1, 1]])


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", [read_image, read_alpha, read_trimap, read_mask])
def test_missing_file_is_file_not_found_naming_it(tmp_path, reader):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.png"):
        reader(tmp_path / "nowhere.png")


@pytest.mark.parametrize("reader", [read_image, read_alpha, read_trimap, read_mask])
@pytest.mark.parametrize(
    "content", [b"", b"not an image at all" * 20, b"\x89PNG\r\n\x1a\n" + b"x" * 40]
)
def test_corrupt_file_is_an_error_naming_it(tmp_path, reader, content):
    path = tmp_path / "corrupt.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=r"corrupt\.png"):
        reader(path)


def test_float_image_outside_unit_range_is_an_error(tmp_path):
    path = tmp_path / "f.tiff"
    assert cv2.imwrite(str(path), np.full((2, 2), 3.0, np.float32))
    with pytest.raises(ImageReadError, match=r"f\.tiff"):
        read_alpha(path)


@pytest.mark.parametrize("reader", [read_image, read_alpha, read_trimap, read_mask])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_an_error_naming_the_file(tmp_path, reader, bad):
    """The range check used to skip NaN: a NaN alpha reached the loss, a NaN image became 0."""
    path = tmp_path / "nan.tiff"
    array = np.full((3, 3), 0.5, np.float32)
    array[1, 2] = bad
    assert cv2.imwrite(str(path), array)
    with pytest.raises(ImageReadError, match=r"nan\.tiff: 1 of 9 values are NaN or infinite"):
        reader(path)


@pytest.mark.parametrize("reader", [read_image, read_alpha, read_trimap, read_mask])
def test_too_many_pixels_is_an_error_before_decoding(tmp_path, reader, monkeypatch):
    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), np.zeros((20, 30), np.uint8))
    monkeypatch.setenv("MATTEKIT_MAX_IMAGE_PIXELS", "600")
    reader(path)  # 600 pixels: at the limit
    monkeypatch.setenv("MATTEKIT_MAX_IMAGE_PIXELS", "599")
    with pytest.raises(ImageReadError, match=r"big\.png: 30 x 20 pixels, more than the 599"):
        reader(path)


def test_a_bomb_header_is_refused_without_decoding(tmp_path):
    """A PNG header announcing 20000 x 20000 pixels (the data would take 400 MB) is refused from
    its header: the test never allocates the image."""
    header = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR"
    body = (20000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    crc = zlib.crc32(b"IHDR" + body).to_bytes(4, "big")
    path = tmp_path / "bomb.png"
    idat = (
        (16).to_bytes(4, "big")
        + b"IDAT"
        + bytes(16)
        + zlib.crc32(b"IDAT" + bytes(16)).to_bytes(4, "big")
    )
    path.write_bytes(header + body + crc + idat)
    with pytest.raises(ImageReadError, match=r"bomb\.png: .*pixels, more than the 100000000"):
        read_image(path)


def test_json_with_nan_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "prompt.json"
    path.write_text('{"point": [[NaN, 3, 1]], "bbox": [0, 0, 4, Infinity]}')
    with pytest.raises(ValueError, match=r"prompt\.json: NaN in prompt file"):
        read_json(path, "prompt file")


# ---- conversion log -----------------------------------------------------------------------------


def test_conversion_log_reports_each_kind_once_per_source(tmp_path, caplog):
    log = ConversionLog("demo")
    rgb = np.repeat(RAMP[..., None], 3, axis=2)
    paths = [save_pil(tmp_path / f"{i}.png", rgb, "RGB") for i in range(3)]
    with caplog.at_level(logging.INFO, logger="mattekit.data.io"):
        for path in paths:
            read_alpha(path, log)
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "demo" in infos[0].getMessage() and "0.png" in infos[0].getMessage()
