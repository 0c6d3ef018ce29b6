"""Slow reference: a plain numpy / scipy port of the metric definitions, one sample at a time.

This is what the fast metrics are checked against (tests) and timed against (benchmark). It
follows DIM's MATLAB code line by line where it can: the Gaussian-derivative kernel is built with
the same double loop, filtering uses the full 2-D kernel (``scipy.ndimage.convolve``, a true
convolution with replicated borders like ``imfilter(..., 'replicate', 'conv')``), components come
from ``scipy.ndimage.label``, and Conn keeps MATLAB's l-map with -1 for "not yet assigned".
It shares nothing with the fast path except the preset definitions. Do not use it for evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage

from mattekit.metrics.presets import MattingPreset, resolve_preset

FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])


def gauss(x: float, sigma: float) -> float:
    return math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))


def dgauss(x: float, sigma: float) -> float:
    return -x * gauss(x, sigma) / sigma**2


def gaussgradient_kernel(sigma: float = 1.4) -> np.ndarray:
    """MATLAB ``gaussgradient``'s hx: (9, 9) for sigma 1.4, hx(i, j) = g(i) g'(j), unit L2 norm."""
    epsilon = 1e-2
    halfsize = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon)))
    size = 2 * halfsize + 1
    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            hx[i, j] = gauss(i - halfsize, sigma) * dgauss(j - halfsize, sigma)
    return hx / math.sqrt(float(np.sum(np.abs(hx) * np.abs(hx))))


def mat2gray(image: np.ndarray) -> np.ndarray:
    """MATLAB ``mat2gray`` with the image's own limits (a constant image is returned unchanged)."""
    low, high = image.min(), image.max()
    if high == low:
        return image.astype(np.float64)
    return np.clip((image - low) / (high - low), 0, 1)


def gaussian_gradient_error(
    pred: np.ndarray, gt: np.ndarray, region: np.ndarray, minmax: bool
) -> float:
    """sum over region of (|grad pred| - |grad gt|)^2 / 1000, Gaussian-derivative filters."""
    if minmax:
        pred, gt = mat2gray(pred), mat2gray(gt)
    hx = gaussgradient_kernel(1.4)
    hy = hx.T
    pred_x = scipy.ndimage.convolve(pred, hx, mode="nearest")
    pred_y = scipy.ndimage.convolve(pred, hy, mode="nearest")
    gt_x = scipy.ndimage.convolve(gt, hx, mode="nearest")
    gt_y = scipy.ndimage.convolve(gt, hy, mode="nearest")
    pred_amp = np.sqrt(pred_x**2 + pred_y**2)
    gt_amp = np.sqrt(gt_x**2 + gt_y**2)
    error_map = (pred_amp - gt_amp) ** 2
    return float(np.sum(error_map * region)) / 1000


def sobel_gradient_error(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> float:
    """ZIM: mean over region of |sqrt(gx^2 + gy^2 + 1e-8)| differences x 1e3, Sobel, zero pad."""
    sobel_y = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64)
    sobel_x = sobel_y.T

    def magnitude(alpha: np.ndarray) -> np.ndarray:
        # torch conv2d is a correlation with zero padding
        gx = scipy.ndimage.correlate(alpha, sobel_x, mode="constant", cval=0.0)
        gy = scipy.ndimage.correlate(alpha, sobel_y, mode="constant", cval=0.0)
        return np.sqrt(gx * gx + gy * gy + 1e-8)

    error_map = np.abs(magnitude(pred) - magnitude(gt))
    return float(np.sum(error_map * region) / np.sum(region)) * 1e3


def largest_component(mask: np.ndarray, rule: str, tie_break: str) -> np.ndarray:
    """omega: the largest 4-connected component of ``mask`` (see presets for the options)."""
    if tie_break == "column_major":
        # MATLAB's bwconncomp numbers components in column-major scan order.
        labels_t, _ = scipy.ndimage.label(mask.T, structure=FOUR_CONNECTED)
        labels = labels_t.T
    else:
        labels, _ = scipy.ndimage.label(mask, structure=FOUR_CONNECTED)
    sizes = np.bincount(labels.ravel(), minlength=1)
    if rule == "largest_label_with_background":
        return labels == np.argmax(sizes)  # SDMatte: label 0 (background) takes part
    if len(sizes) == 1:
        return np.zeros(mask.shape, dtype=bool)
    return labels == np.argmax(sizes[1:]) + 1  # first of the largest, in label order


def connectivity_error(
    pred: np.ndarray, gt: np.ndarray, region: np.ndarray, rule: str, tie_break: str
) -> float:
    """DIM's compute_connectivity_error, in single precision like MATLAB."""
    pred = pred.astype(np.float32)
    gt = gt.astype(np.float32)
    thresh_steps = [np.float32(k / 10) for k in range(11)]
    l_map = np.full(pred.shape, -1, dtype=np.float32)
    for i in range(1, len(thresh_steps)):
        pred_alpha_thresh = pred >= thresh_steps[i]
        gt_alpha_thresh = gt >= thresh_steps[i]
        omega = largest_component(pred_alpha_thresh & gt_alpha_thresh, rule, tie_break)
        flag = (l_map == -1) & ~omega
        l_map[flag] = thresh_steps[i - 1]
    l_map[l_map == -1] = 1
    pred_d = pred - l_map
    gt_d = gt - l_map
    pred_phi = 1 - pred_d * (pred_d >= np.float32(0.15)).astype(np.float32)
    gt_phi = 1 - gt_d * (gt_d >= np.float32(0.15)).astype(np.float32)
    return float(np.sum(np.abs(pred_phi - gt_phi).astype(np.float64) * region)) / 1000


def sad(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> float:
    """sum over region of |pred - gt| / 1000."""
    return float(np.sum(np.abs(pred - gt) * region)) / 1000


def mse(pred: np.ndarray, gt: np.ndarray, region: np.ndarray, scale: float = 1.0) -> float:
    """mean over region of (pred - gt)^2, times ``scale``; NaN for an empty region."""
    with np.errstate(invalid="ignore"):
        return float(np.sum((pred - gt) ** 2 * region) / np.sum(region)) * scale


def mad(pred: np.ndarray, gt: np.ndarray, region: np.ndarray, scale: float = 1.0) -> float:
    """mean over region of |pred - gt|, times ``scale``; NaN for an empty region."""
    with np.errstate(invalid="ignore"):
        return float(np.sum(np.abs(pred - gt) * region) / np.sum(region)) * scale


def gradient_error(pred: np.ndarray, gt: np.ndarray, region: np.ndarray, kind: str) -> float:
    """Grad in the preset's scale for ``kind`` in gaussian_minmax / gaussian / sobel."""
    if kind == "sobel":
        with np.errstate(invalid="ignore"):
            return sobel_gradient_error(pred, gt, region)
    return gaussian_gradient_error(pred, gt, region, minmax=kind == "gaussian_minmax")


def evaluation_region(
    shape: tuple[int, ...], trimap: np.ndarray | None, preset: MattingPreset
) -> np.ndarray:
    """(H, W) float64 0/1 mask of the pixels summed over."""
    if trimap is not None and preset.region == "trimap_unknown":
        return (trimap == 128).astype(np.float64)
    return np.ones(shape)


def matting_errors(
    pred: np.ndarray,
    gt: np.ndarray,
    trimap: np.ndarray | None = None,
    preset: str | MattingPreset = "dim",
) -> dict[str, float]:
    """The five matting errors of one sample in the preset's scale.

    Args:
        pred, gt: (H, W) alphas in [0, 1].
        trimap: (H, W) in {0, 128, 255}, or None.
        preset: preset name or :class:`MattingPreset`.

    Returns:
        ``{"SAD", "MSE", "MAD", "Grad", "Conn"}``; MSE and MAD (and a Sobel Grad) are NaN when the
        region is empty.
    """
    preset = resolve_preset(preset)
    pred = pred.astype(np.float64)
    gt = gt.astype(np.float64)
    region = evaluation_region(pred.shape, trimap, preset)
    return {
        "SAD": sad(pred, gt, region),
        "MSE": mse(pred, gt, region, preset.mse_scale),
        "MAD": mad(pred, gt, region, preset.mad_scale),
        "Grad": gradient_error(pred, gt, region, preset.gradient),
        "Conn": connectivity_error(pred, gt, region, preset.conn_component, preset.conn_tie_break),
    }
