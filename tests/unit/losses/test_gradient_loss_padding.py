"""GradientLoss's border: replicated (kornia's, the default) or zeros (conv2d's padding=1)."""

import pytest
import torch

from mattekit.losses import GradientLoss


def test_zero_padding_sees_a_step_at_the_border_of_a_constant_image():
    # a constant 0.5 on 3 x 3 against 0. Replicated: no gradient anywhere. Zero padding: the raw
    # Sobel x response is 0 in the middle column and +-0.5 x (the kernel weights of the rows that
    # lie inside) on the left and right ones: 0.5 x (1 + 2 + 1) = 2 on the middle row, 0.5 x
    # (2 + 1) = 1.5 on the corner rows; sum of |x| = 2 x (1.5 + 2 + 1.5) = 10, |y| likewise 10,
    # mean of |x| + |y| over 9 pixels = 20 / 9
    pred = torch.full((1, 1, 3, 3), 0.5)
    target = torch.zeros_like(pred)
    assert GradientLoss(normalized=False)(pred, target).item() == pytest.approx(0.0)
    zeros = GradientLoss(normalized=False, padding="zeros")(pred, target).item()
    assert zeros == pytest.approx(20 / 9)
    # normalised: the same divided by the kernel's absolute sum, 8
    assert GradientLoss(padding="zeros")(pred, target).item() == pytest.approx(20 / 9 / 8)


def test_padding_changes_only_the_border_pixels():
    # a ramp of 0.04 per column and 0.2 per row on 5 x 5: the inner 3 x 3 pixels see raw Sobel
    # responses 0.04 x 2 x 4 = 0.32 (x) and 0.2 x 2 x 4 = 1.6 (y) with either border
    pred = (torch.arange(25.0).reshape(1, 1, 5, 5) / 25).expand(2, 1, 5, 5).contiguous()
    target = torch.zeros_like(pred)
    trimap = torch.zeros_like(pred)
    trimap[..., 1:-1, 1:-1] = 0.5  # unknown = the inner pixels; known pixels weigh 0
    for padding in ("replicate", "zeros"):
        loss = GradientLoss(known_weight=0.0, normalized=False, padding=padding)
        assert loss(pred, target, trimap).item() == pytest.approx(0.32 + 1.6)
    # over the whole image the two borders differ
    whole = [GradientLoss(normalized=False, padding=p)(pred, target).item()
             for p in ("replicate", "zeros")]  # fmt: skip
    assert whole[0] != pytest.approx(whole[1])


def test_an_unknown_padding_is_refused_by_name():
    with pytest.raises(ValueError, match="padding"):
        GradientLoss(padding="reflect")
