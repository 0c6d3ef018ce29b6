"""SDMatte and LiteSDMatte as mattekit families: the first trainable SDMatte (the official
release ships inference code only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from diffusers import AutoencoderTiny
from torch import Tensor, nn

from mattekit.data.convention import InputConvention
from mattekit.data.sample import MattingBatch
from mattekit.export.graphs import ExportGraph
from mattekit.losses import FeatureMSELoss, L1Loss, LaplacianLoss
from mattekit.metrics.presets import PresetName
from mattekit.models.base import MattingModule, is_restoring
from mattekit.models.frozen import FrozenPart
from mattekit.models.loss_terms import LossTerm
from mattekit.models.sdmatte.configs import POINT_DIMS, vae_config
from mattekit.models.sdmatte.referring_text import load_referring_encoder, referring_context
from mattekit.models.sdmatte.text_context import caption_tokenizer
from mattekit.models.sdmatte.torch_model import (
    BLOCK_GROUPS,
    DEFAULT_VISUAL_PROMPT_BLOCKS,
    SDMatteNet,
    SDMattePrompt,
    build_sdmatte,
    graft,
    lite_from_teacher,
)
from mattekit.models.sdmatte.weights import load_sdmatte_weights, load_stable_diffusion
from mattekit.nn.prompt_maps import mask_boxes
from mattekit.nn.unet_features import captured_trunk_features, unet_blocks
from mattekit.prompts import prompt_maps
from mattekit.weights.stable_diffusion import from_local_folder

if TYPE_CHECKING:
    from transformers import CLIPTextModel

logger = logging.getLogger(__name__)

#: LiteSDMatte's teacher: frozen, and read from its own file rather than the student's checkpoints.
TEACHER = FrozenPart("teacher", in_checkpoint=False)
#: The CLIP text encoder of ``referring_text``: frozen, read from its own file every time the
#: module is built, so turning the switch on or off never changes what a checkpoint holds.
TEXT_ENCODER = FrozenPart("text_encoder", in_checkpoint=False)

# The release's schedule: 200 warm-up iterations, then lr x 0.005 ** (step / 30501), i.e. this
# factor per step (detectron2's ExponentialParamScheduler over its 30,501 iterations).
RELEASE_LR_DECAY = 0.005 ** (1 / 30501)


class SDMatte(MattingModule):
    """SDMatte: Stable Diffusion 2 grafted for interactive matting, one deterministic step.

    Loss terms (``--model.loss_weights``): ``l1`` and ``laplacian`` (1.0 each), each over the
    trimap's known and unknown regions separately and per pixel of its region (the release's
    four terms; ``laplacian`` is the release's 5-level band-pass form).

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
        transparent: the opacity flag at evaluation and prediction: None takes it from the data
            (unknown counts as opaque), True / False sets it for every image.
        referring_text: each sample's ``batch.text`` (its referring expression) goes through
            SD 2's frozen CLIP text encoder to the cross-attention of the blocks without visual
            prompts (the down and up blocks by default), as the release does on RefMatte-RW100;
            samples with empty text keep the empty caption. The encoder is read from
            ``checkpoint``'s ``text_encoder.`` entries, else ``pretrained``'s ``text_encoder/``
            (a random one, seed 0, for random networks and the tiny variant). False (default):
            the empty caption for every sample, as in the release's training.
        **kwargs: :class:`MattingModule` arguments; SDMatte's defaults are the release's: AdamW
            lr 5e-5, weight decay 0.1, 200 warm-up steps then exponential decay, ``sdmatte``
            metric preset. ``activation_checkpointing`` recomputes the UNet's resnet and
            transformer blocks (:meth:`checkpointed_blocks`).
        gradient_checkpointing: the old name of ``activation_checkpointing``, read from
            checkpoints and configs written before issue 26 (given, it sets that switch; None:
            not given). New checkpoints store the new name only.
    """

    accepted_prompts = ("points", "box", "mask")
    default_eval_prompt = "box"
    run_settings = MattingModule.run_settings | {
        "pretrained",
        "checkpoint",
        "gradient_checkpointing",
        "transparent",
        "referring_text",
    }
    renamed_arguments: ClassVar[dict[str, str]] = {
        "gradient_checkpointing": "activation_checkpointing"
    }

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
        transparent: bool | None = None,
        referring_text: bool = False,
        gradient_checkpointing: bool | None = None,
        lr: float = 5e-5,
        weight_decay: float = 0.1,
        warmup_steps: int = 200,
        lr_schedule: str = "exponential",
        lr_decay: float = RELEASE_LR_DECAY,
        metric_preset: PresetName = "sdmatte",
        **kwargs,
    ) -> None:
        # Checkpoints and configs written before the rename give the old name.
        old = {"gradient_checkpointing": gradient_checkpointing}
        kwargs = self.current_names({**kwargs, **old}, type(self).__name__)
        super().__init__(
            lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, lr_schedule=lr_schedule,
            lr_decay=lr_decay, metric_preset=metric_preset, **kwargs,
        )  # fmt: skip

    @property
    def switches(self) -> dict[str, tuple[str, ...] | bool]:
        """:func:`~mattekit.models.sdmatte.torch_model.graft`'s block and embedding switches."""
        hp = self.hparams
        visual = hp.visual_prompt_blocks
        visual = DEFAULT_VISUAL_PROMPT_BLOCKS if visual is None else visual
        masked = BLOCK_GROUPS if hp.masked_attention_blocks is None else hp.masked_attention_blocks
        return {
            "visual_prompt_blocks": tuple(visual),
            "masked_blocks": tuple(masked),
            "coordinate_embedding": hp.coordinate_embedding,
            "opacity_embedding": hp.opacity_embedding,
        }

    def configure_models(self) -> None:
        hp = self.hparams
        checkpoint = None if hp.checkpoint is None else self.initial_weights(hp.checkpoint)
        if checkpoint is not None and hp.pretrained is None:
            # Every weight comes from the file: build on the meta device and take the file's
            # memory-mapped tensors as the parameters (no random initialisation, no copy).
            with torch.device("meta"):
                self.model = self.build_network()
            load_sdmatte_weights(self.model, checkpoint, assign=True)
        else:
            self.model = self.build_network()
            if checkpoint is not None:
                load_sdmatte_weights(self.model, checkpoint)
        self.text_encoder, self.tokenizer = None, None
        if hp.referring_text:
            self.text_encoder, self.tokenizer = self.load_referring_text()

    def load_referring_text(self) -> tuple[CLIPTextModel, Callable[[list[str]], Tensor]]:
        """``referring_text``'s frozen text encoder and its tokenizer (``pretrained``'s
        ``tokenizer/``, else OpenCLIP's, SD 2's vocabulary), read from their files whenever the
        module is built: a restored run reads them too, as they are kept out of checkpoints."""
        hp = self.hparams
        files = [self.initial_weights(path, stored=False) for path in self.text_encoder_files()]
        folder = self.initial_weights(hp.pretrained, stored=False)
        encoder = load_referring_encoder(hp.variant, files, folder)
        return encoder, caption_tokenizer(None if folder is None else Path(folder))

    def text_encoder_files(self) -> list[str | None]:
        """Weight files that may hold the text encoder (official ``text_encoder.`` entries)."""
        return [self.hparams.checkpoint]

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

    def checkpointed_blocks(self) -> list[nn.Module]:
        """The UNet's resnet and transformer blocks (what diffusers' own gradient
        checkpointing recomputes); not the autoencoder's, frozen when it starts from trained
        weights (the paper-size case)."""
        return unet_blocks(self.model.unet)

    def configure_losses(self) -> dict[str, LossTerm]:
        # The release's four terms (criterion.py:85-129): L1 and its band-pass Laplacian, each
        # on the unknown and the known region, each a loss per pixel of its region.
        laplacian = LaplacianLoss(levels=5, pyramid="band_pass", region_mean=True)
        return {"l1": LossTerm(L1Loss()), "laplacian": LossTerm(laplacian)}

    def configure_frozen(self) -> list[FrozenPart]:
        frozen = [] if self.trains_autoencoder else [FrozenPart("model.vae")]
        return frozen if self.text_encoder is None else [*frozen, TEXT_ENCODER]

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
    def input_convention(self) -> InputConvention:
        """The release stretches every image to a square (1024 at test); the side is the run's.
        The VAE takes RGB scaled to [-1, 1]."""
        return InputConvention(None, "stretch", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def network_inputs(self, batch: MattingBatch, kinds: list[str]) -> tuple[Tensor, SDMattePrompt]:
        """``(image, prompt)`` for :class:`SDMatteNet`, each sample prompted by its kind.

        The prompt map is the kind's map (Gaussian clicks, filled box or coarse mask); the
        coordinate embedding reads the clicks, the box, or the coarse mask's bounding box.
        """
        prompt_map = prompt_maps(batch, kinds).sum(1, keepdim=True)
        is_mask = torch.tensor([k == "mask" for k in kinds], device=prompt_map.device)
        transparent = batch.is_transparent.float()
        if not self.training and self.hparams.transparent is not None:
            transparent = torch.full_like(transparent, float(self.hparams.transparent))
        prompt = SDMattePrompt(
            prompt_map=prompt_map,
            boxes=torch.where(is_mask[:, None], mask_boxes(batch.coarse_mask), batch.box),
            points=batch.points,
            point_labels=batch.point_labels,
            use_points=torch.tensor([k == "points" for k in kinds], device=prompt_map.device),
            transparent=transparent,
            text_context=self.text_contexts(batch),
        )
        return batch.image, prompt

    def text_contexts(self, batch: MattingBatch) -> Tensor | None:
        """B x 77 x D contexts of the blocks without visual prompts: each sample's referring
        expression encoded (``referring_text``), the empty caption where it has none; None (the
        empty caption for every sample) with the switch off or no text in the batch."""
        if self.text_encoder is None:
            return None
        texts = batch.text or [""] * len(batch)
        return referring_context(self.text_encoder, self.tokenizer, texts, self.model.text_context)

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """``alpha`` B x 1 x H x W, each sample prompted by its ``batch.prompt_kind``."""
        return {"alpha": self.model(*self.network_inputs(batch, self.kinds_of(batch)))}

    def export_graphs(self, batch: MattingBatch) -> list[ExportGraph]:
        """The base's graph; refused with ``referring_text``, whose forward reads strings: the
        traced graph would keep the example's text as a constant."""
        if self.text_encoder is not None:
            raise ValueError(
                "SDMatte: no export graph with referring_text (the text would be frozen into "
                "the graph); export with --model.referring_text false"
            )
        return super().export_graphs(batch)


class LiteSDMatte(SDMatte):
    """LiteSDMatte: BK-SDM-pruned UNet (one pair per down stage) + tiny autoencoder (TAESD),
    distilled from a frozen SDMatte.

    Loss terms: SDMatte's, and ``distillation`` (0.01): the MSE between student and teacher
    UNet features summed over the release's three (after the down stack, the mid block and the
    up stack).

    Args:
        teacher_checkpoint: a trained SDMatte (a mattekit SDMatte run's checkpoint or the
            official ``SDMatte.pth``) of the same variant and switches. It initialises a new
            run's student (its kept blocks and modules; not with ``checkpoint``) and is distilled
            from: frozen, in eval mode, left out of the student's checkpoints, read from this file
            by every run that fits (a resumed fit too) and by none that only evaluates or
            predicts. None: no distillation.
        tiny_autoencoder: a local diffusers ``AutoencoderTiny`` (TAESD) folder; None: random.
        pretrained: without a teacher, a local Stable Diffusion 2 folder grafted, then pruned.
        checkpoint: an official ``LiteSDMatte.pth`` or a mattekit LiteSDMatte run's checkpoint.
        **kwargs: :class:`SDMatte` arguments.
    """

    run_settings = SDMatte.run_settings | {"teacher_checkpoint", "tiny_autoencoder"}

    def __init__(
        self,
        teacher_checkpoint: str | None = None,
        tiny_autoencoder: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        # A new run reads the teacher now: the student starts as its pruned copy. A restored run
        # (test, predict, resumed fit) never needs that copy; only a resumed fit needs the
        # teacher, and reads it when fitting starts (:meth:`on_fit_start`).
        self.teacher = None
        if self.hparams.teacher_checkpoint is not None and not is_restoring():
            self.teacher = self.load_teacher()
        super().configure_models()

    def load_teacher(self) -> SDMatteNet:
        """The frozen SDMatte named by ``teacher_checkpoint`` (read whenever a run fits)."""
        path = self.initial_weights(self.hparams.teacher_checkpoint, stored=False)
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"LiteSDMatte: teacher_checkpoint {path} not found: distillation needs it "
                "(--model.teacher_checkpoint null trains without a teacher)"
            )
        teacher = build_sdmatte(self.hparams.variant, **self.switches)
        load_sdmatte_weights(teacher, path)
        return teacher

    def build_network(self) -> SDMatteNet:
        """Pruned from the teacher (a new run), else from ``pretrained`` (grafted, then pruned),
        else random; TAESD from ``tiny_autoencoder`` when given (random otherwise)."""
        hp = self.hparams
        # With ``checkpoint`` every weight comes from that file: no TAESD folder is read.
        folder = None if hp.checkpoint is not None else self.initial_weights(hp.tiny_autoencoder)
        loaded = None
        if folder is not None:
            loaded = from_local_folder(AutoencoderTiny, folder)  # unreadable: one line
        if self.teacher is not None and hp.checkpoint is None:
            return lite_from_teacher(self.teacher, self._taesd(loaded))
        if (sd_folder := self.initial_weights(hp.pretrained)) is not None:
            unet, _, context = load_stable_diffusion(sd_folder)
            taesd = self._taesd(loaded)
            point_dim = POINT_DIMS[hp.variant]
            return graft(unet, taesd, context, point_dim, layers_per_block=1, **self.switches)
        network = build_sdmatte(hp.variant, lite=True, **self.switches)  # with a random TAESD
        if loaded is not None:
            network.vae = loaded
        return network

    def _taesd(self, loaded: AutoencoderTiny | None) -> AutoencoderTiny:
        """``loaded``, else a random TAESD of the variant's size."""
        if loaded is not None:
            return loaded
        return AutoencoderTiny(**vae_config(self.hparams.variant, tiny_autoencoder=True))

    def autoencoder_weights_given(self) -> bool:
        """TAESD comes from ``tiny_autoencoder`` or ``checkpoint``; a teacher has none."""
        return self.hparams.tiny_autoencoder is not None or self.hparams.checkpoint is not None

    def configure_losses(self) -> dict[str, LossTerm]:
        terms = super().configure_losses()
        if self.hparams.teacher_checkpoint is not None:
            # Computed in forward, where both networks' features exist.
            terms["distillation"] = LossTerm(None, 0.01)
            self.feature_distillation = FeatureMSELoss()
        return terms

    def text_encoder_files(self) -> list[str | None]:
        """``checkpoint``, then the teacher's file (the student's text encoder is its)."""
        return [*super().text_encoder_files(), self.hparams.teacher_checkpoint]

    def configure_frozen(self) -> list[FrozenPart]:
        teacher = [TEACHER] if self.teacher is not None else []
        return [*super().configure_frozen(), *teacher]

    def on_fit_start(self) -> None:
        if self.hparams.teacher_checkpoint is not None and self.teacher is None:
            self.teacher = self.load_teacher().to(self.device)
            self.add_frozen_part(TEACHER)

    @property
    def distilling(self) -> bool:
        return self.teacher is not None and self.loss_weights.get("distillation", 0) != 0

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """The alpha; in training with a teacher also ``distillation``, the feature term's
        value (a scalar), computed while both networks' stage features are at hand."""
        if not (self.training and self.distilling):
            return super().forward(batch)
        inputs = self.network_inputs(batch, self.kinds_of(batch))
        with captured_trunk_features(self.model.unet) as student:
            latent = self.model.denoise(*inputs)
        with torch.no_grad(), captured_trunk_features(self.teacher.unet) as teacher:
            self.teacher.denoise(*inputs)
        distillation = self.feature_distillation(student, teacher)
        return {"alpha": self.model.decode(latent), "distillation": distillation}

    def loss_terms(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        """SDMatte's terms, and ``distillation`` when the outputs carry it (training only)."""
        terms = super().loss_terms(outputs, batch)
        if "distillation" in outputs:
            terms["distillation"] = outputs["distillation"]
        return terms
