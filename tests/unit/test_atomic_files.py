"""mattekit.atomic_files: PNGs written whole (round trips, replacement, refusals)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mattekit.atomic_files import write_png_atomic
from mattekit.data.io import read_alpha, read_image


def test_write_png_atomic_round_trips_8_bit_rgb_and_16_bit_grey(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write_png_atomic(tmp_path / "out" / "rgb.png", rgb)  # parent folder is created
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "rgb.png"), rgb)

    grey16 = np.array([[0, 1000, 65535]], np.uint16)
    write_png_atomic(tmp_path / "a16.png", grey16)
    decoded = cv2.imread(str(tmp_path / "a16.png"), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, grey16)


def test_write_png_atomic_replaces_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "a.png"
    write_png_atomic(target, np.zeros((2, 2), np.uint8))
    write_png_atomic(target, np.full((3, 3), 9, np.uint8))
    np.testing.assert_array_equal(read_alpha(target), np.full((3, 3), 9 / 255, np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@pytest.mark.parametrize(
    ("name", "array"),
    [
        ("a.jpg", np.zeros((2, 2), np.uint8)),
        ("a.png", np.zeros((2, 2), np.float32)),
        ("a.png", np.zeros((2, 2, 2), np.uint8)),
    ],
)
def test_write_png_atomic_rejects_what_it_cannot_write(tmp_path, name, array):
    with pytest.raises(ValueError, match=name):
        write_png_atomic(tmp_path / name, array)
    assert list(tmp_path.iterdir()) == []
