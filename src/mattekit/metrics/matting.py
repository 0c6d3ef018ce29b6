"""torchmetrics Metrics for alpha mattes: SAD, MSE, MAD, Grad, Conn under a named preset.

Every metric keeps two states, the sum of per-sample errors and the number of samples, both
reduced with ``"sum"``, so that ``compute()`` (the mean over samples, in the preset's scale) is
the same on one process as over many.

Empty evaluation region (a trimap without unknown pixels under the ``"dim"`` preset): SAD, Grad
and Conn are sums over no pixels, i.e. 0, and the sample counts with 0; MSE and MAD are means
over no pixels, which are undefined, so the sample is skipped for them (with one logged
warning). A metric that has skipped every sample computes NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection

from mattekit.metrics.connectivity import connectivity_error
from mattekit.metrics.functional import gradient_error
from mattekit.metrics.inputs import warn_once
from mattekit.metrics.prepared import PreparedPair
from mattekit.metrics.presets import MattingPreset, resolve_preset


class _MattingMetric(Metric):
    """Shared state and update logic; subclasses define :meth:`_sample_errors`."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    error_sum: Tensor
    num_samples: Tensor

    def __init__(self, preset: str | MattingPreset = "dim", **kwargs) -> None:
        super().__init__(**kwargs)
        self.preset = resolve_preset(preset)
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_samples", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        pred: Tensor | PreparedPair,
        target: Tensor | None = None,
        trimap: Tensor | None = None,
    ) -> None:
        """Add a batch.

        Args:
            pred: (B, 1, H, W) predicted alphas in [0, 1], floating point, any device; or a
                :class:`PreparedPair` of this preset (a collection checks a batch once).
            target: (B, 1, H, W) ground-truth alphas in [0, 1].
            trimap: (B, 1, H, W) in {0, 128, 255} (any dtype) or {0, 0.5, 1} (floating), or
                None for the whole image. Used by ``"trimap_unknown"`` presets only.
        """
        if isinstance(pred, PreparedPair):
            if pred.preset != self.preset:
                raise ValueError(
                    f"a batch prepared for preset {pred.preset.name!r} given to a "
                    f"{self.preset.name!r} metric"
                )
            prepared = pred
        else:
            prepared = PreparedPair.from_inputs(pred, target, trimap, self.preset)
        errors = self._sample_errors(prepared).to(self.error_sum.device)
        defined = ~torch.isnan(errors)
        if not defined.all():
            warn_once(
                f"{type(self).__name__}: samples with an empty evaluation region are skipped "
                "(a mean over no pixels is undefined)"
            )
        self.error_sum += errors[defined].sum()
        self.num_samples += int(defined.sum())

    def compute(self) -> Tensor:
        """Mean per-sample error (float64 scalar); NaN when no sample has been counted."""
        return self.error_sum / self.num_samples

    def _sample_errors(self, prepared: PreparedPair) -> Tensor:
        """(B,) float64 per-sample errors in the preset's scale, NaN where undefined."""
        raise NotImplementedError


class SAD(_MattingMetric):
    """Sum of absolute differences over the region / 1000 (alphas in [0, 1]), every preset."""

    def _sample_errors(self, prepared: PreparedPair) -> Tensor:
        absolute, _, _ = prepared.difference_sums()
        return absolute / 1000


class MSE(_MattingMetric):
    """Mean squared error over the region x ``preset.mse_scale`` (1 for dim, 1e3 otherwise)."""

    def _sample_errors(self, prepared: PreparedPair) -> Tensor:
        _, squared, counts = prepared.difference_sums()
        return squared / counts * self.preset.mse_scale  # 0 / 0 = NaN marks an empty region


class MAD(_MattingMetric):
    """Mean absolute difference over the region x ``preset.mad_scale`` (ZIM calls it MAE)."""

    def _sample_errors(self, prepared: PreparedPair) -> Tensor:
        absolute, _, counts = prepared.difference_sums()
        return absolute / counts * self.preset.mad_scale


class GradientError(_MattingMetric):
    """Gradient error: Gaussian-derivative (dim: after mat2gray; sdmatte: on alpha) sum / 1000,
    or ZIM's Sobel mean x1e3; see :class:`~mattekit.metrics.presets.MattingPreset`."""

    def _sample_errors(self, prepared: PreparedPair) -> Tensor:
        # float32 views: gradient_error converts only the window it filters to float64.
        samples = prepared.numpy_samples(torch.float32)
        values = [gradient_error(p, g, r, self.preset.gradient) for p, g, r in samples]
        return torch.tensor(values, dtype=torch.float64)


class ConnectivityError(_MattingMetric):
    """Connectivity error / 1000, thresholds 0:0.1:1 compared in float32 as MATLAB does."""

    def _sample_errors(self, prepared: PreparedPair) -> Tensor:
        samples = prepared.numpy_samples(torch.float32)
        rule, tie_break = self.preset.conn_component, self.preset.conn_tie_break
        values = [connectivity_error(p, g, r, rule, tie_break) for p, g, r in samples]
        return torch.tensor(values, dtype=torch.float64)


class MattingMetricCollection(MetricCollection):
    """Matting metrics of one preset whose ``update`` checks a batch once for all of them and
    shares the intermediate values (:class:`~mattekit.metrics.prepared.PreparedPair`)."""

    def __init__(self, metrics: dict[str, _MattingMetric], **kwargs) -> None:
        presets = {metric.preset for metric in metrics.values()}
        if len(presets) != 1:
            names = sorted(preset.name for preset in presets)
            raise ValueError(f"a matting collection needs one preset, got {names}")
        super().__init__(metrics, **kwargs)
        self.preset = presets.pop()

    def update(self, pred: Tensor, target: Tensor, trimap: Tensor | None = None) -> None:
        """Add a batch to every metric (arguments as :meth:`_MattingMetric.update`)."""
        super().update(PreparedPair.from_inputs(pred, target, trimap, self.preset))

    def sample_errors(
        self, pred: Tensor, target: Tensor, trimap: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Each metric's per-sample errors of a batch, ``{name: (B,) float64}`` (NaN where the
        region is empty), without adding the batch: what :meth:`update` would average."""
        prepared = PreparedPair.from_inputs(pred, target, trimap, self.preset)
        return {name: metric._sample_errors(prepared) for name, metric in self.items()}


def matting_metrics(
    preset: str | MattingPreset = "dim", prefix: str | None = None
) -> MattingMetricCollection:
    """The five matting metrics under one preset, keyed ``SAD, MSE, MAD, Grad, Conn``.

    Compute groups are disabled: torchmetrics would otherwise merge metrics whose states happen
    to be equal after the first batch (e.g. all zero), and then update only one of them.
    """
    return MattingMetricCollection(
        {
            "SAD": SAD(preset=preset),
            "MSE": MSE(preset=preset),
            "MAD": MAD(preset=preset),
            "Grad": GradientError(preset=preset),
            "Conn": ConnectivityError(preset=preset),
        },
        prefix=prefix,
        compute_groups=False,
    )
