"""L1, gradient and composition losses against values worked out by hand, and the shared
known / unknown region weighting."""

import pytest
import torch

from mattekit.losses import CompositionLoss, GradientLoss, L1Loss


def image(rows: list[list[float]]) -> torch.Tensor:
    """1 x 1 x H x W tensor from nested rows."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_l1_without_trimap_is_the_plain_mean():
    pred = image([[1.0, 0.0], [0.5, 0.25]])
    # |errors| 1, 0, 0.5, 0.25 -> 1.75 / 4
    assert L1Loss()(pred, torch.zeros_like(pred)).item() == pytest.approx(0.4375)


def test_l1_weights_known_and_unknown_means_separately():
    pred = image([[1.0, 0.5], [0.2, 0.0]])
    trimap = image([[0.5, 0.5], [1.0, 0.0]])
    # unknown (top row) errors 1.0, 0.5 -> mean 0.75; known (bottom row) 0.2, 0 -> mean 0.1;
    # 3 * 0.75 + 2 * 0.1 = 2.45
    loss = L1Loss(known_weight=2.0, unknown_weight=3.0)(pred, torch.zeros_like(pred), trimap)
    assert loss.item() == pytest.approx(2.45)


def test_l1_region_mean_pools_pixels_over_the_batch():
    pred = torch.zeros(2, 1, 2, 2)
    pred[0, 0, 0, 0] = 1.0
    trimap = torch.zeros(2, 1, 2, 2)
    trimap[0, 0, 0, 0] = 0.5
    trimap[1] = 0.5
    # unknown pixels: 1 in sample 0 (error 1) + 4 in sample 1 (error 0) -> 1 / 5 = 0.2, not the
    # per-sample average (1 + 0) / 2; known pixels (3, all exact) add 0
    assert L1Loss()(pred, torch.zeros_like(pred), trimap).item() == pytest.approx(0.2)


@pytest.mark.parametrize("trimap_value", [0.5, 1.0, 0.0])
def test_l1_empty_region_contributes_zero_not_nan(trimap_value):
    pred = image([[1.0, 0.0], [0.0, 0.0]]).requires_grad_()
    trimap = torch.full_like(pred, trimap_value)
    # only one region is populated, its mean error is 1 / 4; the empty one adds 0 whatever its
    # weight (weight 1 on the populated region in every case)
    weights = (1.0, 7.0) if trimap_value != 0.5 else (7.0, 1.0)
    loss = L1Loss(*weights)(pred, torch.zeros_like(pred), trimap)
    loss.backward()
    assert loss.item() == pytest.approx(0.25)
    assert torch.isfinite(pred.grad).all()


def test_trimap_values_snap_to_the_nearest_level():
    pred = image([[1.0, 0.0], [0.0, 0.0]])
    # a bilinearly resized trimap: 0.45 is unknown, 0.9 and 0.1 are known
    trimap = image([[0.45, 0.9], [0.1, 0.9]])
    # unknown: one pixel, error 1 -> 1; known: three exact pixels -> 0
    assert L1Loss()(pred, torch.zeros_like(pred), trimap).item() == pytest.approx(1.0)


def test_gradient_of_a_ramp_uses_normalized_sobel_with_replicated_border():
    # slope 1 along x over 2 pixels: with the replicated border every pixel sees
    # (right - left) / 2 = (1 - 0) / 2 = 0.5 in d/dx and 0 in d/dy; per pixel 0.5 + 0
    pred = image([[0.0, 1.0], [0.0, 1.0]])
    target = torch.zeros_like(pred)
    assert GradientLoss()(pred, target).item() == pytest.approx(0.5)
    # raw Sobel responses are 8x the derivative: 0.5 * 8 = 4 per pixel
    assert GradientLoss(normalized=False)(pred, target).item() == pytest.approx(4.0)


def test_gradient_of_an_interior_ramp_is_its_slope():
    # slope 0.25 along x over 5 columns: normalised Sobel gives the slope itself inside
    # ((x + 1) - (x - 1)) * 0.25 * (1 + 2 + 1) / 8 = 0.25, and half of it on the two border
    # columns; mean over the 5 columns (every row alike) = (3 * 0.25 + 2 * 0.125) / 5 = 0.2
    pred = torch.arange(5.0).mul(0.25).expand(1, 1, 3, 5)
    assert GradientLoss()(pred, torch.zeros_like(pred)).item() == pytest.approx(0.2)


def test_gradient_of_a_step():
    # step 0 | 1 between columns 1 and 2: the central difference (right - left) / 2 is 0.5 on
    # the two columns beside the step, 0 on the outer ones -> 4 * 0.5 / 8 pixels = 0.25
    pred = image([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    assert GradientLoss()(pred, torch.zeros_like(pred)).item() == pytest.approx(0.25)


def test_gradient_sums_the_x_and_y_terms_as_zim_eq_3():
    # f = 0.1 x + 0.2 y on 4 x 4: d/dx is 0.1 on the inner columns and 0.05 on the border
    # columns (mean 0.075); d/dy is 0.2 inside and 0.1 on the border rows (mean 0.15). ZIM's
    # eq. 3 adds the two per pixel: 0.075 + 0.15 = 0.225 (averaging them would give 0.1125)
    ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    pred = (0.1 * xs + 0.2 * ys)[None, None]
    assert GradientLoss()(pred, torch.zeros_like(pred)).item() == pytest.approx(0.225)
    # the loss is of the gradient difference: the same ramp in the target costs nothing
    assert GradientLoss()(pred, pred.clone()).item() == pytest.approx(0.0)


def test_gradient_region_weighting():
    # ramp 0, 0.1, 0.2, 0.3 along x: d/dx is 0.05 at both ends (replicated border), 0.1 inside
    pred = image([[0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.3]])
    trimap = image([[0.5, 1.0, 1.0, 0.0], [0.5, 1.0, 1.0, 0.0]])
    # unknown (column 0): 2 pixels, d/dx + d/dy = 0.05 each -> mean 0.05
    # known (columns 1-3): 6 pixels, (0.1 + 0.1 + 0.05) per row -> 0.5 / 6
    expected = 2.0 * 0.05 + 0.5 / 6
    loss = GradientLoss(unknown_weight=2.0)(pred, torch.zeros_like(pred), trimap)
    assert loss.item() == pytest.approx(expected)


def test_composition_is_l1_over_pixels_and_colour_channels():
    pred = image([[1.0, 0.0]])
    fg = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 1, 2)  # red
    bg = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 1, 2)  # blue
    composited = torch.zeros(1, 3, 1, 2)
    composited[0, 0, 0, 0] = 1.0  # red where alpha is 1, black where the composite shows blue
    # composite = red, blue; errors: pixel 0 none, pixel 1 only in blue -> 1 / (2 pixels x 3) = 1/6
    assert CompositionLoss()(pred, composited, fg, bg).item() == pytest.approx(1 / 6)
    # pixel 1 unknown: its mean over 3 channels is 1/3, times 3; pixel 0 (known) is exact
    trimap = image([[1.0, 0.5]])
    loss = CompositionLoss(unknown_weight=3.0)(pred, composited, fg, bg, trimap)
    assert loss.item() == pytest.approx(1.0)
