"""The two records that cross the data pipeline.

A *source* (synthetic scenes, a benchmark folder) returns a :class:`RawSample`: numpy arrays at the
file's own resolution, exactly as stored. The dataset wrapper augments it, samples prompts and turns
it into a dict of tensors; the collate function stacks those into a :class:`MattingBatch`, the one
type every model family consumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mattekit.data.collate import (
    collate_dataclass,
    move_dataclass,
    padded,
    per_sample,
    select_dataclass,
    stacked,
)


@dataclass
class RawSample:
    """One sample as a source stores it (H x W is the stored resolution).

    Attributes:
        sample_id: unique, readable id (file stem, ``synthetic/s0/000042``); named in every error.
        image: H x W x 3 uint8 RGB.
        alpha: H x W float32 in [0, 1]; for segmentation-only sources, the binary mask.
        trimap: H x W uint8 in {0, 128, 255}, when the source ships one.
        fg: H x W x 3 uint8 foreground colours, when known (composited and synthetic data).
        bg: H x W x 3 uint8 background, when known.
        text: referring expression for the target, when the source has one.
        is_transparent: the target is a transparent / translucent object.
        points: N x 3 float32 ``(x, y, label)`` in pixels, label 1 positive / 0 negative, when the
            source ships fixed prompts (MicroMat-3K); otherwise points are sampled.
        box: 4 float32 ``(x0, y0, x1, y1)`` in pixels, when the source ships it.
        coarse_mask: H x W uint8 {0, 1} coarse-mask prompt, when the source ships one (stored
            benchmark prompts); otherwise it is sampled from the alpha.
        seg_mask: H x W bool segmentation mask, when it differs from ``alpha > 0`` (DIS-5K).
        source: name of the source, for logging and per-source metrics.
        prompt_kind: the prompt kind to run this sample with (a user's choice in ``matte``);
            "" leaves it to the family (its ``eval_prompt``, or a draw in training).
    """

    sample_id: str
    image: np.ndarray
    alpha: np.ndarray
    trimap: np.ndarray | None = None
    fg: np.ndarray | None = None
    bg: np.ndarray | None = None
    text: str = ""
    is_transparent: bool = False
    points: np.ndarray | None = None
    box: np.ndarray | None = None
    coarse_mask: np.ndarray | None = None
    seg_mask: np.ndarray | None = None
    source: str = ""
    prompt_kind: str = ""

    def __post_init__(self) -> None:
        height, width = self.image.shape[:2]
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"{self.sample_id}: image must be H x W x 3 uint8, got "
                f"{self.image.shape} {self.image.dtype}"
            )
        for name in ("alpha", "trimap", "coarse_mask", "seg_mask", "fg", "bg"):
            value = getattr(self, name)
            if value is not None and value.shape[:2] != (height, width):
                raise ValueError(
                    f"{self.sample_id}: {name} is {value.shape[1]}x{value.shape[0]} (WxH) but the "
                    f"image is {width}x{height}"
                )
        if self.alpha.dtype != np.float32:
            raise ValueError(f"{self.sample_id}: alpha must be float32, got {self.alpha.dtype}")

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the stored image."""
        return self.image.shape[0], self.image.shape[1]


@dataclass
class MattingBatch:
    """A collated batch: what every model family receives (B samples, network size H x W).

    Images and maps are float tensors in [0, 1]; coordinates are pixels of the network input.
    Each field's metadata says how samples are collated into it and moved
    (:mod:`mattekit.data.collate`): a new field is declared here and nowhere else.

    Attributes:
        image: B x 3 x H x W.
        alpha: B x 1 x H x W ground-truth matte.
        trimap: B x 1 x H x W in {0, 0.5, 1} (given by the source or sampled from the alpha).
        points: B x N x 2 ``(x, y)``; ``point_labels`` B x N: 1 positive, 0 negative, -1 padding.
            N is the batch's longest sample (at least ``PromptConfig.max_points``; more when a
            source ships more clicks); shorter samples are padded with label -1 at ``(0, 0)``.
        point_map: B x 1 x H x W, max over positive points of a Gaussian at each click.
        box: B x 4 ``(x0, y0, x1, y1)``; ``box_map`` B x 1 x H x W, the box rasterised.
        coarse_mask: B x 1 x H x W binary coarse mask sampled from the alpha.
        seg_mask: B x 1 x H x W binary segmentation target.
        is_transparent: B bool.
        original_size: B x 2 ``(H, W)`` of the stored image, for predictions at original size.
        content_size: B x 2 ``(h, w)`` of the image content in the network input: ``(H, W)``
            except under letterboxing, where the rest is padding.
        text: B referring expressions ("" where none).
        prompt_kind: B prompt kinds (:data:`mattekit.prompts.KINDS`) each sample is run with;
            "" for the family's choice (:meth:`~mattekit.models.base.MattingModule.prompted`
            fills it in before every step).
        sample_id: B ids.
        source: B source names.
        fg, bg: B x 3 x H x W, present only when every sample in the batch knows them.
        original_alpha: evaluation only: per sample the 1 x H_i x W_i GT at the stored size, so
            metrics compare against the real GT and not a resized copy.
        original_trimap: evaluation only: per sample 1 x H_i x W_i in {0, 0.5, 1}: the source's
            trimap, else the sampled one resized (nearest) to the stored size.
    """

    image: Tensor = field(metadata=stacked())
    alpha: Tensor = field(metadata=stacked())
    trimap: Tensor = field(metadata=stacked())
    points: Tensor = field(metadata=padded(0.0))
    point_labels: Tensor = field(metadata=padded(-1))
    point_map: Tensor = field(metadata=stacked())
    box: Tensor = field(metadata=stacked())
    box_map: Tensor = field(metadata=stacked())
    coarse_mask: Tensor = field(metadata=stacked())
    seg_mask: Tensor = field(metadata=stacked())
    is_transparent: Tensor = field(metadata=stacked())
    original_size: Tensor = field(metadata=stacked())
    content_size: Tensor = field(metadata=stacked())
    text: list[str] = field(default_factory=list, metadata=per_sample())
    sample_id: list[str] = field(default_factory=list, metadata=per_sample())
    source: list[str] = field(default_factory=list, metadata=per_sample())
    prompt_kind: list[str] = field(default_factory=list, metadata=per_sample())
    fg: Tensor | None = field(default=None, metadata=stacked(optional=True))
    bg: Tensor | None = field(default=None, metadata=stacked(optional=True))
    original_alpha: list[Tensor] | None = field(default=None, metadata=per_sample(optional=True))
    original_trimap: list[Tensor] | None = field(default=None, metadata=per_sample(optional=True))

    def __len__(self) -> int:
        return self.image.shape[0]

    def to(self, device: torch.device | str) -> MattingBatch:
        """Copy (same class) with every tensor moved to ``device``."""
        return move_dataclass(self, device)

    def select(self, indices: list[int]) -> MattingBatch:
        """Copy (same class) with the samples at ``indices`` only."""
        return select_dataclass(self, indices)


def collate_samples(
    samples: list[dict], batch_type: type[MattingBatch] = MattingBatch
) -> MattingBatch:
    """Per-sample dicts (from :class:`~mattekit.data.dataset.MattingDataset`) as one batch.

    Each field is collated by the rule declared on it (:mod:`mattekit.data.collate`); pass a
    subclass of :class:`MattingBatch` as ``batch_type`` to collate its extra fields too.
    """
    return collate_dataclass(batch_type, samples)
