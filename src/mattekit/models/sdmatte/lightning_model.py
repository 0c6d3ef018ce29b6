"""SDMatte and LiteSDMatte as mattekit families: the first trainable SDMatte (the official
release ships inference code only)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import torch
from diffusers import AutoencoderTiny
from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.losses import FeatureMSELoss, L1Loss, LaplacianLoss
from mattekit.models.base import MattingModule, is_restoring
from mattekit.models.frozen import FrozenPart
from mattekit.models.loss_terms import LossTerm
from mattekit.models.prompting import prompt_maps, random_prompt_kinds
from mattekit.models.sdmatte.configs import vae_config
from mattekit.models.sdmatte.torch_model import (
    BLOCK_GROUPS,
    POINT_DIMS,
    SDMatteNet,
    build_sdmatte,
    graft,
    lite_from_teacher,
)
from mattekit.models.sdmatte.weights import load_sdmatte_weights, load_stable_diffusion
from mattekit.nn.prompt_maps import mask_boxes
from mattekit.nn.unet_features import captured_stage_features

logger = logging.getLogger(__name__)

# The release's schedule: 200 warm-up iterations, then lr x 0.005 ** (step / 30501), i.e. this
# factor per step (detectron2's ExponentialParamScheduler over its 30,501 iterations).
RELEASE_LR_DECAY = 0.005 ** (1 / 30501)


class SDMatte(MattingModule):
    """SDMatte: Stable Diffusion 2 grafted for interactive matting, one deterministic step.

    Loss terms (``--model.loss_weights``): ``l1`` and ``laplacian`` (1.0 each), each over the
    trimap's known and unknown regions separately (the release's four terms).

    Args:
        variant: ``sd2`` (paper) or ``tiny`` (tests, CPU runs: no diffusion prior exists at that
            size).
        pretrained: a local diffusers Stable Diffusion 2 folder (``unet/``, ``vae/``, optionally
            ``text_encoder/`` + ``tokenizer/``) to graft; None starts from random weights.
        checkpoint: an official ``SDMatte.pth`` / ``SDMatte_plus.pth`` (or safetensors copy), or
            a mattekit SDMatte run's checkpoint, loaded over the network.
        visual_prompt_blocks: blocks whose cross-attention reads the prompt latent (paper Table
            3; default ``[mid]``, the paper's best); ``[]`` turns it off.
        masked_attention_blocks: blocks whose self-attention is masked by the prompt (Table 5;
            default all three); ``[]`` turns it off.
        coordinate_embedding: point / box coordinates added to the time embedding (Table 4).
        opacity_embedding: the opacity flag replaces the timestep (Table 4).
        train_vae: train the autoencoder too. Default (None): frozen when it starts from trained
            weights (``pretrained`` or ``checkpoint``), trained when it starts random (a frozen
            random decoder can barely express an alpha). Kept in checkpoints either way.
        gradient_checkpointing: recompute the UNet's activations in backward (paper size).
        prompt_kinds: prompt kinds drawn per sample in training (the release: all three).
        eval_prompt: prompt kind for validation, test and predict.
        transparent: the opacity flag at evaluation and prediction: None takes it from the data
            (unknown counts as opaque), True / False sets it for every image.
        **kwargs: :class:`MattingModule` arguments; SDMatte's defaults are the release's: AdamW
            lr 5e-5, weight decay 0.1, 200 warm-up steps then exponential decay, ``sdmatte``
            metric preset.
    """

    accepted_prompts = ("points", "box", "mask")
    run_settings = MattingModule.run_settings | {
        "pretrained",
        "checkpoint",
        "gradient_checkpointing",
        "prompt_kinds",
        "eval_prompt",
        "transparent",
    }
    #: LiteSDMatte's pruned UNet and tiny autoencoder.
    lite: ClassVar[bool] = False

    def __init__(
        self,
        variant: str = "sd2",
        pretrained: str | None = None,
        checkpoint: str | None = None,
        visual_prompt_blocks: list[str] | None = None,
        masked_attention_blocks: list[str] | None = None,
        coordinate_embedding: bool = True,
        opacity_embedding: bool = True,
        train_vae: bool | None = None,
        gradient_checkpointing: bool = False,
        prompt_kinds: list[str] | None = None,
        eval_prompt: str = "box",
        transparent: bool | None = None,
        lr: float = 5e-5,
        weight_decay: float = 0.1,
        warmup_steps: int = 200,
        lr_schedule: str = "exponential",
        lr_decay: float = RELEASE_LR_DECAY,
        metric_preset: str = "sdmatte",
        **kwargs,
    ) -> None:
        self.prompt_kinds = prompt_kinds or list(self.accepted_prompts)
        self.check_prompts(self.prompt_kinds, eval_prompt)
        super().__init__(
            lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, lr_schedule=lr_schedule,
            lr_decay=lr_decay, metric_preset=metric_preset, **kwargs,
        )  # fmt: skip

    @property
    def switches(self) -> dict:
        """:func:`~mattekit.models.sdmatte.torch_model.graft`'s block and embedding switches."""
        hp = self.hparams
        visual = ["mid"] if hp.visual_prompt_blocks is None else hp.visual_prompt_blocks
        masked = BLOCK_GROUPS if hp.masked_attention_blocks is None else hp.masked_attention_blocks
        return {
            "visual_prompt_blocks": tuple(visual),
            "masked_blocks": tuple(masked),
            "coordinate_embedding": hp.coordinate_embedding,
            "opacity_embedding": hp.opacity_embedding,
        }

    def configure_models(self) -> None:
        hp = self.hparams
        self.model = self.build_network()
        if hp.gradient_checkpointing:
            self.model.unet.enable_gradient_checkpointing()
        if hp.checkpoint is not None and (path := self.initial_weights(hp.checkpoint)):
            load_sdmatte_weights(self.model, path)

    def build_network(self) -> SDMatteNet:
        """SDMatte grafted on ``pretrained``, else randomly initialised (said in the log)."""
        hp = self.hparams
        folder = self.initial_weights(hp.pretrained)
        if folder is None:
            if hp.pretrained is None and hp.checkpoint is None:
                logger.info("SDMatte %s: no pretrained folder, random weights", hp.variant)
            return build_sdmatte(hp.variant, **self.switches)
        unet, vae, context = load_stable_diffusion(folder)
        return graft(unet, vae, context, POINT_DIMS[hp.variant], **self.switches)

    def configure_losses(self) -> dict[str, LossTerm]:
        return {"l1": LossTerm(L1Loss()), "laplacian": LossTerm(LaplacianLoss(levels=5))}

    def configure_frozen(self) -> list[FrozenPart]:
        return [] if self.trains_autoencoder else [FrozenPart("model.vae")]

    @property
    def trains_autoencoder(self) -> bool:
        """``train_vae``, else whether the autoencoder starts random."""
        if self.hparams.train_vae is not None:
            return self.hparams.train_vae
        return not self.autoencoder_weights_given()

    def autoencoder_weights_given(self) -> bool:
        """Whether the autoencoder starts from a file (a pretrained folder or a checkpoint)."""
        return self.hparams.pretrained is not None or self.hparams.checkpoint is not None

    @property
    def input_convention(self) -> tuple[int | None, str | None]:
        """The release stretches every image to a square (1024 at test); the side is the run's."""
        return None, "stretch"

    def network_inputs(self, batch: MattingBatch, kinds: list[str]) -> tuple[Tensor, ...]:
        """:meth:`SDMatteNet.forward`'s arguments for ``batch``, each sample prompted by its kind.

        The prompt map is the kind's map (Gaussian clicks, filled box or coarse mask); the
        coordinate embedding reads the clicks, the box, or the coarse mask's bounding box.
        """
        prompt_map = prompt_maps(batch, kinds).sum(1, keepdim=True)
        is_mask = torch.tensor([k == "mask" for k in kinds], device=prompt_map.device)
        boxes = torch.where(is_mask[:, None], mask_boxes(batch.coarse_mask), batch.box)
        use_points = torch.tensor([k == "points" for k in kinds], device=prompt_map.device)
        transparent = batch.is_transparent.float()
        if not self.training and self.hparams.transparent is not None:
            transparent = torch.full_like(transparent, float(self.hparams.transparent))
        points, labels = batch.points, batch.point_labels
        return batch.image, prompt_map, boxes, points, labels, use_points, transparent

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """Inference: every sample prompted by ``eval_prompt``; ``alpha`` B x 1 x H x W."""
        kinds = [self.hparams.eval_prompt] * len(batch)
        return {"alpha": self.model(*self.network_inputs(batch, kinds))}

    def training_outputs(self, batch: MattingBatch) -> dict[str, Tensor]:
        """As :meth:`forward`, each sample prompted by a kind drawn from ``prompt_kinds``."""
        kinds = random_prompt_kinds(len(batch), self.prompt_kinds)
        return {"alpha": self.model(*self.network_inputs(batch, kinds))}


class LiteSDMatte(SDMatte):
    """LiteSDMatte: BK-SDM-pruned UNet (one pair per down stage) + tiny autoencoder (TAESD),
    distilled from a frozen SDMatte.

    Loss terms: SDMatte's, and ``distillation`` (0.01): the mean over UNet stages (each down
    block, the mid block, each up block) of the MSE between student and teacher features.

    Args:
        teacher_checkpoint: a trained SDMatte (a mattekit SDMatte run's checkpoint or the
            official ``SDMatte.pth``) of the same variant and switches. It initialises the
            student's kept blocks and modules (unless ``checkpoint`` is given) and is distilled
            from: frozen, in eval mode, left out of the student's checkpoints and read from this
            file whenever the run is built. None trains without distillation from random weights.
        tiny_autoencoder: a local diffusers ``AutoencoderTiny`` (TAESD) folder; None: random.
        checkpoint: an official ``LiteSDMatte.pth`` or a mattekit LiteSDMatte run's checkpoint.
        **kwargs: :class:`SDMatte` arguments.
    """

    lite = True
    run_settings = SDMatte.run_settings | {"teacher_checkpoint", "tiny_autoencoder"}

    def __init__(
        self,
        teacher_checkpoint: str | None = None,
        tiny_autoencoder: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        hp = self.hparams
        self.teacher = None
        teacher_path = self.initial_weights(hp.teacher_checkpoint, stored=False)
        if teacher_path is not None:
            if Path(teacher_path).exists() or not is_restoring():
                self.teacher = build_sdmatte(hp.variant, **self.switches)
                load_sdmatte_weights(self.teacher, teacher_path)
            else:
                logger.warning(
                    "LiteSDMatte: teacher %s not found; restoring without it (evaluation and "
                    "prediction need no teacher, training does)",
                    teacher_path,
                )
        super().configure_models()

    def build_network(self) -> SDMatteNet:
        """Pruned from the teacher when there is one (not when restoring or loading
        ``checkpoint``: those weights replace it), else random; TAESD from its folder."""
        hp = self.hparams
        if self.teacher is not None and hp.checkpoint is None and not is_restoring():
            network = lite_from_teacher(self.teacher, AutoencoderTiny(**self._taesd_config()))
        else:
            network = build_sdmatte(hp.variant, lite=True, **self.switches)
        if (folder := self.initial_weights(hp.tiny_autoencoder)) is not None:
            network.vae = AutoencoderTiny.from_pretrained(folder, local_files_only=True)
        return network

    def autoencoder_weights_given(self) -> bool:
        """TAESD comes from ``tiny_autoencoder`` or ``checkpoint``; the teacher has none."""
        return self.hparams.tiny_autoencoder is not None or self.hparams.checkpoint is not None

    def _taesd_config(self) -> dict:
        return vae_config(self.hparams.variant, tiny_autoencoder=True)

    def configure_losses(self) -> dict[str, LossTerm]:
        terms = super().configure_losses()
        if self.hparams.teacher_checkpoint is not None:
            terms["distillation"] = LossTerm(FeatureMSELoss(), 0.01)
        return terms

    def configure_frozen(self) -> list[FrozenPart]:
        teacher = [FrozenPart("teacher", in_checkpoint=False)] if self.teacher is not None else []
        return [*super().configure_frozen(), *teacher]

    def on_fit_start(self) -> None:
        if self.hparams.teacher_checkpoint is not None and self.teacher is None:
            raise FileNotFoundError(
                f"LiteSDMatte: teacher_checkpoint {self.hparams.teacher_checkpoint} not found; "
                "distillation needs it (or pass --model.teacher_checkpoint null)"
            )

    def training_outputs(self, batch: MattingBatch) -> dict[str, Tensor]:
        """The alpha, and the ``distillation`` term's value (a scalar) when it is active."""
        if self.teacher is None or self.loss_weights.get("distillation", 0) == 0:
            return super().training_outputs(batch)
        inputs = self.network_inputs(batch, random_prompt_kinds(len(batch), self.prompt_kinds))
        with captured_stage_features(self.model.unet) as student:
            latent = self.model.denoise(*inputs)
        with torch.no_grad(), captured_stage_features(self.teacher.unet) as teacher:
            self.teacher.denoise(*inputs)
        distillation = self.losses["distillation"](student, teacher)
        return {"alpha": self.model.decode(latent), "distillation": distillation}

    def loss_terms(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        """SDMatte's terms on the alpha, and the distillation value :meth:`training_outputs`
        computed (absent from inference outputs: a validation loss leaves it out)."""
        trimap = batch.trimap if self.hparams.loss_regions else None
        terms = {}
        for name, loss in self.active_losses():
            if name != "distillation":
                terms[name] = loss(outputs["alpha"], batch.alpha, trimap)
            elif name in outputs:
                terms[name] = outputs[name]
        return terms
