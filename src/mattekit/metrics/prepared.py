"""A batch checked once and the intermediate values the five matting metrics share.

A metric updated alone checks its inputs and computes what it needs; a collection of the five
(:func:`~mattekit.metrics.matting.matting_metrics`) checks the batch once, and the differences,
the per-sample arrays for the OpenCV computations and the region are computed once for all five.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mattekit.metrics.inputs import check_pair, evaluation_region
from mattekit.metrics.presets import MattingPreset
from mattekit.metrics.region_sums import region_sums


@dataclass
class PreparedPair:
    """A checked (B, 1, H, W) prediction / ground-truth batch and its evaluation region.

    Build it with :meth:`from_inputs`; the derived values are computed on first use.
    """

    pred: Tensor
    target: Tensor
    region: Tensor | None  # (B, H, W) bool, None for the whole image
    preset: MattingPreset
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_inputs(
        cls, pred: object, target: object, trimap: object | None, preset: MattingPreset
    ) -> PreparedPair:
        """Check the pair (and the trimap), and find the region ``preset`` evaluates."""
        pred, target = check_pair(pred, target)
        return cls(pred, target, evaluation_region(trimap, pred, preset), preset)

    def _cached(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def difference_sums(self) -> tuple[Tensor, Tensor, Tensor]:
        """Per sample, over the region: ``(sum |pred - gt|, sum (pred - gt)^2, pixel count)``.

        Differences are taken in float64 (exact for float32 inputs) and summed in float64, in
        one pass (:func:`~mattekit.metrics.region_sums.region_sums`).
        """
        return self._cached("difference_sums", self._difference_sums)

    def _difference_sums(self) -> tuple[Tensor, Tensor, Tensor]:
        sums = [region_sums(*sample) for sample in self.numpy_samples(torch.float32)]
        absolute, squared, counts = zip(*sums, strict=True)
        return (
            torch.tensor(absolute, dtype=torch.float64),
            torch.tensor(squared, dtype=torch.float64),
            torch.tensor(counts, dtype=torch.long),
        )

    def numpy_samples(
        self, dtype: torch.dtype
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Per sample ``(pred, gt, region)`` as (H, W) numpy arrays on the CPU (pred and gt in
        ``dtype``: float32 arrays of a float32 CPU batch are views, not copies)."""
        return self._cached(f"numpy_{dtype}", lambda: self._numpy_samples(dtype))

    def _numpy_samples(self, dtype: torch.dtype):
        if dtype != torch.float32:
            as_dtype = torch.empty((), dtype=dtype).numpy().dtype
            return [
                (pred.astype(as_dtype), target.astype(as_dtype), region)
                for pred, target, region in self.numpy_samples(torch.float32)
            ]
        pred = self.pred[:, 0].detach().to("cpu", torch.float32).numpy()
        target = self.target[:, 0].detach().to("cpu", torch.float32).numpy()
        region = None if self.region is None else self.region.detach().cpu().numpy()
        return [
            (pred[i], target[i], None if region is None else region[i])
            for i in range(pred.shape[0])
        ]
