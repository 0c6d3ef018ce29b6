"""SDMatte's foreground duplication: two identical objects, a ground truth covering only one.

SDMatte's release tiles every training foreground twice, side by side, over a background twice as
wide and zeroes one copy's alpha at random, so a prompt (sampled from the GT alpha afterwards) must
pick out *its* instance rather than "the salient object" (``data/dataset.py:990``; the paper says
50 %). :func:`duplicate_foreground` does this to a :class:`RawSample`;
:class:`~mattekit.data.transforms.MattingTransform` applies it in training with probability
``AugmentConfig.duplicate_foreground``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from mattekit.data.composition import composite
from mattekit.data.sample import RawSample


def duplicate_foreground(raw: RawSample, rng: np.random.Generator) -> RawSample:
    """Tile the foreground twice over a background twice as wide; keep one copy as the target.

    Needs ``raw.fg`` and ``raw.bg``; a sample without them is returned unchanged.

    Args:
        raw: H x W sample with ``fg`` and ``bg``.
        rng: draws which copy is kept (left or right, each with probability 1/2).

    Returns:
        An H x 2W sample:

        * ``image``: fg over bg (resized to H x 2W, bilinear) with both copies' alphas;
        * ``alpha``: the original alpha on the kept half, 0 on the other;
        * ``fg``: the foreground tiled twice;
        * ``bg``: the resized background *with the other copy composited in*: the other copy is
          background as far as the target is concerned, and this keeps
          ``image = alpha * fg + (1 - alpha) * bg`` exact, which the transform relies on when it
          recomposites after blurring or colour jitter (with the plain background the
          recomposite would erase the other copy);
        * ``seg_mask``: the original on the kept half, False on the other;
        * ``trimap``, ``coarse_mask``, ``points``, ``box``: None, so they are re-sampled from the
          new alpha (a source's own ones describe the single object; training sources with
          fg / bg do not ship them anyway);
        * ``text``: "": a referring expression no longer singles out the target (two copies
          match it, and words about position may now be wrong); text-grounded families should
          leave this augmentation off;
        * everything else (``is_transparent``, ids) unchanged.
    """
    if raw.fg is None or raw.bg is None:
        return raw
    height, width = raw.size
    keep_right = bool(rng.integers(2))
    fg = np.concatenate([raw.fg, raw.fg], axis=1)
    bg = cv2.resize(raw.bg, (2 * width, height), interpolation=cv2.INTER_LINEAR)
    none = np.zeros_like(raw.alpha)
    alpha = _halves(raw.alpha, none, keep_right)
    other = _halves(none, raw.alpha, keep_right)
    # The two alphas do not overlap, so compositing the other copy into bg first and the target
    # afterwards gives the same image as compositing both at once (to within uint8 rounding:
    # exactly, since each pixel sees only one non-zero alpha).
    bg_with_other = composite(fg, bg, other)
    seg_mask = None
    if raw.seg_mask is not None:
        seg_mask = _halves(raw.seg_mask, np.zeros_like(raw.seg_mask), keep_right)
    return dataclasses.replace(
        raw,
        image=composite(fg, bg, alpha + other),
        alpha=alpha,
        fg=fg,
        bg=bg_with_other,
        seg_mask=seg_mask,
        trimap=None,
        coarse_mask=None,
        points=None,
        box=None,
        text="",
    )


def _halves(kept: np.ndarray, other: np.ndarray, keep_right: bool) -> np.ndarray:
    """H x 2W: ``kept`` on the chosen half, ``other`` on the remaining one."""
    return np.concatenate([other, kept] if keep_right else [kept, other], axis=1)
