"""RGBA cut-outs whose colours at soft edges are the foreground's, not the background's."""

from __future__ import annotations

import numpy as np

from mattekit.data.io import unit_to_uint8


def cutout(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H x W x 4 uint8 RGBA: foreground colours estimated by pymatting's multilevel method
    (Germer et al. 2020, ``estimate_foreground_ml``) and the alpha as the fourth channel.

    Copying the photo's colours instead would keep the background's share of every mixed pixel,
    a halo once the cut-out is laid on another background.

    Args:
        image: H x W x 3 uint8 RGB; alpha: H x W float in [0, 1].
    """
    from pymatting import estimate_foreground_ml  # numba compiles on first use

    if image.shape[:2] != alpha.shape:
        raise ValueError(f"image is {image.shape[:2]} but alpha {alpha.shape}")
    alpha64 = np.clip(alpha, 0, 1).astype(np.float64)
    foreground = estimate_foreground_ml(image.astype(np.float64) / 255, alpha64)
    rgb = unit_to_uint8(foreground)
    return np.dstack([rgb, unit_to_uint8(alpha)])
