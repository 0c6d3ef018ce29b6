"""Prompt sampling shared by every family: points, box, coarse mask and trimap from a GT alpha.

Sizes are fractions of the image's longer side so that one configuration means the same thing at
64 px (tests), 512 px (training) and 1024 px (SAM-style inference). Morphology sizes are a
kernel's half width ``r`` (an ellipse of ``2r + 1`` px). SDMatte's release, at 512 px
(``data/dataset.py:120-179``): point sigma 25 px (0.049); trimap and coarse-mask kernels of
``randint(15, 30)`` px, i.e. half widths 7-14 px, which ``(6.5 / 512, 14.5 / 512)`` draws
uniformly; box jitter 1 % (``configs/recipes/sdmatte_release.yaml`` holds the whole recipe).

The coarse mask can be degraded further (down-scaling, blur, convex hull: the coarse labels of
ZIM's label converter); those steps are off by default and draw random numbers only when on, so
the default prompts stay exactly as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import cv2
import numpy as np

from mattekit.prompts.release_maps import largest_component_box, release_positive_clicks

logger = logging.getLogger(__name__)

#: A coarse mask's morphology: one step, or two in the order written.
MaskOperation = Literal["erode", "dilate", "erode+dilate", "dilate+erode"]
#: Alpha at most the first value is certain background, at least the second certain foreground.
CERTAIN_ALPHA = (1e-3, 1.0 - 1e-3)


@dataclass(frozen=True)
class PromptConfig:
    """How prompts are sampled from a GT alpha (every field is a CLI override).

    Attributes:
        positive_points: inclusive range of positive clicks per sample.
        negative_points: inclusive range of negative clicks per sample (on pure background).
        point_threshold: positives are drawn where alpha >= point_threshold * max(alpha), so a
            glass object whose alpha never reaches 0.8 still gets clicks.
        absolute_threshold: SDMatte's release rule instead: positives where alpha >
            point_threshold, and no click at all when fewer pixels pass than clicks are asked
            (:func:`~mattekit.prompts.release_maps.release_positive_clicks`).
        point_sigma: Gaussian point-map sigma as a fraction of the longer side.
        point_map: ``gaussian`` (an exact max of Gaussians) or ``filtered`` (SDMatte's release:
            blurred deltas with a reflecting border, each divided by its max).
        box_source: ``tight`` (the box of alpha > 0) or ``largest_component`` (SDMatte's
            release: the largest component's box when it is >= 10x the second).
        box_map: ``inclusive`` (corners inside the box) or ``exclusive`` (SDMatte's release:
            ``[y0:y1, x0:x1]``, without the last row and column).
        box_jitter: each box edge moves by up to this fraction of the box's width / height.
        mask_threshold: range of the threshold that turns the alpha into a coarse mask.
        mask_morphology: range of the erode/dilate kernel's half width (fraction of side); each
            step of a two-step operation draws its own.
        mask_operations: the morphologies a coarse mask is drawn from, uniformly: ``erode`` or
            ``dilate`` (mattekit's default), or also ``erode+dilate`` / ``dilate+erode`` (all
            four: SDMatte's release, ``data/dataset.py:167-177``).
        trimap_width: range of the unknown band's growth on each side (fraction of side).
        trimap_separate_widths: draw the foreground's and the background's growth separately
            (SDMatte's release: two kernel sizes, ``data/dataset.py:133-134``) instead of once.
        trimap_thresholds: alpha at most the first value is certain background, at least the
            second certain foreground, before the band grows (SDMatte's release: 0.05, 0.95).
        use_source_trimap: keep a trimap shipped by the source instead of sampling one.
        use_source_prompts: keep points / box / coarse mask shipped by the source (MicroMat-3K,
            the benchmark's stored prompts) instead of sampling them; every click of the source
            is kept, even beyond ``max_points``.
        mask_downscale_probability: chance that the coarse mask is down-scaled then up-scaled
            (blocky, rounded outlines: a low-resolution segmentation).
        mask_downscale: range of the down-scaling factor (0.1 = a tenth of the side).
        mask_blur_probability: chance that the coarse mask is Gaussian-blurred and re-thresholded
            at 0.5 (smooth outlines, thin parts and small holes gone).
        mask_blur_sigma: range of the blur's sigma (fraction of side).
        mask_convex_hull_probability: chance that each connected part of the coarse mask is
            replaced by its convex hull (gaps between fingers, hair strands filled).
    """

    positive_points: tuple[int, int] = (1, 5)
    negative_points: tuple[int, int] = (0, 2)
    point_threshold: float = 0.8
    absolute_threshold: bool = False
    point_sigma: float = 0.05
    point_map: Literal["gaussian", "filtered"] = "gaussian"
    box_source: Literal["tight", "largest_component"] = "tight"
    box_map: Literal["inclusive", "exclusive"] = "inclusive"
    box_jitter: float = 0.01
    mask_threshold: tuple[float, float] = (0.1, 0.9)
    mask_morphology: tuple[float, float] = (0.0, 0.04)
    mask_operations: tuple[MaskOperation, ...] = ("erode", "dilate")
    trimap_width: tuple[float, float] = (0.01, 0.04)
    trimap_separate_widths: bool = False
    trimap_thresholds: tuple[float, float] = CERTAIN_ALPHA
    use_source_trimap: bool = True
    use_source_prompts: bool = True
    mask_downscale_probability: float = 0.0
    mask_downscale: tuple[float, float] = (0.1, 0.5)
    mask_blur_probability: float = 0.0
    mask_blur_sigma: tuple[float, float] = (0.005, 0.02)
    mask_convex_hull_probability: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "positive_points",
            "negative_points",
            "mask_threshold",
            "mask_morphology",
            "trimap_width",
            "mask_downscale",
            "mask_blur_sigma",
        ):
            low, high = getattr(self, name)
            if low > high or low < 0:
                raise ValueError(f"PromptConfig.{name} must be a range (low <= high, low >= 0)")
        for name in (
            "mask_downscale_probability",
            "mask_blur_probability",
            "mask_convex_hull_probability",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PromptConfig.{name} must lie in [0, 1]")
        unknown = [op for op in self.mask_operations if op not in get_args(MaskOperation)]
        if not self.mask_operations or unknown:
            raise ValueError(
                f"PromptConfig.mask_operations must list some of {get_args(MaskOperation)}, "
                f"got {list(self.mask_operations)}"
            )
        low, high = self.trimap_thresholds
        if not 0.0 <= low < high <= 1.0:
            raise ValueError("PromptConfig.trimap_thresholds must satisfy 0 <= low < high <= 1")
        if not (self.mask_downscale[0] > 0 and self.mask_downscale[1] <= 1):
            raise ValueError("PromptConfig.mask_downscale must lie in (0, 1]")
        if self.positive_points[1] < 1:
            raise ValueError("PromptConfig.positive_points must allow at least one click")

    @property
    def max_points(self) -> int:
        """Padded length of the point tensors (a source's own clicks may make them longer)."""
        return self.positive_points[1] + self.negative_points[1]


@dataclass
class Prompts:
    """Prompts for one sample at the network input size (H x W).

    Attributes:
        points: M x 2 float32 ``(x, y)``; ``labels`` M int64 (1 / 0, then -1 padding); M is
            ``max_points``, or the number of a source's clicks when it ships more.
        box: 4 float32 ``(x0, y0, x1, y1)``.
        coarse_mask: H x W uint8 {0, 1}.
        trimap: H x W uint8 {0, 128, 255}.
    """

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray
    coarse_mask: np.ndarray
    trimap: np.ndarray


def _kernel(size_fraction: float, side: int) -> np.ndarray | None:
    radius = round(size_fraction * side)
    if radius < 1:
        return None
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def sample_trimap(
    alpha: np.ndarray,
    width: float,
    side: int,
    background_width: float | None = None,
    thresholds: tuple[float, float] = CERTAIN_ALPHA,
) -> np.ndarray:
    """Trimap whose unknown band covers every uncertain pixel, grown by ``width * side`` into
    the foreground and ``background_width * side`` (default: ``width * side``) into the
    background.

    With ``thresholds`` (0.05, 0.95) this is SDMatte's release rule (``data/dataset.py:131-143``:
    both sides eroded by their own kernel, certain where alpha > 0.95 or < 0.05, to within 1e-5).

    Args:
        alpha: H x W float32 in [0, 1].
        thresholds: ``(low, high)``: alpha <= low is certain background, >= high foreground.

    Returns:
        H x W uint8 in {0, 128, 255}.
    """
    low, high = thresholds
    definite_fg = (alpha >= high).astype(np.uint8)
    possible_fg = (alpha > low).astype(np.uint8)
    fg_kernel = _kernel(width, side)
    bg_kernel = _kernel(width if background_width is None else background_width, side)
    if fg_kernel is not None:
        definite_fg = cv2.erode(definite_fg, fg_kernel)
    if bg_kernel is not None:
        possible_fg = cv2.dilate(possible_fg, bg_kernel)
    trimap = np.full(alpha.shape, 128, np.uint8)
    trimap[possible_fg == 0] = 0
    trimap[definite_fg == 1] = 255
    return trimap


def sample_coarse_mask(
    alpha: np.ndarray, threshold: float, steps: Sequence[tuple[str, float]], side: int
) -> np.ndarray:
    """Threshold, then erode / dilate in turn: the kind of mask a segmentation model hands over.

    Erosion can wipe out a thin object entirely; the mask then falls back to the plain threshold,
    and to ``alpha > 0`` if even that is empty, so a coarse mask is never empty for a non-empty
    alpha.

    Args:
        alpha: H x W float32 in [0, 1].
        steps: ``(operation, half width)`` pairs, ``"erode"`` or ``"dilate"`` with a kernel half
            width as a fraction of ``side``, applied in order.

    Returns:
        H x W uint8 {0, 1}.
    """
    mask = (alpha >= threshold).astype(np.uint8)
    morphed = mask
    for operation, size in steps:
        kernel = _kernel(size, side)
        if kernel is not None:
            morph = cv2.dilate if operation == "dilate" else cv2.erode
            morphed = morph(morphed, kernel)
    if morphed.any():
        mask = morphed
    if not mask.any():
        mask = (alpha > 0).astype(np.uint8)
    return mask


def downscale_mask(mask: np.ndarray, factor: float) -> np.ndarray:
    """Down-scale by ``factor`` (area average), up-scale back (bilinear), threshold at 0.5.

    Args:
        mask: H x W uint8 {0, 1}.

    Returns:
        H x W uint8 {0, 1}.
    """
    height, width = mask.shape
    small_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(mask.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
    restored = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return (restored >= 0.5).astype(np.uint8)


def blur_mask(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels, re-thresholded at 0.5 (H x W uint8 {0, 1} both ways)."""
    if sigma <= 0:
        return mask
    blurred = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    return (blurred >= 0.5).astype(np.uint8)


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """Each connected part (outer contour) filled to its convex hull (H x W uint8 {0, 1})."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hulls = np.zeros_like(mask, dtype=np.uint8)
    # A hull per part rather than one hull of everything: two separate objects stay separate.
    cv2.fillPoly(hulls, [cv2.convexHull(contour) for contour in contours], 1)
    return hulls | mask.astype(np.uint8)


def draw_mask_steps(config: PromptConfig, rng: np.random.Generator) -> list[tuple[str, float]]:
    """One of ``config.mask_operations`` (uniformly), each step with its own kernel half width.

    The first size is drawn before the operation and later steps' sizes after it: the default
    (one step) then draws exactly what it always drew, so recorded runs keep their prompts.
    """
    first = rng.uniform(*config.mask_morphology)
    operation = config.mask_operations[int(rng.integers(len(config.mask_operations)))]
    names = operation.split("+")
    sizes = [first] + [rng.uniform(*config.mask_morphology) for _ in names[1:]]
    return list(zip(names, sizes, strict=True))


def _happens(probability: float, rng: np.random.Generator) -> bool:
    # No draw at probability 0: the random stream of the other prompts must not shift.
    return probability > 0 and rng.random() < probability


def degrade_coarse_mask(
    mask: np.ndarray, config: PromptConfig, rng: np.random.Generator, side: int
) -> np.ndarray:
    """Down-scale, blur and convex-hull the coarse mask, each with its probability in ``config``.

    A step with probability 0 draws no random number, so turning the steps off leaves the rest
    of the sampling (points, box) exactly as it was. A step that would empty the mask is skipped,
    as in :func:`sample_coarse_mask`.

    Args:
        mask: H x W uint8 {0, 1}.
        side: the image's longer side in pixels (the blur sigma is a fraction of it).

    Returns:
        H x W uint8 {0, 1}.
    """
    if _happens(config.mask_downscale_probability, rng):
        mask = _unless_empty(downscale_mask(mask, rng.uniform(*config.mask_downscale)), mask)
    if _happens(config.mask_blur_probability, rng):
        mask = _unless_empty(blur_mask(mask, rng.uniform(*config.mask_blur_sigma) * side), mask)
    if _happens(config.mask_convex_hull_probability, rng):
        mask = _unless_empty(convex_hull_mask(mask), mask)
    return mask


def _unless_empty(degraded: np.ndarray, original: np.ndarray) -> np.ndarray:
    return degraded if degraded.any() else original


def box_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Tight ``(x0, y0, x1, y1)`` box (inclusive pixel coordinates) of ``alpha > 0``."""
    ys, xs = np.nonzero(alpha > 0)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)


def jitter_box(box: np.ndarray, jitter: float, size: tuple[int, int], rng: np.random.Generator):
    """Move each edge by up to ``jitter`` of the box's extent, then clip to the image."""
    height, width = size
    extent = np.array([box[2] - box[0] + 1, box[3] - box[1] + 1] * 2, np.float32)
    moved = box + rng.uniform(-jitter, jitter, 4).astype(np.float32) * extent
    moved[[0, 2]] = np.clip(moved[[0, 2]], 0, width - 1)
    moved[[1, 3]] = np.clip(moved[[1, 3]], 0, height - 1)
    return np.array(
        [
            min(moved[0], moved[2]),
            min(moved[1], moved[3]),
            max(moved[0], moved[2]),
            max(moved[1], moved[3]),
        ],
        np.float32,
    )


def _draw_pixels(candidates: np.ndarray, count: int, width: int, rng) -> np.ndarray:
    """``count`` distinct ``(x, y)`` pixel centres among flat indices ``candidates``."""
    count = min(count, candidates.size)
    chosen = rng.choice(candidates, size=count, replace=False) if count else candidates[:0]
    return np.stack([chosen % width, chosen // width], axis=1).astype(np.float32)


class EmptyAlphaError(ValueError):
    """A sample without foreground and without prompts of its own."""


class PromptSampler:
    """Samples every prompt kind for one sample; families choose which ones to use.

    Args:
        config: sampling ranges (see :class:`PromptConfig`).
    """

    def __init__(self, config: PromptConfig | None = None) -> None:
        self.config = config or PromptConfig()

    def __call__(
        self,
        alpha: np.ndarray,
        rng: np.random.Generator,
        sample_id: str,
        trimap: np.ndarray | None = None,
        points: np.ndarray | None = None,
        box: np.ndarray | None = None,
        coarse_mask: np.ndarray | None = None,
    ) -> Prompts:
        """Sample prompts from ``alpha`` (H x W float32 at the network input size).

        ``trimap`` / ``points`` (N x 3 ``x, y, label``) / ``box`` / ``coarse_mask`` (H x W
        {0, 1}) are a source's own prompts, already transformed to the network input; they are
        kept when the config says so (a source's coarse mask is used as it is: not degraded).

        Source points with no click (zero rows, or only padding) count as absent: clicks are then
        sampled from the alpha. An empty alpha is accepted only with source prompts
        (``ImageFolder`` for predict, where there is no ground truth): the prompts are then the
        source's, the trimap is all unknown and the coarse mask is the box.

        Raises:
            EmptyAlphaError: naming ``sample_id`` when the alpha is empty and the source gave no
                prompts: no prompt can point at an object that is not there, and a made-up one
                would train the model on noise.
        """
        cfg = self.config
        height, width = alpha.shape
        side = max(height, width)
        if points is not None and not (points[:, 2] >= 0).any():
            # A prompt file with no clicks (all padding): clicks are sampled from the GT instead
            # of handing the model an empty point prompt.
            logger.debug("%s: the source gives no clicks; sampling them from the alpha", sample_id)
            points = None
        if not cfg.use_source_prompts:
            coarse_mask = None
        has_source_prompts = cfg.use_source_prompts and (points is not None or box is not None)
        if not (alpha > 0).any():
            if not has_source_prompts:
                raise EmptyAlphaError(
                    f"{sample_id}: the alpha is empty, so no prompt can be sampled"
                )
            return self._from_source_prompts(alpha.shape, trimap, points, box, coarse_mask)
        if trimap is None or not cfg.use_source_trimap:
            grow_fg = rng.uniform(*cfg.trimap_width)
            grow_bg = rng.uniform(*cfg.trimap_width) if cfg.trimap_separate_widths else grow_fg
            trimap = sample_trimap(alpha, grow_fg, side, grow_bg, cfg.trimap_thresholds)
        if coarse_mask is None:
            threshold = rng.uniform(*cfg.mask_threshold)
            coarse_mask = sample_coarse_mask(alpha, threshold, draw_mask_steps(cfg, rng), side)
            coarse_mask = degrade_coarse_mask(coarse_mask, cfg, rng, side)

        padded_points, padded_labels = self._padded(points if cfg.use_source_prompts else None)
        if points is None or not cfg.use_source_prompts:
            flat = alpha.ravel()
            count = int(rng.integers(cfg.positive_points[0], cfg.positive_points[1] + 1))
            if cfg.absolute_threshold:
                positives = release_positive_clicks(alpha, count, rng, cfg.point_threshold)
                positives = positives.astype(np.float32)
            else:
                candidates = np.flatnonzero(flat >= cfg.point_threshold * flat.max())
                positives = _draw_pixels(candidates, count, width, rng)
            negatives = _draw_pixels(
                np.flatnonzero(flat == 0),
                int(rng.integers(cfg.negative_points[0], cfg.negative_points[1] + 1)),
                width,
                rng,
            )
            count_pos, count_neg = len(positives), len(negatives)
            padded_points[:count_pos] = positives
            padded_labels[:count_pos] = 1
            padded_points[count_pos : count_pos + count_neg] = negatives
            padded_labels[count_pos : count_pos + count_neg] = 0

        if box is None or not cfg.use_source_prompts:
            tight = cfg.box_source == "tight"
            box = box_from_alpha(alpha) if tight else largest_component_box(alpha)
            box = box.astype(np.float32)
            if cfg.box_jitter > 0:  # no draw without jitter: evaluation boxes are exact
                box = jitter_box(box, cfg.box_jitter, (height, width), rng)
        return Prompts(padded_points, padded_labels, box.astype(np.float32), coarse_mask, trimap)

    def _padded(self, points: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Every real click of ``points`` (N x 3), in order, then padding to ``max_points`` rows.

        A source's clicks are its fixed prompts (MicroMat-3K keeps up to 50): all of them reach
        the model, so the result has ``max(max_points, clicks)`` rows. Rows labelled -1 (padding,
        or clicks the crop pushed out of the image) are dropped before padding, so padding only
        ever trails the clicks. Padding is label -1 at ``(0, 0)``, as collation pads a batch.

        Returns:
            points: M x 2 float32 ``(x, y)``; labels: M int64 (1 / 0, then -1).
        """
        clicks = points[points[:, 2] >= 0] if points is not None else np.zeros((0, 3), np.float32)
        length = max(self.config.max_points, len(clicks))
        padded_points = np.zeros((length, 2), np.float32)
        padded_labels = np.full(length, -1, np.int64)
        padded_points[: len(clicks)] = clicks[:, :2]
        padded_labels[: len(clicks)] = clicks[:, 2].astype(np.int64)
        return padded_points, padded_labels

    def _from_source_prompts(self, size, trimap, points, box, coarse_mask=None) -> Prompts:
        """Prompts when there is no ground truth: only what the source gave (the coarse mask,
        when the source has none, is the box)."""
        height, width = size
        padded_points, padded_labels = self._padded(points)
        if box is None:  # points only: the box spans the positive clicks
            clicks = points[points[:, 2] == 1, :2] if points is not None else np.zeros((0, 2))
            clicks = clicks if len(clicks) else np.array([[0, 0], [width - 1, height - 1]])
            box = np.concatenate([clicks.min(0), clicks.max(0)]).astype(np.float32)
        if coarse_mask is None:
            coarse_mask = np.zeros(size, np.uint8)
            x0, y0, x1, y1 = np.round(box).astype(int)
            coarse_mask[y0 : y1 + 1, x0 : x1 + 1] = 1
        if trimap is None:
            trimap = np.full(size, 128, np.uint8)
        return Prompts(padded_points, padded_labels, box.astype(np.float32), coarse_mask, trimap)
