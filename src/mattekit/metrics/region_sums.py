"""SAD / MSE / MAD's sums in one pass over the pixels (a numba kernel).

numpy needs several passes for the same sums (the float64 difference, the region's gather,
``abs``, the sums) and each allocates an image-sized array. The kernel visits each pixel once
and allocates nothing, so a metric updated alone is faster than the numpy reference as well
as a collection is. numba comes with pymatting; it is imported, and the kernel compiled (then
cached on disk), on first use, so that importing the metrics stays cheap.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _kernels():
    import numba

    @numba.njit(cache=True, nogil=True)
    def in_region(pred, target, region):  # pragma: no cover - compiled
        absolute = 0.0
        squared = 0.0
        count = 0
        for index in range(pred.size):
            if region[index]:
                difference = np.float64(pred[index]) - np.float64(target[index])
                absolute += abs(difference)
                squared += difference * difference
                count += 1
        return absolute, squared, count

    @numba.njit(cache=True, nogil=True)
    def everywhere(pred, target):  # pragma: no cover - compiled
        absolute = 0.0
        squared = 0.0
        for index in range(pred.size):
            difference = np.float64(pred[index]) - np.float64(target[index])
            absolute += abs(difference)
            squared += difference * difference
        return absolute, squared, pred.size

    return in_region, everywhere


def region_sums(
    pred: np.ndarray, target: np.ndarray, region: np.ndarray | None
) -> tuple[float, float, int]:
    """``(sum |pred - gt|, sum (pred - gt)^2, pixel count)`` over ``region``.

    Args:
        pred, target: (H, W) float32 or float64 arrays; differences are taken in float64
            (exact for float32 inputs) and summed in float64.
        region: (H, W) bool, or None for the whole image.
    """
    in_region, everywhere = _kernels()
    pred, target = np.ravel(pred), np.ravel(target)
    if region is None:
        return everywhere(pred, target)
    return in_region(pred, target, np.ravel(region))
