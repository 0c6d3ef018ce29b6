"""Shape checks shared by every loss, so a mismatch names the argument instead of failing deep
inside a broadcast or a convolution."""

from __future__ import annotations

from torch import Tensor


def check_image(name: str, tensor: Tensor, channels: int | None = None) -> None:
    """Raise ValueError unless ``tensor`` is B x C x H x W (with C == ``channels`` when given)."""
    if tensor.ndim != 4:
        raise ValueError(f"{name} must be B x C x H x W, got shape {tuple(tensor.shape)}")
    if channels is not None and tensor.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s) (B x {channels} x H x W), "
            f"got shape {tuple(tensor.shape)}"
        )


def check_same_shape(name: str, tensor: Tensor, ref_name: str, ref: Tensor) -> None:
    """Raise ValueError unless ``tensor`` has exactly the shape of ``ref``."""
    if tensor.shape != ref.shape:
        raise ValueError(
            f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, "
            f"got {tuple(tensor.shape)}"
        )


def check_map_for(name: str, tensor: Tensor, ref_name: str, ref: Tensor) -> None:
    """Raise ValueError unless ``tensor`` is a B x 1 x H x W map matching ``ref``'s B, H and W."""
    check_image(name, tensor, channels=1)
    expected = (ref.shape[0], 1, ref.shape[2], ref.shape[3])
    if tuple(tensor.shape) != expected:
        raise ValueError(
            f"{name} must be B x 1 x H x W matching {ref_name} {tuple(ref.shape)}, i.e. "
            f"{expected}, got {tuple(tensor.shape)}"
        )
