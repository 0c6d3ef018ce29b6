"""SSIM loss: 1 - mean SSIM map, checked on flat images where SSIM has a closed form."""

import pytest
import torch

from mattekit.losses import SSIMLoss

C1 = 0.01**2  # (k1 * L)^2 with L = 1


def test_identical_images_have_zero_loss():
    image = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert SSIMLoss()(image, image.clone()).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(("a", "b"), [(1.0, 0.5), (1.0, 0.0), (0.25, 0.75)])
def test_flat_images_follow_the_luminance_term(a, b):
    # flat images have zero variance, so SSIM = (2ab + c1) / (a^2 + b^2 + c1) * c2 / c2;
    # e.g. a=1, b=0.5: 1 - 1.0001 / 1.2501 = 0.199984
    expected = 1 - (2 * a * b + C1) / (a**2 + b**2 + C1)
    # float64: in float32 the local variance E[x^2] - E[x]^2 of a flat image rounds to ~1e-8,
    # which against c2 = 9e-4 moves the result in the 4th digit
    pred = torch.full((1, 1, 12, 12), a, dtype=torch.float64)
    target = torch.full((1, 1, 12, 12), b, dtype=torch.float64)
    assert SSIMLoss()(pred, target).item() == pytest.approx(expected, rel=1e-9)
    # float32 agrees to that rounding
    assert SSIMLoss()(pred.float(), target.float()).item() == pytest.approx(expected, rel=1e-3)


def test_batch_mean_and_small_window():
    pred = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 1.0)])
    target = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 0.5)])
    # sample 0 scores 0, sample 1 scores 1 - 1.0001 / 1.2501; the mean halves it
    expected = (1 - (1 + C1) / (1.25 + C1)) / 2
    assert SSIMLoss(window_size=3)(pred, target).item() == pytest.approx(expected, rel=1e-5)


def test_window_larger_than_image_and_even_window_raise():
    with pytest.raises(ValueError, match="H and W > 5"):
        SSIMLoss(window_size=11)(torch.zeros(1, 1, 5, 32), torch.zeros(1, 1, 5, 32))
    with pytest.raises(ValueError, match="window_size"):
        SSIMLoss(window_size=4)
