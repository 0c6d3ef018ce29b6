"""BCE, soft IoU and cross-entropy against values worked out by hand."""

import math

import pytest
import torch

from mattekit.losses import BCELoss, CrossEntropyLoss, IoULoss


def row(values: list[float]) -> torch.Tensor:
    """1 x 1 x 1 x N tensor."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_bce_on_logits():
    # sigmoid(0) = 1/2 and sigmoid(ln 3) = 3/4; both targets 1:
    # (-ln 1/2 - ln 3/4) / 2 = (ln 2 + ln 4/3) / 2 = ln(8/3) / 2
    loss = BCELoss()(row([0.0, math.log(3.0)]), row([1.0, 1.0]))
    assert loss.item() == pytest.approx(math.log(8 / 3) / 2)


def test_bce_accepts_soft_targets():
    # at logit 0 the loss is ln 2 whatever the target: -(t ln 1/2 + (1 - t) ln 1/2)
    assert BCELoss()(row([0.0, 0.0]), row([0.3, 0.8])).item() == pytest.approx(math.log(2))


def test_iou_on_probabilities():
    prob, target = row([1.0, 0.0, 1.0, 0.0]), row([1.0, 1.0, 0.0, 0.0])
    # intersection 1, union 3: 1 - 1/3; with smooth 1: 1 - 2/4
    assert IoULoss(from_logits=False, smooth=0.0)(prob, target).item() == pytest.approx(2 / 3)
    assert IoULoss(from_logits=False)(prob, target).item() == pytest.approx(0.5)


def test_iou_on_logits_applies_sigmoid():
    # logits 0 -> p = 0.5 everywhere; target 1, 1, 0, 0:
    # I = 0.5 + 0.5 = 1, U = sum(p) + sum(t) - I = 2 + 2 - 1 = 3 -> 1 - 1/3
    loss = IoULoss(smooth=0.0)(row([0.0] * 4), row([1.0, 1.0, 0.0, 0.0]))
    assert loss.item() == pytest.approx(2 / 3)


def test_iou_averages_samples_and_empty_masks_score_zero():
    prob = torch.cat([torch.zeros(1, 1, 1, 4), row([1.0, 0.0, 1.0, 0.0])])
    target = torch.cat([torch.zeros(1, 1, 1, 4), row([1.0, 1.0, 0.0, 0.0])])
    # sample 0: empty vs empty -> (0 + 1) / (0 + 1) -> loss 0; sample 1 -> 1 - 2/4; mean 0.25
    assert IoULoss(from_logits=False)(prob, target).item() == pytest.approx(0.25)


def two_class_logits(pixels: int) -> torch.Tensor:
    """1 x 2 x 1 x pixels logits (0, ln 3): softmax gives class 0 1/4, class 1 3/4."""
    logits = torch.zeros(1, 2, 1, pixels)
    logits[:, 1] = math.log(3.0)
    return logits


def test_cross_entropy_ignores_pixels():
    target = torch.tensor([[[0, 1, -1]]])
    # class 0 costs -ln 1/4 = ln 4, class 1 -ln 3/4 = ln 4/3; the -1 pixel is left out
    expected = (math.log(4) + math.log(4 / 3)) / 2
    assert CrossEntropyLoss()(two_class_logits(3), target).item() == pytest.approx(expected)


def test_cross_entropy_class_weights_give_a_weighted_mean():
    target = torch.tensor([[[0, 1, -1]]])
    # weights 1 and 3: (1 * ln 4 + 3 * ln 4/3) / (1 + 3)
    expected = (math.log(4) + 3 * math.log(4 / 3)) / 4
    loss = CrossEntropyLoss(weight=torch.tensor([1.0, 3.0]))(two_class_logits(3), target)
    assert loss.item() == pytest.approx(expected)


def test_cross_entropy_all_ignored_is_zero_not_nan():
    logits = two_class_logits(2).requires_grad_()
    loss = CrossEntropyLoss(weight=torch.tensor([1.0, 3.0]))(logits, torch.full((1, 1, 2), -1))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logits.grad).all()


def test_cross_entropy_validates_target_and_weight():
    logits = two_class_logits(3)
    with pytest.raises(ValueError, match="target must be B x H x W"):
        CrossEntropyLoss()(logits, torch.zeros(1, 1, 1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="long"):
        CrossEntropyLoss()(logits, torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="weight has 3 entries"):
        CrossEntropyLoss(weight=torch.ones(3))(logits, torch.zeros(1, 1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="logits must be B x C x H x W"):
        CrossEntropyLoss()(logits[0], torch.zeros(1, 1, 3, dtype=torch.long))
