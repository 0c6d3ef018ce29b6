"""Backgrounds of the synthetic scenes, and how well palette colours stand out against them.

Cheap by construction: a background is drawn at a fraction of the output resolution (a third to a
sixth) and upsampled once, which also makes it look out of focus behind the crisp instances.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mattekit.data.synthetic_shapes import PALETTE_RGB


def contrast_to_region(
    background_low: np.ndarray,
    centre: tuple[float, float],
    radius: float,
    image_size: tuple[int, int],
) -> np.ndarray:
    """Mean RGB distance of every palette colour to the background under a disc.

    Args:
        background_low: h x w x 3 float32 low-resolution background.
        centre, radius: the instance's disc in full-resolution pixels.
        image_size: (H, W) of the full-resolution image.

    Returns:
        len(PALETTE) float32 distances (0 to ~440).
    """
    low_h, low_w = background_low.shape[:2]
    scale_y, scale_x = low_h / image_size[0], low_w / image_size[1]
    cx, cy = centre[0] * scale_x, centre[1] * scale_y
    ry, rx = max(radius * scale_y, 1.0), max(radius * scale_x, 1.0)
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, low_h)
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, low_w)
    region = background_low[y0:y1, x0:x1].reshape(-1, 3)
    if len(region) > 256:  # a strided subset estimates the mean as well and costs less
        region = region[:: len(region) // 256 + 1]
    return np.linalg.norm(PALETTE_RGB[:, None, :] - region[None, :, :], axis=2).mean(axis=1)


def render_background(
    rng: np.random.Generator, height: int, width: int, difficulty: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a textured background: gradient + low-frequency noise + optional clutter pattern.

    The harder the scene, the more often a pattern (stripes, checker, blurry blobs in palette
    colours) is added, the stronger its contrast and the finer its detail.

    Returns:
        (H x W x 3 float32 background, h x w x 3 float32 low-resolution version).
    """
    low_scale = 1.0 / (6.0 - 3.0 * difficulty)  # finer detail when harder
    low_h, low_w = max(12, round(height * low_scale)), max(12, round(width * low_scale))
    ys = np.linspace(0.0, 1.0, low_h, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, low_w, dtype=np.float32)[None, :]

    colour_a, colour_b = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)).astype(np.float32)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    low = colour_a + (colour_b - colour_a) * ramp[..., None]

    grid = int(rng.integers(2, 6))
    noise = rng.normal(0.0, 1.0, size=(grid, grid, 3)).astype(np.float32)
    noise = cv2.resize(noise, (low_w, low_h), interpolation=cv2.INTER_CUBIC)
    low += noise * (15.0 + 25.0 * difficulty)

    if rng.random() < 0.35 + 0.65 * difficulty:
        low = _add_pattern(rng, low, ys, xs, difficulty)

    np.clip(low, 0.0, 255.0, out=low)
    full = cv2.resize(low, (width, height), interpolation=cv2.INTER_LINEAR)
    return full, low


def _add_pattern(
    rng: np.random.Generator, low: np.ndarray, ys: np.ndarray, xs: np.ndarray, difficulty: float
) -> np.ndarray:
    """Blend stripes, a checker or blobs into the low-resolution background."""
    low_h, low_w = low.shape[:2]
    strength = float(rng.uniform(0.15, 0.35) + 0.45 * difficulty)
    pattern = rng.choice(["stripes", "checker", "blobs"])
    if pattern == "blobs":
        # uint8 canvases: cv2 anti-aliases only 8-bit images.
        canvas = np.zeros((low_h, low_w, 3), np.uint8)
        coverage = np.zeros((low_h, low_w), np.uint8)
        for _ in range(int(rng.integers(3, 5 + 12 * difficulty))):
            # Palette colours make the clutter resemble the instances as the scenes get harder.
            if rng.random() < difficulty:
                colour = PALETTE_RGB[rng.integers(len(PALETTE_RGB))]
            else:
                colour = rng.uniform(0, 255, size=3)
            centre = (int(rng.integers(0, low_w)), int(rng.integers(0, low_h)))
            axes = (int(rng.integers(2, low_w // 4 + 3)), int(rng.integers(2, low_h // 4 + 3)))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(canvas, centre, axes, angle, 0, 360, colour.tolist(), -1, cv2.LINE_AA)
            cv2.ellipse(coverage, centre, axes, angle, 0, 360, 255, -1, cv2.LINE_AA)
        weight = coverage.astype(np.float32)[..., None] * (strength / 255.0)
        return low * (1.0 - weight) + canvas.astype(np.float32) * weight
    period = float(rng.uniform(0.04, 0.15) - 0.02 * difficulty)
    angle = rng.uniform(0, math.pi)
    u = xs * math.cos(angle) + ys * math.sin(angle)
    if pattern == "stripes":
        wave = np.sin(u * (2 * math.pi / period))
    else:
        v = -xs * math.sin(angle) + ys * math.cos(angle)
        wave = np.sin(u * (2 * math.pi / period)) * np.sin(v * (2 * math.pi / period))
    mask = np.clip(wave * 3.0, -1.0, 1.0) * 0.5 + 0.5  # soft square wave
    colour = rng.uniform(0, 255, size=3).astype(np.float32)
    weight = (mask * strength).astype(np.float32)[..., None]
    return low * (1.0 - weight) + colour * weight
