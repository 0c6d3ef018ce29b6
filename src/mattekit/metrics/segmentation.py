"""torchmetrics Metrics for DIS-style segmentation evaluation, computed by ``pysodmetrics``.

pysodmetrics keeps per-sample results in Python lists and averages them at the end, which does
not reduce across processes. Here pysodmetrics is called on one sample at a time (public
``step`` / ``get_results`` only) and the per-sample results (scalars, or 256-point curves over
thresholds) are summed into torchmetrics states with ``dist_reduce_fx="sum"``; dividing by the
sample count gives exactly what pysodmetrics reports for the same samples.

Each prediction is first quantised to 8 bits, as if saved to and read from a PNG (what every
published DIS / SOD table evaluates); pysodmetrics then min-max normalises it and binarises the
target at 128, as its MATLAB-derived code does.
"""

from __future__ import annotations

import numpy as np
import py_sod_metrics
import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection

from mattekit.metrics.inputs import check_pair

CURVE_LENGTH = 256  # pysodmetrics' thresholds 0..255


def to_uint8_pairs(pred: Tensor, target: Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """(B, 1, H, W) pred in [0, 1] and binary target -> per-sample (H, W) uint8 0..255 arrays."""
    pred, target = check_pair(pred, target)
    if not bool(((target == 0) | (target == 1)).all()):
        raise ValueError("target must be binary: every value 0 or 1")
    pred_u8 = torch.round(pred[:, 0].detach().double() * 255).to("cpu", torch.uint8).numpy()
    target_u8 = (target[:, 0].detach() * 255).to("cpu", torch.uint8).numpy()
    return list(zip(pred_u8, target_u8, strict=True))


class _SODMetric(Metric):
    """Sum of per-sample pysodmetrics results (scalar or curve) and the sample count."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    curve_length: int | None = None  # None: one scalar per sample

    result_sum: Tensor
    num_samples: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        shape = () if self.curve_length is None else (self.curve_length,)
        self.add_state("result_sum", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_samples", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: pred (B, 1, H, W) in [0, 1], target (B, 1, H, W) binary {0, 1}."""
        for pred_u8, target_u8 in to_uint8_pairs(pred, target):
            result = np.asarray(self._sample_result(pred_u8, target_u8), dtype=np.float64)
            self.result_sum += torch.from_numpy(result).to(self.result_sum.device)
            self.num_samples += 1

    def _mean_result(self) -> Tensor:
        return self.result_sum / self.num_samples

    def compute(self) -> Tensor:
        return self._mean_result()

    def _sample_result(self, pred: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        """pysodmetrics' result for one (H, W) uint8 pair."""
        raise NotImplementedError


class MaxFMeasure(_SODMetric):
    """Max F-beta (beta^2 = 0.3): max over thresholds of the mean per-sample F-beta curve."""

    curve_length = CURVE_LENGTH

    def __init__(self, beta_squared: float = 0.3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.beta_squared = beta_squared

    def _sample_result(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        handler = py_sod_metrics.FmeasureHandler(True, False, beta=self.beta_squared)
        evaluator = py_sod_metrics.FmeasureV2({"fm": handler})
        evaluator.step(pred, target)
        return evaluator.get_results()["fm"]["dynamic"]

    def compute(self) -> Tensor:
        return self._mean_result().max()


class MeanEMeasure(_SODMetric):
    """Mean E-measure: mean over thresholds of the mean per-sample E-measure curve."""

    curve_length = CURVE_LENGTH

    def _sample_result(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        evaluator = py_sod_metrics.Emeasure()
        evaluator.step(pred, target)
        return evaluator.get_results()["em"]["curve"]

    def compute(self) -> Tensor:
        return self._mean_result().mean()


class WeightedFMeasure(_SODMetric):
    """Weighted F-beta (Margolin et al. 2014), beta^2 = 1 as in pysodmetrics and DIS tables."""

    def __init__(self, beta_squared: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.beta_squared = beta_squared

    def _sample_result(self, pred: np.ndarray, target: np.ndarray) -> float:
        evaluator = py_sod_metrics.WeightedFmeasure(beta=self.beta_squared)
        evaluator.step(pred, target)
        return evaluator.get_results()["wfm"]


class SMeasure(_SODMetric):
    """Structure measure S_alpha (Fan et al. 2017), alpha = 0.5."""

    def _sample_result(self, pred: np.ndarray, target: np.ndarray) -> float:
        evaluator = py_sod_metrics.Smeasure()
        evaluator.step(pred, target)
        return evaluator.get_results()["sm"]


class SegmentationMAE(_SODMetric):
    """Mean absolute error of the (min-max normalised) prediction against the binary target."""

    higher_is_better = False

    def _sample_result(self, pred: np.ndarray, target: np.ndarray) -> float:
        evaluator = py_sod_metrics.MAE()
        evaluator.step(pred, target)
        return evaluator.get_results()["mae"]


class BinaryIoU(_SODMetric):
    """Per-sample IoU of ``pred > 0.5`` (after normalisation) with the target, averaged."""

    def _sample_result(self, pred: np.ndarray, target: np.ndarray) -> float:
        handler = py_sod_metrics.IOUHandler(False, False, with_binary=True, sample_based=True)
        evaluator = py_sod_metrics.FmeasureV2({"iou": handler})
        evaluator.step(pred, target)
        return evaluator.get_results()["iou"]["binary"]


def segmentation_metrics(prefix: str | None = None) -> MetricCollection:
    """DIS metrics keyed ``maxF, wF, MAE, Sm, meanEm, IoU`` (SAMA's Table 1 reports the first
    five)."""
    return MetricCollection(
        {
            "maxF": MaxFMeasure(),
            "wF": WeightedFMeasure(),
            "MAE": SegmentationMAE(),
            "Sm": SMeasure(),
            "meanEm": MeanEMeasure(),
            "IoU": BinaryIoU(),
        },
        prefix=prefix,
        compute_groups=False,
    )
