"""Augmentation with albumentations, applied consistently to every part of a sample.

Up to four stages, because each part of a sample may only see some transforms:

0. foreground duplication (training, only when fg and bg are known): SDMatte's two copies of the
   object side by side, the ground truth on one (:mod:`mattekit.data.duplication`);
1. geometric (crop / resize / flip): image, alpha, fg, bg with bilinear interpolation; trimap,
   segmentation mask and a source's coarse mask with nearest; a source's points and box
   corners as keypoints;
2. background blur (only when fg and bg are known): blur bg, then recomposite
   ``image = alpha * fg + (1 - alpha) * bg`` so the composition equation holds exactly;
3. photometric (colour jitter, grey): image, fg and bg with the same parameters; never the alpha.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from mattekit.data.composition import composite
from mattekit.data.duplication import duplicate_foreground
from mattekit.data.letterbox import LetterboxResize
from mattekit.data.sample import RawSample

logger = logging.getLogger(__name__)

# A random crop may miss a small target; it is re-drawn this many times before the sample falls
# back to a plain resize (which always keeps the target).
CROP_ATTEMPTS = 10

_COLOUR_TARGETS = {"fg": "image", "bg": "image"}
_GEOMETRIC_TARGETS = {
    "alpha": "image",
    "fg": "image",
    "bg": "image",
    "trimap": "mask",
    "seg_mask": "mask",
    "coarse_mask": "mask",
    "valid": "mask",
}


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (evaluation only resizes to the network size).

    Attributes:
        crop_scale: area range of the random resized crop; (1, 1) resizes the whole image
            instead (its aspect not kept: SDMatte's release).
        flip: probability of a horizontal flip.
        color_jitter: probability of brightness / contrast / saturation / hue jitter.
        grey: probability of turning the colour layers grey (SDMatte uses 0.2).
        background_blur: probability of blurring the background, when it is known (SDMatte 0.5).
        duplicate_foreground: probability of SDMatte's foreground duplication, when fg and bg are
            known: the object tiled twice over a background twice as wide, the GT alpha (and so
            every sampled prompt) on one copy chosen at random; the crop then brings the 2W-wide
            image back to the network size (SDMatte's release 1.0, its paper 0.5; see
            :mod:`mattekit.data.duplication`).
    """

    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip: float = 0.5
    color_jitter: float = 0.5
    grey: float = 0.0
    background_blur: float = 0.0
    duplicate_foreground: float = 0.0


@dataclass
class TransformedSample:
    """A sample at the network input size (H x W), still numpy."""

    image: np.ndarray  # H x W x 3 uint8
    alpha: np.ndarray  # H x W float32
    trimap: np.ndarray | None  # H x W uint8
    seg_mask: np.ndarray | None  # H x W uint8
    coarse_mask: np.ndarray | None  # H x W uint8 {0, 1}: a source's coarse-mask prompt
    fg: np.ndarray | None
    bg: np.ndarray | None
    points: np.ndarray | None  # N x 3 (x, y, label); points pushed outside the crop get label -1
    box: np.ndarray | None  # 4
    content_size: tuple[int, int]  # (h, w) of the image content; the rest is letterbox padding


class MattingTransform:
    """Turns a :class:`RawSample` into a :class:`TransformedSample` of ``size``.

    Args:
        size: ``(H, W)`` of the network input.
        train: random augmentation when True; a plain resize otherwise.
        config: training augmentation ranges.
        resize: how evaluation fits an image to ``size``: ``"stretch"`` (resize, aspect not
            kept) or ``"letterbox"`` (SAM's convention: longest side to fit with antialiased
            bilinear, see :mod:`mattekit.data.letterbox`, black padding at the bottom-right;
            predictions are cropped to the content before resizing back).
    """

    def __init__(
        self,
        size: tuple[int, int],
        train: bool,
        config: AugmentConfig | None = None,
        resize: str = "stretch",
    ) -> None:
        if resize not in ("stretch", "letterbox"):
            raise ValueError(f"resize must be 'stretch' or 'letterbox', got {resize!r}")
        self.size = size
        self.train = train
        self.config = config = config or AugmentConfig()
        keypoints = A.KeypointParams(format="xy", remove_invisible=False)
        if train:
            # A whole-image "crop" is a resize: RandomResizedCrop keeps its aspect range even at
            # scale (1, 1) and so would cut the sides of a wide image (a duplicated one).
            whole = tuple(config.crop_scale) == (1.0, 1.0)
            crop = A.RandomResizedCrop(size, scale=config.crop_scale, ratio=(0.75, 4 / 3))
            geometric = [A.Resize(*size) if whole else crop, A.HorizontalFlip(p=config.flip)]
            photometric = [
                A.ColorJitter(0.2, 0.2, 0.2, 0.05, p=config.color_jitter),
                A.ToGray(p=config.grey),
            ]
        else:
            geometric, photometric = _fit(size, resize), []
        self.geometric = A.Compose(
            geometric, additional_targets=_GEOMETRIC_TARGETS, keypoint_params=keypoints
        )
        self.resize = A.Compose(
            _fit(size, resize), additional_targets=_GEOMETRIC_TARGETS, keypoint_params=keypoints
        )
        self.photometric = A.Compose(photometric, additional_targets=_COLOUR_TARGETS)

    def __call__(self, raw: RawSample, rng: np.random.Generator) -> TransformedSample:
        """Augment (training) or resize (evaluation) one sample.

        In training, a crop that leaves no foreground is re-drawn up to ``CROP_ATTEMPTS`` times,
        then the sample is resized without cropping (logged at debug level): prompts need an
        object, and silently training on empty crops would teach the model to predict nothing.
        """
        # The draw is last in the condition: at probability 0 (or without fg / bg) nothing is
        # drawn, so existing seeds give the same augmentations as before.
        p_duplicate = self.config.duplicate_foreground
        known = raw.fg is not None and raw.bg is not None
        duplicated = self.train and p_duplicate > 0 and known and rng.random() < p_duplicate
        if duplicated:
            # The background is blurred before the second copy joins it: blurred afterwards,
            # the untargeted copy would be blurred and the target sharp, a shortcut to the
            # answer that the prompt should give.
            if rng.random() < self.config.background_blur:
                raw = dataclasses.replace(raw, bg=_blur_background(raw.bg, rng))
            raw = duplicate_foreground(raw, rng)
        self.photometric.set_random_seed(int(rng.integers(2**31)))

        # Box corners travel as keypoints; after a flip they are re-sorted into x0 < x1.
        keypoints = np.zeros((0, 2), np.float32)
        if raw.points is not None:
            keypoints = raw.points[:, :2]
        if raw.box is not None:
            keypoints = np.concatenate([keypoints, raw.box.reshape(2, 2)])
        targets = {"image": raw.image, "alpha": raw.alpha, "keypoints": keypoints}
        targets["valid"] = np.ones(raw.size, np.uint8)  # tracks the content under letterboxing
        for name in ("fg", "bg", "trimap"):
            if getattr(raw, name) is not None:
                targets[name] = getattr(raw, name)
        for name in ("seg_mask", "coarse_mask"):
            if getattr(raw, name) is not None:
                targets[name] = getattr(raw, name).astype(np.uint8)
        out = self._geometric(targets, rng, raw.sample_id, has_object=bool((raw.alpha > 0).any()))
        out_h, out_w = out["image"].shape[:2]
        moved = np.asarray(out["keypoints"], np.float32).reshape(-1, 2)

        points = box = None
        if raw.points is not None:
            points = np.concatenate([moved[: len(raw.points)], raw.points[:, 2:3]], axis=1)
            # A click is outside when it leaves the image's extent [0, W) x [0, H), not the
            # span of pixel centres: scaling maps the last centre (W_in - 1) to
            # (W_in - 1) * W / W_in, past W - 1 when shrinking, and that click is still real.
            outside = (points[:, 0] < 0) | (points[:, 0] >= out_w)
            outside |= (points[:, 1] < 0) | (points[:, 1] >= out_h)
            points[outside, 2] = -1
        if raw.box is not None:
            corners = moved[-2:]
            box = np.concatenate([corners.min(0), corners.max(0)])
            box = np.clip(box, 0, [out_w - 1, out_h - 1, out_w - 1, out_h - 1]).astype(np.float32)

        alpha = np.clip(out["alpha"], 0.0, 1.0).astype(np.float32)
        image, fg, bg = out["image"], out.get("fg"), out.get("bg")
        if fg is not None and bg is not None:
            if self.train and not duplicated and rng.random() < self.config.background_blur:
                bg = _blur_background(bg, rng)
            image = composite(fg, bg, alpha)
        if self.photometric.transforms:
            colour = {"image": image}
            if fg is not None and bg is not None:
                colour.update(fg=fg, bg=bg)
            colour = self.photometric(**colour)
            image, fg, bg = colour["image"], colour.get("fg", fg), colour.get("bg", bg)
            if fg is not None and bg is not None:
                image = composite(fg, bg, alpha)
        return TransformedSample(
            image=image,
            alpha=alpha,
            trimap=out.get("trimap"),
            seg_mask=out.get("seg_mask"),
            coarse_mask=out.get("coarse_mask"),
            fg=fg,
            bg=bg,
            points=points,
            box=box,
            content_size=_extent(out["valid"]),
        )

    def _geometric(self, targets: dict, rng: np.random.Generator, sample_id: str, has_object: bool):
        for _ in range(CROP_ATTEMPTS if self.train else 1):
            self.geometric.set_random_seed(int(rng.integers(2**31)))
            out = self.geometric(**targets)
            if not has_object or (out["alpha"] > 0).any():
                return out
        logger.debug("%s: no crop kept the foreground; resized without cropping", sample_id)
        return self.resize(**targets)


def _blur_background(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """H x W x 3 background blurred by a Gaussian of sigma 1-4 px per 512 px of its longer side."""
    sigma = rng.uniform(1.0, 4.0) * max(bg.shape[:2]) / 512
    return cv2.GaussianBlur(bg, (0, 0), sigma)


def _fit(size: tuple[int, int], resize: str) -> list:
    """Transforms that fit a whole image into ``size``."""
    if resize == "stretch":
        return [A.Resize(*size)]
    # SAM's letterbox: antialiased resize, then black RGB padding at the bottom-right. SAM pads
    # after normalising (0 in normalised space); SAM-based models zero the padding themselves
    # after normalising, using content_size, so black RGB here is not what they see.
    return [
        LetterboxResize(size),
        A.PadIfNeeded(*size, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0),
    ]


def _extent(valid: np.ndarray) -> tuple[int, int]:
    """(h, w) of the top-left content region marked in ``valid``."""
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    return int(rows[-1]) + 1, int(cols[-1]) + 1
