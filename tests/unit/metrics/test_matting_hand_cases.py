"""Matting metrics on tiny inputs whose values are worked out by hand in the comments."""

import numpy as np
import pytest
import torch
from metric_cases import as_batch

from mattekit.metrics import MAD, MSE, SAD, ConnectivityError, GradientError, reference
from mattekit.metrics.connectivity import largest_component
from mattekit.metrics.region_sums import region_sums

# gt: left half 0, right half 1. pred differs at (0, 1) by 0.5, at (1, 2) by 0.25 and at (3, 3)
# by 1. The trimap marks columns 1 and 2 unknown (8 pixels), column 0 background, 3 foreground.
GT = np.array([[0, 0, 1, 1]] * 4, dtype=np.float32)
PRED = GT.copy()
PRED[0, 1], PRED[1, 2], PRED[3, 3] = 0.5, 0.75, 0.0
TRIMAP = np.array([[0, 128, 128, 255]] * 4, dtype=np.uint8)


def _value(metric_class, pred, gt, trimap=None, preset="dim") -> float:
    metric = metric_class(preset=preset)
    metric.update(as_batch(pred), as_batch(gt), None if trimap is None else as_batch(trimap))
    return float(metric.compute())


def test_sad_mse_mad_over_the_unknown_region():
    # U errors: 0.5 and 0.25. SAD = 0.75 / 1000; MSE = (0.25 + 0.0625) / 8; MAD = 0.75 / 8.
    assert _value(SAD, PRED, GT, TRIMAP) == pytest.approx(0.00075, rel=1e-12)
    assert _value(MSE, PRED, GT, TRIMAP) == pytest.approx(0.0390625, rel=1e-12)
    assert _value(MAD, PRED, GT, TRIMAP) == pytest.approx(0.09375, rel=1e-12)
    expected = {"SAD": 0.00075, "MSE": 0.0390625, "MAD": 0.09375}
    for name, value in reference.matting_errors(PRED, GT, TRIMAP, "dim").items():
        if name in expected:
            assert value == pytest.approx(expected[name], rel=1e-12)


def test_sad_mse_mad_over_the_whole_image_without_trimap():
    # Errors 0.5, 0.25, 1 over 16 pixels: SAD = 1.75 / 1000, MSE = 1.3125 / 16, MAD = 1.75 / 16.
    assert _value(SAD, PRED, GT) == pytest.approx(0.00175, rel=1e-12)
    assert _value(MSE, PRED, GT) == pytest.approx(0.08203125, rel=1e-12)
    assert _value(MAD, PRED, GT) == pytest.approx(0.109375, rel=1e-12)


@pytest.mark.parametrize("preset", ["zim", "sdmatte"])
def test_whole_image_presets_ignore_the_trimap_and_scale_by_1e3(preset, caplog):
    with caplog.at_level("WARNING"):
        assert _value(SAD, PRED, GT, TRIMAP, preset) == pytest.approx(0.00175, rel=1e-12)
        assert _value(MSE, PRED, GT, TRIMAP, preset) == pytest.approx(82.03125, rel=1e-12)
        assert _value(MAD, PRED, GT, TRIMAP, preset) == pytest.approx(109.375, rel=1e-12)


def test_conn_two_components_by_hand():
    # gt: a 2x2 block of ones (top left) and a 1x2 block (top right); pred equal but 0.5 on the
    # small block. For t <= 0.5 both blocks pass, above only the big one; the big block is the
    # largest component at every t, so it keeps l = 1 (phi = 1 for both). The small block and
    # the background leave at t = 0.1: l = 0. Small block: d_gt = 1 -> phi_gt = 0, d_pred = 0.5
    # -> phi_pred = 0.5. Background: d = 0 -> phi = 1. Conn = 2 * 0.5 / 1000.
    gt = np.zeros((4, 4), np.float32)
    gt[0:2, 0:2] = 1
    gt[0:2, 3] = 1
    pred = gt.copy()
    pred[0:2, 3] = 0.5
    assert _value(ConnectivityError, pred, gt) == pytest.approx(0.001, rel=1e-6)
    rule, order = "largest_foreground", "column_major"
    ones = np.ones(gt.shape)
    assert reference.connectivity_error(pred, gt, ones, rule, order) == pytest.approx(0.001)


def test_conn_alpha_153_over_255_passes_threshold_0_6():
    # pred = 153/255 = 0.6 everywhere, gt = 1. In float32 0.6 >= t for t <= 0.6, so every pixel
    # leaves omega at t = 0.7 with l = 0.6: phi_pred = 1 (d = 0), phi_gt = 1 - 0.4 = 0.6.
    # Conn = 9 * 0.4 / 1000. (With float64 thresholds, 0.6 < 0.6000000000000001: l = 0.5,
    # phi_gt = 0.5, Conn = 9 * 0.5 / 1000 = 0.0045: the MATLAB-incompatible answer.)
    pred = np.full((3, 3), 153, np.float32) / 255
    gt = np.ones((3, 3), np.float32)
    assert _value(ConnectivityError, pred, gt) == pytest.approx(0.0036, rel=1e-6)
    ones = np.ones(gt.shape)
    expected = reference.connectivity_error(pred, gt, ones, "largest_foreground", "column_major")
    assert expected == pytest.approx(0.0036, rel=1e-6)


def test_conn_with_no_component_above_the_first_threshold():
    # pred = 0.05 < 0.1 everywhere: omega is empty from t = 0.1, so l = 0 everywhere.
    # phi_pred = 1 (d = 0.05 < 0.15), phi_gt = 1 - 1 = 0: Conn = 16 * 1 / 1000.
    pred = np.full((4, 4), 0.05, np.float32)
    gt = np.ones((4, 4), np.float32)
    for preset in ("dim", "zim"):
        assert _value(ConnectivityError, pred, gt, preset=preset) == pytest.approx(0.016)


def test_constant_mattes_have_zero_gradient_error_and_no_division_by_zero():
    pred = np.full((5, 6), 0.3, np.float32)
    gt = np.full((5, 6), 0.7, np.float32)
    # Zero up to the kernel's rounding: its taps sum to ~1e-18, not exactly 0.
    with np.errstate(all="raise"):
        for preset in ("dim", "sdmatte"):
            assert _value(GradientError, pred, gt, preset=preset) == pytest.approx(0, abs=1e-20)
        ones = np.ones(pred.shape)
        grad = reference.gradient_error(pred, gt, ones, "gaussian_minmax")
        assert grad == pytest.approx(0, abs=1e-20)


def test_gradient_error_mat2gray_makes_dim_scale_free():
    gt = np.zeros((8, 8), np.float32)
    gt[:, 4:] = 1
    pred = np.zeros((8, 8), np.float32)
    pred[:, 3:] = 0.5  # min-max normalised: a step of height 1, shifted by one column
    dim_value = _value(GradientError, pred, gt)
    assert dim_value == pytest.approx(_value(GradientError, pred * 2, gt), rel=1e-12)
    assert _value(GradientError, pred, gt, preset="sdmatte") != pytest.approx(dim_value)


def test_tie_break_between_equal_components():
    # Two 2-pixel components: the top-right one comes first in row-major order (row 0), the
    # bottom-left one first in column-major order (column 0, MATLAB's bwconncomp order).
    mask = np.array([[0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], np.uint8)
    top_right = np.zeros((4, 4), bool)
    top_right[0, 2:] = True
    bottom_left = np.zeros((4, 4), bool)
    bottom_left[2, :2] = True
    rule = "largest_foreground"
    for select in (largest_component, reference.largest_component):
        np.testing.assert_array_equal(select(mask, rule, "row_major"), top_right)
        np.testing.assert_array_equal(select(mask, rule, "column_major"), bottom_left)


def test_sdmatte_component_rule_selects_the_background_when_it_is_largest():
    mask = np.zeros((6, 6), np.uint8)
    mask[1:3, 1:3] = 1  # 4 foreground pixels, 32 background pixels
    for select in (largest_component, reference.largest_component):
        background = select(mask, "largest_label_with_background", "row_major")
        np.testing.assert_array_equal(background, mask == 0)
        np.testing.assert_array_equal(select(mask, "largest_foreground", "row_major"), mask == 1)
    empty = np.zeros((3, 3), np.uint8)
    assert largest_component(empty, "largest_label_with_background", "row_major").all()
    assert not largest_component(empty, "largest_foreground", "row_major").any()


def test_row_major_tie_break_matches_skimage_label_argmax():
    # ZIM's and SDMatte's getLargestCC: skimage.measure.label(connectivity=1), first argmax.
    skimage_measure = pytest.importorskip("skimage.measure")
    rng = np.random.default_rng(3)
    for _ in range(30):
        mask = (rng.random((9, 11)) < 0.35).astype(np.uint8)
        labels = skimage_measure.label(mask, connectivity=1)
        if labels.max() == 0:
            continue
        expected = labels == np.argmax(np.bincount(labels.flat)[1:]) + 1
        got = largest_component(mask, "largest_foreground", "row_major")
        np.testing.assert_array_equal(got, expected)
        quirk = labels == np.argmax(np.bincount(labels.flat))
        got = largest_component(mask, "largest_label_with_background", "row_major")
        np.testing.assert_array_equal(got, quirk)


def test_float64_and_float32_inputs_give_the_same_conn():
    pred = np.full((3, 3), 153, np.float64) / 255
    gt = np.ones((3, 3))
    metric32, metric64 = ConnectivityError(), ConnectivityError()
    metric32.update(as_batch(pred), as_batch(gt))
    metric64.update(as_batch(pred, dtype=torch.float64), as_batch(gt, dtype=torch.float64))
    assert float(metric32.compute()) == float(metric64.compute())


def test_region_sums_equal_numpy_in_float64_with_and_without_a_region():
    rng = np.random.default_rng(0)
    pred, target = rng.random((2, 37, 53), dtype=np.float32)
    region = rng.random((37, 53)) < 0.3
    difference = pred.astype(np.float64) - target.astype(np.float64)
    for mask in (region, None):
        chosen = difference[mask] if mask is not None else difference.ravel()
        absolute, squared, count = region_sums(pred, target, mask)
        assert count == chosen.size
        assert absolute == pytest.approx(np.abs(chosen).sum(), rel=1e-12)
        assert squared == pytest.approx((chosen**2).sum(), rel=1e-12)
    assert region_sums(pred, target, np.zeros_like(region)) == (0.0, 0.0, 0)
