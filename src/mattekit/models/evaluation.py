"""What one evaluation stage scores: the model, the "box as alpha" reference, object sizes.

Kept apart from the Lightning loop so the loop reads as a loop. Every rank calls
:meth:`StageMetrics.compute` (torchmetrics synchronises inside it); only rank 0 writes tables.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.aggregation import SumMetric

from mattekit.data.sample import MattingBatch
from mattekit.metrics import SIZE_BUCKETS, matting_metrics, object_size

REFERENCE_NAME = "box as alpha (reference)"


def at_original_size(
    maps: Tensor, sizes: Tensor, content: Tensor, mode: str = "bilinear"
) -> list[Tensor]:
    """Crop each B x C x H x W map to its content (B x 2), resize to its stored size (B x 2).

    Returns:
        ``[C x H_i x W_i, ...]`` clamped to [0, 1].
    """
    align = False if mode == "bilinear" else None
    resized = []
    for i, (size, (height, width)) in enumerate(zip(sizes, content.tolist(), strict=True)):
        cropped = maps[i : i + 1, :, :height, :width]
        map_i = F.interpolate(cropped, tuple(size.tolist()), mode=mode, align_corners=align)
        resized.append(map_i[0].clamp(0, 1))
    return resized


def scored_pairs(
    prediction: Tensor, batch: MattingBatch, mode: str, at_original: bool, with_trimap: bool
) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    """Per sample ``(prediction, GT, trimap)``, each 1 x 1 x H x W, at the scoring resolution.

    With ``at_original`` (and the batch carrying stored-size GT) predictions are resized to each
    image's stored size and paired with the stored GT and trimap; otherwise everything stays at
    the network input size. ``mode`` is the interpolation of the prediction.
    """
    if at_original and batch.original_alpha is not None:
        predictions = at_original_size(prediction, batch.original_size, batch.content_size, mode)
        targets, trimaps = batch.original_alpha, batch.original_trimap
    else:
        predictions, targets, trimaps = list(prediction), list(batch.alpha), list(batch.trimap)
    for pred, target, trimap in zip(predictions, targets, trimaps, strict=True):
        yield pred[None], target[None], (trimap[None] if with_trimap else None)


def _computed(metrics) -> dict[str, float]:
    """``{"SAD": ...}`` from a collection (or ``{"value": ...}`` from one metric); resets it."""
    with warnings.catch_warnings():  # an empty size bucket is expected, not a mistake
        warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
        computed = metrics.compute()
    metrics.reset()
    if not isinstance(computed, dict):
        return {"value": float(computed)}
    return {name.split("/")[-1]: float(value) for name, value in computed.items()}


class StageMetrics(nn.Module):
    """Metric collections of one stage (``val`` or ``test``).

    Args:
        stage: prefix of the logged names (``val/SAD``).
        preset: matting metric preset.
        size_breakdown: also score samples per object size (S / M / L, ZIM's MicroMat-3K rule).
    """

    def __init__(self, stage: str, preset: str, size_breakdown: bool = False) -> None:
        super().__init__()
        self.stage = stage
        self.model = matting_metrics(preset, prefix=f"{stage}/")
        self.reference = matting_metrics(preset, prefix=f"{stage}/")
        buckets = SIZE_BUCKETS if size_breakdown else ()
        self.sizes = nn.ModuleDict({size: matting_metrics(preset) for size in buckets})
        self.size_counts = nn.ModuleDict({size: SumMetric() for size in buckets})
        # The evaluation data and its prompts are seeded, so the floor is computed once.
        self.reference_row: dict[str, float] | None = None

    @property
    def needs_reference(self) -> bool:
        return self.reference_row is None

    def update(self, pairs, reference_pairs=None) -> None:
        """Score the model's ``(pred, GT, trimap)`` pairs and, if given, the reference's."""
        for pred, target, trimap in pairs:
            self.model.update(pred, target, trimap)
            if len(self.sizes):
                size = object_size(target)
                self.sizes[size].update(pred, target, trimap)
                self.size_counts[size].update(1.0)
        for pred, target, trimap in reference_pairs or ():
            self.reference.update(pred, target, trimap)

    def compute(self, model_name: str, sanity_check: bool) -> tuple[dict[str, float], list[dict]]:
        """Logged values (``{"val/SAD": ...}``) and table rows; resets the states."""
        values = {f"{self.stage}/{k}": v for k, v in _computed(self.model).items()}
        if sanity_check:
            self.reference.reset()
            for metrics in (*self.sizes.values(), *self.size_counts.values()):
                metrics.reset()
            return values, []
        if self.reference_row is None:
            self.reference_row = _computed(self.reference)
        rows = [{"model": model_name, **{k.split("/")[-1]: v for k, v in values.items()}}]
        for size, metrics in self.sizes.items():
            count = int(_computed(self.size_counts[size])["value"])
            size_values = _computed(metrics)
            if count:
                rows.append({"model": f"{model_name} [{size}, n={count}]", **size_values})
                values.update({f"{self.stage}/{size}/{k}": v for k, v in size_values.items()})
        rows.append({"model": REFERENCE_NAME, **self.reference_row})
        return values, rows
