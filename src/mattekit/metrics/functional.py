"""Per-sample computations behind the matting metrics (the fast path).

SAD / MSE / MAD's sums are one pass on the CPU (:mod:`.region_sums`); the gradient filters run
on the CPU with OpenCV, in float64. The slow, literal port of the same definitions is
:mod:`.reference`.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from mattekit.metrics.presets import GradientKind

GAUSSIAN_SIGMA = 1.4
# ZIM adds this inside the square root of its Sobel magnitudes.
SOBEL_EPS = 1e-8


@functools.cache
def gaussian_derivative_factors(sigma: float = GAUSSIAN_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """1-D factors of DIM's Gaussian-derivative kernel ``hx(i, j) = g(i) g'(j) / ||g g'^T||``.

    The 2-D kernel is an outer product, and the L2 norm of an outer product is the product of
    the factors' norms, so normalising each factor to unit length gives the same kernel.

    Returns:
        ``(g, dg)``: two (2h+1,) float64 arrays, h = ceil(sigma sqrt(-2 ln(sqrt(2 pi) sigma 0.01)))
        (h = 4 for sigma = 1.4).
    """
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * 1e-2))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    dg = -x * g / sigma**2
    return g / np.linalg.norm(g), dg / np.linalg.norm(dg)


def mat2gray(alpha: np.ndarray, limits: tuple[float, float] | None = None) -> np.ndarray:
    """MATLAB ``mat2gray``: min-max normalise (H, W) to [0, 1]; a constant image is returned as is
    (MATLAB's behaviour; its gradient is zero either way).

    Args:
        limits: ``(min, max)`` of the whole image when ``alpha`` is a window of it (default:
            ``alpha``'s own).
    """
    low, high = limits if limits is not None else (float(alpha.min()), float(alpha.max()))
    if high == low:
        return alpha
    return (alpha - low) / (high - low)


def gaussian_gradient_magnitude(alpha: np.ndarray, sigma: float = GAUSSIAN_SIGMA) -> np.ndarray:
    """|grad alpha| with DIM's Gaussian-derivative filters, replicated borders.

    Args:
        alpha: (H, W) float64.

    Returns:
        (H, W) float64 ``sqrt(gx^2 + gy^2)``.
    """
    g, dg = gaussian_derivative_factors(sigma)
    # MATLAB's imfilter(..., 'conv') flips the kernel; cv2 correlates, so pass flipped factors.
    g_flipped, dg_flipped = g[::-1].copy(), dg[::-1].copy()
    border = cv2.BORDER_REPLICATE
    # hx = g (rows) x g' (columns); hy = hx^T = g' (rows) x g (columns).
    gx = cv2.sepFilter2D(alpha, cv2.CV_64F, dg_flipped, g_flipped, borderType=border)
    gy = cv2.sepFilter2D(alpha, cv2.CV_64F, g_flipped, dg_flipped, borderType=border)
    return np.sqrt(gx * gx + gy * gy)


def sobel_gradient_magnitude(alpha: np.ndarray) -> np.ndarray:
    """ZIM's |grad alpha|: 3x3 Sobel (unnormalised), zero padding, ``sqrt(gx^2 + gy^2 + 1e-8)``.

    Args:
        alpha: (H, W) float64.

    Returns:
        (H, W) float64.
    """
    border = cv2.BORDER_CONSTANT  # torch conv2d(padding=1) pads with zeros
    gx = cv2.Sobel(alpha, cv2.CV_64F, 1, 0, ksize=3, borderType=border)
    gy = cv2.Sobel(alpha, cv2.CV_64F, 0, 1, ksize=3, borderType=border)
    return np.sqrt(gx * gx + gy * gy + SOBEL_EPS)


def gradient_error(
    pred: np.ndarray, target: np.ndarray, region: np.ndarray | None, kind: GradientKind
) -> float:
    """Gradient error of one sample, in the preset's scale.

    Args:
        pred, target: (H, W) float32 or float64 alphas in [0, 1] (computed in float64).
        region: (H, W) bool pixels to sum over, or None for the whole image.
        kind: ``"gaussian_minmax"`` / ``"gaussian"``: sum over the region of
            ``(|grad pred| - |grad gt|)^2`` / 1000 (after ``mat2gray`` for the first);
            ``"sobel"``: mean over the region of ``||grad pred| - |grad gt||`` x 1e3 (NaN for an
            empty region: a mean over no pixels is undefined).
    """
    as_float64 = lambda alpha: alpha.astype(np.float64, copy=False)  # noqa: E731
    if kind == "sobel":
        magnitudes = [sobel_gradient_magnitude(as_float64(alpha)) for alpha in (pred, target)]
        error = np.abs(magnitudes[0] - magnitudes[1])
        selected = error if region is None else error[region]
        return float(selected.mean()) * 1e3 if selected.size else float("nan")
    if kind not in ("gaussian_minmax", "gaussian"):
        raise ValueError(f"unknown gradient kind {kind!r}")
    # mat2gray's limits are the whole image's; the rest needs only the region's window.
    limits = [(float(alpha.min()), float(alpha.max())) for alpha in (pred, target)]
    if kind == "gaussian":
        limits = [None, None]
    if region is not None:
        window = _filter_window(region, len(gaussian_derivative_factors()[0]) // 2)
        if window is None:
            return 0.0
        pred, target, region = pred[window], target[window], region[window]
    pred, target = as_float64(pred), as_float64(target)
    if kind == "gaussian_minmax":
        pred, target = mat2gray(pred, limits[0]), mat2gray(target, limits[1])
    difference = gaussian_gradient_magnitude(pred) - gaussian_gradient_magnitude(target)
    squared = difference * difference
    return float(squared.sum() if region is None else squared[region].sum()) / 1000


def _filter_window(region: np.ndarray, radius: int) -> tuple[slice, slice] | None:
    """The region's bounding box grown by a filter's ``radius`` (clipped to the image).

    Filtering that window gives the whole image's values on the region: each region pixel's
    neighbourhood lies inside it, and where the window meets the image border, the replicated
    border is the image's own. None for an empty region.
    """
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(region[rows[0] : rows[-1] + 1].any(axis=0))
    height, width = region.shape
    return (
        slice(max(rows[0] - radius, 0), min(rows[-1] + radius + 1, height)),
        slice(max(columns[0] - radius, 0), min(columns[-1] + radius + 1, width)),
    )
