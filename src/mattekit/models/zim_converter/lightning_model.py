"""The ZIM label-converter family: :class:`LabelConverter` trained with SGA and STL."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.losses import GradientLoss, L1Loss
from mattekit.models.base import MattingModule
from mattekit.models.zim_converter.augmentations import (
    apply_cutout,
    cutout_keep_mask,
    selective_transformation,
)
from mattekit.models.zim_converter.torch_model import VARIANTS, build_label_converter

# MGMatting weighs its stride-1 output twice its stride-4 and stride-8 ones; normalised here so
# that the total has the scale of one output's loss.
OUTPUT_WEIGHTS = {"alpha_os8": 0.25, "alpha_os4": 0.25, "alpha_os1": 0.5}

# Without coarse sources, this fraction of samples is made coarse from the binarised alpha, so
# that the default ``stl=True`` does something on data that has no coarse source.
SYNTHETIC_STL_PROBABILITY = 0.2


class ZIMLabelConverter(MattingModule):
    """ZIM's label converter: image + segmentation mask -> matte (how SA1B-Matte was made).

    The input mask is the batch's ``coarse_mask`` (sampled from the GT alpha by the shared prompt
    sampler; its degradations are ``data.prompts.mask_*``); no other prompt is used.

    Args:
        variant: network size, ``"hiera_base_plus"`` (the paper's) or ``"tiny"``.
        image_size: the Hiera backbone's input side (divisible by 32; other input sizes are
            resized for the backbone only).
        backbone_checkpoint: local Hiera weights to start from (format in
            ``models/zim_converter/backbone.py``); None: random initialisation.
        sga: Spatial Generalization Augmentation (training only).
        sga_probability: chance per sample that SGA cuts rectangles out of mask and target.
        stl: Selective Transformation Learning (training only).
        coarse_sources: names of sources (``batch.source``) of coarse objects, whose target is
            the input mask itself.
        stl_probability: chance per sample of a synthetic coarse sample (input mask and target
            set to the binarised alpha); default 0.0 when ``coarse_sources`` are given, else
            0.2 (the stand-in for ADE20K's coarse masks on data without any).
        grad_weight: weight of the gradient loss beside L1 (the paper's lambda = 10).
        lr: peak AdamW learning rate (the paper's 1e-3; the schedule's default is cosine, as in
            the paper).
        metric_preset: ZIM's metric definitions, as in its converter ablation (Table 2).
        eval_with_trimap: False: the whole image is scored, as the converter has no trimap
            (and the ``zim`` preset ignores one anyway).
        **kwargs: :class:`MattingModule` arguments (optimiser, schedule, metrics, ...).
    """

    def __init__(
        self,
        variant: Literal["hiera_base_plus", "tiny"] = "hiera_base_plus",
        image_size: int = 1024,
        backbone_checkpoint: str | None = None,
        sga: bool = True,
        sga_probability: float = 0.5,
        stl: bool = True,
        coarse_sources: list[str] | None = None,
        stl_probability: float | None = None,
        grad_weight: float = 10.0,
        lr: float = 1e-3,
        metric_preset: Literal["dim", "zim", "sdmatte"] = "zim",
        eval_with_trimap: bool = False,
        **kwargs,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
        for name, value in (
            ("sga_probability", sga_probability),
            ("stl_probability", stl_probability),
        ):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        self.coarse_sources = set(coarse_sources or [])
        if stl_probability is None:
            stl_probability = 0.0 if self.coarse_sources else SYNTHETIC_STL_PROBABILITY
        self.stl_probability = stl_probability
        super().__init__(
            lr=lr, metric_preset=metric_preset, eval_with_trimap=eval_with_trimap, **kwargs
        )

    def configure_models(self) -> None:
        backbone = self.initial_weights(self.hparams.backbone_checkpoint)
        self.model = build_label_converter(self.hparams.variant, self.hparams.image_size, backbone)

    def configure_losses(self) -> None:
        self.losses["l1"] = L1Loss()
        self.losses["grad"] = GradientLoss()
        self.loss_weights = {"l1": 1.0, "grad": self.hparams.grad_weight}

    def training_pair(self, batch: MattingBatch) -> tuple[Tensor, Tensor]:
        """Input mask and target matte of a training batch after STL and SGA (B x 1 x H x W)."""
        mask, target = batch.coarse_mask, batch.alpha
        if self.hparams.stl:
            from_coarse = torch.tensor(
                [source in self.coarse_sources for source in batch.source], device=mask.device
            )
            mask, target, _ = selective_transformation(
                mask, target, batch.alpha, from_coarse, self.stl_probability
            )
        if self.hparams.sga:
            keep = cutout_keep_mask(mask, self.hparams.sga_probability)
            mask, target = apply_cutout(mask, target, keep)
        return mask, target

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """The converter's outputs (``"alpha"`` and the three strides, B x 1 x H x W) plus the
        ``"input_mask"`` it saw and the ``"target"`` it is scored against."""
        if self.training:
            mask, target = self.training_pair(batch)
        else:
            mask, target = batch.coarse_mask, batch.alpha
        outputs = self.model(batch.image, mask)
        return {**outputs, "input_mask": mask, "target": target}

    def compute_loss(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        """L1 + ``grad_weight`` x gradient on each stride's output, over the whole image (the
        converter has no trimap), against the STL / SGA target."""
        return {
            f"{name}_{output.removeprefix('alpha_')}": output_weight
            * self.loss_weights[name]
            * loss(outputs[output], outputs["target"], None)
            for output, output_weight in OUTPUT_WEIGHTS.items()
            for name, loss in self.losses.items()
        }
