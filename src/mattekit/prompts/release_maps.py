"""SDMatte's release conventions for evaluation prompts, as pure numpy functions.

Each function reproduces one step of the test branch of vivoCameraResearch/SDMatte's
``data/dataset.py`` (``GenBBox`` l.197-255, ``GenPoint`` l.258-311, test transforms l.901-909),
so that the ``sdmatte`` protocol (:mod:`mattekit.prompts.protocols`) prompts a model exactly as
the release does. They were run beside the release's own classes on the same inputs (equal to
float32 rounding). mattekit's own conventions live in :mod:`mattekit.nn.prompt_maps` and
:mod:`mattekit.data.prompts`.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.ndimage


def filtered_click_map(points: np.ndarray, size: tuple[int, int], sigma_px: float) -> np.ndarray:
    """The release's click map: per click a delta blurred by ``scipy.ndimage.gaussian_filter``
    (mode 'reflect', truncate 4.0) and divided by its own max; the max over clicks.

    The reflecting border folds the blur's mass back into the image, so a click near an edge
    peaks on the edge, not on the click: 1 px from an edge with a 2 px sigma the click itself
    is 0.8896 (0.7914 one pixel from a corner), where an exact Gaussian is 1. The blur is
    separable and a delta is the outer product of two 1-D deltas, so two 1-D filters give the
    release's 2-D filter at a fraction of its cost.

    Args:
        points: N x 2 ``(x, y)`` integer pixel coordinates (N may be 0).
        size: ``(H, W)`` of the map.
        sigma_px: the blur's sigma in pixels (the release's ``radius``: 25 at 512 in training,
            ``radius + 10`` = 35 at 1024 at test).

    Returns:
        H x W float32 in [0, 1]; zeros when there is no click.
    """
    height, width = size
    result = np.zeros((height, width), np.float32)
    for x, y in np.asarray(points, np.int64).reshape(-1, 2):
        profile_y = _filtered_delta(int(y), height, sigma_px)
        profile_x = _filtered_delta(int(x), width, sigma_px)
        blurred = np.outer(profile_y, profile_x)
        np.maximum(result, (blurred / blurred.max()).astype(np.float32), out=result)
    return result


def _filtered_delta(index: int, length: int, sigma_px: float) -> np.ndarray:
    delta = np.zeros(length, np.float64)
    delta[index] = 1.0
    return scipy.ndimage.gaussian_filter1d(delta, sigma_px, mode="reflect", truncate=4.0)


def exclusive_box_map(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The release's box map: ``map[y0:y1, x0:x1] = 1``, which leaves out row ``y1`` and
    column ``x1`` although the box's corners are the object's last row and column
    (``dataset.py:247``).

    Args:
        box: 4 ``(x0, y0, x1, y1)`` pixel coordinates; cast to int by truncation (the release's
            are integers already: ``argwhere`` indices, plus ``int`` padding) and clipped to
            the map as the release clips them (l.242-243).
        size: ``(H, W)`` of the map.

    Returns:
        H x W float32 {0, 1}.
    """
    height, width = size
    x0, y0, x1, y1 = (int(value) for value in np.asarray(box).reshape(4))
    x0, x1 = max(0, x0), min(width, x1)
    y0, y1 = max(0, y0), min(height, y1)
    result = np.zeros((height, width), np.float32)
    result[y0:y1, x0:x1] = 1.0
    return result


def largest_component_box(alpha: np.ndarray) -> np.ndarray:
    """The release's box source (``dataset.py:206-229``): the box of the largest 4-connected
    component of ``alpha > 0`` when its area is at least 10x the second largest's (or it is
    the only one), else the box of every pixel with ``alpha > 0``.

    Connectivity 4 is ``scipy.ndimage.label``'s default structure, which the release uses.

    Args:
        alpha: H x W float in [0, 1].

    Returns:
        4 int64 ``(x0, y0, x1, y1)``, corners inclusive (``argwhere``'s min and max).

    Raises:
        ValueError: when no pixel has ``alpha > 0`` (the release then gives an empty box map
            and the whole-image coordinates ``[0, 0, 1, 1]``).
    """
    foreground = np.asarray(alpha) > 0
    if not foreground.any():
        raise ValueError("largest_component_box: alpha has no pixel > 0, so there is no box")
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        foreground.astype(np.uint8), connectivity=4
    )
    stats = stats[1:count]  # row 0 is the background
    order = np.argsort(stats[:, cv2.CC_STAT_AREA])[::-1]
    largest = stats[order[0]]
    second_area = stats[order[1], cv2.CC_STAT_AREA] if len(order) > 1 else 0
    if largest[cv2.CC_STAT_AREA] >= 10 * second_area:
        x0, y0 = largest[cv2.CC_STAT_LEFT], largest[cv2.CC_STAT_TOP]
        x1 = x0 + largest[cv2.CC_STAT_WIDTH] - 1
        y1 = y0 + largest[cv2.CC_STAT_HEIGHT] - 1
        return np.array([x0, y0, x1, y1], np.int64)
    ys, xs = np.nonzero(foreground)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.int64)


def release_positive_clicks(
    alpha: np.ndarray,
    count: int,
    rng: np.random.Generator | np.random.RandomState,
    threshold: float = 0.8,
) -> np.ndarray:
    """The release's clicks (``dataset.py:269-278``): ``count`` distinct pixels drawn uniformly
    among those with ``alpha > threshold`` (strict, absolute: not relative to ``alpha.max()``).

    When fewer than ``count`` pixels pass, the release gives no click at all (an all-zero map
    and zero coordinates), not fewer clicks; so does this function. The release draws with the
    global ``np.random`` and no seed; pass a seeded ``rng`` (a ``RandomState`` draws exactly as
    the release's ``np.random.choice`` after ``np.random.seed``).

    Args:
        alpha: H x W float in [0, 1].
        count: clicks to draw (the release: 10, at training and at test).
        rng: the random generator.
        threshold: alpha must exceed it (the release: 0.8).

    Returns:
        count x 2 int64 ``(x, y)``, or 0 x 2 when fewer than ``count`` pixels pass.
    """
    ys, xs = np.nonzero(np.asarray(alpha) > threshold)
    if len(ys) < count:
        return np.zeros((0, 2), np.int64)
    chosen = rng.choice(len(ys), size=count, replace=False)
    return np.stack([xs[chosen], ys[chosen]], axis=1).astype(np.int64)
