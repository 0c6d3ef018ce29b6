"""ZIM as a mattekit family: the first trainable ZIM (the official release is ONNX only)."""

from __future__ import annotations

import logging
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.losses import BCELoss, GradientLoss, IoULoss, L1Loss
from mattekit.models.base import MattingModule
from mattekit.models.prompting import check_prompt_kinds, choose_prompt_kinds
from mattekit.models.zim.torch_model import BOX_LABELS, build_zim, load_sam_weights

logger = logging.getLogger(__name__)

ZIM_PROMPTS = ("points", "box")


def sam_prompts(batch: MattingBatch, kinds: list[str], scale: tuple[float, float]):
    """Per-sample prompts in SAM's convention: ``coords`` B x N x 2, ``labels`` B x N.

    A box becomes two corner points labelled 2 and 3; clicks keep labels 1 / 0; the rest is
    padding (-1). ``scale`` = (sx, sy) maps batch pixels to model-input pixels.
    """
    batch_size, num_points = batch.point_labels.shape
    length = max(num_points, 2)
    coords = batch.points.new_zeros(batch_size, length, 2)
    labels = batch.point_labels.new_full((batch_size, length), -1)
    factor = torch.tensor(scale, device=coords.device, dtype=coords.dtype)
    for i, kind in enumerate(kinds):
        if kind == "box":
            coords[i, :2] = batch.box[i].view(2, 2) * factor
            labels[i, :2] = torch.tensor(BOX_LABELS, device=labels.device)
        else:
            coords[i, :num_points] = batch.points[i] * factor
            labels[i, :num_points] = batch.point_labels[i]
    return coords, labels


class ZIM(MattingModule):
    """ZIM: SAM + hierarchical pixel decoder + prompt-aware masked attention.

    Args:
        variant: ``vit_b`` (paper), ``vit_l``, ``vit_h`` or ``tiny`` (tests, CPU runs).
        checkpoint: an official SAM checkpoint of the same size (``sam_vit_b_01ec64.pth``);
            None starts from random initialisation (said once in the log).
        masked_attention: prompt-aware masked attention on (Table 3a "Attn").
        attention_directions: where the mask applies: ``t2i`` (paper), ``i2t`` (Table 3b).
        decoder: ``hierarchical`` (ZIM) or ``sam`` (Table 3a "Dec" off).
        point_sigma: point attention sigma in tokens of a 64 x 64 grid (official 21).
        prompt_kinds: prompt kinds drawn per sample in training (boxes and clicks, as the paper).
        eval_prompt: prompt kind for validation, test and predict (Table 3 uses boxes).
        grad_weight: lambda of L = L1 + lambda * L_grad (paper: 10).
        objective: ``matting`` (ZIM: the losses above on the alpha) or ``segmentation``
            (SAM's task: BCE + soft IoU on the logits against the GT binarised at 0.5). The
            second pretrains a small SAM to start the CPU-scale ablations from, as the paper
            starts from SAM's weights; no official SAM checkpoint exists at the tiny size.
        **kwargs: :class:`MattingModule` arguments; ZIM's defaults: AdamW lr 1e-5 with cosine
            decay, losses over the whole image, metrics by the ``zim`` preset with the S / M / L
            object-size breakdown.

    The model's input size is fixed by its image encoder (1024, tiny 128): batches of another
    size are resized to it and the prediction resized back. For SAM's letterboxed inference on
    single photos use :class:`~mattekit.models.zim.predictor.ZimPredictor`.
    """

    def __init__(
        self,
        variant: str = "vit_b",
        checkpoint: str | None = None,
        masked_attention: bool = True,
        attention_directions: list[str] | None = None,
        decoder: str = "hierarchical",
        point_sigma: float = 21.0,
        prompt_kinds: list[str] | None = None,
        eval_prompt: str = "box",
        grad_weight: float = 10.0,
        objective: Literal["matting", "segmentation"] = "matting",
        lr: float = 1e-5,
        metric_preset: str = "zim",
        size_breakdown: bool = True,
        loss_regions: bool = False,
        **kwargs,
    ) -> None:
        self.prompt_kinds = prompt_kinds or list(ZIM_PROMPTS)
        check_prompt_kinds(self.prompt_kinds, eval_prompt)
        if unsupported := {*self.prompt_kinds, eval_prompt} - set(ZIM_PROMPTS):
            raise ValueError(f"ZIM takes {ZIM_PROMPTS} prompts, not {sorted(unsupported)}")
        if objective not in ("matting", "segmentation"):
            raise ValueError(f"objective must be 'matting' or 'segmentation', got {objective!r}")
        super().__init__(
            lr=lr, metric_preset=metric_preset, size_breakdown=size_breakdown,
            loss_regions=loss_regions, **kwargs,
        )  # fmt: skip

    def configure_models(self) -> None:
        hp = self.hparams
        directions = tuple(hp.attention_directions or ["t2i"]) if hp.masked_attention else ()
        self.model = build_zim(hp.variant, directions, hp.decoder, hp.point_sigma)
        if hp.checkpoint is None:
            logger.info("ZIM %s: no SAM checkpoint given, starting from random weights", hp.variant)
        elif (checkpoint := self.initial_weights(hp.checkpoint)) is not None:
            load_sam_weights(self.model, checkpoint)

    def configure_losses(self) -> None:
        if self.hparams.objective == "segmentation":
            self.losses["bce"] = BCELoss()
            self.losses["iou"] = IoULoss()
            return
        self.losses["l1"] = L1Loss()
        self.losses["gradient"] = GradientLoss()
        self.loss_weights = {"l1": 1.0, "gradient": self.hparams.grad_weight}

    def compute_loss(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        if self.hparams.objective == "matting":
            return super().compute_loss(outputs, batch)
        logits = outputs["logits"]
        target = (batch.alpha > 0.5).to(logits.dtype)
        return {name: loss(logits, target) for name, loss in self.losses.items()}

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        size = self.model.image_size
        height, width = batch.image.shape[-2:]
        images = batch.image
        if (height, width) != (size, size):
            images = F.interpolate(images, (size, size), mode="bilinear", align_corners=False)
        kinds = choose_prompt_kinds(
            len(batch), self.prompt_kinds, self.training, self.hparams.eval_prompt
        )
        coords, labels = sam_prompts(batch, kinds, (size / width, size / height))
        logits, iou = self.model(self.model.normalize(images), coords, labels)
        # Mask 0 is SAM's single-mask output; its sigmoid is the alpha, as in the release.
        logits = F.interpolate(logits[:, :1], (height, width), mode="bilinear", align_corners=False)
        return {"alpha": logits.sigmoid(), "logits": logits, "iou": iou}
