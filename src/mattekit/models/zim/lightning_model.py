"""ZIM as a mattekit family: the first trainable ZIM (the official release is ONNX only)."""

from __future__ import annotations

import logging
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.data.convention import InputConvention
from mattekit.data.sample import MattingBatch
from mattekit.export.graphs import ExportGraph
from mattekit.losses import BCELoss, IoULoss, L1Loss
from mattekit.metrics.presets import PresetName
from mattekit.models.base import MattingModule
from mattekit.models.frozen import FrozenPart
from mattekit.models.loss_terms import LossTerm
from mattekit.models.sam.export import sam_split_graphs
from mattekit.models.sam.inputs import sam_batch_tokens, sam_encode, sam_input_convention
from mattekit.models.sam.weights import load_sam_weights
from mattekit.models.zim.gradient_loss import GradientOperator, zim_gradient_loss
from mattekit.models.zim.torch_model import ZimImageFeatures, build_zim

logger = logging.getLogger(__name__)


class ZIM(MattingModule):
    """ZIM: SAM + hierarchical pixel decoder + prompt-aware masked attention.

    Loss terms (``--model.loss_weights``): ``l1`` (1.0) and ``gradient`` (10.0, the paper's
    lambda) for the matting objective; ``bce`` and ``iou`` (1.0 each) for segmentation.

    Args:
        variant: ``vit_b`` (paper), ``vit_l``, ``vit_h`` or ``tiny`` (tests, CPU runs).
        checkpoint: an official SAM checkpoint of the same size (``sam_vit_b_01ec64.pth``);
            None starts from random initialisation (said once in the log).
        masked_attention: prompt-aware masked attention on (Table 3a "Attn").
        attention_directions: where the mask applies: ``t2i`` (paper), ``i2t`` (Table 3b).
        decoder: ``hierarchical`` (ZIM) or ``sam`` (Table 3a "Dec" off).
        point_sigma: point attention sigma in tokens of a 64 x 64 grid (official 21).
        objective: ``matting`` (ZIM: the losses above on the alpha) or ``segmentation``
            (SAM's task: BCE + soft IoU on the logits against the GT binarised at 0.5). The
            second pretrains a small SAM to start the CPU-scale ablations from, as the paper
            starts from SAM's weights; no official SAM checkpoint exists at the tiny size.
        gradient_operator: the gradient loss's Sobel operator (:mod:`.gradient_loss`):
            ``release`` (raw, zero border: naver-ai/ZIM's ``eval/metric.py``) or ``normalized``
            (/ 8, replicated border: mattekit before issue 25).
        **kwargs: :class:`MattingModule` arguments; ZIM's defaults: AdamW lr 1e-5 with cosine
            decay, losses over the whole image, metrics by the ``zim`` preset with the S / M / L
            object-size breakdown.

    The model's input size is fixed by its image encoder (1024, tiny 128): batches of another
    size are resized to it and the prediction resized back. For SAM's letterboxed inference on
    single photos use :class:`~mattekit.models.zim.predictor.ZimPredictor`.
    """

    accepted_prompts = ("points", "box")
    # Table 3 evaluates with boxes; training draws boxes and clicks, as the paper.
    default_eval_prompt = "box"
    run_settings = MattingModule.run_settings | {"checkpoint", "objective", "gradient_operator"}

    def __init__(
        self,
        variant: str = "vit_b",
        checkpoint: str | None = None,
        masked_attention: bool = True,
        attention_directions: list[str] | None = None,
        decoder: str = "hierarchical",
        point_sigma: float = 21.0,
        objective: Literal["matting", "segmentation"] = "matting",
        gradient_operator: GradientOperator = "normalized",
        lr: float = 1e-5,
        metric_preset: PresetName = "zim",
        size_breakdown: bool = True,
        loss_regions: bool = False,
        **kwargs,
    ) -> None:
        if objective not in ("matting", "segmentation"):
            raise ValueError(f"objective must be 'matting' or 'segmentation', got {objective!r}")
        zim_gradient_loss(gradient_operator)  # a wrong name fails here, not at the first step
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

    def checkpointed_blocks(self) -> list[nn.Module]:
        """SAM's ViT blocks, where a step's activations are (``activation_checkpointing``)."""
        return list(self.model.image_encoder.blocks)

    def configure_losses(self) -> dict[str, LossTerm]:
        if self.hparams.objective == "segmentation":
            return {"bce": LossTerm(BCELoss()), "iou": LossTerm(IoULoss())}
        # Paper eq. 1: L1 + lambda x L_grad with lambda = 10.
        gradient = zim_gradient_loss(self.hparams.gradient_operator)
        return {"l1": LossTerm(L1Loss()), "gradient": LossTerm(gradient, 10.0)}

    def loss_terms(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        if self.hparams.objective == "matting":
            return super().loss_terms(outputs, batch)
        logits = outputs["alpha_logits"]
        target = (batch.alpha > 0.5).to(logits.dtype)
        return {name: loss(logits, target) for name, loss in self.active_losses()}

    def configure_frozen(self) -> list[FrozenPart]:
        # Parts of SAM that no ZIM loss reaches: the IoU head and the hypernetworks of masks
        # 1-3 (only mask 0, SAM's single-mask output, is the alpha), and SAM's dense mask-prompt
        # encoder (ZIM takes no mask prompt). They keep SAM's weights instead of sitting in the
        # optimiser without gradients.
        decoder = "model.mask_decoder."
        tokens = range(1, self.model.mask_decoder.num_mask_tokens)
        return [
            FrozenPart(decoder + "iou_prediction_head"),
            *(FrozenPart(f"{decoder}output_hypernetworks_mlps.{i}") for i in tokens),
            FrozenPart("model.prompt_encoder.mask_downscaling"),
        ]

    @property
    def input_convention(self) -> InputConvention:
        """SAM's: the image encoder's fixed side (1024, tiny 128), letterboxed, normalised by
        SAM's pixel statistics, padded with 0 after normalisation."""
        return sam_input_convention(self.model.image_size)

    def export_graphs(self, batch: MattingBatch) -> list[ExportGraph]:
        """SAM's split (:mod:`mattekit.models.sam.export`): the image encoder with the pixel
        decoder's pyramid, run once per photo, and the prompt decoder, whose ``mask_logits``
        (1 x 4 x S/2 x S/2; mask 0 is the alpha's) and ``iou`` a click re-runs alone."""
        return sam_split_graphs(self.model, batch, self.model.decode, ("mask_logits", "iou"))

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """Each sample prompted by its ``batch.prompt_kind`` (see :meth:`predict_alpha`)."""
        return self.predict_alpha(batch, self.kinds_of(batch))

    def encode_image(self, batch: MattingBatch) -> ZimImageFeatures:
        """The image embedding and the pixel decoder's pyramid (once per photo)."""
        return sam_encode(self.model, batch.image, batch.content_size)

    def forward_with_features(
        self, batch: MattingBatch, features: ZimImageFeatures
    ) -> dict[str, Tensor]:
        """:meth:`forward` running only the prompt decoder on :meth:`encode_image`'s output."""
        return self.predict_alpha(batch, self.kinds_of(batch), features)

    def predict_alpha(
        self, batch: MattingBatch, kinds: list[str], features: ZimImageFeatures | None = None
    ) -> dict[str, Tensor]:
        """The release's conventions (:mod:`mattekit.models.sam.inputs`) in every stage.

        The image is normalised then zero-padded outside ``batch.content_size``; each sample's
        prompt (``kinds``: one per sample) becomes SAM's tokens (a box alone, or its clicks and
        one padding point), samples with fewer tokens filled up with masked-out fillers; the
        image encoder and the decoder each run once for the batch.

        Returns:
            ``alpha`` B x 1 x H x W in [0, 1]; ``alpha_logits`` B x 1 x H x W, the logits of
            SAM's single-mask output (mask 0) at the batch's size, whose sigmoid is the alpha
            (resize these, not the alpha, to another size: the release resizes logits first);
            ``iou`` B x 4 IoU predictions. ``features``: :meth:`encode_image`'s, when known.
        """
        height, width = batch.image.shape[-2:]
        features = features if features is not None else self.encode_image(batch)
        coords, labels = sam_batch_tokens(batch, kinds, self.model.image_size)
        logits, iou = self.model.decode(features, coords, labels)
        logits = F.interpolate(logits[:, :1], (height, width), mode="bilinear", align_corners=False)
        return {"alpha": logits.sigmoid(), "alpha_logits": logits, "iou": iou}
