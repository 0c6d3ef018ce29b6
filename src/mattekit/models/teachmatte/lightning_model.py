"""TeachDiffusionMatting as one mattekit family with three stages: the first trainable version
(the release ships inference weights only).

``mattekit fit --model teachmatte --model.stage teacher|student|decoder``; each later stage starts
from the previous stage's checkpoint (``--model.previous_stage``) and inherits the settings that
shape what it loads (:data:`~mattekit.models.teachmatte.weights.INHERITED`).
"""

from __future__ import annotations

import copy
import logging
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.data.sample import MattingBatch
from mattekit.export.graphs import ExportGraph
from mattekit.losses import (
    BCELoss,
    CrossEntropyLoss,
    L1Loss,
    LaplacianLoss,
    MaskedFeatureMSELoss,
    PerLevelMSELoss,
)
from mattekit.models.base import MattingModule, is_restoring
from mattekit.models.frozen import FrozenPart
from mattekit.models.loss_terms import LossTerm
from mattekit.models.teachmatte.attention import AttentionRecorder
from mattekit.models.teachmatte.configs import TEXT_TOKENS, decoder_widths, text_config
from mattekit.models.teachmatte.decoder import DetailDecoder
from mattekit.models.teachmatte.distillation import distillation_terms
from mattekit.models.teachmatte.heads import FeatureProjector
from mattekit.models.teachmatte.refiner import SparseRefiner
from mattekit.models.teachmatte.regions import (
    alpha_from_regions,
    region_targets,
    scaled_kernel,
)
from mattekit.models.teachmatte.text_encoder import (
    OpenCLIPTextEncoder,
    load_text_encoder,
)
from mattekit.models.teachmatte.torch_model import (
    DEFAULT_KERNELS,
    STUDENT_OUTPUTS,
    TEACHER_OUTPUTS,
    SGForm,
    SoftGroundingNet,
    TeachMatteNet,
    build_grounding,
    build_unet,
    sg_pairs,
    stage_widths,
    student_unet,
    tap_width,
)
from mattekit.models.teachmatte.weights import (
    INHERITED,
    STAGES,
    load_previous_stage,
    previous_stage_settings,
)
from mattekit.nn.clip_tokens import PromptTokenizer
from mattekit.nn.unet_features import unet_blocks
from mattekit.weights.stable_diffusion import load_unet_and_vae

logger = logging.getLogger(__name__)

#: The student stage's teacher: frozen, read from the teacher stage's file, never stored.
TEACHER = FrozenPart("teacher", in_checkpoint=False)
#: Appendix Table 4: initial learning rate and ``[step, factor]`` milestones per stage.
STAGE_SCHEDULES = {
    "teacher": (5e-5, [[15000, 0.5], [40000, 0.25]]),
    "student": (5e-5, [[10000, 0.4], [35000, 0.25]]),
    "decoder": (4e-4, [[10000, 0.1], [35000, 0.05]]),
}
_DISTILLATION_TERMS = ("stm", "ctm", "sg")
#: ``MaskedFeatureMSELoss`` arguments of each ``sg_form``.
SG_LOSS = {"sum": {"pairs": "sum", "over": "all"}, "masked_mean": {"pairs": "mean", "over": "mask"}}


class TeachMatte(MattingModule):
    """TeachDiffusionMatting ("Teaching Diffusion Models to Ground Alpha Matte", TMLR 2025).

    Loss terms (``--model.loss_weights``), per stage:

    - teacher: ``ce`` (1): cross-entropy on the 3 region classes at H/8.
    - student: ``stm`` (10), ``ctm`` (0.1), ``sg`` (0.5), ``alpha_lr`` (10), ``r`` (1), the
      paper's; the three distillation terms exist only with a teacher (``previous_stage``).
    - decoder: ``l1`` and ``laplacian`` (1 each) on the full-resolution alpha.

    Args:
        stage: ``teacher`` (soft grounding in semantics), ``student`` (in transparency),
            ``decoder`` (from soft grounding to alpha).
        variant: ``sd15``, ``sd20``, ``sd21`` (the release's) or ``tiny`` (tests, CPU runs).
        previous_stage: the checkpoint of the stage before (student: a teacher run's; decoder: a
            student run's). It initialises the new stage; the student stage also distils from it
            (frozen, out of the student's checkpoints, read by every run that fits).
        pretrained: a local diffusers Stable Diffusion folder (``unet/``, ``vae/``) for the
            teacher stage, or for a student stage without a teacher (direct training).
        text_encoder: an open_clip (or transformers) CLIP checkpoint of the variant's text
            encoder; kept out of checkpoints and read by every run. None: random, kept in them.
        prune: BK-SDM-Tiny pruning of the student (paper Sec. 3.3); False keeps the teacher's
            architecture (Table 3 row 7).
        attention_kernels: the student's self-attention per level from the highest resolution:
            -1 removed, 1 dense, k sparse (Table 6; default ``[-1, 2, 2]``).
        projector: the projector Phi on the student's features for L_SG (Table 3 row 4).
        sg_form: L_SG's pairs and reduction. ``sum`` (eq. 3): BK-SDM-Tiny's 6 feature pairs,
            each a mean of the masked squared error over all elements, summed. ``masked_mean``
            (mattekit's earlier form, about 0.22x): 5 stage pairs, each a mean over the known
            elements, averaged.
        refiner: the decoder stage also trains the sparse upsampling module (appendix 6.3):
            student and decoder then run on the input downsampled 4x (512 px for 2048) and the
            refiner returns the alpha at the input size.
        refiner_backend: ``dense`` or ``spconv`` (inference; the ``sparse`` extra).
        refiner_context: what each refiner group reads besides alpha and image: ``decoder``,
            the decoder's context upsampled (appendix 6.3), or ``previous``, the previous
            group's features (mattekit's earlier form).
        region_kernel: the morphology kernel of the region targets, in pixels at 512 px (scaled
            with the input side).
        timestep: the UNet's fixed timestep.
        text_tokens: prompt length in tokens (the release: 40).
        lr, lr_milestones: default to the stage's (appendix Table 4).
        **kwargs: :class:`MattingModule` arguments; defaults here: AdamW weight decay 0.01, poly
            decay (power 0.9) with milestones, losses and metrics over the whole image (referring
            matting has no trimap: ``loss_regions`` and ``eval_with_trimap`` false).
    """

    accepted_prompts = ("text",)
    # A text prompt has no region to score: the floor is the empty alpha (predicting nothing),
    # which small targets make a strong floor in SAD.
    reference_name = "empty alpha (reference)"
    run_settings = MattingModule.run_settings | {
        "previous_stage",
        "pretrained",
        "text_encoder",
        "refiner_backend",
    }
    # Checkpoints written before issue 25 were trained with mattekit's earlier forms.
    earlier_defaults: ClassVar[dict[str, object]] = {
        "sg_form": "masked_mean",
        "refiner_context": "previous",
    }

    def __init__(
        self,
        stage: Literal["teacher", "student", "decoder"] = "teacher",
        variant: str = "sd21",
        previous_stage: str | None = None,
        pretrained: str | None = None,
        text_encoder: str | None = None,
        prune: bool = True,
        attention_kernels: list[int] | None = None,
        projector: bool = True,
        sg_form: SGForm = "sum",
        refiner: bool = False,
        refiner_backend: Literal["dense", "spconv"] = "dense",
        refiner_context: Literal["decoder", "previous"] = "decoder",
        region_kernel: int = 15,
        timestep: int = 0,
        text_tokens: int = TEXT_TOKENS,
        lr: float | None = None,
        weight_decay: float = 0.01,
        lr_schedule: str = "poly",
        lr_milestones: list[tuple[int, float]] | None = None,
        loss_regions: bool = False,
        eval_with_trimap: bool = False,
        **kwargs,
    ) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if sg_form not in SG_LOSS:
            raise ValueError(f"sg_form must be one of {tuple(SG_LOSS)}, got {sg_form!r}")
        if stage == "decoder" and previous_stage is None and not is_restoring():
            raise ValueError("the decoder stage starts from a student run: give previous_stage")
        derived: dict = {}
        if previous_stage is not None and stage != "teacher" and not is_restoring():
            given = {k: v for k, v in locals().items() if k in INHERITED[stage]}
            for key, value in previous_stage_settings(previous_stage, stage).items():
                if given[key] != value:
                    logger.info("%s stage: %s=%r from previous_stage", stage, key, value)
                derived[key] = value
        default_lr, default_milestones = STAGE_SCHEDULES[stage]
        derived.setdefault("lr", default_lr if lr is None else lr)
        derived.setdefault(
            "lr_milestones", default_milestones if lr_milestones is None else lr_milestones
        )
        self.derived_hparams = derived
        self.tokenizer = PromptTokenizer(derived.get("text_tokens", text_tokens))
        self.teacher = None
        self._warned_no_text = False
        super().__init__(
            lr=derived["lr"], weight_decay=weight_decay, lr_schedule=lr_schedule,
            lr_milestones=derived["lr_milestones"], loss_regions=loss_regions,
            eval_with_trimap=eval_with_trimap, **kwargs,
        )  # fmt: skip

    # --- networks -----------------------------------------------------------------------------

    @property
    def kernels(self) -> tuple[int, ...]:
        kernels = self.hparams.attention_kernels
        return tuple(DEFAULT_KERNELS if kernels is None else kernels)

    @property
    def distilling(self) -> bool:
        """A teacher is read and distilled from: ``previous_stage`` given to the student stage
        and a distillation term's weight not 0 (known before the loss terms are built)."""
        hp = self.hparams
        if hp.stage != "student" or hp.previous_stage is None:
            return False
        overrides = hp.loss_weights or {}
        return any(overrides.get(term, 1.0) != 0 for term in _DISTILLATION_TERMS)

    def configure_models(self) -> None:
        stage = self.hparams.stage
        if stage == "teacher":
            self.model = self.build_teacher()
        elif stage == "student":
            self.model = self.build_student()
        else:
            self.model = self.build_decoder_stage()

    def _text_encoder(self) -> OpenCLIPTextEncoder:
        """The variant's text encoder, from ``text_encoder`` when given (read by every run)."""
        encoder = OpenCLIPTextEncoder(text_config(self.hparams.variant))
        path = self.initial_weights(self.hparams.text_encoder, stored=False)
        if path is None:
            logger.info("TeachMatte %s: no text_encoder file, random text encoder",
                        self.hparams.variant)  # fmt: skip
        else:
            load_text_encoder(encoder, path)
        return encoder

    def build_teacher(self) -> SoftGroundingNet:
        """The teacher stage's network: SD's UNet (``pretrained`` or random) + region head."""
        hp = self.hparams
        folder = self.initial_weights(hp.pretrained)
        unet, vae = load_unet_and_vae(folder) if folder is not None else (None, None)
        unet = unet if unet is not None else build_unet(hp.variant)
        return build_grounding(unet, TEACHER_OUTPUTS, hp.variant, vae, self._text_encoder())

    def load_teacher(self, shared: dict[str, nn.Module] | None = None) -> SoftGroundingNet:
        """The trained teacher from ``previous_stage`` (frozen; read whenever a run fits).

        Args:
            shared: the student's frozen ``vae`` and ``text_encoder`` to use instead of loading
                copies (a resumed fit: at SD 2.1 size they are about 440M parameters).
        """
        shared = shared or {}
        parts = shared or {"text_encoder": self._text_encoder()}
        teacher = build_grounding(
            build_unet(self.hparams.variant), TEACHER_OUTPUTS, self.hparams.variant, **parts
        )
        path = self.initial_weights(self.hparams.previous_stage, stored=False)
        load_previous_stage(teacher, path, self._kept_parts(tuple(shared)))
        return teacher

    def _kept_parts(self, shared: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Parts a previous stage's file does not fill: ``shared`` ones, and the text encoder
        when it is read from its own file."""
        from_file = ("text_encoder",) if self.hparams.text_encoder is not None else ()
        return tuple(dict.fromkeys((*shared, *from_file)))

    def build_student(self) -> SoftGroundingNet:
        """The student: pruned from the teacher (a new run with ``previous_stage``), else from
        ``pretrained`` (direct training), else random; its own 2-output head."""
        hp = self.hparams
        teacher = None
        if hp.previous_stage is not None and not is_restoring():
            teacher = self.load_teacher()
        if teacher is not None:
            unet = student_unet(teacher.unet, hp.variant, hp.prune)
            parts = {"vae": teacher.vae, "text_encoder": teacher.text_encoder}
            parts["adapter"] = copy.deepcopy(teacher.adapter)
        else:
            folder = self.initial_weights(hp.pretrained)
            source, vae = load_unet_and_vae(folder) if folder is not None else (None, None)
            unet = student_unet(source, hp.variant, hp.prune)
            parts = {"vae": vae, "text_encoder": self._text_encoder()}
        student = build_grounding(unet, STUDENT_OUTPUTS, hp.variant, kernels=self.kernels, **parts)
        if teacher is not None and self.distilling:
            self.teacher = teacher
        self.projectors = self._projectors(student)
        return student

    def _projectors(self, student: SoftGroundingNet) -> nn.ModuleList:
        """Phi per distilled stage pair (identity without ``projector``); none when L_SG is off
        (no teacher, or its weight 0: parameters that never train would burden DDP)."""
        self.sg_pairs: list[tuple[str, str]] = []
        sg_weight = (self.hparams.loss_weights or {}).get("sg", 1.0)
        if self.hparams.previous_stage is None or sg_weight == 0:
            return nn.ModuleList()
        with torch.device("meta"):  # only the teacher's stage widths are needed
            reference = build_unet(self.hparams.variant)
        self.sg_pairs = sg_pairs(reference, student.unet, self.hparams.sg_form)
        return nn.ModuleList(
            FeatureProjector(tap_width(student.unet, s), tap_width(reference, t))
            if self.hparams.projector
            else nn.Identity()
            for s, t in self.sg_pairs
        )

    def build_decoder_stage(self) -> TeachMatteNet:
        """The frozen student from ``previous_stage`` + a new detail decoder (and refiner)."""
        hp = self.hparams
        unet = student_unet(None, hp.variant, hp.prune)
        student = build_grounding(
            unet, STUDENT_OUTPUTS, hp.variant, text_encoder=self._text_encoder(),
            kernels=self.kernels,
        )  # fmt: skip
        path = self.initial_weights(hp.previous_stage)
        if path is not None:
            load_previous_stage(student, path, self._kept_parts())
        stream, fusion = decoder_widths(hp.variant)
        decoder = DetailDecoder(stage_widths(student.unet)[-1], stream, fusion)
        refiner = None
        if hp.refiner:
            refiner = SparseRefiner(
                decoder.context_channels, backend=hp.refiner_backend, context=hp.refiner_context
            )
        return TeachMatteNet(student, decoder, refiner)

    def checkpointed_blocks(self) -> list[nn.Module]:
        """The trained UNet's resnet and transformer blocks (``activation_checkpointing``):
        the teacher's in the teacher stage, the student's in the student stage (the teacher it
        distils from runs under ``no_grad``).

        Raises:
            ValueError in the decoder stage: its student is frozen and fed the image (nothing
            to recompute) and the detail decoder and refiner have BatchNorm.
        """
        if self.hparams.stage == "decoder":
            raise ValueError(
                "TeachMatte stage decoder: activation_checkpointing has nothing to recompute (the "
                "student UNet is frozen, the detail decoder has BatchNorm); set it to false"
            )
        return unet_blocks(self.model.unet)

    def configure_frozen(self) -> list[FrozenPart]:
        decoder_stage = self.hparams.stage == "decoder"
        prefix = "model.student." if decoder_stage else "model."
        # A text encoder read from its file is read again by every run: not stored.
        stored = self.hparams.text_encoder is None
        parts = [FrozenPart(prefix + "vae"), FrozenPart(prefix + "text_encoder", stored)]
        if decoder_stage:
            parts.append(FrozenPart("model.student"))
        return [*parts, *([TEACHER] if self.teacher is not None else [])]

    def on_fit_start(self) -> None:
        if self.hparams.stage == "student" and self.teacher is None and self.distilling:
            shared = {"vae": self.model.vae, "text_encoder": self.model.text_encoder}
            self.teacher = self.load_teacher(shared).to(self.device)
            self.add_frozen_part(TEACHER)

    # --- losses -------------------------------------------------------------------------------

    def configure_losses(self) -> dict[str, LossTerm]:
        stage = self.hparams.stage
        if stage == "teacher":
            return {"ce": LossTerm(CrossEntropyLoss())}
        if stage == "decoder":
            return {"l1": LossTerm(L1Loss()), "laplacian": LossTerm(LaplacianLoss(levels=5))}
        terms = {"alpha_lr": LossTerm(L1Loss(), 10.0), "r": LossTerm(BCELoss(), 1.0)}
        if self.hparams.previous_stage is not None:
            terms |= {
                "stm": LossTerm(PerLevelMSELoss("mean"), 10.0),
                "ctm": LossTerm(PerLevelMSELoss("sum"), 0.1),
                "sg": LossTerm(MaskedFeatureMSELoss(**SG_LOSS[self.hparams.sg_form]), 0.5),
            }
        return terms

    def reference_prediction(self, batch: MattingBatch) -> Tensor:
        """The reference row's alpha: 0 everywhere, B x 1 x H x W."""
        return torch.zeros_like(batch.alpha)

    def regions(self, batch: MattingBatch):
        """The GT region targets at H/8 (:func:`region_targets`)."""
        kernel = scaled_kernel(self.hparams.region_kernel, batch.alpha.shape[-2])
        return region_targets(batch.alpha, kernel)

    # --- forward ------------------------------------------------------------------------------

    def token_ids(self, batch: MattingBatch) -> Tensor:
        """B x T token ids of the samples' referring expressions."""
        if not self._warned_no_text and not all(batch.text):
            missing = [i for i, text in zip(batch.sample_id, batch.text, strict=True) if not text]
            logger.warning(
                "TeachMatte is prompted by text, but %s have no referring expression: they get "
                "the empty prompt (said once per run)", missing[:3])  # fmt: skip
            self._warned_no_text = True
        return self.tokenizer(batch.text).to(self.device)

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """``alpha`` B x 1 x H x W; the teacher's is P(fg) + P(transparent) / 2 upsampled."""
        return self.forward_tokens(batch.image, self.token_ids(batch))

    def forward_tokens(self, image: Tensor, ids: Tensor) -> dict[str, Tensor]:
        """:meth:`forward` on B x 3 x H x W images and B x T prompt token ids."""
        size = image.shape[-2:]
        if self.hparams.stage == "decoder":
            return self.model(image, ids)
        logits = self.model(image, ids).logits
        if self.hparams.stage == "student":
            return self.student_outputs(logits, size)
        coarse = alpha_from_regions(logits.softmax(1))
        alpha = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
        return {"region_logits": logits, "alpha": alpha.clamp(0, 1)}

    def export_graphs(self, batch: MattingBatch) -> list[ExportGraph]:
        """One graph of the image and the prompt's token ids (the tokenizer stays in Python:
        :class:`~mattekit.nn.clip_tokens.PromptTokenizer`)."""
        graph = TokenForward(self)
        inputs = {"image": batch.image, "token_ids": self.token_ids(batch)}
        note = "image: 1 x 3 x S x S in [0, 1]; token_ids: 1 x T from PromptTokenizer"
        return [ExportGraph("model", graph, inputs, ("alpha",), note=note)]

    def training_outputs(self, batch: MattingBatch) -> dict[str, Tensor]:
        """The student stage also computes its distillation terms here, while both networks'
        features and attention records are at hand; the other stages use :meth:`forward`."""
        if self.hparams.stage != "student" or not self.distilling:
            return self(batch)
        ids = self.token_ids(batch)
        records = None
        if self.loss_weights["stm"] != 0 or self.loss_weights["ctm"] != 0:
            records = (AttentionRecorder(batch.alpha), AttentionRecorder(batch.alpha))
        s_taps, t_taps = zip(*self.sg_pairs, strict=True) if self.sg_pairs else ((), ())
        student = self.model(batch.image, ids, records and records[0], s_taps)
        with torch.no_grad():
            teacher = self.teacher(batch.image, ids, records and records[1], t_taps)
        active = dict(self.active_losses())
        known = self.regions(batch).known if "sg" in active else None
        terms = distillation_terms(
            active, student, teacher, records, self.projectors, self.sg_pairs, known
        )
        return {**self.student_outputs(student.logits, batch.image.shape[-2:]), **terms}

    def student_outputs(self, logits: Tensor, size: tuple[int, int]) -> dict[str, Tensor]:
        """``alpha_lr`` and ``transparency_logits`` from the student's B x 2 x h x w logits, and
        ``alpha``: the coarse alpha upsampled to ``size``."""
        alpha_lr = torch.sigmoid(logits[:, :1])
        alpha = F.interpolate(alpha_lr, size=size, mode="bilinear", align_corners=False)
        return {"alpha": alpha, "alpha_lr": alpha_lr, "transparency_logits": logits[:, 1:2]}

    def loss_terms(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        stage = self.hparams.stage
        if stage == "decoder":
            return super().loss_terms(outputs, batch)
        regions = self.regions(batch)
        active = dict(self.active_losses())
        if stage == "teacher":
            return {"ce": active["ce"](outputs["region_logits"], regions.classes)}
        terms = {name: outputs[name] for name in _DISTILLATION_TERMS if name in outputs}
        if "alpha_lr" in active:
            target = F.interpolate(batch.alpha, size=outputs["alpha_lr"].shape[-2:], mode="area")
            terms["alpha_lr"] = active["alpha_lr"](outputs["alpha_lr"], target)
        if "r" in active:
            terms["r"] = active["r"](outputs["transparency_logits"], regions.transparent)
        return terms


class TokenForward(nn.Module):
    """``(image, token_ids) -> alpha`` of a :class:`TeachMatte` (its export graph)."""

    def __init__(self, family: TeachMatte) -> None:
        super().__init__()
        self.family = family

    def forward(self, image: Tensor, token_ids: Tensor) -> Tensor:
        return self.family.forward_tokens(image, token_ids)["alpha"]
