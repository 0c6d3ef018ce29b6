"""Composition-1k / DIM-style source: foregrounds composited over backgrounds on the fly."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from mattekit.data.folders import check_same_size, list_image_files, pair_by_stem
from mattekit.data.io import ConversionLog, read_alpha, read_image
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource


def resize_to_cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize H' x W' x C ``image``, keeping its aspect ratio, to the smallest size covering
    ``height`` x ``width`` (both sides >= the target)."""
    image_height, image_width = image.shape[:2]
    scale = max(height / image_height, width / image_width)
    new_height = max(height, math.ceil(image_height * scale))
    new_width = max(width, math.ceil(image_width * scale))
    if (new_height, new_width) == (image_height, image_width):
        return image
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (new_width, new_height), interpolation=interpolation)


def composite(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * fg + (1 - alpha) * bg`` rounded to uint8.

    Args:
        fg, bg: H x W x 3 uint8.
        alpha: H x W float32 in [0, 1].

    Returns:
        H x W x 3 uint8; each value is within 0.5 of the exact blend (halves round up: every
        recorded result was made with this rounding, so it must not change).
    """
    weight = alpha[..., None]
    blend = weight * fg.astype(np.float32) + (1 - weight) * bg.astype(np.float32)
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)


class CompositionFolder(MattingSource):
    """Foreground + alpha pairs composited over backgrounds when loaded (Composition-1k, DIM).

    Layout (three folders, anywhere; fg and alpha paired by stem)::

        fg_dir/     a.png b.jpg ...   foreground colours
        alpha_dir/  a.png b.png ...   mattes
        bg_dir/     x.jpg y.jpg ...   backgrounds (e.g. COCO, VOC, BG-20k), any number

    Sample ``index`` uses foreground ``(index // backgrounds_per_fg) % number_of_foregrounds``;
    everything random comes from the ``rng`` passed to :meth:`load`, in a fixed order (background,
    scale, flip, background crop), so a per-index seeded rng gives the same composite every time.
    What this source does, before compositing (everything else is the shared pipeline's job):

    1. pick a background uniformly;
    2. scale fg and alpha together by a factor drawn from ``fg_scale_range`` (off by default);
    3. flip fg and alpha together horizontally with ``flip_probability`` (off by default);
    4. resize the background, keeping its aspect ratio, to just cover the foreground, and crop it
       to the foreground's size at a random offset.

    The sample carries ``fg`` and ``bg`` such that ``image = alpha * fg + (1 - alpha) * bg``
    up to uint8 rounding (0.5 level). Typical training values: ``fg_scale_range=(0.5, 1.5)``,
    ``flip_probability=0.5``, ``backgrounds_per_fg=100`` (DIM); leave both off for evaluation.

    Args:
        fg_dir, alpha_dir, bg_dir: the three folders.
        num_samples: length of the source; defaults to foregrounds x ``backgrounds_per_fg``.
        backgrounds_per_fg: consecutive indices sharing one foreground.
        fg_scale_range: (low, high) uniform scale factor of the foreground.
        flip_probability: probability of a horizontal flip of the foreground.
        name: source name.
        strict: a stem missing from fg_dir or alpha_dir is an error (True) or skipped.
    """

    def __init__(
        self,
        fg_dir: str,
        alpha_dir: str,
        bg_dir: str,
        num_samples: int | None = None,
        backgrounds_per_fg: int = 1,
        fg_scale_range: tuple[float, float] = (1.0, 1.0),
        flip_probability: float = 0.0,
        name: str = "composition",
        strict: bool = True,
    ) -> None:
        super().__init__(name)
        if backgrounds_per_fg < 1:
            raise ValueError(f"{name}: backgrounds_per_fg must be >= 1, got {backgrounds_per_fg}")
        low, high = fg_scale_range
        if not 0 < low <= high:
            raise ValueError(
                f"{name}: fg_scale_range must satisfy 0 < low <= high, got {low, high}"
            )
        if not 0 <= flip_probability <= 1:
            raise ValueError(f"{name}: flip_probability must be in [0, 1], got {flip_probability}")
        self.foregrounds = pair_by_stem(
            {"fg": Path(fg_dir), "alpha": Path(alpha_dir)}, source_name=name, strict=strict
        )
        self.backgrounds = list(list_image_files(bg_dir).values())
        if not self.backgrounds:
            raise ValueError(f"{name}: no background images in {bg_dir}")
        self.num_samples = num_samples or len(self.foregrounds) * backgrounds_per_fg
        self.backgrounds_per_fg = backgrounds_per_fg
        self.fg_scale_range = (float(low), float(high))
        self.flip_probability = flip_probability
        self._conversions = ConversionLog(name)

    def __len__(self) -> int:
        return self.num_samples

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        files = self.foregrounds[(index // self.backgrounds_per_fg) % len(self.foregrounds)]
        bg_path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        scale = float(rng.uniform(*self.fg_scale_range))
        flip = bool(rng.random() < self.flip_probability)
        sample_id = f"{files['fg'].stem}+{bg_path.stem}#{index}"

        fg = read_image(files["fg"], self._conversions)
        alpha = read_alpha(files["alpha"], self._conversions)
        check_same_size(sample_id, (files["fg"], fg), (files["alpha"], alpha))
        if scale != 1.0:
            height, width = alpha.shape
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            fg = cv2.resize(fg, size, interpolation=interpolation)
            alpha = np.clip(cv2.resize(alpha, size, interpolation=interpolation), 0, 1)
        if flip:
            fg, alpha = fg[:, ::-1], alpha[:, ::-1]
        fg, alpha = np.ascontiguousarray(fg), np.ascontiguousarray(alpha, dtype=np.float32)

        height, width = alpha.shape
        bg = resize_to_cover(read_image(bg_path, self._conversions), height, width)
        top = int(rng.integers(bg.shape[0] - height + 1))
        left = int(rng.integers(bg.shape[1] - width + 1))
        bg = np.ascontiguousarray(bg[top : top + height, left : left + width])

        image = composite(fg, bg, alpha)
        return RawSample(sample_id, image, alpha, fg=fg, bg=bg, source=self.name)
