"""The benchmark's pictures: ``tradeoff.png`` (a metric against latency, a labelled point per
method) and ``grid.png`` (image | prompt | GT | each method's alpha, the same images for all)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from mattekit.atomic_files import write_bytes_atomic
from mattekit.data.io import read_alpha, read_json
from mattekit.data.letterbox import letterbox_size
from mattekit.pipelines.benchmark.prompt_store import PromptStore, file_stem, load_raw
from mattekit.pipelines.benchmark.records import alpha_path, record_path
from mattekit.pipelines.benchmark.spec import BenchmarkSpec
from mattekit.visualize import blank_other_kinds, prediction_grid, title_strip, write_png_grid

#: Side of a sample's tiles in ``grid.png`` (each image letterboxed into it).
TILE = 192


def write_tradeoff_plot(rows: list[dict], metric: str, path: Path) -> bool:
    """One panel per dataset x prompt: ``metric`` against median latency (log axis), a
    labelled point per method; False (nothing written) when no row has both."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scored = [r for r in rows if "skipped" not in r and not math.isnan(r.get(metric, math.nan))]
    panels = list(dict.fromkeys((r["dataset"], r["prompt"]) for r in scored))
    if not panels:
        return False
    figure, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False, layout="constrained"
    )
    methods = list(dict.fromkeys(r["method"] for r in scored))
    colours = plt.get_cmap("tab10")
    for axis, (dataset, prompt) in zip(axes[0], panels, strict=True):
        for row in (r for r in scored if (r["dataset"], r["prompt"]) == (dataset, prompt)):
            latency = max(row["latency_ms"], 1e-3)  # the floor draws in microseconds
            colour = colours(methods.index(row["method"]) % 10)  # one colour per method
            axis.scatter(latency, row[metric], s=36, color=colour)
            label_at = {"xytext": (4, 4), "textcoords": "offset points", "fontsize": 8}
            axis.annotate(row["method"], (latency, row[metric]), **label_at)
        axis.set_xscale("log")
        axis.set_xlabel("median latency per image (ms, log)")
        axis.set_ylabel(f"{metric} (lower is better)")
        axis.set_title(f"{dataset}, {prompt} prompt", fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
    return True


def _letterboxed(tensor: torch.Tensor, mode: str) -> tuple[torch.Tensor, float]:
    """C x H x W into C x TILE x TILE (aspect kept, zero padding right / bottom) and the scale."""
    height, width = tensor.shape[-2:]
    size = letterbox_size((height, width), (TILE, TILE))
    scale = size[0] / height
    antialias = mode == "bilinear"
    resized = F.interpolate(tensor[None].float(), size, mode=mode, antialias=antialias)[0]
    return F.pad(resized, (0, TILE - size[1], 0, TILE - size[0])), scale


def _sample_tiles(raw, prompt) -> dict[str, torch.Tensor]:
    """One sample's tiles at ``TILE``: image, GT and every stored prompt (blanked but for the
    kind drawn by :func:`~mattekit.visualize.blank_other_kinds`)."""
    image, scale = _letterboxed(torch.from_numpy(raw.image).permute(2, 0, 1) / 255, "bilinear")
    clicks = torch.from_numpy(prompt.points)
    nearest = lambda map_: _letterboxed(torch.from_numpy(map_)[None], "nearest")[0]  # noqa: E731
    return {
        "image": image,
        "alpha": _letterboxed(torch.from_numpy(raw.alpha)[None], "bilinear")[0],
        "points": clicks[:, :2] * scale,
        "point_labels": clicks[:, 2].long(),
        "box": torch.from_numpy(prompt.box) * scale,
        "coarse_mask": nearest(prompt.coarse_mask),
        "trimap": nearest(prompt.trimap).float().div(255).round(decimals=1),
    }


def _stacked(tiles: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-sample tiles as batch tensors; click lists padded with label -1 (not drawn)."""
    length = max(len(t["points"]) for t in tiles)
    for t in tiles:
        missing = length - len(t["points"])
        t["points"] = torch.cat([t["points"], torch.zeros(missing, 2)])
        t["point_labels"] = torch.cat([t["point_labels"], torch.full((missing,), -1)])
    return {key: torch.stack([t[key] for t in tiles]) for key in tiles[0]}


def _drawn(tiles: list[dict[str, torch.Tensor]], kind: str) -> dict[str, torch.Tensor]:
    """The samples' tiles stacked, only ``kind``'s prompt left to draw."""
    return blank_other_kinds(_stacked(tiles), [kind] * len(tiles))


def write_comparison_grid(spec: BenchmarkSpec, root: Path, path: Path) -> bool:
    """``grid.png``: per dataset and prompt, the first ``grid_images`` samples, one column per
    method (:func:`_missing_tile` where it has no alpha); False when nothing was drawn."""
    blocks = []
    for dataset in spec.datasets:
        store = PromptStore(root / "prompts" / dataset.name, spec.protocol)
        store.load_manifest()
        count = min(spec.grid_images, len(dataset.source))
        raws = [load_raw(dataset.source, index, spec.protocol.seed) for index in range(count)]
        for kind in spec.protocol.prompts if raws else ():  # grid_images 0: no picture
            tiles = [_sample_tiles(raw, store.read(i, raw)) for i, raw in enumerate(raws)]
            columns = {}
            for method in spec.methods:
                record = record_path(root, method, dataset.name, kind)
                missing = _missing_tile(record)  # read once per record, not once per image
                alphas = []
                for raw in raws:
                    file = alpha_path(record, file_stem(raw.sample_id))
                    if file.exists():
                        stored = torch.from_numpy(read_alpha(file))[None]
                        alphas.append(_letterboxed(stored, "bilinear")[0])
                    else:
                        alphas.append(missing)
                columns[method.name] = torch.stack(alphas)
            if tiles:
                blocks.append(
                    _titled(prediction_grid(_drawn(tiles, kind), columns), dataset.name, kind)
                )
    if not blocks:
        return False
    width = max(block.shape[-1] for block in blocks)
    padded = [F.pad(b, (0, width - b.shape[-1]), value=255) for b in blocks]
    write_png_grid(torch.cat(padded, dim=1), path)
    return True


def _missing_tile(record: Path) -> torch.Tensor:
    """Grey where the method did not take the prompt (or was not run); a checkerboard where it
    ran but did not keep this image's alpha (``grid_images`` raised since)."""
    if not record.exists() or read_json(record, "benchmark record")["skipped"]:
        return torch.full((1, TILE, TILE), 0.5)
    squares = (torch.arange(TILE) // 16) % 2
    return (squares[:, None] ^ squares[None, :]).float()[None] * 0.5 + 0.25


def _titled(grid: torch.Tensor, dataset: str, kind: str) -> torch.Tensor:
    """The block with a line naming its dataset and prompt above it."""
    return torch.cat([title_strip(f"{dataset}, {kind} prompt", grid.shape[-1]), grid], dim=1)
