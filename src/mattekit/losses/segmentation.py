"""Segmentation losses: BCE and soft IoU on masks (SAMA, TeachDiffusionMatting's transparency
map), cross-entropy on region classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.losses._checks import check_image, check_same_shape


class BCELoss(nn.Module):
    """Binary cross-entropy on logits, mean over every element.

    ``forward(logits, target)``: logits B x C x H x W (raw scores), target the same shape in
    [0, 1] (soft targets such as an alpha matte are allowed).
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Scalar loss. logits, target: B x C x H x W."""
        check_image("logits", logits)
        check_same_shape("target", target, "logits", logits)
        # the logits form is the numerically stable one (log-sum-exp inside)
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


class IoULoss(nn.Module):
    """Soft IoU loss ``1 - (I + smooth) / (U + smooth)``, averaged over samples and channels.

    Per sample and channel, with p the probabilities and t the target in [0, 1]:
    ``I = sum p * t`` and ``U = sum (p + t - p * t)`` over H x W. ``from_logits=True`` (default)
    applies a sigmoid to the input first; ``False`` takes probabilities as given. ``smooth``
    keeps an empty prediction of an empty target at loss 0 and the gradient bounded there.

    ``forward(pred, target)``: pred B x C x H x W logits or probabilities, target the same shape.
    """

    def __init__(self, from_logits: bool = True, smooth: float = 1.0) -> None:
        super().__init__()
        self.from_logits = from_logits
        self.smooth = smooth

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Scalar loss. pred, target: B x C x H x W."""
        check_image("pred", pred)
        check_same_shape("target", target, "pred", pred)
        prob = pred.sigmoid() if self.from_logits else pred
        target = target.to(prob.dtype)
        intersection = (prob * target).sum(dim=(2, 3))
        union = (prob + target - prob * target).sum(dim=(2, 3))
        return (1 - (intersection + self.smooth) / (union + self.smooth)).mean()

    def extra_repr(self) -> str:
        return f"from_logits={self.from_logits}, smooth={self.smooth}"


class CrossEntropyLoss(nn.Module):
    """Cross-entropy over region classes, ignoring ``ignore_index`` pixels.

    Mean over the non-ignored pixels, each weighted by ``weight[class]`` when class weights are
    given (the weighted mean torch uses). Unlike ``torch.nn.CrossEntropyLoss`` a batch with every
    pixel ignored gives 0, not NaN. ``weight`` is a buffer, so it follows ``.to(device)``.

    ``forward(logits, target)``: logits B x C x H x W, target B x H x W long class indices in
    [0, C) or ``ignore_index``.
    """

    weight: Tensor | None

    def __init__(self, ignore_index: int = -1, weight: Tensor | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        if weight is not None:
            weight = torch.as_tensor(weight, dtype=torch.float32)
            if weight.ndim != 1:
                raise ValueError(f"weight must be 1-D (one per class), got {tuple(weight.shape)}")
        # not persistent: the class weights are configuration, not state a checkpoint must carry
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Scalar loss. logits: B x C x H x W; target: B x H x W long."""
        check_image("logits", logits)
        batch, classes, height, width = logits.shape
        if tuple(target.shape) != (batch, height, width):
            raise ValueError(
                f"target must be B x H x W matching logits {tuple(logits.shape)}, i.e. "
                f"{(batch, height, width)}, got {tuple(target.shape)}"
            )
        if target.dtype != torch.long:
            raise ValueError(f"target must be a long tensor of class indices, got {target.dtype}")
        weight = self.weight
        if weight is not None:
            if weight.numel() != classes:
                raise ValueError(
                    f"weight has {weight.numel()} entries but logits have {classes} classes"
                )
            weight = weight.to(logits.dtype)
        total = F.cross_entropy(
            logits, target, weight=weight, ignore_index=self.ignore_index, reduction="sum"
        )
        valid = target != self.ignore_index
        if weight is None:
            normaliser = valid.sum().to(logits.dtype)
        else:
            # ignored pixels may hold an out-of-range index: clamp before the lookup, then zero
            normaliser = (weight[target.clamp(0, classes - 1)] * valid).sum()
        # an all-ignored batch has total 0: divide by 1 instead of 0 to return 0
        normaliser = torch.where(normaliser > 0, normaliser, torch.ones_like(normaliser))
        return total / normaliser

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"
