"""Named evaluation protocols and the SDMatte release's prompt maps, against hand-computed values.

Notation for the click maps: g(d) = exp(-d^2 / (2 sigma^2)). scipy's 'reflect' border mirrors a
delta at index p to index -1 - p, so along one axis a click at p has the profile
f(i) = g(i - p) + g(i + 1 + p) near the edge (the kernel's normalisation cancels in the division
by the max). With sigma = 2, truncate 4 the kernel reaches 8 px.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mattekit.data.prompts import PromptConfig
from mattekit.nn.prompt_maps import box_mask, gaussian_point_map
from mattekit.pipelines.benchmark.spec import Protocol
from mattekit.prompts.protocols import PROTOCOLS, get_protocol, quantized
from mattekit.prompts.release_maps import (
    exclusive_box_map,
    filtered_click_map,
    largest_component_box,
    release_positive_clicks,
)


def g(d: float, sigma: float = 2.0) -> float:
    return math.exp(-(d**2) / (2 * sigma**2))


# --- click maps ------------------------------------------------------------------------------


def test_click_ten_pixels_from_an_edge_is_the_truncated_gaussian():
    # Click at x = 10 on a 64 px map, sigma 2: its mirror sits at x = -11 and reaches only
    # x = -3, so the row is g(d) up to the 8 px truncation and 0 from 9 px on.
    row = filtered_click_map(np.array([[10, 32]]), (64, 64), 2.0)[32]
    assert row[10] == pytest.approx(1.0)
    assert row[11] == pytest.approx(0.8824969, abs=1e-6)  # g(1) = exp(-1/8)
    assert row[12] == pytest.approx(0.6065307, abs=1e-6)  # g(2) = exp(-1/2)
    assert row[18] == pytest.approx(3.3546e-4, rel=1e-3)  # g(8) = exp(-8)
    assert row[19] == 0.0 and row[1] == 0.0  # 9 px away: beyond the kernel


def test_sdmatte_sigma_at_64_px_matches_an_exact_gaussian_ten_pixels_from_an_edge():
    # sigma = 35 / 1024 * 64 = 2.1875 px, kernel radius int(4 * 2.1875 + 0.5) = 9: only the
    # 4-sigma cut differs from mattekit's exact map, by at most g(10) = exp(-100 / 9.57) = 2.9e-5.
    sigma = get_protocol("sdmatte").point_sigma * 64
    release = filtered_click_map(np.array([[10, 40]]), (64, 64), sigma)
    exact = gaussian_point_map(
        torch.tensor([[[10.0, 40.0]]]), torch.tensor([[1]]), (64, 64), sigma
    )[0, 0].numpy()
    assert np.abs(release - exact).max() == pytest.approx(2.9e-5, rel=0.05)


def test_click_one_pixel_from_an_edge_peaks_on_the_edge():
    # Click at x = 1: f(0) = g(1) + g(2) = 1.4890276, f(1) = g(0) + g(3) = 1.3246525,
    # f(2) = g(1) + g(4) = 1.0178322. The max is at the edge, so the click itself is
    # 1.3246525 / 1.4890276 = 0.889609 (an exact Gaussian: 1).
    row = filtered_click_map(np.array([[1, 32]]), (64, 64), 2.0)[32]
    f0, f1, f2 = g(1) + g(2), g(0) + g(3), g(1) + g(4)
    assert f0 == pytest.approx(1.4890276) and f1 == pytest.approx(1.3246525)
    np.testing.assert_allclose(row[:3], [1.0, 0.889609, 0.683555], atol=1e-6)
    np.testing.assert_allclose(row[:3], [1.0, f1 / f0, f2 / f0], atol=1e-6)


def test_corner_click_and_click_next_to_a_corner():
    # At the corner: f(0) = g(0) + g(1) = 1.8824969 is the max, so the click is 1; the next pixel
    # is (g(1) + g(2)) / f(0) = 0.790985 per axis (an exact Gaussian: 0.882497).
    corner = filtered_click_map(np.array([[0, 0]]), (32, 32), 2.0)
    assert corner[0, 0] == pytest.approx(1.0)
    assert corner[0, 1] == pytest.approx(0.790985, abs=1e-6)
    assert corner[1, 1] == pytest.approx(0.790985**2, abs=1e-6)
    # Issue 24 calls a corner click 0.80: at the corner it is 1; one pixel in from both edges
    # the click is 0.889609^2 = 0.791404.
    near = filtered_click_map(np.array([[1, 1]]), (32, 32), 2.0)
    assert near[0, 0] == pytest.approx(1.0)
    assert near[1, 1] == pytest.approx(0.791404, abs=1e-6)


def test_click_map_takes_the_max_over_clicks_and_is_empty_without_clicks():
    two = filtered_click_map(np.array([[10, 10], [12, 10]]), (32, 32), 2.0)
    # Between the clicks (x = 11) each contributes g(1); the max, not the sum.
    assert two[10, 11] == pytest.approx(g(1), abs=1e-6)
    assert two[10, 10] == pytest.approx(1.0) and two[10, 12] == pytest.approx(1.0)
    empty = filtered_click_map(np.zeros((0, 2)), (8, 8), 2.0)
    assert empty.shape == (8, 8) and empty.dtype == np.float32 and not empty.any()


# --- boxes -----------------------------------------------------------------------------------


def test_exclusive_box_leaves_out_the_last_row_and_column():
    # Box (x0, y0, x1, y1) = (1, 2, 4, 5): the slice [2:5, 1:4] is 3 x 3 = 9 pixels, where the
    # inclusive box (rows 2-5, columns 1-4) is 16.
    release = exclusive_box_map(np.array([1, 2, 4, 5]), (8, 8))
    expected = np.zeros((8, 8), np.float32)
    expected[2:5, 1:4] = 1
    np.testing.assert_array_equal(release, expected)
    inclusive = box_mask(torch.tensor([[1.0, 2.0, 4.0, 5.0]]), (8, 8))[0, 0].numpy()
    assert inclusive.sum() == 16 and release.sum() == 9
    assert not release[5].any() and not release[:, 4].any()


def test_exclusive_box_clips_to_the_map_and_truncates_floats():
    # (-3, 1.9, 9.7, 3): x0 -> 0, y0 -> int(1.9) = 1, x1 -> min(8, 9) = 8.
    expected = np.zeros((4, 8), np.float32)
    expected[1:3, 0:8] = 1
    np.testing.assert_array_equal(exclusive_box_map(np.array([-3, 1.9, 9.7, 3]), (4, 8)), expected)


def _two_blobs(second_area: int) -> np.ndarray:
    """A 10 x 10 blob (100 px, rows and columns 0-9) and a row of ``second_area`` pixels at
    row 20 from column 15, with alpha 0.01 (any alpha > 0 counts)."""
    alpha = np.zeros((32, 32), np.float32)
    alpha[0:10, 0:10] = 1.0
    alpha[20, 15 : 15 + second_area] = 0.01
    return alpha


@pytest.mark.parametrize(
    ("second_area", "expected"),
    [
        (9, [0, 0, 9, 9]),  # 100 >= 10 * 9: the largest component's box
        (10, [0, 0, 9, 9]),  # 100 >= 10 * 10: the rule is inclusive
        (11, [0, 0, 25, 20]),  # 100 < 10 * 11: the box of every alpha > 0 (column 15 + 10)
    ],
)
def test_largest_component_rule(second_area, expected):
    np.testing.assert_array_equal(largest_component_box(_two_blobs(second_area)), expected)


def test_largest_component_is_four_connected():
    # A pixel touching the 10 x 10 blob only at a corner is its own component (area 1) under
    # scipy.ndimage.label's default structure: the box stays the blob's. 8-connectivity would
    # merge it and give (0, 0, 10, 10).
    alpha = _two_blobs(0)
    alpha[10, 10] = 1.0
    np.testing.assert_array_equal(largest_component_box(alpha), [0, 0, 9, 9])


def test_largest_component_box_refuses_an_empty_alpha():
    with pytest.raises(ValueError, match="no pixel > 0"):
        largest_component_box(np.zeros((4, 4), np.float32))


# --- clicks ----------------------------------------------------------------------------------


def test_release_clicks_use_an_absolute_strict_threshold():
    rng = np.random.default_rng(0)
    # max(alpha) = 0.5: no pixel exceeds 0.8, and the release then gives no click at all.
    assert release_positive_clicks(np.full((8, 8), 0.5, np.float32), 10, rng).shape == (0, 2)
    # Exactly 0.8 does not pass (alpha > 0.8).
    assert release_positive_clicks(np.full((8, 8), 0.8, np.float32), 1, rng).shape == (0, 2)


def test_release_clicks_need_count_candidates_and_draw_distinct_pixels():
    alpha = np.zeros((8, 8), np.float32)
    flat = alpha.reshape(-1)
    flat[:9] = 0.9
    rng = np.random.default_rng(0)
    # 9 candidates for 10 clicks: none, not 9.
    assert release_positive_clicks(alpha, 10, rng).shape == (0, 2)
    flat[9] = 0.9  # 10 candidates: (x, y) = (0..7, 0) and (0..1, 1), each drawn once
    clicks = release_positive_clicks(alpha, 10, rng)
    drawn = {(int(x), int(y)) for x, y in clicks}
    assert drawn == {(x, 0) for x in range(8)} | {(0, 1), (1, 1)}


# --- 8-bit scoring ---------------------------------------------------------------------------


@pytest.mark.parametrize("as_tensor", [False, True])
def test_quantized_truncates_or_rounds(as_tensor):
    # x 255: 254.745, 0.5, 1.5, 0.7, then clipped -> 0 and 255.
    values = np.array([0.999, 0.5 / 255, 1.5 / 255, 0.7 / 255, -0.1, 1.2], np.float32)
    alpha = torch.from_numpy(values) if as_tensor else values
    truncated = np.asarray(quantized(alpha, "truncate")) * 255
    rounded = np.asarray(quantized(alpha, "round")) * 255
    np.testing.assert_allclose(truncated, [254, 0, 1, 0, 0, 255], atol=1e-4)
    # Halves go to even: 0.5 -> 0, 1.5 -> 2.
    np.testing.assert_allclose(rounded, [255, 0, 2, 1, 0, 255], atol=1e-4)
    assert quantized(alpha, "none") is alpha


def test_quantized_names_a_bad_mode():
    with pytest.raises(ValueError, match="'floor'"):
        quantized(np.zeros(2, np.float32), "floor")


# --- the protocols ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sdmatte", "zim", "shared"])
def test_get_protocol_round_trips(name):
    protocol = get_protocol(name)
    assert protocol.name == name and PROTOCOLS[name] is protocol
    assert protocol.description.startswith(f"protocol: {name} (")


def test_unknown_protocol_names_the_known_ones():
    with pytest.raises(ValueError, match=r"'dim'.*sdmatte, shared, zim"):
        get_protocol("dim")


def test_protocol_values():
    sdmatte, zim, shared = (get_protocol(name) for name in ("sdmatte", "zim", "shared"))
    assert sdmatte.point_sigma * 1024 == pytest.approx(35.0)  # radius 25 + 10, at 1024
    assert (sdmatte.point_map, sdmatte.box_map, sdmatte.box_source) == (
        "filtered",
        "exclusive",
        "largest_component",
    )
    assert (sdmatte.positive_clicks, sdmatte.point_threshold) == (10, 0.8)
    assert not sdmatte.relative_threshold and sdmatte.quantize == "truncate"
    assert sdmatte.input_convention == (1024, "stretch") and sdmatte.text_to_cross_attention
    assert zim.stored_prompts and zim.input_convention == (1024, "letterbox")
    assert zim.quantize == "none"
    # shared follows mattekit's sampler and the benchmark (whose stored boxes, shared by every
    # method, keep the sampler's jitter); the releases' protocols do not jitter at test.
    assert shared.point_sigma == PromptConfig().point_sigma
    assert shared.positive_clicks == Protocol().clicks
    assert shared.relative_threshold and shared.input_convention is None
    assert shared.box_jitter == PromptConfig().box_jitter
    assert sdmatte.box_jitter == zim.box_jitter == 0
