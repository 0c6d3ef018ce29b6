"""The ZIM label-converter family: :class:`LabelConverter` trained with SGA and STL."""

from __future__ import annotations

from typing import Literal

import torch
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor, nn

from mattekit.data.convention import InputConvention
from mattekit.data.sample import MattingBatch
from mattekit.export.graphs import ExportGraph
from mattekit.losses import L1Loss
from mattekit.metrics.presets import PresetName
from mattekit.models.base import MattingModule
from mattekit.models.loss_terms import LossTerm
from mattekit.models.zim.gradient_loss import GradientOperator, zim_gradient_loss
from mattekit.models.zim_converter.augmentations import (
    apply_cutout,
    cutout_keep_mask,
    selective_transformation,
)
from mattekit.models.zim_converter.torch_model import VARIANTS, build_label_converter

# MGMatting weighs its stride-1 output twice its stride-4 and stride-8 ones; normalised here so
# that the total has the scale of one output's loss (MGMatting divides the 1 : 1 : 2 sum by 5).
OUTPUT_WEIGHTS = {"alpha_os8": 0.25, "alpha_os4": 0.25, "alpha_os1": 0.5}

# Without coarse sources, this fraction of samples is made coarse from the binarised alpha, so
# that the default ``stl=True`` does something on data that has no coarse source.
SYNTHETIC_STL_PROBABILITY = 0.2


class ZIMLabelConverter(MattingModule):
    """ZIM's label converter: image + segmentation mask -> matte (how SA1B-Matte was made).

    Loss terms (``--model.loss_weights``): ``l1`` (1.0) and ``grad`` (10.0, the paper's lambda).
    The reference row of its tables hands the input mask back as the matte.

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
        gradient_operator: the gradient loss's Sobel operator, as ZIM's
            (:mod:`mattekit.models.zim.gradient_loss`): ``release`` or ``normalized``.
        lr: peak AdamW learning rate (the paper's 1e-3; the schedule's default is cosine, as in
            the paper).
        metric_preset: ZIM's metric definitions, as in its converter ablation (Table 2).
        eval_with_trimap: False: the whole image is scored, as the converter has no trimap
            (and the ``zim`` preset ignores one anyway).
        **kwargs: :class:`MattingModule` arguments (optimiser, schedule, metrics, ...).
    """

    accepted_prompts = ("mask",)
    run_settings = MattingModule.run_settings | {
        "backbone_checkpoint",
        "sga",
        "sga_probability",
        "stl",
        "coarse_sources",
        "stl_probability",
        "gradient_operator",
    }
    reference_name = "input mask as alpha (reference)"

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
        gradient_operator: GradientOperator = "normalized",
        lr: float = 1e-3,
        metric_preset: PresetName = "zim",
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
        zim_gradient_loss(gradient_operator)  # a wrong name fails here, not at the first step
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

    def checkpointed_blocks(self) -> list[nn.Module]:
        """Hiera's blocks (``activation_checkpointing``); the PRN decoder has BatchNorm."""
        return list(self.model.encoder.hiera.blocks)

    def configure_losses(self) -> dict[str, LossTerm]:
        # The paper's L1 + lambda x L_grad, lambda = 10, on each stride's output.
        gradient = zim_gradient_loss(self.hparams.gradient_operator)
        return {"l1": LossTerm(L1Loss()), "grad": LossTerm(gradient, 10.0)}

    def reference_prediction(self, batch: MattingBatch) -> Tensor:
        """The input mask handed back unchanged: the converter's real floor."""
        return batch.coarse_mask

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

    @property
    def input_convention(self) -> InputConvention:
        """The backbone's side (``image_size``), stretched, ImageNet-normalised."""
        return InputConvention(
            self.hparams.image_size, "stretch", IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
        )

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """The converter's outputs for the batch's coarse masks: ``"alpha"`` and the three
        strides (B x 1 x H x W), the PRN bands ``"band_os4"`` / ``"band_os1"`` (B x 1 x H x W
        bool), the ``"input_mask"`` it saw and the ``"target"`` (the GT)."""
        outputs = self.model(batch.image, batch.coarse_mask)
        return {**outputs, "input_mask": batch.coarse_mask, "target": batch.alpha}

    def export_graphs(self, batch: MattingBatch) -> list[ExportGraph]:
        """The whole forward as one graph, with timm's Hiera on its unfused attention path:
        its fused path calls SDPA on 5-D tensors, which the ONNX translation does not take (the
        two paths compute the same attention)."""
        for module in self.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = False
        return super().export_graphs(batch)

    def training_outputs(self, batch: MattingBatch) -> dict[str, Tensor]:
        """As :meth:`forward`, on the input masks and targets after STL and SGA."""
        mask, target = self.training_pair(batch)
        outputs = self.model(batch.image, mask)
        return {**outputs, "input_mask": mask, "target": target}

    def loss_terms(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        """``l1`` and ``grad``, each summed over the three strides' outputs against
        ``outputs["target"]`` (the STL / SGA target in training) with :data:`OUTPUT_WEIGHTS`,
        each output over its region as in MGMatting's trainer (the converter has no trimap):
        stride 8 over the whole image, strides 4 and 1 only in the PRN band where each was
        taken (a mean over the band's pixels, 0 when it is empty; gradients are still taken
        over the whole image)."""
        regions = {"alpha_os8": None, "alpha_os4": "band_os4", "alpha_os1": "band_os1"}
        return {
            name: sum(
                weight * loss.in_region(outputs[output], outputs["target"], outputs.get(region))
                for output, weight in OUTPUT_WEIGHTS.items()
                for region in [regions[output]]
            )
            for name, loss in self.active_losses()
        }
