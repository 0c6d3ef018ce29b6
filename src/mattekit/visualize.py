"""Pictures people would rather look at than read: prediction grids and metric tables."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor
from torchvision.io import write_png
from torchvision.utils import draw_bounding_boxes, draw_keypoints, make_grid

from mattekit.data.sample import MattingBatch

_POSITIVE, _NEGATIVE, _BOX = "#00ff00", "#ff2020", "#ffd000"


def prompt_overlay(image: Tensor, points: Tensor, labels: Tensor, box: Tensor) -> Tensor:
    """Draw a sample's box and clicks on its image.

    Args:
        image: 3 x H x W float in [0, 1].
        points: N x 2 ``(x, y)``; labels: N (1 positive, 0 negative, -1 padding).
        box: 4 ``(x0, y0, x1, y1)``.

    Returns:
        3 x H x W uint8.
    """
    canvas = (image.clamp(0, 1) * 255).to(torch.uint8).cpu()
    width = max(1, image.shape[-1] // 128)
    canvas = draw_bounding_boxes(canvas, box[None].cpu(), colors=_BOX, width=width)
    for label, colour in ((1, _POSITIVE), (0, _NEGATIVE)):
        chosen = points[labels == label].cpu()
        if len(chosen):
            canvas = draw_keypoints(canvas, chosen[None], colors=colour, radius=2 * width)
    return canvas


def prediction_grid(batch: MattingBatch, prediction: Tensor, max_rows: int = 4) -> Tensor:
    """One row per sample: image | prompt overlay | GT alpha | predicted alpha.

    Args:
        batch: the batch the prediction was made on.
        prediction: B x 1 x H x W alpha in [0, 1].
        max_rows: at most this many samples.

    Returns:
        3 x H' x W' uint8 grid.
    """
    tiles = []
    for i in range(min(max_rows, len(batch))):
        to_rgb = lambda t: (t.detach().clamp(0, 1).expand(3, -1, -1) * 255).to(torch.uint8).cpu()  # noqa: E731
        tiles += [
            to_rgb(batch.image[i]),
            prompt_overlay(batch.image[i], batch.points[i], batch.point_labels[i], batch.box[i]),
            to_rgb(batch.alpha[i]),
            to_rgb(prediction[i].float()),
        ]
    return make_grid(tiles, nrow=4, padding=2, pad_value=255)


def write_png_grid(grid: Tensor, path: str | Path) -> None:
    """Write a 3 x H x W uint8 grid atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as handle:
        temporary = handle.name
    write_png(grid.cpu(), temporary)
    os.replace(temporary, path)


def write_metrics_table(
    rows: list[Mapping[str, object]], path: str | Path, preamble: str = ""
) -> str:
    """Write rows as ``path`` (.md) and its .csv sibling, atomically; return the Markdown.

    Floats are printed with 4 significant digits in the Markdown and full precision in the CSV.
    ``preamble`` (Markdown, e.g. a title and the command that made the table) goes before the
    table in the .md only, so the CSV stays plain rows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    # A "|" or a line break inside a cell (an error message, a string value) would end the row.
    escape = lambda text: text.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else escape(str(v))  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    markdown = "\n".join(lines) + "\n"
    if preamble:
        markdown = preamble.rstrip("\n") + "\n\n" + markdown
    _write_text_atomic(path, markdown)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, suffix=".csv", delete=False, newline=""
    ) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(handle.name, path.with_suffix(".csv"))
    return markdown


def _write_text_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)
