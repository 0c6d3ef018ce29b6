"""The comparison figure of a grid: every run's test predictions side by side."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from mattekit.pipelines.grid.results import GridResults
from mattekit.pipelines.grid.spec import GridSpec
from mattekit.visualize import SAMPLE_KEYS, prediction_grid, write_png_grid

logger = logging.getLogger(__name__)

FIGURE_TILE = 128  # smallest tile side of the comparison figure, in pixels


def write_comparison_figure(spec: GridSpec, results: GridResults, path: Path) -> bool:
    """One picture of the grid: the test samples of every run of the first seed, side by side.

    Columns are labelled by the run's grid values. Drawn from each run's
    ``test/predictions_test.pt``; nothing is drawn (False) unless at least two runs have one and
    all of them predicted on the same images and prompts (a grid over data would not).
    """
    seed = spec.seeds[0]
    columns: dict[str, torch.Tensor] = {}
    reference = None
    for row in results.runs:
        if row.get("seed") != seed or row.get("error"):
            continue
        saved = Path(str(row["run_dir"])) / "test" / "predictions_test.pt"
        if not saved.is_file():
            continue
        samples = torch.load(saved, map_location="cpu", weights_only=True)
        if reference is None:
            reference = samples
        elif any(
            key in samples and not torch.equal(samples[key], reference[key]) for key in SAMPLE_KEYS
        ):
            logger.info("grid %s: runs predicted on different samples, no figure", spec.name)
            return False
        # Values without inner spaces: the header breaks labels at ", " only between settings.
        label = ", ".join(
            f"{key.rsplit('.', 1)[-1]}={str(row[key]).replace(', ', ',')}"
            for key in spec.keys
            if row.get(key, "") != ""
        )
        columns[label or f"run {row['run']}"] = samples["prediction"]
    if reference is None or len(columns) < 2:
        return False
    # Small training images would leave no room for the labels: draw tiles of 128 px or more.
    scale = max(1.0, FIGURE_TILE / max(reference["image"].shape[-2:]))
    if scale > 1:
        reference, columns = _upscaled(reference, scale), _upscaled(columns, scale)
    write_png_grid(prediction_grid(reference, columns), path)
    return True


def _upscaled(tensors: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """Images and alphas resized by ``scale``; prompt coordinates scaled to match."""
    resized = {}
    for key, value in tensors.items():
        if value.ndim == 4:
            resized[key] = F.interpolate(value.float(), scale_factor=scale, mode="bilinear")
        elif key in ("points", "box"):
            resized[key] = value * scale
        else:
            resized[key] = value
    return resized
