"""What the user has pointed at so far in the demo, and how it is drawn on the photo."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from mattekit.prompts import KINDS
from mattekit.prompts.user import UserPrompt

#: What a click on the photo adds.
CLICK_MODES = ("positive click", "negative click", "box corner")


def upload_kinds(accepted: tuple[str, ...]) -> list[str]:
    """The kinds a family takes as an uploaded file (the demo's ``upload`` widget: a mask, a
    trimap), in :data:`~mattekit.prompts.KINDS` order."""
    return [name for name, kind in KINDS.items() if kind.widget == "upload" and name in accepted]


def click_modes(accepted: tuple[str, ...]) -> list[str]:
    """The click modes a family's prompts allow (clicks for ``points``, corners for ``box``)."""
    modes = ["positive click", "negative click"] if "points" in accepted else []
    return modes + (["box corner"] if "box" in accepted else [])


@dataclass(frozen=True)
class PromptState:
    """Clicks ``(x, y, label)`` and box corners in photo pixels (a box needs two corners), a
    text, uploaded files by kind (``(("mask", path),)``: :func:`upload_kinds`)."""

    clicks: tuple[tuple[int, int, int], ...] = ()
    corners: tuple[tuple[int, int], ...] = ()
    text: str = ""
    files: tuple[tuple[str, str], ...] = ()

    def add(self, mode: str, x: int, y: int) -> PromptState:
        """The state after a click at ``(x, y)`` in ``mode`` (a third corner starts a new box)."""
        if mode == "box corner":
            corners = self.corners if len(self.corners) < 2 else ()
            return replace(self, corners=(*corners, (x, y)))
        if mode not in CLICK_MODES:
            raise ValueError(f"unknown click mode {mode!r}; one of {CLICK_MODES}")
        return replace(self, clicks=(*self.clicks, (x, y, int(mode == "positive click"))))

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        if len(self.corners) < 2:
            return None
        (x0, y0), (x1, y1) = self.corners
        return float(min(x0, x1)), float(min(y0, y1)), float(max(x0, x1)), float(max(y0, y1))

    def prompt(self) -> UserPrompt:
        return UserPrompt(
            points=tuple((float(x), float(y), label) for x, y, label in self.clicks),
            box=self.box,
            text=self.text or None,
            origin="demo",
            **{kind: Path(path) for kind, path in self.files},
        )

    def describe(self) -> str:
        """One line naming every prompt (the page shows it; the browser test reads it)."""
        parts = [f"{'positive' if label else 'negative'} click at ({x}, {y})"
                 for x, y, label in self.clicks]  # fmt: skip
        if self.box is not None:
            parts.append("box " + ", ".join(f"{v:g}" for v in self.box))
        elif self.corners:
            parts.append(f"box corner at {self.corners[0]} (click the opposite one)")
        if self.text:
            parts.append(f"text {self.text!r}")
        parts += [f"{kind} {Path(path).name}" for kind, path in self.files]
        return "; ".join(parts) or "no prompt yet: click on the photo"


def draw_prompts(image: np.ndarray, state: PromptState) -> np.ndarray:
    """The photo with the clicks (green positive, red negative) and the box drawn on it."""
    canvas = image.copy()
    radius = max(3, round(max(image.shape[:2]) / 120))
    for x, y, label in state.clicks:
        colour = (40, 220, 60) if label else (230, 40, 40)
        cv2.circle(canvas, (x, y), radius, colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, (x, y), radius, (255, 255, 255), 1, cv2.LINE_AA)
    for x, y in state.corners:
        cv2.drawMarker(canvas, (x, y), (255, 200, 0), cv2.MARKER_CROSS, 3 * radius, 2)
    if state.box is not None:
        x0, y0, x1, y1 = (round(v) for v in state.box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (255, 200, 0), max(1, radius // 2))
    return canvas
