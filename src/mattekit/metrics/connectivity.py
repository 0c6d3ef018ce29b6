"""Connectivity error (Rhemann et al. 2009) as DIM's MATLAB code computes it (the fast path).

For thresholds t_k = k / 10, k = 1..10, omega_k is the largest 4-connected component of
``(pred >= t_k) & (gt >= t_k)``. A pixel's level l is t_(k-1) for the first k at which it is not
in omega_k, and 1 if it is in every omega_k. With d = alpha - l and phi = 1 - d [d >= 0.15],
Conn = sum over the region of |phi_pred - phi_gt| / 1000.

MATLAB holds the mattes in single precision, so every comparison here is done in float32: with
float64 thresholds an alpha of exactly 153/255 would fail ``>= 0.6`` (0.6000000000000001).
"""

from __future__ import annotations

import cv2
import numpy as np

from mattekit.metrics.presets import ComponentRule, TieBreak

# float32(k / 10); ZIM's torch.arange and SDMatte's np.arange (compared in float32 under the
# numpy 1.x they pin) give the same float32 values.
CONN_THRESHOLDS = (np.arange(11, dtype=np.float64) / 10).astype(np.float32)
PHI_MIN_DIFFERENCE = np.float32(0.15)


def _first_in_scan_order(labels: np.ndarray, candidates: np.ndarray, tie_break: TieBreak) -> int:
    """The candidate label met first when scanning ``labels`` in the given order."""
    scan = labels.ravel() if tie_break == "row_major" else labels.T.ravel()
    return int(scan[np.argmax(np.isin(scan, candidates))])


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """Rows and columns spanned by the nonzero pixels of ``mask``; None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    band = mask[rows[0] : rows[-1] + 1]
    columns = np.flatnonzero(band.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def largest_component(mask: np.ndarray, rule: ComponentRule, tie_break: TieBreak) -> np.ndarray:
    """Select omega for one threshold.

    Args:
        mask: (H, W) uint8 in {0, 1}.
        rule: ``"largest_foreground"``: the largest 4-connected component of the mask (empty if
            the mask is empty); ``"largest_label_with_background"``: SDMatte's
            ``labels == argmax(bincount(labels))``, where the background label 0 competes and
            wins ties, so the result can be the mask's complement.
        tie_break: scan order deciding between equally large components.

    Returns:
        (H, W) bool.
    """
    box, selected = _largest_component_parts(mask, rule, tie_break)
    if box is None:
        return selected
    omega = np.zeros(mask.shape, dtype=bool)
    omega[box] = selected
    return omega


def _largest_component_parts(
    mask: np.ndarray, rule: ComponentRule, tie_break: TieBreak
) -> tuple[tuple[slice, slice] | None, np.ndarray]:
    """omega as ``(box, omega inside the box)``, all False outside it; or ``(None, omega)``
    when omega is not confined to the mask's bounding box (SDMatte's background label)."""
    if rule not in ("largest_foreground", "largest_label_with_background"):
        raise ValueError(f"unknown component rule {rule!r}")
    box = _bounding_box(mask)
    if box is None:  # no foreground: SDMatte's argmax picks the background label, i.e. all
        return None, np.full(mask.shape, rule == "largest_label_with_background")
    # Components lie inside the mask's bounding box (on average ~3/4 of an alphamatting image),
    # and scan orders within it agree with those of the whole image. Labels without OpenCV's
    # stats, then a bincount, is about twice as fast as connectedComponentsWithStats.
    count, labels = cv2.connectedComponents(mask[box], connectivity=4, ltype=cv2.CV_32S)
    if count == 2 and rule == "largest_foreground":  # a single component: no areas to compare
        return box, labels == 1
    foreground_areas = np.bincount(labels.ravel(), minlength=count)[1:]
    largest_area = foreground_areas.max()
    if rule == "largest_label_with_background":
        background_area = mask.size - int(foreground_areas.sum())
        if background_area >= largest_area:
            return None, mask == 0
    winners = np.flatnonzero(foreground_areas == largest_area) + 1
    winner = winners[0] if len(winners) == 1 else _first_in_scan_order(labels, winners, tie_break)
    return box, labels == winner


def connectivity_levels(
    pred: np.ndarray, target: np.ndarray, rule: ComponentRule, tie_break: TieBreak
) -> np.ndarray:
    """The l map: (H, W) float32 level of each pixel (see the module docstring)."""
    # survived = how many consecutive thresholds, from t_1, have the pixel in omega. MATLAB sets
    # l = t_(k-1) at the first k whose omega misses it, i.e. l = t[survived]; survived = 10
    # gives t_10 = 1, MATLAB's value for pixels never assigned.
    survived = np.zeros(pred.shape, dtype=np.uint8)
    alive = np.ones(pred.shape, dtype=bool)
    # pred >= t and target >= t exactly when min(pred, target) >= t: one comparison a threshold.
    both = np.minimum(pred, target)
    for k in range(1, len(CONN_THRESHOLDS)):
        threshold = CONN_THRESHOLDS[k]  # float32 scalar: the comparison stays in float32
        mask = (both >= threshold).view(np.uint8)
        box, selected = _largest_component_parts(mask, rule, tie_break)
        if box is None:
            alive &= selected
        else:  # omega is confined to the box: everything outside it dies
            inside = alive[box] & selected
            alive[:] = False
            alive[box] = inside
        if not alive.any():  # every pixel has its level; later thresholds change nothing
            break
        survived += alive
    return CONN_THRESHOLDS[survived]


def connectivity_error(
    pred: np.ndarray,
    target: np.ndarray,
    region: np.ndarray | None,
    rule: ComponentRule = "largest_foreground",
    tie_break: TieBreak = "column_major",
) -> float:
    """Conn of one sample: sum over the region of |phi_pred - phi_gt| / 1000.

    Args:
        pred, target: (H, W) float32 alphas in [0, 1].
        region: (H, W) bool, or None for the whole image.
        rule, tie_break: see :func:`largest_component`.
    """
    pred = np.asarray(pred, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    levels = connectivity_levels(pred, target, rule, tie_break)
    if region is not None:  # the levels need the whole image; phi only the region's pixels
        pred, target, levels = pred[region], target[region], levels[region]

    def phi(alpha: np.ndarray) -> np.ndarray:
        d = alpha - levels
        return np.where(d >= PHI_MIN_DIFFERENCE, np.float32(1) - d, np.float32(1))

    error = np.abs(phi(pred) - phi(target))
    return float(error.sum(dtype=np.float64)) / 1000
