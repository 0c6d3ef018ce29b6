"""Input checks shared by all metrics, and the trimap -> evaluation region rule."""

from __future__ import annotations

import functools
import logging

import torch
from torch import Tensor

from mattekit.metrics.presets import MattingPreset

log = logging.getLogger(__name__)

# A trimap is accepted in either encoding: (background, unknown, foreground).
_TRIMAP_255 = (0, 128, 255)
_TRIMAP_UNIT = (0.0, 0.5, 1.0)


@functools.cache
def warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time it is seen in this process."""
    log.warning(message)


def _check_4d_single_channel(name: str, tensor: object) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim != 4 or tensor.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, H, W), got {tuple(tensor.shape)}")
    return tensor


def check_alpha(name: str, alpha: object) -> Tensor:
    """Check that ``alpha`` is a (B, 1, H, W) floating tensor of finite values in [0, 1]."""
    alpha = _check_4d_single_channel(name, alpha)
    if not alpha.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor of alphas in [0, 1], got {alpha.dtype} "
            "(divide 8-bit mattes by 255)"
        )
    if alpha.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(alpha.shape)}")
    # One pass: aminmax propagates NaN, and infinities are outside [0, 1] anyway.
    low, high = torch.aminmax(alpha.detach())
    if not (low >= 0 and high <= 1):
        if not bool(torch.isfinite(alpha).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        raise ValueError(
            f"{name} has values outside [0, 1] (min {low.item():.6g}, max {high.item():.6g})"
        )
    return alpha


def check_pair(pred: object, target: object) -> tuple[Tensor, Tensor]:
    """Check a prediction / ground-truth pair of (B, 1, H, W) alphas with the same shape."""
    pred = check_alpha("pred", pred)
    target = check_alpha("target", target)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if pred.device != target.device:
        raise ValueError(
            f"pred and target must be on the same device, got {pred.device} and {target.device}"
        )
    return pred, target


def _unknown_if_valid(trimap: Tensor, encoding: tuple[float, float, float]) -> Tensor | None:
    """(B, H, W) unknown mask if every value is in ``(background, unknown, foreground)``."""
    background, unknown_value, foreground = encoding
    if trimap.dtype == torch.uint8 and trimap.device.type == "cpu":
        # numpy compares bytes several times faster than torch does on the CPU.
        values = trimap.detach()[:, 0].numpy()
        unknown = values == unknown_value
        if not (unknown | (values == background) | (values == foreground)).all():
            return None
        return torch.from_numpy(unknown)
    unknown = trimap[:, 0] == unknown_value
    valid = unknown | (trimap[:, 0] == background) | (trimap[:, 0] == foreground)
    return unknown if bool(valid.all()) else None


def trimap_unknown(trimap: object, like: Tensor) -> Tensor:
    """Unknown region of a trimap.

    Args:
        trimap: (B, 1, H, W), values {0, 128, 255} (any dtype) or {0, 0.5, 1} (floating dtype).
        like: the (B, 1, H, W) prediction it belongs to (for the shape check).

    Returns:
        (B, H, W) bool, True where the trimap is unknown (128 or 0.5), on ``trimap``'s device.
    """
    trimap = _check_4d_single_channel("trimap", trimap)
    if trimap.shape != like.shape:
        raise ValueError(
            f"trimap must have the same shape as pred, got {tuple(trimap.shape)} and "
            f"{tuple(like.shape)}"
        )
    if trimap.dtype == torch.bool or trimap.is_complex():
        raise ValueError(f"trimap must hold {{0, 128, 255}} or {{0, 0.5, 1}}, got {trimap.dtype}")
    unknown = _unknown_if_valid(trimap, _TRIMAP_255)
    if unknown is None and trimap.is_floating_point():
        unknown = _unknown_if_valid(trimap, _TRIMAP_UNIT)
    if unknown is not None:
        return unknown
    found = torch.unique(trimap.detach()).cpu()[:8].tolist()
    raise ValueError(
        "trimap values must all be in {0, 128, 255} (any dtype) or {0, 0.5, 1} (floating dtype); "
        f"found values such as {found} in a {trimap.dtype} trimap"
    )


def evaluation_region(trimap: Tensor | None, pred: Tensor, preset: MattingPreset) -> Tensor | None:
    """Pixels the metrics sum over: (B, H, W) bool, or None for the whole image.

    ``"trimap_unknown"`` presets use the trimap's unknown region when a trimap is given;
    ``"whole_image"`` presets ignore a trimap (after validating it) and say so once in the log.
    """
    if trimap is None:
        return None
    unknown = trimap_unknown(trimap, pred)
    if preset.region == "trimap_unknown":
        return unknown.to(pred.device)
    warn_once(
        f"matting metrics preset {preset.name!r} evaluates the whole image as its official code "
        "does; the trimap passed to update() is ignored"
    )
    return None
