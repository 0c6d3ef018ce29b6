"""RGBA cut-outs whose colours at soft edges are the foreground's, not the background's."""

from __future__ import annotations

import math

import cv2
import numpy as np

from mattekit.atomic_files import unit_to_uint8

#: The largest photo whose foreground is estimated at full size. pymatting's estimate holds
#: about 80 bytes a pixel (1.8 GB more at 24 MP); above this size it runs on a copy scaled down
#: to it, and each full-size pixel is solved from its own colour and alpha and the scaled-up
#: foreground and background (see :func:`cutout`).
FULL_SIZE_FOREGROUND_PIXELS = 8_000_000

#: How strongly a full-size pixel's foreground and background keep to the scaled-up estimates.
#: 0.2 was about the closest to the full-size estimate on the 27 alphamatting.com photos' mixed
#: pixels (0.1 and 0.4 within 0.3 colour levels of it, 0.01 and 0.8 further:
#: ``benchmarks/cutout_memory.py``).
PRIOR_WEIGHT = 0.2
_ROWS_PER_STRIP = 256


def cutout(
    image: np.ndarray, alpha: np.ndarray, max_pixels: int = FULL_SIZE_FOREGROUND_PIXELS
) -> np.ndarray:
    """H x W x 4 uint8 RGBA: foreground colours estimated by pymatting's multilevel method
    (Germer et al. 2020, ``estimate_foreground_ml``) and the alpha as the fourth channel.

    Copying the photo's colours instead would keep the background's share of every mixed pixel,
    a halo once the cut-out is laid on another background.

    A photo over ``max_pixels`` is estimated on a copy scaled down to ``max_pixels``, giving a
    smooth foreground F and background B. Each full-size pixel then takes the F that best
    explains its own colour I and alpha a next to the scaled-up ones (per channel, least squares
    of ``(a F + (1 - a) B - I)^2 + w ((F - F_up)^2 + (B - B_up)^2)``, ``w`` =
    :data:`PRIOR_WEIGHT`). At 24 MP that holds 520 MB above photo and alpha instead of 1.57 GB
    (23 instead of 69 bytes a pixel). Against the full-size estimate on the 27 alphamatting.com
    photos' mixed pixels: a mean 2.5 colour levels apart at half the side, 3.9 at a quarter (the
    photo's own colours: 29.5). Both from ``benchmarks/cutout_memory.py``.

    Args:
        image: H x W x 3 uint8 RGB; alpha: H x W float in [0, 1].
    """
    if image.shape[:2] != alpha.shape:
        raise ValueError(f"image is {image.shape[:2]} but alpha {alpha.shape}")
    height, width = alpha.shape
    unit_alpha = np.clip(alpha, 0, 1, dtype=np.float32)
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., 3] = unit_to_uint8(unit_alpha)
    scale = math.sqrt(max_pixels / (height * width))
    if scale >= 1:
        rgba[..., :3] = unit_to_uint8(_estimate(image, unit_alpha)[0])
        return rgba
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    estimates = _estimate(
        cv2.resize(image, small, interpolation=cv2.INTER_AREA),
        cv2.resize(unit_alpha, small, interpolation=cv2.INTER_AREA),
    )
    # Scaled to the full width now, to the full height a strip at a time (cv2.resize's
    # bilinear convention both ways), so no full-size float copy is ever held.
    wide = [cv2.resize(e, (width, small[1]), interpolation=cv2.INTER_LINEAR) for e in estimates]
    del estimates
    for top in range(0, height, _ROWS_PER_STRIP):
        rows = np.arange(top, min(top + _ROWS_PER_STRIP, height))
        foreground, background = (_rows_at(e, rows, height) for e in wide)
        colour = image[rows].astype(np.float32) / np.float32(255)
        rgba[rows, :, :3] = unit_to_uint8(
            _solve(colour, unit_alpha[rows][..., None], foreground, background)
        )
    return rgba


def _estimate(image: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pymatting's foreground and background, each H x W x 3 float32 in [0, 1] (float32
    inputs: it computes in float32, and float64 ones would only cost memory)."""
    from pymatting import estimate_foreground_ml  # numba compiles on first use

    image = image.astype(np.float32) / np.float32(255)
    return estimate_foreground_ml(image, alpha, return_background=True)


def _rows_at(wide: np.ndarray, rows: np.ndarray, height: int) -> np.ndarray:
    """Rows ``rows`` of ``wide`` (h x W x C) scaled to ``height`` rows, bilinear with the
    borders repeated, as ``cv2.resize`` places them."""
    source = np.clip((rows + 0.5) * (wide.shape[0] / height) - 0.5, 0, wide.shape[0] - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, wide.shape[0] - 1)
    weight = (source - low).astype(np.float32)[:, None, None]
    return wide[low] * (1 - weight) + wide[high] * weight


def _solve(
    colour: np.ndarray, alpha: np.ndarray, foreground: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """Per pixel and channel, the F of the least-squares (F, B) in :func:`cutout`'s docstring
    (a 2 x 2 system; its determinant is positive for any alpha since the weight is)."""
    weight = np.float32(PRIOR_WEIGHT)
    a11, a12, a22 = alpha * alpha + weight, alpha * (1 - alpha), (1 - alpha) ** 2 + weight
    b1 = alpha * colour + weight * foreground
    b2 = (1 - alpha) * colour + weight * background
    return (a22 * b1 - a12 * b2) / (a11 * a22 - a12 * a12)
