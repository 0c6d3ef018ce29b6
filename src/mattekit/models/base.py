"""``MattingModule``: the train / val / test / predict loop every family reuses.

A family subclasses it and fills three hooks, after torchgeo's trainers:

- :meth:`configure_models` builds ``self.model`` (a pure ``nn.Module`` from ``torch_model.py``);
- :meth:`configure_losses` sets ``self.losses`` (name -> module) and ``self.loss_weights``;
- :meth:`forward` maps a :class:`MattingBatch` to a dict holding at least ``"alpha"``
  (B x 1 x H x W in [0, 1]).

Families whose loss terms need more than (pred, alpha, trimap) override :meth:`compute_loss`.
Families that start from pretrained files pass their paths through :meth:`initial_weights`, so
that restoring a trained checkpoint never needs those files.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn

from mattekit.data.sample import MattingBatch
from mattekit.metrics import resolve_preset
from mattekit.models.evaluation import StageMetrics, at_original_size, scored_pairs
from mattekit.nn.prompt_maps import box_mask
from mattekit.visualize import (
    logged_samples,
    prediction_grid,
    write_metrics_table,
    write_png_grid,
    write_samples,
)

logger = logging.getLogger(__name__)


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


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message names the terms and the samples."""


class MattingModule(L.LightningModule):
    """Shared Lightning logic for every matting family.

    Args:
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (never applied to norms and biases).
        warmup_steps: linear warm-up from 0 to ``lr``.
        lr_schedule: decay after warm-up: ``"constant"``, ``"cosine"`` (to 0 at the last step),
            ``"exponential"`` (``lr_decay ** step``) or ``"poly"``
            (``(1 - progress) ** poly_power``).
        lr_decay: per-step factor of the exponential schedule.
        poly_power: exponent of the polynomial schedule.
        freeze: parameter-name prefixes to freeze (e.g. ``["model.image_encoder"]``).
        lr_multipliers: parameter-name prefix -> factor on ``lr`` (first match wins).
        metric_preset: matting metric definitions for val / test (``dim``, ``zim``, ``sdmatte``).
        eval_with_trimap: restrict metrics to the trimap's unknown band (DIM protocol) when the
            preset allows it; False evaluates the whole image.
        eval_at_original_size: score predictions upsampled to each image's stored size against
            the stored GT (the benchmark protocol); False scores at the network input size.
        size_breakdown: also report metrics per object size (S / M / L by the fraction of GT
            above 0.3, ZIM's MicroMat-3K rule).
        loss_regions: losses weight the trimap's known and unknown regions separately (SDMatte);
            False computes them over the whole image (ZIM).
        nonfinite_loss: ``"raise"`` stops with the offending samples named; ``"skip"`` logs a
            warning naming them and skips the optimiser step.
        num_logged_images: samples in the image grid logged each validation / test epoch.
    """

    def __init__(
        self,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        lr_schedule: Literal["constant", "cosine", "exponential", "poly"] = "cosine",
        lr_decay: float = 0.999,
        poly_power: float = 0.9,
        freeze: list[str] | None = None,
        lr_multipliers: dict[str, float] | None = None,
        metric_preset: Literal["dim", "zim", "sdmatte"] = "dim",
        eval_with_trimap: bool = True,
        eval_at_original_size: bool = True,
        size_breakdown: bool = False,
        loss_regions: bool = True,
        nonfinite_loss: Literal["raise", "skip"] = "raise",
        num_logged_images: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.losses = nn.ModuleDict()
        self.loss_weights: dict[str, float] = {}
        self.output_dir: Path | None = None  # set in setup(), on every rank
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()
        self._freeze(freeze or [])
        self._check_prefixes("lr_multipliers", lr_multipliers or {})

    @classmethod
    def load_from_checkpoint(cls, *args, **kwargs):
        """Lightning's, inside :func:`restoring_from_checkpoint`."""
        with restoring_from_checkpoint():
            return super().load_from_checkpoint(*args, **kwargs)

    def initial_weights(self, path: str | None) -> str | None:
        """``path``, the file to initialise from; None when restoring from a checkpoint."""
        if path is not None and _RESTORING.get():
            logger.info(
                "%s: restoring from a checkpoint, %s is not read", type(self).__name__, path
            )
            return None
        return path

    # --- hooks for families -------------------------------------------------------------------

    def configure_models(self) -> None:
        """Build ``self.model``."""
        raise NotImplementedError(f"{type(self).__name__} must implement configure_models")

    def configure_losses(self) -> None:
        """Fill ``self.losses`` and ``self.loss_weights``."""
        raise NotImplementedError(f"{type(self).__name__} must implement configure_losses")

    def configure_metrics(self) -> None:
        """Per evaluation stage: the model's metrics, the reference row, object sizes.

        The reference row scores the filled prompt box as if it were the predicted alpha: the
        floor any interactive model must clear, printed beside the model in every table.
        """
        preset, sizes = self.hparams.metric_preset, self.hparams.size_breakdown
        self.evaluation = nn.ModuleDict(
            {stage: StageMetrics(stage, preset, sizes) for stage in ("val", "test")}
        )

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def compute_loss(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        """Weighted loss terms by name; the default feeds each loss (alpha, GT, trimap or None)."""
        trimap = batch.trimap if self.hparams.loss_regions else None
        return {
            name: self.loss_weights.get(name, 1.0) * loss(outputs["alpha"], batch.alpha, trimap)
            for name, loss in self.losses.items()
        }

    # --- steps --------------------------------------------------------------------------------

    def training_step(self, batch: MattingBatch, batch_idx: int) -> Tensor | None:
        terms = self.compute_loss(self(batch), batch)
        loss = torch.stack(list(terms.values())).sum()
        if not torch.isfinite(loss):
            bad = [name for name, value in terms.items() if not torch.isfinite(value)]
            message = (
                f"non-finite loss terms {bad} at step {self.global_step} "
                f"on samples {batch.sample_id}"
            )
            if self.hparams.nonfinite_loss == "raise":
                raise NonFiniteLossError(message)
            logger.warning("%s; skipping this optimiser step", message)
            return None
        size = len(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=size)
        return loss

    def _evaluate(self, batch: MattingBatch, batch_idx: int, stage: str) -> dict[str, Tensor]:
        outputs = self(batch)
        evaluation = self.evaluation[stage]
        options = {
            "at_original": self.hparams.eval_at_original_size,
            # Whole-image presets (zim, sdmatte) never look at a trimap: do not hand one over.
            "with_trimap": self.hparams.eval_with_trimap
            and resolve_preset(self.hparams.metric_preset).region == "trimap_unknown",
        }
        reference = None
        if evaluation.needs_reference:
            box = box_mask(batch.box, tuple(batch.image.shape[-2:]))
            reference = scored_pairs(box, batch, "nearest", **options)
        prediction = outputs["alpha"].float()
        evaluation.update(scored_pairs(prediction, batch, "bilinear", **options), reference)
        terms = self.compute_loss(outputs, batch)
        total = torch.stack(list(terms.values())).sum()
        self.log(f"{stage}/loss", total, batch_size=len(batch), sync_dist=True)
        if batch_idx == 0 and self.hparams.num_logged_images > 0:
            self._log_grid(batch, outputs["alpha"], stage)
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

    def predict_step(self, batch: MattingBatch, batch_idx: int) -> list[tuple[str, Tensor]]:
        """Alphas at each image's original size: ``[(sample_id, 1 x H x W), ...]``."""
        alpha = self(batch)["alpha"].float()
        alpha = at_original_size(alpha, batch.original_size, batch.content_size)
        return list(zip(batch.sample_id, alpha, strict=True))

    # --- logging ------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        # ``trainer.log_dir`` broadcasts from rank 0: every rank must ask, so ask here, where
        # they all do, and never from rank-0-only code (that deadlocks under DDP).
        self.output_dir = run_dir(self.trainer)

    def _finish_metrics(self, stage: str) -> str | None:
        sanity = self.trainer.sanity_checking
        values, rows = self.evaluation[stage].compute(type(self).__name__, sanity)
        if sanity:
            return None
        self.log_dict(values, prog_bar=stage == "val", sync_dist=False)
        if not self.trainer.is_global_zero:
            return None
        common = {
            "epoch": self.current_epoch,
            "step": self.global_step,
            "preset": self.hparams.metric_preset,
        }
        rows = [{"model": row["model"], **common, **row} for row in rows]
        return write_metrics_table(rows, self.output_dir / f"metrics_{stage}.md")

    def _log_grid(self, batch: MattingBatch, alpha: Tensor, stage: str) -> None:
        if self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        samples = logged_samples(batch, alpha, self.hparams.num_logged_images)
        grid = prediction_grid(samples, {"": samples["prediction"]})
        if isinstance(self.logger, TensorBoardLogger):
            self.logger.experiment.add_image(f"{stage}/predictions", grid, self.global_step)
        write_png_grid(grid, self.output_dir / f"predictions_{stage}.png")
        # The same samples as data, so that runs can later be compared side by side.
        write_samples(samples, self.output_dir / f"predictions_{stage}.pt")

    # --- optimisation -------------------------------------------------------------------------

    def _check_prefixes(self, argument: str, prefixes) -> None:
        """Every prefix names some parameter: a typo must not silently change nothing."""
        names = [name for name, _ in self.named_parameters()]
        for prefix in prefixes:
            if not any(name.startswith(prefix) for name in names):
                raise ValueError(
                    f"{argument}: no parameter name starts with '{prefix}' "
                    f"(names look like '{names[0]}')"
                )

    def _freeze(self, prefixes: list[str]) -> None:
        self._check_prefixes("freeze", prefixes)
        for name, parameter in self.named_parameters():
            if any(name.startswith(prefix) for prefix in prefixes):
                parameter.requires_grad_(False)

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters grouped by (lr multiplier, weight decay or not)."""
        multipliers = self.hparams.lr_multipliers or {}
        groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            factor = next((f for p, f in multipliers.items() if name.startswith(p)), 1.0)
            # Norm scales and biases are 1-D; decaying them towards 0 only hurts.
            groups.setdefault((factor, parameter.ndim > 1), []).append(parameter)
        return [
            {
                "params": params,
                "lr": self.hparams.lr * factor,
                "weight_decay": self.hparams.weight_decay if decay else 0.0,
            }
            for (factor, decay), params in groups.items()
        ]

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Multiplier on the peak learning rate at optimiser step ``step``."""
        warmup = self.hparams.warmup_steps
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        schedule = self.hparams.lr_schedule
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if schedule == "exponential":
            return self.hparams.lr_decay ** (step - warmup)
        if schedule == "poly":
            return (1 - progress) ** self.hparams.poly_power
        return 1.0

    def configure_optimizers(self):
        groups = self.parameter_groups()
        if not groups:
            raise ValueError(f"{type(self).__name__}: every parameter is frozen; nothing to train")
        optimizer = torch.optim.AdamW(groups)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: self.lr_factor(step, total)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
