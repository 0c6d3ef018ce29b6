"""SAMA as a mattekit family: the first implementation (no code or weights were released)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mattekit.data.convention import InputConvention
from mattekit.data.sample import MattingBatch
from mattekit.export.graphs import ExportGraph
from mattekit.losses import BCELoss, GradientLoss, IoULoss, L1Loss, LaplacianLoss, SSIMLoss
from mattekit.metrics import segmentation_metrics
from mattekit.metrics.presets import PresetName
from mattekit.models.base import MattingModule, zero_through
from mattekit.models.evaluation import OutputMetrics
from mattekit.models.frozen import FrozenPart
from mattekit.models.loss_terms import LossTerm
from mattekit.models.sam.export import sam_split_graphs
from mattekit.models.sam.inputs import sam_batch_tokens, sam_encode, sam_input_convention
from mattekit.models.sama.torch_model import (
    TASKS,
    SamaImageFeatures,
    build_sama,
    load_sam_into_sama,
)

logger = logging.getLogger(__name__)

TASK_CHOICES = ("both", *TASKS)
SCHEDULES = ("joint", "alternate")
SEGMENTATION_TERMS = ("seg_bce", "seg_iou", "seg_ssim")
MATTING_TERMS = ("mat_l1", "mat_ssim", "mat_gradient", "mat_laplacian")


class SAMA(MattingModule):
    """SAMA: frozen SAM + Multi-View Localization Encoder + Local-Adapters + two task heads.

    Loss terms (``--model.loss_weights``; the paper gives no weights, all 1.0): segmentation
    ``seg_bce``, ``seg_iou`` (on the logits), ``seg_ssim`` (on the probabilities) against
    ``batch.seg_mask``; matting ``mat_l1``, ``mat_ssim``, ``mat_gradient``, ``mat_laplacian`` on
    the alpha. By default every training step trains both tasks, the loss their sum (the paper's
    L = L_seg + L_matting); :meth:`step_tasks` says which a step trains.

    Args:
        variant: SAM's size: ``vit_b`` (default), ``vit_l``, ``vit_h`` or ``tiny``.
        checkpoint: a SAM checkpoint of that size (official ``sam_vit_b_01ec64.pth``, or a
            mattekit SAM / ZIM run); None starts SAM from random weights (said in the log; SAMA
            freezes SAM, so that only makes sense in tests).
        mvle, local_adapter: the two modules (paper Tables 3 and 4).
        pool_kernels: MVLE pooling windows on the token grid (default: the paper's 4, 8, 16 on
            a 64 grid, scaled to the grid).
        pool_mode: ``paper`` (pool, then split into quadrants) or ``mvanet`` (split, then pool).
        channel_gate: a confidence per channel in the adapters' gate (default: per position).
        head_norm: ``batch`` (paper) or ``group``.
        local_view_size: side of the encoded quadrant views (default: the input size, the
            paper's 2x zoom; half of it is the cheaper option, see the README).
        init_from_sam: start the task tokens and the heads' hypernetworks from SAM's mask
            token 0 (with ``checkpoint``).
        separate_task_tokens: one decoder pass per task carrying only its own token (the
            paper); False: both tokens in one pass (:class:`~.torch_model.Sama`).
        early_fusion: ``first`` (eq. 5-6: the early features join the local tokens in the first
            adapter) or ``every`` adapter (:class:`~.torch_model.Sama`).
        tasks: ``both`` (joint training, the paper), ``segmentation`` or ``matting`` only
            (Table 5).
        task_schedule: ``joint`` (the paper): every step trains every task of ``tasks``, the loss
            their sum; ``alternate``: one task per step, cycled by the optimiser step
            (segmentation, then matting). For sources that serve both tasks, as the synthetic
            scenes or matting data (their ``seg_mask`` is the alpha above 0.5). None (what
            checkpoints stored before the switch) reads as ``alternate``, as they were trained.
        segmentation_sources: data source names whose batches train segmentation only, whatever
            the schedule (DIS-5K, ThinObject-5K: binary masks, no matte).
        **kwargs: :class:`MattingModule` arguments; SAMA's defaults: AdamW lr 1e-3 (only new
            modules train, HQ-SAM's rate), losses and metrics over the whole image (trimap-free),
            ``dim`` metric preset.
    """

    accepted_prompts = ("points", "box")
    default_eval_prompt = "box"  # the paper evaluates with boxes
    run_settings = MattingModule.run_settings | {
        "checkpoint",
        "init_from_sam",
        "tasks",
        "task_schedule",
        "segmentation_sources",
    }
    # Checkpoints written before issue 25 were trained with mattekit's earlier forms.
    earlier_defaults: ClassVar[dict[str, object]] = {
        "separate_task_tokens": False,
        "early_fusion": "every",
    }

    def __init__(
        self,
        variant: str = "vit_b",
        checkpoint: str | None = None,
        mvle: bool = True,
        local_adapter: bool = True,
        pool_kernels: list[int] | None = None,
        pool_mode: Literal["paper", "mvanet"] = "paper",
        channel_gate: bool = False,
        head_norm: Literal["batch", "group"] = "batch",
        local_view_size: int | None = None,
        init_from_sam: bool = True,
        separate_task_tokens: bool = True,
        early_fusion: Literal["first", "every"] = "first",
        tasks: Literal["both", "segmentation", "matting"] = "both",
        task_schedule: Literal["joint", "alternate"] | None = "joint",
        segmentation_sources: list[str] | None = None,
        lr: float = 1e-3,
        metric_preset: PresetName = "dim",
        eval_with_trimap: bool = False,
        loss_regions: bool = False,
        **kwargs,
    ) -> None:
        if tasks not in TASK_CHOICES:
            raise ValueError(f"tasks must be one of {TASK_CHOICES}, got {tasks!r}")
        self.trained_tasks = TASKS if tasks == "both" else (tasks,)
        self.task_schedule = task_schedule or "alternate"
        if self.task_schedule not in SCHEDULES:
            raise ValueError(f"task_schedule must be one of {SCHEDULES}, got {task_schedule!r}")
        self.segmentation_sources = frozenset(segmentation_sources or ())
        if self.segmentation_sources and "segmentation" not in self.trained_tasks:
            raise ValueError(f"segmentation_sources given, but tasks={tasks!r}")
        self._step_index = 0
        self._tasks_since_optimizer_step: set[str] = set()
        super().__init__(
            lr=lr, metric_preset=metric_preset, eval_with_trimap=eval_with_trimap,
            loss_regions=loss_regions, **kwargs,
        )  # fmt: skip

    def configure_models(self) -> None:
        hp = self.hparams
        self.model = build_sama(
            hp.variant, hp.mvle, hp.local_adapter, hp.pool_kernels, hp.pool_mode,
            hp.channel_gate, hp.head_norm, local_view_size=hp.local_view_size,
            separate_task_tokens=hp.separate_task_tokens, early_fusion=hp.early_fusion,
        )  # fmt: skip
        if hp.checkpoint is None:
            logger.info("SAMA %s: no SAM checkpoint given, SAM stays random", hp.variant)
        elif (checkpoint := self.initial_weights(hp.checkpoint)) is not None:
            load_sam_into_sama(self.model, checkpoint, hp.init_from_sam)

    def configure_losses(self) -> dict[str, LossTerm]:
        terms = {}
        if "segmentation" in self.trained_tasks:
            terms |= {
                "seg_bce": LossTerm(BCELoss()),
                "seg_iou": LossTerm(IoULoss()),
                "seg_ssim": LossTerm(SSIMLoss()),
            }
        if "matting" in self.trained_tasks:
            terms |= {
                "mat_l1": LossTerm(L1Loss()),
                "mat_ssim": LossTerm(SSIMLoss()),
                "mat_gradient": LossTerm(GradientLoss()),
                "mat_laplacian": LossTerm(LaplacianLoss()),
            }
        return terms

    def checkpointed_blocks(self) -> list[nn.Module]:
        """``activation_checkpointing``'s blocks: SAM's ViT blocks, its decoder's two-way
        layers and the local adapters. The ViT is frozen and fed the image, so its blocks run
        the plain forward (:mod:`mattekit.nn.activation_checkpointing`); the decoder layers are
        frozen too but carry the task tokens' gradients: they are recomputed."""
        sam = self.model.sam
        adapters = list(self.model.adapters or [])
        return [*sam.image_encoder.blocks, *sam.mask_decoder.transformer.layers, *adapters]

    def configure_frozen(self) -> list[FrozenPart]:
        # All of SAM (encoder, prompt encoder, decoder, its tokens and heads), kept in
        # checkpoints so a trained run restores without the SAM file. A task this run does not
        # train keeps its token and head as built (the paper's other head, frozen).
        untrained = [task for task in TASKS if task not in self.trained_tasks]
        return [FrozenPart("model.sam"), *(FrozenPart(f"model.heads.{t}") for t in untrained)]

    def configure_extra_metrics(self) -> list[OutputMetrics]:
        return [OutputMetrics("seg", "seg_mask", segmentation_metrics)]

    @property
    def checkpoint_monitor(self) -> tuple[str, Literal["min", "max"]]:
        if self.trained_tasks == ("segmentation",):
            return "val/seg/maxF", "max"
        return "val/SAD", "min"

    @property
    def input_convention(self) -> InputConvention:
        """SAM's: the image encoder's fixed side (1024, tiny 128), letterboxed, normalised by
        SAM's pixel statistics, padded with 0 after normalisation."""
        return sam_input_convention(self.model.image_size)

    def training_step(self, batch: MattingBatch, batch_idx: int) -> Tensor:
        # The optimiser step under a trainer (it survives exact resume, and accumulated batches
        # share a task); the batch index when a test drives the steps by hand.
        self._step_index = self.global_step if self._trainer is not None else batch_idx
        loss = super().training_step(batch, batch_idx)
        if not self._under_ddp():
            return loss
        tasks = self.step_tasks(batch)
        self._tasks_since_optimizer_step.update(tasks)
        idle = self._head_parameters(set(self.trained_tasks) - set(tasks))
        if not idle:
            return loss
        # DDP's reducer (without find_unused_parameters) waits for a gradient of every trainable
        # parameter at every backward: the idle head joins the graph with a zero weight (no
        # extra forward), and its gradient is dropped again in on_before_optimizer_step.
        return loss + zero_through(idle)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Under DDP, the heads no process used since the last optimiser step lose their (zero)
        gradients: AdamW skips them, no moment update and no weight decay, as in one process."""
        super().on_before_optimizer_step(optimizer)
        if self._under_ddp():
            used = self._tasks_since_optimizer_step
            tasks = self.trained_tasks  # the same order on every process (one collective)
            idle = self._each_on_every_process([task not in used for task in tasks])
            unused = {task for task, no_one in zip(tasks, idle, strict=True) if no_one}
            for parameter in self._head_parameters(unused):
                parameter.grad = None
        self._tasks_since_optimizer_step = set()

    def _under_ddp(self) -> bool:
        """Whether a trainer runs this module wrapped in DistributedDataParallel."""
        model = getattr(self._trainer, "model", None)
        return isinstance(model, torch.nn.parallel.DistributedDataParallel)

    def _head_parameters(self, tasks: set[str]) -> list[torch.nn.Parameter]:
        """The trainable parameters of ``tasks``' heads (a frozen head's are not DDP's)."""
        heads = [self.model.heads[task] for task in TASKS if task in tasks]
        return [p for head in heads for p in head.parameters() if p.requires_grad]

    def step_tasks(self, batch: MattingBatch) -> tuple[str, ...]:
        """The tasks a training batch trains: segmentation alone for a batch of
        ``segmentation_sources``, else every trained task (``joint``) or the current step's
        (``alternate``)."""
        from_segmentation = [source in self.segmentation_sources for source in batch.source]
        if any(from_segmentation):
            if not all(from_segmentation):
                raise ValueError(
                    f"a batch mixes segmentation sources {sorted(self.segmentation_sources)} "
                    f"with others ({sorted(set(batch.source))}): give the DataModule a schedule "
                    "so that each batch comes from one source"
                )
            return ("segmentation",)
        if self.task_schedule == "joint":
            return self.trained_tasks
        return (self.trained_tasks[self._step_index % len(self.trained_tasks)],)

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """Inference: both heads, each sample prompted by its ``batch.prompt_kind``.

        Returns:
            ``alpha`` / ``alpha_logits`` (matting head) and ``seg`` / ``seg_logits``
            (segmentation head), each B x 1 x H x W at the batch's size.
        """
        return self.predict_tasks(batch, self.kinds_of(batch), TASKS)

    def export_graphs(self, batch: MattingBatch) -> list[ExportGraph]:
        """SAM's split (:mod:`mattekit.models.sam.export`): the encoder (global and local views,
        MVLE) once per photo, and the decoder's ``matting_logits`` and ``segmentation_logits``
        (1 x 1 x S/4 x S/4) per prompt."""

        def decode(features, coords: Tensor, labels: Tensor) -> tuple[Tensor, ...]:
            logits = self.model.decode(features, coords, labels, TASKS)
            return tuple(logits[task] for task in TASKS)

        outputs = tuple(f"{task}_logits" for task in TASKS)
        return sam_split_graphs(self.model, batch, decode, outputs)

    def encode_image(self, batch: MattingBatch) -> SamaImageFeatures:
        """The whole image's and the local views' features (once per photo)."""
        return sam_encode(self.model, batch.image, batch.content_size)

    def forward_with_features(
        self, batch: MattingBatch, features: SamaImageFeatures
    ) -> dict[str, Tensor]:
        """:meth:`forward` running only the decoder on :meth:`encode_image`'s output."""
        return self.predict_tasks(batch, self.kinds_of(batch), TASKS, features)

    def training_outputs(self, batch: MattingBatch) -> dict[str, Tensor]:
        """The step's tasks only (:meth:`step_tasks`), each sample prompted by its kind."""
        return self.predict_tasks(batch, self.kinds_of(batch), self.step_tasks(batch))

    def loss_terms(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        terms = {}
        active = dict(self.active_losses())
        if "seg_logits" in outputs:
            logits = outputs["seg_logits"]
            target = batch.seg_mask.to(logits.dtype)
            values = {"seg_bce": logits, "seg_iou": logits, "seg_ssim": outputs["seg"]}
            terms |= {n: active[n](values[n], target) for n in SEGMENTATION_TERMS if n in active}
        if "alpha" in outputs:
            trimap = batch.trimap if self.hparams.loss_regions else None
            alpha = outputs["alpha"]
            for name in (n for n in MATTING_TERMS if n in active):
                ssim = name == "mat_ssim"  # SSIM has no region weighting
                loss = active[name]
                terms[name] = loss(alpha, batch.alpha) if ssim else loss(alpha, batch.alpha, trimap)
        return terms

    def predict_tasks(
        self,
        batch: MattingBatch,
        kinds: list[str],
        tasks: Sequence[str],
        features: SamaImageFeatures | None = None,
    ) -> dict[str, Tensor]:
        """The heads of ``tasks`` on the batch, in SAM's input convention (letterbox padding
        zeroed after normalising, a box alone or clicks + one padding point: ZIM's
        :func:`~mattekit.models.sam.inputs.sam_batch_tokens`); ``features``: :meth:`encode_image`'s,
        when known.

        Returns:
            per task: ``alpha`` and ``alpha_logits`` (matting), ``seg`` and ``seg_logits``
            (segmentation), B x 1 x H x W (the logits resized, then the sigmoid).
        """
        size = batch.image.shape[-2:]
        features = features if features is not None else self.encode_image(batch)
        coords, labels = sam_batch_tokens(batch, kinds, self.model.image_size)
        logits = self.model.decode(features, coords, labels, tasks)
        names = {"segmentation": "seg", "matting": "alpha"}
        outputs = {}
        for task, task_logits in logits.items():
            resized = F.interpolate(task_logits, size, mode="bilinear", align_corners=False)
            outputs[names[task]] = torch.sigmoid(resized)
            outputs[f"{names[task]}_logits"] = resized
        return outputs
