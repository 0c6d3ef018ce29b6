"""Callbacks the CLI installs: the family-monitored checkpoint, alpha PNGs of predictions."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from mattekit.data.io import write_alpha_png
from mattekit.models.base import run_dir

logger = logging.getLogger(__name__)


NEW_FOLDER_NOTE = (
    " (a new folder each run: --prediction_writer.output_dir chooses one, and resumes into it)"
)


class AlphaPNGWriter(BasePredictionWriter):
    """Writes each predicted alpha as an 8-bit PNG at the image's original size.

    Files are written atomically (temporary file + rename), so an interrupted run never leaves a
    truncated PNG. With ``skip_existing`` a rerun resumes where it stopped: the samples whose PNG
    exists are not even run (when their source knows their ids without loading them), else
    their PNG is left untouched. The folder is checked for writing before anything runs.

    Args:
        output_dir: folder for ``<sample_id>.png``. Default: ``<log dir>/predictions``, a new
            version folder on every run (give a folder to resume into it).
        skip_existing: leave PNGs that already exist untouched.
    """

    def __init__(self, output_dir: str | None = None, skip_existing: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.skip_existing = skip_existing
        self.handled = 0  # samples predicted this run (written, or kept with skip_existing)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Resolved on every rank: run_dir is a collective call (see MattingModule.setup).
        self.folder = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "predictions"
        if stage != "predict":
            return
        check_writable(self.folder)
        datamodule = trainer.datamodule
        if self.skip_existing and hasattr(datamodule, "predict_exclude"):
            datamodule.predict_exclude = self.predicted

    def path_of(self, sample_id: str) -> Path:
        """Where the alpha of ``sample_id`` is written."""
        return self.folder / f"{sample_id}.png"

    def predicted(self, sample_id: str) -> bool:
        """Whether ``sample_id`` has its PNG already."""
        return self.path_of(sample_id).exists()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.handled = 0
        note = "" if self.output_dir else NEW_FOLDER_NOTE
        logger.info("alpha PNGs go to %s%s", self.folder, note)

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        for sample_id, alpha in prediction:
            path = self.path_of(sample_id)
            self.handled += 1
            if self.skip_existing and path.exists():
                continue
            write_alpha_png(path, alpha[0].cpu().numpy())

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loaders = trainer.predict_dataloaders
        loaders = [loaders] if isinstance(loaders, DataLoader) else list(loaders or [])
        expected = sum(len(loader.sampler) for loader in loaders)
        if expected > self.handled:
            logger.warning(
                "%d of %d images could not be read and were skipped (see the warnings above)",
                expected - self.handled, expected,
            )  # fmt: skip
        if trainer.is_global_zero:
            logger.info("alpha PNGs written to %s", self.folder)


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a file in it, or raise ``OSError`` naming it (before a run)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".mattekit-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OSError(f"cannot write predictions to {folder}: {error.strerror or error}") from None


class FamilyCheckpoint(ModelCheckpoint):
    """Keeps the best checkpoint by the metric the family names, and ``last.ckpt``: the latest
    state, always.

    ``monitor`` and ``mode`` left at None are taken from the model's ``checkpoint_monitor``
    (``("val/SAD", "min")`` for matting families; a segmentation family may choose another),
    so one CLI default serves every family. Given explicitly, they win.

    Lightning's ``ModelCheckpoint`` writes ``last.ckpt`` only at a step where it also wrote a best
    checkpoint, so resuming from it lost the steps since the best one. Here ``last.ckpt`` is
    written at every validation and epoch end, at the end of training and whenever another
    checkpoint callback saves; other checkpoint callbacks writing to the same folder leave
    ``last.ckpt`` to this one (instead of a second, stale ``last-v1.ckpt``).
    """

    def __init__(self, monitor: str | None = None, mode: str | None = None, **kwargs) -> None:
        super().__init__(monitor=monitor, mode=mode or "min", **kwargs)
        self._mode_given = mode is not None
        self._last_written_step: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        family_monitor = getattr(pl_module, "checkpoint_monitor", None)
        if self.monitor is None and family_monitor is not None:
            monitor, mode = family_monitor
            self.monitor = monitor
            if not self._mode_given:
                self.mode = mode
                # What ModelCheckpoint's constructor derives from the mode.
                self.kth_value = torch.tensor(torch.inf if mode == "min" else -torch.inf)
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        for other in self._other_checkpoints(trainer):
            if other.save_last and other.dirpath == self.dirpath and self.save_last:
                other.save_last = False
                logger.info(
                    "%s: last.ckpt in %s is written by FamilyCheckpoint (the latest state)",
                    type(other).__name__, self.dirpath,
                )  # fmt: skip

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # Callbacks run in order: one after this saved at the previous step at the latest.
        written = -1 if self._last_written_step is None else self._last_written_step
        others = self._other_checkpoints(trainer)
        if any(other._last_global_step_saved > written for other in others):
            self._write_last(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._write_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._write_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._write_last(trainer)

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_written_step = trainer.global_step

    def _write_last(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` unless it already holds this step (or nothing is to be saved)."""
        if (
            not self.save_last
            or self._last_written_step == trainer.global_step
            or trainer.fast_dev_run
            or trainer.sanity_checking
            or trainer.state.fn != TrainerFn.FITTING
        ):
            return
        # Not a save in Lightning's sense: a best checkpoint may still be due at this step (at
        # the validation that follows the end of a training epoch), and would be skipped.
        saved_step = self._last_global_step_saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = saved_step

    def _other_checkpoints(self, trainer: L.Trainer) -> list[ModelCheckpoint]:
        return [cb for cb in trainer.checkpoint_callbacks if cb is not self]
