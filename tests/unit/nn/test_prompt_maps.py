import math

import torch

from mattekit.nn.prompt_maps import box_mask, gaussian_point_map


def test_point_map_peaks_at_clicks_and_ignores_negatives_and_padding():
    points = torch.tensor([[[3.0, 2.0], [10.0, 12.0], [7.0, 7.0]]])
    labels = torch.tensor([[1, 0, -1]])
    heat = gaussian_point_map(points, labels, (16, 16), sigma=2.0)
    assert heat.shape == (1, 1, 16, 16)
    assert heat[0, 0, 2, 3] == 1.0
    assert torch.argmax(heat).item() == 2 * 16 + 3
    # one pixel away: exp(-1 / (2 sigma^2))
    assert math.isclose(heat[0, 0, 2, 4].item(), math.exp(-1 / 8), rel_tol=1e-6)
    # the negative click and the padding point add nothing
    assert heat[0, 0, 12, 10] < 1e-6 and heat[0, 0, 7, 7] < 0.01


def test_point_map_is_max_not_sum_and_zero_without_positives():
    points = torch.tensor([[[4.0, 4.0], [5.0, 4.0]], [[1.0, 1.0], [2.0, 2.0]]])
    labels = torch.tensor([[1, 1], [0, -1]])
    heat = gaussian_point_map(points, labels, (8, 8), sigma=torch.tensor([1.0, 1.0]))
    assert heat.max() <= 1.0
    assert heat[1].abs().sum() == 0


def test_box_mask_inclusive_corners():
    mask = box_mask(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), (6, 6))
    expected = torch.zeros(6, 6)
    expected[2:5, 1:4] = 1
    assert torch.equal(mask[0, 0], expected)
