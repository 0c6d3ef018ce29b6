"""``MattingModule``: the family contract and the train / val / test / predict loop.

A family subclasses it and fills hooks, after torchgeo's trainers; everything else (steps,
optimiser, schedules, evaluation, checkpoints) is shared.

Required:

- :meth:`configure_models` builds the networks (``self.model``, a pure ``nn.Module`` from the
  family's ``torch_model.py``; a teacher or a VAE beside it).
- :meth:`configure_losses` declares the loss terms: ``{name: LossTerm(module, weight)}``; every
  weight is settable as ``--model.loss_weights '{name: value}'``.
- :meth:`forward` is inference: a :class:`MattingBatch` -> ``{"alpha": B x 1 x H x W in [0, 1],
  ...}`` (``"alpha_logits"`` too when the alpha is a sigmoid: evaluation then resizes logits).

Optional:

- :meth:`training_outputs` (default: ``forward``) and :meth:`loss_terms` (default: every declared
  module on ``(alpha, GT, trimap)``) form the training path; :meth:`loss_terms` returns raw
  values by name and the base weights them. Validation scores ``forward``'s outputs and runs the
  loss only with ``validation_loss=True``.
- :meth:`configure_frozen`: frozen submodules (eval mode, no gradients, optionally left out of
  checkpoints, see :mod:`mattekit.models.frozen`).
- :meth:`reference_prediction` / ``reference_name``: the floor row of every metric table (by
  default the evaluation kind's floor: :attr:`mattekit.prompts.PromptKind.floor_field`).
- :meth:`configure_extra_metrics`: metric collections on extra outputs.
- ``checkpoint_monitor``: the metric and mode the best checkpoint is chosen by.
- ``accepted_prompts``: the prompt kinds (:data:`mattekit.prompts.KINDS`) the family takes;
  ``default_eval_prompt`` the one it is evaluated with unless ``eval_prompt`` says otherwise.
  The base chooses each sample's kind (:meth:`prompted`: a draw from ``prompt_kinds`` in
  training, the user's or ``eval_prompt`` otherwise) and writes it into ``batch.prompt_kind``;
  :meth:`forward` reads it there (:meth:`kinds_of`) and keeps no prompt state.

Files a run starts from (a SAM ``.pth``, a timm backbone, a diffusers folder, a previous stage's
checkpoint) go through :meth:`initial_weights`, so restoring a trained run never reads them.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Literal

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn

from mattekit.data.convention import InputConvention
from mattekit.data.resumable import load_skipped_loader_states
from mattekit.data.sample import MattingBatch
from mattekit.export.graphs import ExportGraph, batch_graph
from mattekit.metrics import resolve_preset
from mattekit.metrics.presets import PresetName
from mattekit.models import rng_state
from mattekit.models.evaluation import (
    OutputMetrics,
    StageMetrics,
    alpha_at_original_size,
    floor_name,
    scored_pairs,
)
from mattekit.models.frozen import (
    FrozenPart,
    freeze_parts,
    keep_frozen_in_eval,
    with_unstored_parts,
    without_unstored_parts,
)
from mattekit.models.image_logging import log_prediction_grid
from mattekit.models.loss_terms import (
    LossTerm,
    in_float32,
    resolve_loss_weights,
    weighted_terms,
)
from mattekit.models.nonfinite import (
    NonFiniteLossError,
    NonFiniteRecord,
    SkippedStep,
    gradients_finite,
    nonfinite_samples,
)
from mattekit.models.optimization import LRSchedule, check_prefixes, parameter_groups
from mattekit.nn.activation_checkpointing import checkpoint_blocks
from mattekit.prompts import batch_floor, check_kinds, get_kind, random_kinds
from mattekit.prompts.protocols import SAMPLED_PROTOCOL, EvaluationProtocol
from mattekit.visualize import write_metrics_table
from mattekit.weights.files import read_weights_only

logger = logging.getLogger(__name__)

# Frozen parts are in eval mode at the start of training on purpose (see models/frozen.py).
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start")


def run_dir(trainer: L.Trainer) -> Path:
    """The run's folder (the logger's version folder, else the root dir); a collective call."""
    return Path(trainer.log_dir or trainer.default_root_dir)


_RESTORING = ContextVar("mattekit_restoring", default=False)


@contextmanager
def restoring_from_checkpoint() -> Iterator[None]:
    """Modules built inside are about to receive every weight from a Lightning checkpoint.

    They skip reading the files their training started from (a SAM or backbone checkpoint,
    named in their hyperparameters): those may not exist where the trained model is used.
    ``load_from_checkpoint`` and ``mattekit <command> --ckpt_path`` build modules inside.
    """
    token = _RESTORING.set(True)
    try:
        yield
    finally:
        _RESTORING.reset(token)


def is_restoring() -> bool:
    """Whether modules built now will receive their weights from a checkpoint
    (:func:`restoring_from_checkpoint`)."""
    return _RESTORING.get()


def zero_through(parameters: list[nn.Parameter]) -> Tensor:
    """A 0 whose backward reaches each of ``parameters`` (with a zero gradient): it keeps them
    in the graph of a step that does not use them, as DDP's reducer needs (no extra forward)."""
    return torch.stack([p.sum() for p in parameters]).sum() * 0


class MattingModule(L.LightningModule):
    """Shared Lightning logic for every matting family.

    Args:
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay, on the parameters ``no_decay`` does not spare.
        warmup_steps: linear warm-up to ``lr`` (from ``lr / warmup_steps`` at the first step,
            or from ``warmup_start_factor x lr``).
        lr_schedule: decay after warm-up: ``"constant"``, ``"cosine"`` (to 0 at the last step),
            ``"exponential"`` (``lr_decay ** step``) or ``"poly"``
            (``(1 - progress) ** poly_power``, with optional ``lr_milestones``).
        lr_decay: per-step factor of the exponential schedule.
        poly_power: exponent of the polynomial schedule.
        lr_milestones: ``[[step, factor], ...]``: from ``step`` on, the learning rate is
            ``factor x lr`` (TeachDiffusionMatting's schedule; poly only).
        warmup_start_factor: None: the warm-up's first step is at ``lr / warmup_steps``; a
            factor ``f``: detectron2's linear warm-up from ``f x lr`` (SDMatte's release: 0.001).
        lr_schedule_origin: where the decay's clock starts: ``"warmup_end"`` (the decay starts
            at ``lr`` when the warm-up ends) or ``"start"`` (step 0: the warm-up ends at the
            decayed value, detectron2's and SDMatte's release)
            (:class:`~mattekit.models.optimization.LRSchedule`).
        no_decay: what AdamW does not decay: ``"timm"`` (norms, biases, embeddings, tokens and
            position embeddings: :func:`~mattekit.models.optimization.no_weight_decay_names`)
            or ``"norms"`` (norm layers' weights and biases only, detectron2's rule and
            SDMatte's release: :func:`~mattekit.models.optimization.norm_parameter_names`).
        freeze: submodule paths to freeze (e.g. ``["model.image_encoder"]``), beside the
            family's own frozen parts.
        lr_multipliers: parameter-name prefix -> factor on ``lr`` (first match wins).
        loss_weights: loss term -> weight, overriding the family's declared defaults
            (the family docstring and README list its terms).
        validation_loss: also compute the loss on validation batches (``val/loss``).
        metric_preset: matting metric definitions for val / test (``dim``, ``zim``, ``sdmatte``).
        eval_with_trimap: restrict metrics to the trimap's unknown band (DIM protocol) when the
            preset allows it; False evaluates the whole image.
        eval_at_original_size: score predictions resized to each image's stored size against
            the stored GT (the benchmark protocol); False scores at the network input size.
        size_breakdown: also report metrics per object size (S / M / L by the fraction of GT
            above 0.3, ZIM's MicroMat-3K rule).
        loss_regions: losses weight the trimap's known and unknown regions separately (SDMatte);
            False computes them over the whole image (ZIM).
        nonfinite_loss: ``"raise"`` stops with the offending samples named; ``"skip"`` logs a
            warning naming them, trains on the batch's other samples (else skips the optimiser
            step, on every process) and skips steps with non-finite gradients
            (:mod:`~mattekit.models.nonfinite`).
        max_consecutive_skips: with ``"skip"``, the run stops after this many skipped
            optimiser steps in a row.
        num_logged_images: samples in the image grid logged each validation / test epoch.
        prompt_kinds: the kinds training draws from, one per sample (default: every kind the
            family accepts but ``none``, which a promptable family trains on only when asked).
        eval_prompt: the kind validation, test and predict run with where the batch names none
            (default: the family's ``default_eval_prompt``).
        activation_checkpointing: recompute the blocks :meth:`checkpointed_blocks` declares in
            backward instead of keeping their activations (less memory, about one more forward
            of them per step; :mod:`mattekit.nn.activation_checkpointing`). A family that
            declares none refuses it.
    """

    #: Prompt kinds the family accepts (:data:`mattekit.prompts.KINDS`).
    accepted_prompts: ClassVar[tuple[str, ...]] = ("none",)
    #: The kind evaluation runs with by default; None: the first accepted kind.
    default_eval_prompt: ClassVar[str | None] = None
    #: Name of the reference row in metric tables; None: no reference row; "" (the default):
    #: named after the evaluation kind's floor (``box as alpha (reference)``, ``mask ...``).
    reference_name: ClassVar[str | None] = ""
    #: Init arguments that do not shape the network: with ``--ckpt_path`` the command line may
    #: change them (:mod:`mattekit.checkpoint_config`). Every base argument is one (set below the
    #: class); a family adds its own: ``run_settings = MattingModule.run_settings | {...}``.
    run_settings: ClassVar[frozenset[str]] = frozenset()
    #: Init arguments added after checkpoints were written, each with the value such a
    #: checkpoint was trained with: a checkpoint whose hyperparameters lack one is rebuilt with
    #: that value (:meth:`load_from_checkpoint`, ``mattekit <command> --ckpt_path``), never
    #: silently with the newer default.
    earlier_defaults: ClassVar[dict[str, object]] = {}
    #: Init arguments renamed since checkpoints were written: old name -> current name. A
    #: checkpoint's hyperparameters under an old name are read under the current one
    #: (:meth:`current_names`).
    renamed_arguments: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        lr_schedule: Literal["constant", "cosine", "exponential", "poly"] = "cosine",
        lr_decay: float = 0.999,
        poly_power: float = 0.9,
        lr_milestones: list[tuple[int, float]] | None = None,
        warmup_start_factor: float | None = None,
        lr_schedule_origin: Literal["warmup_end", "start"] = "warmup_end",
        no_decay: Literal["timm", "norms"] = "timm",
        freeze: list[str] | None = None,
        lr_multipliers: dict[str, float] | None = None,
        loss_weights: dict[str, float] | None = None,
        validation_loss: bool = False,
        metric_preset: PresetName = "dim",
        eval_with_trimap: bool = True,
        eval_at_original_size: bool = True,
        size_breakdown: bool = False,
        loss_regions: bool = True,
        nonfinite_loss: Literal["raise", "skip"] = "raise",
        max_consecutive_skips: int = 10,
        num_logged_images: int = 4,
        prompt_kinds: list[str] | None = None,
        eval_prompt: str | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for old in self.renamed_arguments:  # a subclass's frame may still hold the old name
            self.hparams.pop(old, None)
        # Resolved defaults are saved, so a checkpoint says which kinds its run used.
        prompted = [kind for kind in self.accepted_prompts if kind != "none"] or ["none"]
        self.hparams.prompt_kinds = list(prompt_kinds or prompted)
        default = self.default_eval_prompt or self.accepted_prompts[0]
        self.hparams.eval_prompt = eval_prompt or default
        check_kinds(
            self.hparams.prompt_kinds,
            self.hparams.eval_prompt,
            self.accepted_prompts,
            type(self).__name__,
        )
        # Every forward refuses a kind the family does not take, also in a family whose
        # network reads one kind and never looks at ``batch.prompt_kind``.
        self.register_forward_pre_hook(_refuse_unaccepted_kinds)
        # Arguments a family derived before calling this (stage defaults, settings inherited
        # from a previous stage) replace the given ones: the CLI saves its parsed config, not
        # the values the family computed.
        self.hparams.update(getattr(self, "derived_hparams", {}))
        self.schedule = LRSchedule(
            lr_schedule,
            warmup_steps=warmup_steps,
            decay=lr_decay,
            power=poly_power,
            milestones=tuple(tuple(m) for m in lr_milestones or ()),
            warmup_start_factor=warmup_start_factor,
            origin=lr_schedule_origin,
        )
        self.output_dir: Path | None = None  # set in setup(), on every rank
        # The data's evaluation protocol (set in setup()); None: the run's own prompt sampler.
        self.protocol: EvaluationProtocol | None = None
        self.quantize = "none"  # how scored predictions are quantised: the data's setting
        self._skip_optimizer_step = False
        self.nonfinite = NonFiniteRecord(max_consecutive_skips)
        self._rng_to_restore: dict | None = None
        # (epoch, global step) of the checkpoint the weights came from, if any.
        self.trained_until: tuple[int, int] | None = None
        self.configure_models()
        declared = self.configure_losses()
        self.losses = nn.ModuleDict(
            {name: term.module for name, term in declared.items() if term.module is not None}
        )
        self.loss_weights = resolve_loss_weights(declared, loss_weights)
        self.configure_metrics()
        self.frozen_parts = [*self.configure_frozen(), *(FrozenPart(p) for p in freeze or [])]
        freeze_parts(self, self.frozen_parts)
        if self.frozen_parts:
            names = ", ".join(part.name for part in self.frozen_parts)
            logger.info("%s: frozen (eval mode, not trained): %s", type(self).__name__, names)
        check_prefixes(self, "lr_multipliers", lr_multipliers or {})
        if activation_checkpointing:
            checkpoint_blocks(self.checkpointed_blocks(), type(self).__name__)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, weights_only: bool = True, **kwargs):
        """Lightning's, weights-only, inside :func:`restoring_from_checkpoint`.

        Lightning would read a URL with ``weights_only=False`` (the file could run code); here
        every file, local or remote, is read weights-only.
        """
        if weights_only is not True:
            raise ValueError("mattekit loads checkpoints weights-only: weights_only must be True")
        if cls.earlier_defaults and Path(str(checkpoint_path)).is_file():
            stored = read_weights_only(Path(checkpoint_path)).get("hyper_parameters") or {}
            kwargs = {**cls.missing_earlier_defaults(stored, checkpoint_path), **kwargs}
        with restoring_from_checkpoint():
            return super().load_from_checkpoint(checkpoint_path, *args, weights_only=True, **kwargs)

    @classmethod
    def missing_earlier_defaults(cls, stored: dict, path: object) -> dict[str, object]:
        """The :attr:`earlier_defaults` a checkpoint's hyperparameters ``stored`` lack (logged,
        naming the file ``path``): the values it was trained with."""
        missing = {k: v for k, v in cls.earlier_defaults.items() if k not in stored}
        if missing:
            logger.info(
                "%s: written before %s existed: built with %s, as it was trained",
                path, ", ".join(sorted(missing)), missing,
            )  # fmt: skip
        return missing

    @classmethod
    def current_names(cls, arguments: dict, path: object) -> dict:
        """``arguments`` (init arguments or a checkpoint's hyperparameters, from ``path``) with
        each :attr:`renamed_arguments` old name dropped; its value, unless None (not given),
        replaces the current name's (logged).
        """
        renamed = dict(arguments)
        for old, new in cls.renamed_arguments.items():
            value = renamed.pop(old, None)
            if value is not None:
                renamed[new] = value
                logger.info("%s: %s=%r is now called %s", path, old, value, new)
        return renamed

    def initial_weights(self, path: str | None, stored: bool = True) -> str | None:
        """``path``, the file to initialise from; None when restoring a trained run.

        Args:
            stored: the weights read from ``path`` are saved in this run's checkpoints. False
                for frozen parts kept out of checkpoints: their file is read every time.
        """
        if path is not None and stored and is_restoring():
            logger.info(
                "%s: restoring from a checkpoint, %s is not read", type(self).__name__, path
            )
            return None
        return path

    def kinds_of(self, batch: MattingBatch) -> list[str]:
        """Each sample's prompt kind: the batch's, or ``eval_prompt`` where it names none.

        Raises:
            ValueError naming the family, the sample and the kinds it takes.
        """
        given = batch.prompt_kind or [""] * len(batch)
        kinds = [kind or self.hparams.eval_prompt for kind in given]
        for sample_id, kind in zip(batch.sample_id or given, kinds, strict=True):
            self.check_kind(kind, sample_id)
        return kinds

    def check_kind(self, kind: str, where: str = "") -> None:
        """Raise a ValueError (prefixed by ``where``) when the family does not take ``kind``."""
        if kind not in self.accepted_prompts:
            get_kind(kind)  # an unknown name: the error lists every kind
            prefix = f"{where}: " if where else ""
            raise ValueError(
                f"{prefix}{type(self).__name__} takes the prompts "
                f"{', '.join(self.accepted_prompts)}, not {kind!r}"
            )

    def prompted(self, batch: MattingBatch, stage: str) -> MattingBatch:
        """``batch`` with every sample's prompt kind set: in training a draw from
        ``prompt_kinds`` per sample, otherwise :meth:`kinds_of` (the user's kind, else
        ``eval_prompt``)."""
        if stage == "train" and len(self.accepted_prompts) > 1:
            kinds = random_kinds(len(batch), self.hparams.prompt_kinds)
        elif stage == "train":  # nothing to choose: no draw, the random stream stays as it was
            kinds = [self.accepted_prompts[0]] * len(batch)
        else:
            kinds = self.kinds_of(batch)
        return replace(batch, prompt_kind=kinds)

    def encode_image(self, batch: MattingBatch) -> object | None:
        """What depends on the batch's images only, computed once per photo by interactive use
        (``mattekit demo``) and handed to :meth:`forward_with_features` at every click; None
        (the default) where the whole network depends on the prompt."""
        return None

    def forward_with_features(self, batch: MattingBatch, features: object) -> dict[str, Tensor]:
        """:meth:`forward` given :meth:`encode_image`'s features of the same images."""
        return self(batch)

    def export_graphs(self, batch: MattingBatch) -> list[ExportGraph]:
        """The networks ``mattekit export`` writes, traced on ``batch`` (one sample at the
        network input, its ``prompt_kind`` set to the kind exported).

        Default: the whole inference forward as one graph of the batch's tensors. SAM-based
        families split it into an image encoder and a prompt decoder; a family whose forward
        reads strings (text prompts) must give its own graph of token ids.
        """
        return [batch_graph(self, batch)]

    @property
    def input_convention(self) -> InputConvention:
        """How a photo becomes this family's input (:class:`InputConvention`): every evaluation
        split, ``matte``, the demo, the benchmark and the export use it. Default: no side or
        fit of its own (the run's data settings decide)."""
        return InputConvention()

    # --- hooks for families -------------------------------------------------------------------

    def configure_models(self) -> None:
        """Build ``self.model`` (and any teacher, VAE, ...)."""
        raise NotImplementedError(f"{type(self).__name__} must implement configure_models")

    def configure_losses(self) -> dict[str, LossTerm]:
        """The loss terms by name, with their modules and default weights."""
        raise NotImplementedError(f"{type(self).__name__} must implement configure_losses")

    def configure_frozen(self) -> list[FrozenPart]:
        """Submodules that never train (beside the user's ``freeze``)."""
        return []

    def checkpointed_blocks(self) -> list[nn.Module]:
        """The blocks ``activation_checkpointing`` recomputes in backward (default: none, and
        the switch is refused): the repeated blocks of the large backbone, without BatchNorm."""
        return []

    def configure_extra_metrics(self) -> list[OutputMetrics]:
        """Metric collections on outputs other than the alpha."""
        return []

    @property
    def checkpoint_monitor(self) -> tuple[str, Literal["min", "max"]]:
        """The logged metric the best checkpoint is chosen by, and whether lower is better."""
        return "val/SAD", "min"

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def training_outputs(self, batch: MattingBatch) -> dict[str, Tensor]:
        """Outputs the training losses need (default: the inference outputs)."""
        return self(batch)

    def loss_terms(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        """Unweighted loss values by name; default: each declared module on the alpha.

        Terms whose weight is 0 are not computed (a loss ablation costs nothing). It runs in
        float32 with autocast off (:meth:`weighted_loss`): a term that needs a network's
        forward (distillation) is computed in :meth:`training_outputs`, under the run's
        precision.
        """
        trimap = batch.trimap if self.hparams.loss_regions else None
        return {
            name: loss(outputs["alpha"], batch.alpha, trimap) for name, loss in self.active_losses()
        }

    def active_losses(self) -> Iterator[tuple[str, nn.Module]]:
        """``(name, module)`` of the declared loss modules whose weight is not 0."""
        for name, loss in self.losses.items():
            if self.loss_weights[name] != 0:
                yield name, loss

    def reference_prediction(self, batch: MattingBatch) -> Tensor | None:
        """The reference row's alpha, B x 1 x H x W (None: no row): by default the evaluation
        kind's floor (:attr:`~mattekit.prompts.PromptKind.floor_field`: the box map for boxes,
        clicks and text, the mask, the trimap)."""
        return batch_floor(batch, self.hparams.eval_prompt)

    # --- steps --------------------------------------------------------------------------------

    def weighted_loss(self, outputs: dict[str, Tensor], batch: MattingBatch):
        """``(total, {name: weighted term})`` of the family's loss terms, computed in float32
        whatever the run's precision (:meth:`loss_terms` runs with autocast off, on the outputs
        cast to float32)."""
        # Under mixed precision autocast would run the losses' convolutions (gradient,
        # Laplacian), norms and sums in bf16 / fp16: terms 0.1-0.4% off float32's on the same
        # outputs (tiny models, bf16) and the gradient loss's gradient 3% off.
        with torch.autocast(self.device.type, enabled=False):
            raw = self.loss_terms(in_float32(outputs), batch)
        terms = weighted_terms(raw, self.loss_weights)
        if not terms:
            raise ValueError(f"{type(self).__name__}: every loss weight is 0; nothing to train")
        return torch.stack(list(terms.values())).sum(), terms

    def on_train_batch_start(self, batch: MattingBatch, batch_idx: int) -> None:
        if self._rng_to_restore is not None:
            rng_state.restore(self._rng_to_restore)
            self._rng_to_restore = None

    def training_step(self, batch: MattingBatch, batch_idx: int) -> Tensor:
        batch = self.prompted(batch, "train")
        outputs = self.training_outputs(batch)
        loss, terms = self.weighted_loss(outputs, batch)
        finite_here = bool(torch.isfinite(loss))
        if not self._on_every_process(finite_here):
            return self._nonfinite_step(batch, outputs, loss, terms, finite_here)
        size = len(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=size)
        return loss

    def _on_every_process(self, decision: bool) -> bool:
        """``decision`` and-ed over the processes: each must take the same branch, since a
        skip on one rank alone would leave the others waiting in the gradient all-reduce."""
        return self._each_on_every_process([decision])[0]

    def _each_on_every_process(self, decisions: list[bool]) -> list[bool]:
        """Each of ``decisions`` and-ed over the processes, in one collective."""
        if self._trainer is None or self.trainer.world_size == 1:
            return list(decisions)
        strategy = self.trainer.strategy
        votes = torch.tensor([int(d) for d in decisions], device=strategy.root_device)
        votes = strategy.reduce(votes, reduce_op="sum")
        return [bool(v == self.trainer.world_size) for v in votes.tolist()]

    def _nonfinite_step(
        self, batch: MattingBatch, outputs: dict, loss: Tensor, terms: dict, finite_here: bool
    ) -> Tensor:
        """Raise naming the samples, or train on the finite ones, or skip the step."""
        bad = [] if finite_here else nonfinite_samples(batch, outputs)
        names = [batch.sample_id[i] for i in bad]
        bad_terms = [name for name, value in terms.items() if not torch.isfinite(value)]
        culprits = f"from samples {names}" if names else f"on the batch {batch.sample_id}"
        message = (
            f"non-finite loss terms {bad_terms or '(on another process)'} at step "
            f"{self.global_step} {culprits}"
        )
        if self.hparams.nonfinite_loss == "raise":
            raise NonFiniteLossError(message)
        retry = loss if finite_here else None
        kept = [i for i in range(len(batch)) if i not in bad]
        if names and kept:
            rest = batch.select(kept)
            retry, _ = self.weighted_loss(self.training_outputs(rest), rest)
        if self._on_every_process(retry is not None and bool(torch.isfinite(retry))):
            if names:
                logger.warning("%s; trained on the batch's other samples", message)
                self.nonfinite.add(SkippedStep(self.global_step, message, names, False))
            return retry
        if not finite_here:
            logger.warning("%s; skipping this optimiser step", message)
            self.nonfinite.add(SkippedStep(self.global_step, message, batch.sample_id, True))
        self._skip_optimizer_step = True
        return self._zero_loss()

    def _zero_loss(self) -> Tensor:
        """A 0 that reaches every trainable parameter, so every process's backward (and the
        gradient all-reduce) runs as usual; the step is then dropped."""
        return zero_through([p for p in self.parameters() if p.requires_grad])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        skip = self._skip_optimizer_step
        # A mixed-precision grad scaler finds and skips non-finite gradients itself.
        scaler = getattr(getattr(self._trainer, "precision_plugin", None), "scaler", None)
        if not skip and scaler is None and not self._gradients_finite_everywhere():
            message = f"non-finite gradients at step {self.global_step}"
            logger.warning("%s; skipping this optimiser step", message)
            self.nonfinite.add(SkippedStep(self.global_step, message, [], True))
            skip = True
        if skip:
            # Parameters without gradients are left untouched by AdamW: no update, no decay,
            # no moment change: the step did not happen.
            optimizer.zero_grad(set_to_none=True)
            self._skip_optimizer_step = False
        self.nonfinite.optimiser_step(skipped=skip)

    def _gradients_finite_everywhere(self) -> bool:
        """Whether every process's gradients are finite. After DDP's all-reduce every process
        holds the same gradients, so its own answer is everyone's (no collective); a sharding
        strategy (FSDP, DeepSpeed) gives each process its shard, so the answers are and-ed."""
        finite = bool(gradients_finite(self.parameters()))
        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, DDPStrategy) and not isinstance(strategy, DeepSpeedStrategy):
            return finite
        return self._on_every_process(finite)

    def on_train_end(self) -> None:
        if self.trainer.is_global_zero:
            self.nonfinite.report(self.output_dir)

    def _evaluate(self, batch: MattingBatch, batch_idx: int, stage: str) -> dict[str, Tensor]:
        batch = self.prompted(batch, stage)
        outputs = self(batch)
        evaluation = self.evaluation[stage]
        options = {
            "at_original": self.hparams.eval_at_original_size,
            # Whole-image presets (zim, sdmatte) never look at a trimap: do not hand one over.
            "with_trimap": self.hparams.eval_with_trimap
            and resolve_preset(self.hparams.metric_preset).region == "trimap_unknown",
            "quantize": self.quantize,
        }
        reference = None
        if evaluation.needs_reference:
            reference_alpha = self.reference_prediction(batch)
            if reference_alpha is not None:
                reference = scored_pairs(reference_alpha, batch, "nearest", **options)
        logits = "alpha_logits" in outputs
        prediction = outputs["alpha_logits" if logits else "alpha"].float()
        pairs = scored_pairs(prediction, batch, "bilinear", logits=logits, **options)
        evaluation.update(pairs, reference)
        evaluation.update_extra(outputs, batch)
        if self.hparams.validation_loss:
            total, _ = self.weighted_loss(outputs, batch)
            self.log(f"{stage}/loss", total, batch_size=len(batch), sync_dist=True)
        if batch_idx == 0 and self.hparams.num_logged_images > 0:
            count = self.hparams.num_logged_images
            log_prediction_grid(
                self, batch, outputs["alpha"], stage, count, self.output_dir, batch.prompt_kind
            )
        return outputs

    def validation_step(self, batch: MattingBatch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: MattingBatch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def on_validation_epoch_end(self) -> None:
        self._finish_metrics("val")

    def on_test_epoch_end(self) -> None:
        markdown = self._finish_metrics("test")
        if markdown and self.trainer.is_global_zero:
            print(markdown)

    def predict_step(self, batch: MattingBatch | None, batch_idx: int) -> list[tuple[str, Tensor]]:
        """Alphas at each image's original size: ``[(sample_id, 1 x H x W), ...]``.

        ``batch`` is None when every image of it was unreadable (``data.skip_unreadable``).
        """
        if batch is None:
            return []
        batch = self.prompted(batch, "predict")
        alpha = alpha_at_original_size(self(batch), batch)
        return list(zip(batch.sample_id, alpha, strict=True))

    # --- evaluation ---------------------------------------------------------------------------

    def configure_metrics(self) -> None:
        """Per evaluation stage: the model's metrics, the reference row, object sizes, extras."""
        preset, sizes = self.hparams.metric_preset, self.hparams.size_breakdown
        extra = self.configure_extra_metrics()
        reference = self.reference_name
        if reference == "":
            reference = floor_name(self.hparams.eval_prompt)
        self.evaluation = nn.ModuleDict(
            {
                stage: StageMetrics(stage, preset, sizes, reference, extra)
                for stage in ("val", "test")
            }
        )

    def setup(self, stage: str) -> None:
        # ``trainer.log_dir`` broadcasts from rank 0: every rank must ask, so ask here, where
        # they all do, and never from rank-0-only code (that deadlocks under DDP).
        self.output_dir = run_dir(self.trainer)
        # Before any loader is made: evaluation feeds the network as ``matte`` does.
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "use_convention"):
            datamodule.use_convention(self.input_convention, type(self).__name__)
        self.protocol = getattr(datamodule, "protocol", None)
        self.quantize = getattr(datamodule, "quantize", "none")

    def _finish_metrics(self, stage: str) -> str | None:
        sanity = self.trainer.sanity_checking
        values, rows = self.evaluation[stage].compute(type(self).__name__, sanity)
        if sanity:
            return None
        self.log_dict(values, prog_bar=stage == "val", sync_dist=False)
        if not self.trainer.is_global_zero:
            return None
        epoch, step = self.current_epoch, self.global_step
        if self.trainer.state.fn != TrainerFn.FITTING and self.trained_until is not None:
            epoch, step = self.trained_until  # test / validate a checkpoint: its own position
        protocol = self.protocol.name if self.protocol else SAMPLED_PROTOCOL
        common = {
            "epoch": epoch,
            "step": step,
            "preset": self.hparams.metric_preset,
            "protocol": protocol,
        }
        rows = [{"model": row["model"], **common, **row} for row in rows]
        return write_metrics_table(rows, self.output_dir / f"metrics_{stage}.md")

    # --- frozen parts and checkpoints ---------------------------------------------------------

    def add_frozen_part(self, part: FrozenPart) -> None:
        """Freeze a part built after construction (a teacher read only when fitting starts)."""
        freeze_parts(self, [part])
        self.frozen_parts.append(part)

    def train(self, mode: bool = True) -> MattingModule:
        super().train(mode)
        keep_frozen_in_eval(self, getattr(self, "frozen_parts", []))
        return self

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[rng_state.KEY] = rng_state.capture()
        checkpoint["mattekit_nonfinite_steps"] = self.nonfinite.state()
        checkpoint["state_dict"] = without_unstored_parts(
            checkpoint["state_dict"], self.frozen_parts
        )

    def on_train_start(self) -> None:
        # Before the first batch is fetched: the loader must continue where the checkpoint was.
        load_skipped_loader_states(self.trainer)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Restored just before the next training step: what runs in between on resume
        # (restoring, sanity validation) must not shift the draws of the steps.
        self._rng_to_restore = checkpoint.get(rng_state.KEY)
        self.trained_until = (checkpoint.get("epoch", 0), checkpoint.get("global_step", 0))
        self.nonfinite.restore(checkpoint.get("mattekit_nonfinite_steps", []))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state = with_unstored_parts(state_dict, self, self.frozen_parts)
        return super().load_state_dict(state, strict=strict, assign=assign)

    # --- optimisation -------------------------------------------------------------------------

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters grouped by (lr multiplier, weight decay or not)."""
        hp = self.hparams
        return parameter_groups(self, hp.lr, hp.weight_decay, hp.lr_multipliers or {}, hp.no_decay)

    def configure_optimizers(self):
        groups = self.parameter_groups()
        if not groups:
            raise ValueError(f"{type(self).__name__}: every parameter is frozen; nothing to train")
        optimizer = torch.optim.AdamW(groups)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: self.schedule.factor(step, total)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def _refuse_unaccepted_kinds(module: MattingModule, args: tuple) -> None:
    if args and isinstance(args[0], MattingBatch):
        module.kinds_of(args[0])


MattingModule.run_settings = frozenset(inspect.signature(MattingModule.__init__).parameters) - {
    "self"
}
