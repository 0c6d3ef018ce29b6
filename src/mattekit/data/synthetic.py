"""Procedural matting scenes: the default, download-free training and evaluation data.

A scene is a textured background with a few foreground instances (solid shapes, furry blobs,
glass objects, objects with holes) laid out on a jittered grid so that they overlap only a little.
One instance is the *target*: its visible alpha is the ground truth and the referring expression
describes it; the others are distractors.

Compositing convention (``image = alpha * fg + (1 - alpha) * bg`` holds up to uint8 rounding,
``alpha`` being the target's visible alpha, i.e. its own coverage times the transmission of the
instances drawn over it):

* ``fg`` is the target's own colour layer inside the target's patch (its bounding box), and the
  image elsewhere, where alpha is 0 anyway.
* ``bg`` is the scene rendered without the target wherever nothing is drawn over the target. Where
  an occluder partly covers the target, the colour behind the target's visible fraction is a mix
  of the occluder and what lies under the target; ``bg`` is that effective colour,
  ``(scene_without_target - alpha * under_target) / (1 - alpha)``, a convex combination of
  occluder and background colours (so in range). Where alpha is ~1, ``bg`` is the scene without
  the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource
from mattekit.data.synthetic_background import contrast_to_region, render_background
from mattekit.data.synthetic_shapes import (
    INSTANCE_KINDS,
    KIND_SHAPES,
    PALETTE_NAMES,
    SOLID_TEXTURES,
    InstanceLayer,
    InstanceSpec,
    render_instance,
)

__all__ = ["INSTANCE_KINDS", "SyntheticScene", "SyntheticSource", "describe_instance"]


@dataclass
class SyntheticScene:
    """A rendered scene with its instances, for inspection and tests.

    Attributes:
        sample: the record :meth:`SyntheticSource.load` returns.
        layers: the instances in drawing order (later ones are drawn over earlier ones).
        target: index in ``layers`` of the target instance.
    """

    sample: RawSample
    layers: list[InstanceLayer]
    target: int


class SyntheticSource(MattingSource):
    """Procedurally generated matting scenes, deterministic per (seed, index).

    Args:
        num_samples: number of scenes (the length of the source).
        image_size: side of square scenes, or ``(height, width)``.
        seed: scene seed; scene ``index`` is the same for a given seed whatever the pipeline does.
        min_instances, max_instances: bounds of the number of instances per scene (target
            included).
        difficulty: in [0, 1]; scales background clutter, strand thinness and density, glass
            transparency and how much distractors resemble the target.
        kinds: instance kinds to draw, a subset of ``solid``, ``furry``, ``glass``, ``holes``
            (all when None).
        name: source name, used in sample ids (``synthetic/s0/000042``) and logs.
    """

    def __init__(
        self,
        num_samples: int = 1000,
        image_size: int | tuple[int, int] = 512,
        seed: int = 0,
        min_instances: int = 2,
        max_instances: int = 4,
        difficulty: float = 0.5,
        kinds: list[str] | None = None,
        name: str = "synthetic",
    ) -> None:
        super().__init__(name)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        image_size = tuple(int(side) for side in image_size)
        if len(image_size) != 2 or min(image_size) < 16:
            raise ValueError(f"image_size must be >= 16 (or a pair of such), got {image_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if min_instances < 1:
            raise ValueError(f"min_instances must be >= 1, got {min_instances}")
        if max_instances < min_instances:
            raise ValueError(
                f"max_instances ({max_instances}) must be >= min_instances ({min_instances})"
            )
        # Grid cells under 12 pixels would make instances too small to draw (or to see).
        if min(image_size) / math.ceil(math.sqrt(max_instances)) < 12:
            raise ValueError(
                f"max_instances ({max_instances}) is too many for image_size {image_size}: "
                "grid cells would be under 12 pixels"
            )
        if not 0.0 <= difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
        kinds = list(INSTANCE_KINDS) if kinds is None else list(kinds)
        unknown = sorted(set(kinds) - set(INSTANCE_KINDS))
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {INSTANCE_KINDS}, got {kinds}")
        self.num_samples = num_samples
        self.image_size: tuple[int, int] = image_size  # (height, width)
        self.seed = seed
        self.min_instances = min_instances
        self.max_instances = max_instances
        self.difficulty = float(difficulty)
        self.kinds = kinds

    def __len__(self) -> int:
        return self.num_samples

    def sample_id(self, index: int) -> str:
        return f"{self.name}/s{self.seed}/{index:06d}"

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        """Scene ``index``; ``rng`` is ignored, scenes are seeded by (seed, index)."""
        return self.render(index).sample

    def render(self, index: int) -> SyntheticScene:
        """Render scene ``index`` with its instances (see the module docstring for fg / bg)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        rng = np.random.default_rng([self.seed, index])
        height, width = self.image_size
        difficulty = self.difficulty
        background, background_low = render_background(rng, height, width, difficulty)

        count = int(rng.integers(self.min_instances, self.max_instances + 1))
        discs = _layout(rng, count, height, width)
        contrasts = [contrast_to_region(background_low, c, r, self.image_size) for c, r in discs]
        specs = _choose_specs(rng, self.kinds, difficulty, contrasts)
        drawn = [
            render_instance(rng, spec, centre, radius, difficulty, (height, width))
            for spec, (centre, radius) in zip(specs, discs, strict=True)
        ]
        # specs[0] is the intended target; drawing order is shuffled so it may be occluded.
        order = rng.permutation(len(drawn))
        layers = [drawn[i] for i in order if drawn[i] is not None]
        intended = next((k for k, layer in enumerate(layers) if layer is drawn[0]), 0)
        target = _pick_visible_target(layers, intended)

        sample_id = self.sample_id(index)
        image, alpha, fg, bg = _composite(background, layers, target)
        text = referring_expression(layers, target, height, width, rng)
        sample = RawSample(
            sample_id=sample_id,
            image=image,
            alpha=alpha,
            fg=fg,
            bg=bg,
            text=text,
            is_transparent=layers[target].spec.kind == "glass",
            source=self.name,
        )
        return SyntheticScene(sample=sample, layers=layers, target=target)


def _layout(
    rng: np.random.Generator, count: int, height: int, width: int
) -> list[tuple[tuple[float, float], float]]:
    """Discs ``((cx, cy), radius)`` on a jittered grid: neighbours overlap only a little."""
    cols = max(1, math.ceil(math.sqrt(count * width / height)))
    rows = math.ceil(count / cols)
    if 0.75 <= width / height <= 4 / 3 and rng.random() < 0.5:  # transpose: 2x1 or 1x2, ...
        rows, cols = cols, rows
    cell_w, cell_h = width / cols, height / rows
    discs = []
    for cell in rng.permutation(rows * cols)[:count]:
        row, col = divmod(int(cell), cols)
        radius = min(cell_w, cell_h) / 2 * rng.uniform(0.65, 0.95)
        # Free to wander in its cell, and a bit beyond it (controlled overlap).
        slack_x, slack_y = cell_w / 2 - radius + 0.15 * cell_w, cell_h / 2 - radius + 0.15 * cell_h
        cx = (col + 0.5) * cell_w + rng.uniform(-slack_x, slack_x)
        cy = (row + 0.5) * cell_h + rng.uniform(-slack_y, slack_y)
        # At most a small part of an instance may leave the frame.
        cx = float(np.clip(cx, 0.75 * radius, width - 0.75 * radius))
        cy = float(np.clip(cy, 0.75 * radius, height - 0.75 * radius))
        discs.append(((cx, cy), radius))
    return discs


def _choose_specs(
    rng: np.random.Generator, kinds: list[str], difficulty: float, contrasts: list[np.ndarray]
) -> list[InstanceSpec]:
    """Kind, colour and shape of every instance; the first is the target.

    Colours are chosen among those contrasting enough with the background under the instance (less
    required when harder); distractors copy the target's kind, shape or colour with a probability
    that grows with difficulty, but at most one distractor shares both its colour and shape.
    """
    similarity = 0.6 * difficulty
    specs: list[InstanceSpec] = []
    for contrast in contrasts:
        threshold = 150.0 - 70.0 * difficulty
        target = specs[0] if specs else None
        if target is not None and rng.random() < similarity:
            kind = target.kind
        else:
            kind = str(rng.choice(kinds))
        if kind == "furry":  # thin strands need more contrast to be seen
            threshold += 25.0
        eligible = np.flatnonzero(contrast >= threshold)
        if len(eligible) == 0:
            eligible = np.argsort(contrast)[-3:]
        if target is not None and kind == target.kind and rng.random() < similarity:
            shape = target.shape
        else:
            shape = str(rng.choice(KIND_SHAPES[kind]))
        colour_name = PALETTE_NAMES[int(rng.choice(eligible))]
        if target is not None:
            copies_colour = rng.random() < similarity
            target_colour = PALETTE_NAMES.index(target.colour_name)
            if copies_colour and contrast[target_colour] >= 0.8 * threshold:
                colour_name = target.colour_name
            twins = sum(
                s.colour_name == target.colour_name and s.shape == target.shape for s in specs[1:]
            )
            if twins and colour_name == target.colour_name and shape == target.shape:
                others = [i for i in np.argsort(contrast)[::-1] if i != target_colour]
                colour_name = PALETTE_NAMES[int(others[rng.integers(min(3, len(others)))])]
        specs.append(InstanceSpec(kind, colour_name, shape, _descriptor(rng, kind, shape)))
    return specs


def _descriptor(rng: np.random.Generator, kind: str, shape: str) -> str:
    if kind == "solid":
        return str(rng.choice(SOLID_TEXTURES))
    if kind == "holes":
        return "ring" if shape == "ring" else "holes"
    return kind  # "furry", "glass"


def _transmission(layers: list[InstanceLayer], target: int) -> np.ndarray:
    """h x w float32: fraction of the target's patch left visible by the layers drawn over it."""
    own = layers[target]
    transmission = np.ones_like(own.alpha)
    for occluder in layers[target + 1 :]:
        window = _intersection(own, occluder)
        if window is not None:
            in_own, in_occluder = window
            transmission[in_own] *= 1.0 - occluder.alpha[in_occluder]
    return transmission


def _intersection(
    own: InstanceLayer, other: InstanceLayer
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Overlap of two patches as slices into each, or None when they do not overlap."""
    (own_rows, own_cols), (other_rows, other_cols) = own.window, other.window
    y0, y1 = max(own_rows.start, other_rows.start), min(own_rows.stop, other_rows.stop)
    x0, x1 = max(own_cols.start, other_cols.start), min(own_cols.stop, other_cols.stop)
    if y1 <= y0 or x1 <= x0:
        return None
    return (
        (slice(y0 - own.top, y1 - own.top), slice(x0 - own.left, x1 - own.left)),
        (slice(y0 - other.top, y1 - other.top), slice(x0 - other.left, x1 - other.left)),
    )


def _pick_visible_target(layers: list[InstanceLayer], intended: int) -> int:
    """The intended target, unless occluders hide over 40% of it: then the most visible one."""

    def visible_fraction(index: int) -> float:
        own = layers[index].alpha
        return float((own * _transmission(layers, index)).sum() / max(float(own.sum()), 1e-6))

    if visible_fraction(intended) >= 0.6:
        return intended
    fractions = [visible_fraction(i) for i in range(len(layers))]
    return int(np.argmax(fractions))


def _composite(
    background: np.ndarray, layers: list[InstanceLayer], target: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alpha-composite the layers over ``background`` (modified in place).

    Returns:
        image, fg, bg as H x W x 3 uint8 and the target's visible alpha H x W float32, in the order
        (image, alpha, fg, bg); see the module docstring for the fg / bg convention.
    """
    height, width = background.shape[:2]
    image = background
    under_target = None
    for index, layer in enumerate(layers):
        region = image[layer.window]
        if index == target:
            under_target = region.copy()
        region += layer.alpha[..., None] * (layer.colour - region)

    own = layers[target]
    transmission = _transmission(layers, target)
    visible = own.alpha * transmission
    occluded = bool((transmission < 1.0).any())
    if occluded:
        # Scene without the target, inside the target's patch: occluders over what lay beneath.
        without_target = under_target.copy()
        for occluder in layers[target + 1 :]:
            window = _intersection(own, occluder)
            if window is not None:
                in_own, in_occluder = window
                patch = without_target[in_own]
                patch += occluder.alpha[in_occluder][..., None] * (
                    occluder.colour[in_occluder] - patch
                )
        opacity = visible[..., None]
        clear = 1.0 - opacity
        effective = (without_target - opacity * under_target) / np.maximum(clear, 1e-3)
        background_patch = np.where(clear > 1e-3, effective, without_target)
    else:
        background_patch = under_target

    image_u8 = cv2.convertScaleAbs(image)  # rounds and saturates to uint8
    fg = image_u8.copy()
    fg[own.window] = cv2.convertScaleAbs(own.colour)
    bg = image_u8.copy()
    bg[own.window] = cv2.convertScaleAbs(np.clip(background_patch, 0.0, 255.0))
    alpha = np.zeros((height, width), np.float32)
    alpha[own.window] = visible
    return image_u8, alpha, fg, bg


def describe_instance(spec: InstanceSpec) -> str:
    """Noun phrase of an instance without article: ``red furry blob``, ``blue glass circle``."""
    if spec.descriptor == "plain":
        return f"plain {spec.colour_name} {spec.shape}"
    if spec.descriptor == "ring":
        return f"{spec.colour_name} ring"
    if spec.descriptor == "holes":
        return f"{spec.colour_name} {spec.shape} with holes"
    return f"{spec.colour_name} {spec.descriptor} {spec.shape}"


def position_phrase(x: float, y: float, height: int, width: int) -> str:
    """``on the left``, ``in the top right``, ``at the bottom``, ``in the center`` (by thirds)."""
    horizontal = "left" if x < width / 3 else "right" if x > 2 * width / 3 else ""
    vertical = "top" if y < height / 3 else "bottom" if y > 2 * height / 3 else ""
    if horizontal and vertical:
        return f"in the {vertical} {horizontal}"
    if horizontal:
        return f"on the {horizontal}"
    if vertical:
        return f"at the {vertical}"
    return "in the center"


def referring_expression(
    layers: list[InstanceLayer], target: int, height: int, width: int, rng: np.random.Generator
) -> str:
    """Text naming the target, unambiguous where the scene allows.

    When another instance shares the target's colour and shape, a position phrase is added (or a
    superlative, ``the leftmost ...``, when the position phrases coincide too); otherwise the
    position is added at random, for variety.
    """
    own = layers[target]
    noun = describe_instance(own.spec)
    position = position_phrase(*own.centroid, height, width)
    twins = [
        layer
        for index, layer in enumerate(layers)
        if index != target
        and layer.spec.colour_name == own.spec.colour_name
        and layer.spec.shape == own.spec.shape
    ]
    if not twins:
        return f"the {noun} {position}" if rng.random() < 0.3 else f"the {noun}"
    if all(position_phrase(*t.centroid, height, width) != position for t in twins):
        return f"the {noun} {position}"
    xs = [own.centroid[0]] + [t.centroid[0] for t in twins]
    ys = [own.centroid[1]] + [t.centroid[1] for t in twins]
    candidates = []  # (separation from the nearest twin, word)
    if xs[0] == min(xs) or xs[0] == max(xs):
        gap = min(abs(xs[0] - x) for x in xs[1:])
        candidates.append((gap, "leftmost" if xs[0] == min(xs) else "rightmost"))
    if ys[0] == min(ys) or ys[0] == max(ys):
        gap = min(abs(ys[0] - y) for y in ys[1:])
        candidates.append((gap, "topmost" if ys[0] == min(ys) else "bottommost"))
    if not candidates:
        return f"the {noun} {position}"
    return f"the {max(candidates)[1]} {noun}"
