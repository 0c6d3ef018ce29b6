"""What one evaluation stage scores: the model, the "box as alpha" reference, object sizes.

Kept apart from the Lightning loop so the loop reads as a loop. Every rank calls
:meth:`StageMetrics.compute` (torchmetrics synchronises inside it); only rank 0 writes tables.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.aggregation import SumMetric

from mattekit.data.sample import MattingBatch
from mattekit.metrics import SIZE_BUCKETS, matting_metrics, object_size
from mattekit.prompts import get_kind
from mattekit.prompts.protocols import quantized

REFERENCE_NAME = "box as alpha (reference)"
#: The reference row's name by the evaluation kind's floor region (:mod:`mattekit.prompts`).
_FLOOR_NAMES = {
    "box": REFERENCE_NAME,
    "coarse_mask": "mask as alpha (reference)",
    "trimap": "trimap as alpha (reference)",
}


def floor_name(kind: str) -> str | None:
    """The reference row's name when evaluating with ``kind`` (None: ``none`` has no floor)."""
    region = get_kind(kind).floor_field
    return None if region is None else _FLOOR_NAMES[region]


def at_original_size(
    maps: Tensor, sizes: Tensor, content: Tensor, mode: str = "bilinear", logits: bool = False
) -> list[Tensor]:
    """Crop each B x C x H x W map to its content (B x 2), resize to its stored size (B x 2).

    With ``logits`` the maps are logits, resized first and then passed through the sigmoid
    (the official SAM / ZIM releases resize logits, never probabilities).

    Returns:
        ``[C x H_i x W_i, ...]`` in [0, 1].
    """
    align = False if mode == "bilinear" else None
    resized = []
    for i, (size, (height, width)) in enumerate(zip(sizes, content.tolist(), strict=True)):
        cropped = maps[i : i + 1, :, :height, :width]
        map_i = F.interpolate(cropped, tuple(size.tolist()), mode=mode, align_corners=align)[0]
        resized.append(map_i.sigmoid() if logits else map_i.clamp(0, 1))
    return resized


def alpha_at_original_size(outputs: dict[str, Tensor], batch: MattingBatch) -> list[Tensor]:
    """A family's predicted alpha at each image's stored size (``[1 x H_i x W_i, ...]``), from
    its ``alpha_logits`` when it gives them, else from its ``alpha``."""
    logits = "alpha_logits" in outputs
    maps = outputs["alpha_logits" if logits else "alpha"].float()
    return at_original_size(maps, batch.original_size, batch.content_size, logits=logits)


def scored_pairs(
    prediction: Tensor,
    batch: MattingBatch,
    mode: str,
    at_original: bool,
    with_trimap: bool,
    logits: bool = False,
    quantize: str = "none",
) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    """Per sample ``(prediction, GT, trimap)``, each 1 x 1 x H x W, at the scoring resolution.

    With ``at_original`` (and the batch carrying stored-size GT) predictions are resized to each
    image's stored size and paired with the stored GT and trimap; otherwise everything stays at
    the network input size. ``mode`` is the interpolation of the prediction; with ``logits`` the
    prediction is logits, resized before the sigmoid. ``quantize`` (``none``, ``round``,
    ``truncate``) scores the prediction as an 8-bit PNG of it would be
    (:func:`~mattekit.prompts.protocols.quantized`: DIM's and SDMatte's protocols).
    """
    if at_original and batch.original_alpha is not None:
        predictions = at_original_size(
            prediction, batch.original_size, batch.content_size, mode, logits
        )
        targets, trimaps = batch.original_alpha, batch.original_trimap
    else:
        predictions = list(prediction.sigmoid() if logits else prediction)
        targets, trimaps = list(batch.alpha), list(batch.trimap)
    for pred, target, trimap in zip(predictions, targets, trimaps, strict=True):
        yield quantized(pred, quantize)[None], target[None], (trimap[None] if with_trimap else None)


def _computed(metrics) -> dict[str, float]:
    """``{"SAD": ...}`` from a collection (or ``{"value": ...}`` from one metric); resets it."""
    with warnings.catch_warnings():  # an empty size bucket is expected, not a mistake
        warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
        computed = metrics.compute()
    metrics.reset()
    if not isinstance(computed, dict):
        return {"value": float(computed)}
    return {name.split("/")[-1]: float(value) for name, value in computed.items()}


@dataclass(frozen=True)
class OutputMetrics:
    """Metrics on an output other than the alpha (SAMA's segmentation mask, say).

    Scored at the network input size against a batch field (``seg_mask``), logged as
    ``<stage>/<output>/<metric>`` and added as columns of the model's row.

    Attributes:
        output: key of the family's outputs, B x 1 x H x W in [0, 1].
        target: name of the :class:`MattingBatch` field it is scored against (B x 1 x H x W).
        metrics: builds the collection (e.g. :func:`mattekit.metrics.segmentation_metrics`).
    """

    output: str
    target: str
    metrics: Callable[[], MetricCollection]


class StageMetrics(nn.Module):
    """Metric collections of one stage (``val`` or ``test``).

    Args:
        stage: prefix of the logged names (``val/SAD``).
        preset: matting metric preset.
        size_breakdown: also score samples per object size (S / M / L, ZIM's MicroMat-3K rule).
        reference_name: label of the reference row; None: the family has none.
        extra: metrics on other outputs.
    """

    def __init__(
        self,
        stage: str,
        preset: str,
        size_breakdown: bool = False,
        reference_name: str | None = REFERENCE_NAME,
        extra: list[OutputMetrics] | tuple[OutputMetrics, ...] = (),
    ) -> None:
        super().__init__()
        self.stage = stage
        self.model = matting_metrics(preset, prefix=f"{stage}/")
        self.reference_name = reference_name
        self.reference = matting_metrics(preset, prefix=f"{stage}/")
        buckets = SIZE_BUCKETS if size_breakdown else ()
        self.sizes = nn.ModuleDict({size: matting_metrics(preset) for size in buckets})
        self.size_counts = nn.ModuleDict({size: SumMetric() for size in buckets})
        self.extra_specs = {spec.output: spec for spec in extra}
        self.extra = nn.ModuleDict({spec.output: spec.metrics() for spec in extra})
        # The evaluation data and its prompts are seeded, so the floor is computed once.
        self.reference_row: dict[str, float] | None = None

    @property
    def needs_reference(self) -> bool:
        return self.reference_name is not None and self.reference_row is None

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

    def update_extra(self, outputs: dict[str, Tensor], batch: MattingBatch) -> None:
        """Score the extra outputs against their batch fields.

        Raises:
            KeyError naming the output when the family's forward did not return it.
        """
        for output, spec in self.extra_specs.items():
            if output not in outputs:
                raise KeyError(f"extra metrics on '{output}', but forward returned {list(outputs)}")
            target = getattr(batch, spec.target)
            self.extra[output].update(outputs[output].float().clamp(0, 1), target)

    def compute(self, model_name: str, sanity_check: bool) -> tuple[dict[str, float], list[dict]]:
        """Logged values (``{"val/SAD": ...}``) and table rows; resets the states."""
        values = {f"{self.stage}/{k}": v for k, v in _computed(self.model).items()}
        model_row = {k.split("/")[-1]: v for k, v in values.items()}
        for output, metrics in self.extra.items():
            for name, value in _computed(metrics).items():
                values[f"{self.stage}/{output}/{name}"] = value
                model_row[f"{output}/{name}"] = value
        if sanity_check:
            self.reference.reset()
            for metrics in (*self.sizes.values(), *self.size_counts.values()):
                metrics.reset()
            return values, []
        if self.reference_row is None and self.reference_name is not None:
            self.reference_row = _computed(self.reference)
        rows = [{"model": model_name, **model_row}]
        for size, metrics in self.sizes.items():
            count = int(_computed(self.size_counts[size])["value"])
            size_values = _computed(metrics)
            if count:
                rows.append({"model": f"{model_name} [{size}, n={count}]", **size_values})
                values.update({f"{self.stage}/{size}/{k}": v for k, v in size_values.items()})
        if self.reference_name is not None:
            rows.append({"model": self.reference_name, **self.reference_row})
        return values, rows
