"""Laplacian pyramid loss against values worked out by hand."""

import pytest
import torch

from mattekit.losses import LaplacianLoss


def checkerboard(size: int) -> torch.Tensor:
    """1 x 1 x size x size board of 0 and 1."""
    index = torch.arange(size)
    return ((index[:, None] + index[None, :]) % 2).float()[None, None]


def test_one_level_is_the_plain_l1():
    pred = torch.tensor([[1.0, 0.0], [0.5, 0.25]])[None, None]
    # a single level is the image itself: (1 + 0 + 0.5 + 0.25) / 4
    assert LaplacianLoss(levels=1)(pred, torch.zeros_like(pred)).item() == pytest.approx(0.4375)


def test_constant_offset_lives_only_in_the_coarsest_level():
    pred, target = torch.full((1, 1, 32, 32), 0.75), torch.full((1, 1, 32, 32), 0.25)
    # band-pass levels of a constant are 0; the coarsest level (i = 4) keeps the 0.5 offset,
    # weighted 2^4: 16 * 0.5
    assert LaplacianLoss(levels=5)(pred, target).item() == pytest.approx(8.0)


def test_odd_sizes_are_padded():
    pred, target = torch.full((2, 1, 5, 7), 0.75), torch.full((2, 1, 5, 7), 0.25)
    # padded to 6 x 8 by replicating the border, still constant: 2^1 * 0.5
    assert LaplacianLoss(levels=2)(pred, target).item() == pytest.approx(1.0)


def test_checkerboard_lives_only_in_the_finest_level():
    board = checkerboard(4)
    # the 5-tap binomial blur [1, 4, 6, 4, 1] / 16 sums to 0 on alternating signs, so it turns
    # the board into its mean 0.5: level 1 = 0.5 everywhere, level 0 = board - 0.5 = +-0.5.
    # Against zeros: 1 * 0.5 + 2 * 0.5 = 1.5; against a flat 0.5 only level 0 differs: 0.5
    assert LaplacianLoss(levels=2)(board, torch.zeros_like(board)).item() == pytest.approx(1.5)
    assert LaplacianLoss(levels=2)(board, torch.full_like(board, 0.5)).item() == pytest.approx(0.5)


def test_region_is_masked_before_the_pyramid_and_averaged_over_the_whole_level():
    pred = torch.tensor([[1.0, 0.0], [0.0, 0.0]])[None, None]
    trimap = torch.tensor([[0.5, 0.5], [1.0, 0.0]])[None, None]
    # unknown: pred * mask = [[1, 0], [0, 0]], mean over all 4 pixels = 0.25 (L1Loss would
    # divide by the 2 unknown pixels and give 0.5); known: exact -> 0
    loss = LaplacianLoss(levels=1)(pred, torch.zeros_like(pred), trimap)
    assert loss.item() == pytest.approx(0.25)


def test_empty_known_region_contributes_zero():
    pred, target = torch.full((1, 1, 32, 32), 0.75), torch.full((1, 1, 32, 32), 0.25)
    trimap = torch.full_like(pred, 0.5)
    # all unknown: 3 x the plain loss (8.0); the empty known region adds 0 despite weight 5
    loss = LaplacianLoss(levels=5, known_weight=5.0, unknown_weight=3.0)(pred, target, trimap)
    assert loss.item() == pytest.approx(24.0)


def test_too_small_image_raises():
    with pytest.raises(ValueError, match="H and W >= 17"):
        LaplacianLoss(levels=5)(torch.zeros(1, 1, 16, 64), torch.zeros(1, 1, 16, 64))
    with pytest.raises(ValueError, match="levels"):
        LaplacianLoss(levels=0)
