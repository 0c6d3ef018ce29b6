"""Drawing primitives of the synthetic scenes: palette, shapes and the four instance kinds.

Cheap by construction: an instance is drawn into a patch the size of its bounding box (supersampled
only where soft edges or sub-pixel strands need it), never into a full-size canvas. Colours are
float32 in [0, 255], alphas float32 in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Named colours an instance can take; the names appear verbatim in the referring expression.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 35),
    "green": (40, 165, 60),
    "cyan": (35, 195, 210),
    "blue": (35, 75, 215),
    "purple": (135, 55, 185),
    "pink": (240, 110, 175),
    "brown": (125, 75, 35),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
PALETTE_NAMES = tuple(PALETTE)
PALETTE_RGB = np.array([PALETTE[name] for name in PALETTE_NAMES], dtype=np.float32)

INSTANCE_KINDS = ("solid", "furry", "glass", "holes")
# Shapes each kind may take. "ring" is the one "holes" shape whose hole is implied by its name.
_BASIC_SHAPES = ("circle", "ellipse", "square", "rectangle")
KIND_SHAPES: dict[str, tuple[str, ...]] = {
    "solid": (*_BASIC_SHAPES, "triangle", "star", "pentagon", "hexagon"),
    "furry": ("blob", "ball"),
    "glass": (*_BASIC_SHAPES, "hexagon"),
    "holes": ("ring", "circle", "square", "rectangle", "hexagon"),
}
SOLID_TEXTURES = ("plain", "striped", "dotted")

# cv2 drawing takes integer coordinates with this many fractional bits (sub-pixel precision).
_SHIFT = 4
_FIXED_ONE = 1 << _SHIFT


@dataclass
class InstanceSpec:
    """What an instance is, decided before it is drawn (and all the text needs)."""

    kind: str
    colour_name: str
    shape: str
    descriptor: str  # texture / kind word of the text: plain, striped, dotted, furry, glass, ...

    @property
    def rgb(self) -> tuple[int, int, int]:
        return PALETTE[self.colour_name]


@dataclass
class InstanceLayer:
    """One drawn instance: a patch of the image, clipped to the image bounds.

    Attributes:
        spec: what the instance is.
        top, left: position of the patch's top-left pixel in the image.
        alpha: h x w float32 in [0, 1], the instance's own coverage (before any occlusion).
        colour: h x w x 3 float32 in [0, 255], the instance's colour where it covers.
        centroid: (x, y) alpha-weighted centre in image pixels.
    """

    spec: InstanceSpec
    top: int
    left: int
    alpha: np.ndarray
    colour: np.ndarray
    centroid: tuple[float, float]

    @property
    def window(self) -> tuple[slice, slice]:
        """Row and column slices of the patch in the image."""
        height, width = self.alpha.shape
        return slice(self.top, self.top + height), slice(self.left, self.left + width)


def shape_polygon(rng: np.random.Generator, shape: str, radius: float) -> np.ndarray:
    """Vertices of ``shape`` inscribed in a disc of ``radius``, randomly rotated.

    Returns:
        K x 2 float32 ``(x, y)`` offsets from the shape's centre, in pixels.
    """
    rotation = rng.uniform(0, 2 * math.pi)
    if shape in ("circle", "ellipse", "ball", "blob"):
        count = int(np.clip(radius * 0.8, 24, 96))
        theta = np.linspace(0, 2 * math.pi, count, endpoint=False)
        semi_x = radius
        semi_y = radius * (rng.uniform(0.5, 0.72) if shape == "ellipse" else 1.0)
        if shape == "blob":  # a wobbly outline: a few low harmonics of the radius
            wobble = sum(
                rng.uniform(0.05, 0.12) * np.sin(m * theta + rng.uniform(0, 2 * math.pi))
                for m in (2, 3, 5)
            )
            semi_x = semi_y = radius * (0.82 + 0.45 * wobble)  # wobble is within +-0.36
        points = np.stack([semi_x * np.cos(theta), semi_y * np.sin(theta)], axis=1)
    elif shape in ("square", "rectangle"):
        half_w = radius * 0.7
        half_h = half_w if shape == "square" else radius * rng.uniform(0.4, 0.58)
        points = np.array(
            [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]
        )
    elif shape == "star":
        tips = int(rng.integers(5, 7))
        theta = np.arange(2 * tips) * (math.pi / tips)
        rho = np.where(np.arange(2 * tips) % 2 == 0, radius, radius * rng.uniform(0.42, 0.55))
        points = np.stack([rho * np.cos(theta), rho * np.sin(theta)], axis=1)
    else:
        sides = {"triangle": 3, "pentagon": 5, "hexagon": 6}[shape]
        theta = np.arange(sides) * (2 * math.pi / sides)
        points = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    rotated = points @ np.array([[cos_r, sin_r], [-sin_r, cos_r]])
    return rotated.astype(np.float32)


@dataclass
class _Canvas:
    """A supersampled uint8 surface around an instance; points are image-pixel offsets from the
    instance's centre (uint8 because cv2 anti-aliases only 8-bit images)."""

    plane: np.ndarray  # S x S uint8, S = patch side * scale
    origin: tuple[float, float]  # the instance's centre, in canvas pixels
    scale: int  # supersampling factor

    def fixed(self, points: np.ndarray) -> np.ndarray:
        """Offsets (... x 2, image pixels) -> cv2 fixed-point int32 canvas coordinates."""
        canvas = points * self.scale + np.asarray(self.origin, dtype=np.float32)
        return np.round(canvas * _FIXED_ONE).astype(np.int32)

    def fill(self, polygon: np.ndarray, value: float, plane: np.ndarray | None = None) -> None:
        """Fill a K x 2 polygon with anti-aliased edges (on ``plane``, default the canvas)."""
        target = self.plane if plane is None else plane
        cv2.fillPoly(target, [self.fixed(polygon)], value, cv2.LINE_AA, _SHIFT)


def render_instance(
    rng: np.random.Generator,
    spec: InstanceSpec,
    centre: tuple[float, float],
    radius: float,
    difficulty: float,
    image_size: tuple[int, int],
) -> InstanceLayer | None:
    """Draw one instance whose extent is the disc (``centre``, ``radius``) in image pixels.

    Returns None when the instance falls entirely outside the image.
    """
    height, width = image_size
    left, top = math.floor(centre[0] - radius) - 2, math.floor(centre[1] - radius) - 2
    size = math.ceil(2 * radius) + 5
    # Furry strands get thinner (sub-pixel) the harder the scene; 2x is enough for soft edges.
    supersample = 1 + round(2 * difficulty) if spec.kind == "furry" else 2
    canvas = _Canvas(
        plane=np.zeros((size * supersample, size * supersample), np.uint8),
        origin=((centre[0] - left) * supersample, (centre[1] - top) * supersample),
        scale=supersample,
    )
    extras: dict[str, np.ndarray] = {}
    if spec.kind == "furry":
        _draw_furry(rng, canvas, radius, spec.shape, difficulty)
    elif spec.kind == "glass":
        extras = _draw_glass(rng, canvas, radius, spec.shape)
    elif spec.kind == "holes":
        _draw_holes(rng, canvas, radius, spec.shape, difficulty)
    else:
        canvas.fill(shape_polygon(rng, spec.shape, radius * 0.95), 255)
    planes = {"alpha": canvas.plane, **extras}
    if supersample > 1:  # box-filter down: exact coverage fractions at the edges
        planes = {
            k: cv2.resize(v, (size, size), interpolation=cv2.INTER_AREA) for k, v in planes.items()
        }

    # Clip the patch to the image.
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size, height), min(left + size, width)
    if y1 <= y0 or x1 <= x0:
        return None
    window = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    planes = {k: v[window].astype(np.float32) * (1.0 / 255.0) for k, v in planes.items()}
    alpha = planes["alpha"]
    if spec.kind == "glass":  # faint interior, opaque rim, a specular highlight
        alpha = np.maximum(alpha * _glass_opacity(difficulty, rng), planes["rim"] * 0.9)
        alpha = np.maximum(alpha, planes["highlight"] * 0.8)
    total = float(alpha.sum())
    if total <= 0.0:
        return None

    rows = np.arange(y0, y1, dtype=np.float32)[:, None] - centre[1]
    cols = np.arange(x0, x1, dtype=np.float32)[None, :] - centre[0]
    colour = _colour_layer(rng, spec, rows, cols, radius)
    if spec.kind == "glass":
        rim_colour = np.asarray(spec.rgb, np.float32)  # the contrast-checked colour
        colour += (rim_colour - colour) * planes["rim"][..., None]
        colour += (255.0 - colour) * planes["highlight"][..., None]
    centroid = (
        float((alpha.sum(axis=0) * (cols[0] + centre[0])).sum() / total),
        float((alpha.sum(axis=1) * (rows[:, 0] + centre[1])).sum() / total),
    )
    return InstanceLayer(spec, y0, x0, alpha.astype(np.float32, copy=False), colour, centroid)


def _glass_opacity(difficulty: float, rng: np.random.Generator) -> float:
    """Interior opacity of a glass instance: more transparent when harder."""
    return float(np.clip(0.6 - 0.3 * difficulty + rng.uniform(-0.1, 0.1), 0.2, 0.7))


def _draw_furry(
    rng: np.random.Generator, canvas: _Canvas, radius: float, shape: str, difficulty: float
) -> None:
    """A blob body with many thin strands radiating out of it, drawn strands first."""
    body_radius = radius * rng.uniform(0.45, 0.6)
    body = shape_polygon(rng, shape, body_radius)
    density = 1.0 + 1.5 * difficulty  # strands per pixel of body outline
    count = int(2 * math.pi * body_radius * density) + 24
    # Strands root on the outline (slightly inside it so no gap shows) and leave along the normal,
    # bending a little halfway.
    theta = rng.uniform(0, 2 * math.pi, count)
    outline_radius = np.interp(theta, *_polar_outline(body))
    root_radius = outline_radius * rng.uniform(0.75, 0.95, count)
    length = (radius * 0.97 - outline_radius) * rng.uniform(0.45, 1.0, count)
    heading = theta + rng.normal(0.0, 0.25, count)
    bend = heading + rng.normal(0.0, 0.35, count)
    root = np.stack([root_radius * np.cos(theta), root_radius * np.sin(theta)], axis=1)
    outline = np.stack([outline_radius * np.cos(theta), outline_radius * np.sin(theta)], axis=1)
    middle = outline + 0.5 * length[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1)
    tip = middle + 0.5 * length[:, None] * np.stack([np.cos(bend), np.sin(bend)], 1)
    strands = canvas.fixed(np.stack([root, middle, tip], axis=1))
    # Two strengths of strand, faint ones first so that bright ones win where they cross.
    faint = count // 2
    faint_value = 200.0 - 90.0 * difficulty
    cv2.polylines(canvas.plane, strands[:faint], False, faint_value, 1, cv2.LINE_AA, _SHIFT)
    cv2.polylines(canvas.plane, strands[faint:], False, 255, 1, cv2.LINE_AA, _SHIFT)
    canvas.fill(body, 255)


def _polar_outline(polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(angles, radii) of a star-shaped polygon around its centre, sorted and wrapped for interp."""
    angles = np.arctan2(polygon[:, 1], polygon[:, 0]) % (2 * math.pi)
    radii = np.hypot(polygon[:, 0], polygon[:, 1])
    order = np.argsort(angles)
    angles, radii = angles[order], radii[order]
    angles = np.concatenate([angles[-1:] - 2 * math.pi, angles, angles[:1] + 2 * math.pi])
    radii = np.concatenate([radii[-1:], radii, radii[:1]])
    return angles, radii


def _draw_glass(
    rng: np.random.Generator, canvas: _Canvas, radius: float, shape: str
) -> dict[str, np.ndarray]:
    """Fill (interior, on the canvas), rim and highlight planes of a glass object."""
    polygon = shape_polygon(rng, shape, radius * 0.93)
    canvas.fill(polygon, 255)
    rim = np.zeros_like(canvas.plane)
    thickness = max(1, round(radius * rng.uniform(0.04, 0.08) * canvas.scale))
    cv2.polylines(rim, [canvas.fixed(polygon)], True, 255, thickness, cv2.LINE_AA, _SHIFT)
    highlight = np.zeros_like(canvas.plane)
    spot = np.array([-0.35, -0.35], np.float32) * radius + rng.normal(0, 0.05 * radius, 2)
    canvas.fill(shape_polygon(rng, "ellipse", radius * 0.18) + spot, 255, plane=highlight)
    np.minimum(highlight, canvas.plane, out=highlight)  # keep the highlight inside the object
    return {"rim": rim, "highlight": highlight}


def _draw_holes(
    rng: np.random.Generator, canvas: _Canvas, radius: float, shape: str, difficulty: float
) -> None:
    """A ring, or a shape with a few round holes punched through it."""
    outer = shape_polygon(rng, "circle" if shape == "ring" else shape, radius * 0.95)
    canvas.fill(outer, 255)
    if shape == "ring":
        canvas.fill(outer * rng.uniform(0.45, 0.65), 0)
        return
    inscribed = radius * {"circle": 0.95, "hexagon": 0.82, "square": 0.66}.get(shape, 0.4)
    holes: list[tuple[float, float, float]] = []
    wanted = int(rng.integers(2, 4 + round(2 * difficulty)))
    for _ in range(6 * wanted):
        if len(holes) == wanted:
            break
        hole_radius = radius * rng.uniform(0.1, 0.17)
        reach = max(inscribed - hole_radius * 1.4, 0.0)
        x, y = rng.uniform(-reach, reach, 2)
        if math.hypot(x, y) > reach:
            continue
        if all(math.hypot(x - hx, y - hy) > hole_radius + hr + 2 for hx, hy, hr in holes):
            holes.append((x, y, hole_radius))
    for x, y, hole_radius in holes:
        canvas.fill(shape_polygon(rng, "circle", hole_radius) + np.array([x, y], np.float32), 0)


def _colour_layer(
    rng: np.random.Generator, spec: InstanceSpec, rows: np.ndarray, cols: np.ndarray, radius: float
) -> np.ndarray:
    """h x w x 3 float32 colours of an instance: base colour, soft shading, texture, glass tint.

    Args:
        rows, cols: h x 1 and 1 x w offsets of the patch's pixels from the instance centre.
    """
    base = np.asarray(spec.rgb, np.float32)
    if spec.kind == "glass":  # a faint tint: mostly white light with some of the colour
        base = base * 0.45 + 255.0 * 0.55 * np.float32(0.85)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (cols * math.cos(angle) + rows * math.sin(angle)) * (1.0 / radius)
    colour = base + (ramp * 28.0)[..., None]  # additive: visible on black and white alike
    if spec.descriptor in ("striped", "dotted"):
        # A variant of the colour, darker for bright colours and lighter for dark ones.
        variant = base * 0.5 if base.mean() > 110 else base + (255.0 - base) * 0.5
        if spec.descriptor == "striped":
            period = radius * rng.uniform(0.25, 0.4)
            across = cols * math.cos(angle + 1.2) + rows * math.sin(angle + 1.2)
            mask = np.clip(np.sin(across * (2 * math.pi / period)) * 3.0, -1, 1) * 0.5 + 0.5
        else:
            spacing = radius * rng.uniform(0.28, 0.4)
            dx = (cols + rng.uniform(0, spacing)) % spacing - spacing / 2
            dy = (rows + rng.uniform(0, spacing)) % spacing - spacing / 2
            mask = np.clip(spacing * 0.27 - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)
        colour += (variant - base) * mask[..., None]
    return np.clip(colour, 0.0, 255.0).astype(np.float32, copy=False)
