"""Structural similarity loss (SAMA: matting and segmentation heads)."""

from __future__ import annotations

from kornia.metrics import ssim
from torch import Tensor, nn

from mattekit.losses._checks import check_image, check_same_shape


class SSIMLoss(nn.Module):
    """``1 - mean(SSIM map)`` between pred and target.

    The map is ``kornia.metrics.ssim(pred, target, window_size, max_val=1.0, eps=0.0,
    padding="same")``: Gaussian window with sigma 1.5 (``window_size`` only sets the number of
    taps, must be odd), reflect border keeping H x W, c1 = 0.01^2, c2 = 0.03^2. The mean runs
    over every pixel, channel and sample. Note this is 1 - SSIM in [0, 2], not kornia's
    ``ssim_loss`` (which is (1 - SSIM) / 2, clamped). ``eps=0`` keeps identical images at
    exactly 0 loss; c1, c2 > 0 already keep the division finite.

    Two flat images of values a and b score SSIM = (2ab + c1) / (a^2 + b^2 + c1).

    ``forward(pred, target)``: pred, target B x C x H x W in [0, 1]; H and W must exceed
    ``window_size // 2``. For SAMA's segmentation use, pass probabilities (sigmoid of logits).
    """

    def __init__(self, window_size: int = 11) -> None:
        super().__init__()
        if window_size < 1 or window_size % 2 == 0:
            raise ValueError(f"window_size must be a positive odd number, got {window_size}")
        self.window_size = window_size

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Scalar loss. pred, target: B x C x H x W in [0, 1]."""
        check_image("pred", pred)
        check_same_shape("target", target, "pred", pred)
        half = self.window_size // 2
        if min(pred.shape[-2:]) <= half:
            raise ValueError(
                f"pred is {tuple(pred.shape)} but SSIMLoss(window_size={self.window_size}) "
                f"needs H and W > {half}"
            )
        ssim_map = ssim(pred, target, self.window_size, max_val=1.0, eps=0.0, padding="same")
        return 1 - ssim_map.mean()

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}"
