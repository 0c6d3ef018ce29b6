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
    # (right - left) / 2 = (1 - 0) / 2 = 0.5 in d/dx and 0 in d/dy; the mean over
    # 4 pixels x 2 components is 4 * 0.5 / 8 = 0.25
    pred = image([[0.0, 1.0], [0.0, 1.0]])
    target = torch.zeros_like(pred)
    assert GradientLoss()(pred, target).item() == pytest.approx(0.25)
    # raw Sobel responses are 8x the derivative: 0.5 * 8 = 4 -> 16 / 8 = 2
    assert GradientLoss(normalized=False)(pred, target).item() == pytest.approx(2.0)


def test_gradient_region_weighting():
    # ramp 0, 0.1, 0.2, 0.3 along x: d/dx is 0.05 at both ends (replicated border), 0.1 inside
    pred = image([[0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.3]])
    trimap = image([[0.5, 1.0, 1.0, 0.0], [0.5, 1.0, 1.0, 0.0]])
    # unknown (column 0): 2 pixels x 2 components, d/dx 0.05 twice -> 0.1 / 4 = 0.025
    # known (columns 1-3): 6 pixels x 2 components, d/dx (0.1 + 0.1 + 0.05) per row -> 0.5 / 12
    expected = 2.0 * 0.025 + 0.5 / 12
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
