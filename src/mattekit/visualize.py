"""Pictures people would rather look at than read: prediction grids and metric tables."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.io import encode_png
from torchvision.utils import (
    draw_bounding_boxes,
    draw_keypoints,
    draw_segmentation_masks,
    make_grid,
)

from mattekit.atomic_files import write_bytes_atomic
from mattekit.data.sample import MattingBatch
from mattekit.prompts import KINDS, get_kind

_POSITIVE, _NEGATIVE, _BOX = "#00ff00", "#ff2020", "#ffd000"


def to_uint8(values: Tensor) -> Tensor:
    """Values in [0, 1] (clamped) to the nearest of 0 ... 255."""
    return (values.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def prompt_overlay(
    image: Tensor,
    points: Tensor,
    labels: Tensor,
    box: Tensor,
    mask: Tensor | None = None,
    trimap: Tensor | None = None,
) -> Tensor:
    """Draw a sample's prompt on its image: the box, the clicks, the coarse mask (tinted), the
    trimap (foreground tinted like a mask, the unknown band in the negative clicks' colour).

    Args:
        image: 3 x H x W float in [0, 1].
        points: N x 2 ``(x, y)``; labels: N (1 positive, 0 negative, -1 not shown).
        box: 4 ``(x0, y0, x1, y1)``; not drawn when empty (``x1 <= x0``).
        mask: 1 x H x W coarse mask, tinted where above 0.5; None or all zero: not drawn.
        trimap: 1 x H x W in {0, 0.5, 1}; None or all zero: not drawn.

    Returns:
        3 x H x W uint8.
    """
    canvas = to_uint8(image).cpu()
    if mask is not None and bool((mask > 0.5).any()):
        canvas = draw_segmentation_masks(canvas, mask.cpu()[0] > 0.5, alpha=0.45, colors=_BOX)
    if trimap is not None and bool((trimap > 0).any()):
        regions = torch.stack([trimap.cpu()[0] > 0.75, (trimap.cpu()[0] - 0.5).abs() < 0.25])
        canvas = draw_segmentation_masks(canvas, regions, alpha=0.45, colors=[_BOX, _NEGATIVE])
    width = max(1, image.shape[-1] // 128)
    if box[2] > box[0]:
        canvas = draw_bounding_boxes(canvas, box[None].cpu(), colors=_BOX, width=width)
    for label, colour in ((1, _POSITIVE), (0, _NEGATIVE)):
        chosen = points[labels == label].cpu()
        if len(chosen):
            canvas = draw_keypoints(canvas, chosen[None], colors=colour, radius=2 * width)
    return canvas


SAMPLE_KEYS = ("image", "alpha", "points", "point_labels", "box", "coarse_mask", "trimap")
#: Each kind's drawn fields, and the value that blanks them where another kind was given.
_BLANKED = {
    name: -1 if name == "point_labels" else 0
    for kind in KINDS.values()
    for name in kind.drawn_fields
    if name != "text"
}


def blank_other_kinds(samples: dict[str, Tensor], kinds: Sequence[str]) -> dict[str, Tensor]:
    """Blank, in place, each sample's fields of the kinds it was not given (``kinds``: one per
    sample), so that a picture draws only the prompt the model saw; returns ``samples``."""
    for index, kind in enumerate(kinds):
        drawn = get_kind(kind).drawn_fields
        for name, blank in _BLANKED.items():
            if name not in drawn and name in samples:
                samples[name][index] = blank
    return samples


def logged_samples(
    batch: MattingBatch, prediction: Tensor, count: int, kinds: Sequence[str] | str = "box"
) -> dict[str, Tensor]:
    """The first ``count`` samples of a batch and their prediction, on the CPU.

    What a prediction picture needs, as plain tensors: saved beside each run's picture, they
    let pictures that compare runs on the same samples be drawn later (:func:`prediction_grid`).
    Only the prompt each sample was given (``kinds``: one per sample, or one for all) is kept
    for drawing: the other kinds' fields are blanked (no clicks, an empty box, an empty mask or
    trimap); samples given ``text`` keep their expression (``text``, a list; "" for others).
    """
    samples = {key: getattr(batch, key)[:count].detach().cpu().clone() for key in SAMPLE_KEYS}
    kinds = [kinds] * len(samples["image"]) if isinstance(kinds, str) else list(kinds)[:count]
    blank_other_kinds(samples, kinds)
    if "text" in kinds:
        samples["text"] = [
            t if k == "text" else "" for t, k in zip(batch.text[:count], kinds, strict=True)
        ]
    samples["prediction"] = prediction[:count].detach().float().cpu()
    return samples


def prediction_grid(samples: Mapping[str, Tensor], predictions: Mapping[str, Tensor]) -> Tensor:
    """One row per sample: image | prompt overlay | GT alpha | one column per prediction.

    Args:
        samples: ``image`` B x 3 x H x W, ``alpha`` B x 1 x H x W, ``points`` B x N x 2,
            ``point_labels`` B x N, ``box`` B x 4 (see :func:`logged_samples`).
        predictions: column label -> B x 1 x H x W alpha in [0, 1]. Labels, when any is
            non-empty, are written above their columns.

    Returns:
        3 x H' x W' uint8 grid.
    """
    to_rgb = lambda t: to_uint8(t.expand(3, -1, -1))  # noqa: E731
    tiles = []
    for i in range(len(samples["image"])):
        image = samples["image"][i].cpu()
        overlay = prompt_overlay(
            image,
            samples["points"][i],
            samples["point_labels"][i],
            samples["box"][i],
            samples["coarse_mask"][i] if "coarse_mask" in samples else None,
            samples["trimap"][i] if "trimap" in samples else None,
        )
        if samples.get("text") and samples["text"][i]:
            overlay = captioned(overlay, samples["text"][i])
        tiles += [
            to_rgb(image),
            overlay,
            to_rgb(samples["alpha"][i].cpu()),
            *(to_rgb(prediction[i].cpu()) for prediction in predictions.values()),
        ]
    columns = 3 + len(predictions)
    grid = make_grid(tiles, nrow=columns, padding=2, pad_value=255)
    labels = ["image", "prompt", "GT", *predictions]
    if not any(predictions):
        return grid
    return torch.cat([_header(labels, grid.shape[-1], columns), grid], dim=1)


def captioned(tile: Tensor, text: str) -> Tensor:
    """``tile`` (3 x H x W uint8) with ``text`` written over its top, wrapped at word breaks
    on a white band: a text prompt drawn where a box or clicks would be."""
    font = ImageFont.load_default()
    canvas = Image.fromarray(tile.permute(1, 2, 0).numpy().copy())
    draw = ImageDraw.Draw(canvas)
    lines: list[str] = []
    for word in (text or "(no text)").split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= canvas.width - 4:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    line_height = 2 + font.getbbox("Ag")[3]
    draw.rectangle((0, 0, canvas.width, 2 + line_height * len(lines)), fill="white")
    for number, line in enumerate(lines):
        draw.text((2, 1 + number * line_height), line, fill="black", font=font)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1)


def _header(labels: list[str], width: int, columns: int) -> Tensor:
    """A white strip with each label centred over its column: 3 x h x width uint8.

    A label is broken at ", " and, where a part is still wider than its column, between
    characters, so that neighbouring labels never overlap.
    """
    font = ImageFont.load_default()
    column_width = width / columns
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    fits = lambda text: measure(text, font=font) <= column_width - 4  # noqa: E731
    wrapped = [_wrap(label, fits) for label in labels]
    line_height = 2 + max(font.getbbox(label or " ")[3] for label in labels)
    strip = Image.new("RGB", (width, 4 + line_height * max(map(len, wrapped))), "white")
    draw = ImageDraw.Draw(strip)
    for index, lines in enumerate(wrapped):
        for number, line in enumerate(lines):
            x = column_width * (index + 0.5) - measure(line, font=font) / 2
            draw.text((x, 2 + number * line_height), line, fill="black", font=font)
    return torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1)


def title_strip(title: str, width: int) -> Tensor:
    """A white strip ``width`` wide with ``title`` centred (3 x h x width uint8)."""
    return _header([title], width, 1)


def _wrap(label: str, fits) -> list[str]:
    """``label`` as lines that each satisfy ``fits`` (a single character always does)."""
    lines = []
    for part in label.split(", "):
        line = ""
        for character in part:
            if line and not fits(line + character):
                lines.append(line)
                line = ""
            line += character
        lines.append(line)
    return lines


def write_png_grid(grid: Tensor, path: str | Path) -> None:
    """Write a 3 x H x W uint8 grid atomically (a reader never sees half a file)."""
    write_bytes_atomic(path, encode_png(grid.cpu()).numpy().tobytes())


def write_samples(samples: Mapping[str, Tensor], path: str | Path) -> None:
    """Save :func:`logged_samples` atomically (read back with ``torch.load(weights_only=True)``)."""
    buffer = io.BytesIO()
    torch.save(dict(samples), buffer)
    write_bytes_atomic(path, buffer.getvalue())


def markdown_table(rows: list[Mapping[str, object]]) -> str:
    """Rows as a Markdown table: columns in order of first appearance, floats to 4 digits."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    # A "|" or a line break inside a cell (an error message, a string value) would end the row.
    escape = lambda text: text.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else escape(str(v))  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_metrics_table(
    rows: list[Mapping[str, object]], path: str | Path, preamble: str = ""
) -> str:
    """Write rows as ``path`` (.md) and its .csv sibling, atomically; return the Markdown.

    Floats are printed with 4 significant digits in the Markdown and full precision in the CSV.
    ``preamble`` (Markdown, e.g. a title and the command that made the table) goes before the
    table in the .md only, so the CSV stays plain rows.
    """
    path = Path(path)
    markdown = markdown_table(rows)
    if preamble:
        markdown = preamble.rstrip("\n") + "\n\n" + markdown
    write_bytes_atomic(path, markdown.encode())
    write_bytes_atomic(path.with_suffix(".csv"), csv_text(rows).encode())
    return markdown


def csv_text(rows: list[Mapping[str, object]]) -> str:
    """Rows as CSV, columns in order of first appearance, full precision."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return table.getvalue()
