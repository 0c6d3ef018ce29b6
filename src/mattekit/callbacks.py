"""Callbacks the CLI installs: the family-monitored checkpoint, alpha PNGs of predictions."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from mattekit.atomic_files import write_alpha_png
from mattekit.data.datamodule import MattingDataModule
from mattekit.models.base import run_dir
from mattekit.output_records import (
    RECORD_SUFFIX,
    file_sha256,
    plan_outputs,
    record_inputs,
    start_outputs,
)

logger = logging.getLogger(__name__)


NEW_FOLDER_NOTE = (
    " (a new folder each run: --prediction_writer.output_dir chooses one, and resumes into it)"
)


def prediction_data_settings(datamodule: object) -> dict:
    """The data module's settings a prediction depends on (its sources, input size and fit,
    prompt settings and seed; not its workers or batch sizes)."""
    if not isinstance(datamodule, MattingDataModule):
        return {"datamodule": type(datamodule).__name__}
    sources = datamodule.sources["predict"]
    return {
        "sources": [f"{type(source).__name__}({source.name}, {len(source)})" for source in sources],
        "eval_image_size": datamodule.eval_image_size,
        "resize": datamodule.resize,
        "prompts": asdict(datamodule.eval_prompt_sampler.config),
        "protocol": datamodule.protocol.name if datamodule.protocol else None,
        "seed": datamodule.seed,
    }


class AlphaPNGWriter(BasePredictionWriter):
    """Writes each predicted alpha as an 8-bit PNG at the image's original size, with
    ``<sample_id>.inputs.json`` beside it: the checkpoint's SHA-256, the model's and the data's
    settings, the sample's files (an ``ImageFolder`` photo's and its prompt file's SHA-256) and
    mattekit's version (:mod:`mattekit.output_records`).

    Files are written atomically (temporary file + rename), so an interrupted run never leaves a
    truncated PNG. With ``skip_existing`` a rerun resumes where it stopped: the samples whose PNG
    was made from the same inputs are not even run (when their source knows their ids without
    loading them), else their PNG is left untouched. A PNG made from other inputs is replaced
    only with ``overwrite``; otherwise the run stops before predicting, naming it. The folder is
    checked for writing before anything runs.

    Args:
        output_dir: folder for ``<sample_id>.png``. Default: ``<log dir>/predictions``, a new
            version folder on every run (give a folder to resume into it).
        skip_existing: leave PNGs made from the same inputs untouched.
        overwrite: replace PNGs made from other inputs (a checkpoint, prompt, photo or
            setting that differs).
    """

    def __init__(
        self, output_dir: str | None = None, skip_existing: bool = False, overwrite: bool = False
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.skip_existing = skip_existing
        self.overwrite = overwrite
        self.handled = 0  # samples predicted this run (written, or kept with skip_existing)
        self._run_inputs: dict = {}
        self._inputs: dict[str, dict] | None = None  # sample id -> its record (ids known up front)
        self._done: set[str] = set()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Resolved on every rank: run_dir is a collective call (see MattingModule.setup).
        self.folder = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "predictions"
        if stage != "predict":
            return
        check_writable(self.folder)
        self._trainer, self._inputs = trainer, None
        datamodule = trainer.datamodule
        if self.skip_existing and hasattr(datamodule, "predict_exclude"):
            datamodule.predict_exclude = self.predicted

    def _plan(self) -> None:
        """Each sample's inputs, and which are done; refuses outputs of other inputs.

        Run when the predict loader is built or prediction starts, whichever is first: the
        trainer knows its checkpoint only after ``setup``.
        """
        if self._inputs is not None:
            return
        trainer, pl_module = self._trainer, self._trainer.lightning_module
        datamodule = trainer.datamodule
        checkpoint = trainer.ckpt_path
        self._run_inputs = record_inputs(
            checkpoint_sha256=file_sha256(checkpoint) if checkpoint else None,
            model=dict(pl_module.hparams),
            data=prediction_data_settings(datamodule),
        )
        self._inputs = {}
        for source in getattr(datamodule, "sources", {}).get("predict", []):
            for index in range(len(source)):
                sample_id = source.sample_id(index)
                if sample_id is not None:
                    own = source.sample_inputs(index)
                    self._inputs[sample_id] = record_inputs(**self._run_inputs, **own)
        ids = list(self._inputs)
        plan = plan_outputs(
            [[self.path_of(i)] for i in ids], [self.record_of(i) for i in ids],
            [self._inputs[i] for i in ids], self.skip_existing, self.overwrite,
            "--prediction_writer.overwrite true",
        )  # fmt: skip
        made = set(plan.make)
        self._done = {sample_id for index, sample_id in enumerate(ids) if index not in made}

    def path_of(self, sample_id: str) -> Path:
        """Where the alpha of ``sample_id`` is written."""
        return self.folder / f"{sample_id}.png"

    def record_of(self, sample_id: str) -> Path:
        """Where the record of ``sample_id``'s alpha is written."""
        return self.folder / f"{sample_id}{RECORD_SUFFIX}"

    def predicted(self, sample_id: str) -> bool:
        """Whether ``sample_id`` has its PNG already, made from the same inputs."""
        self._plan()
        return sample_id in self._done

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.handled = 0
        self._plan()
        note = "" if self.output_dir else NEW_FOLDER_NOTE
        logger.info("alpha PNGs go to %s%s", self.folder, note)

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        for sample_id, alpha in prediction:
            path, record = self.path_of(sample_id), self.record_of(sample_id)
            self.handled += 1
            inputs = self._inputs.get(sample_id)
            if inputs is None:  # an id its source could not name before loading
                inputs = self._run_inputs
                plan = plan_outputs(
                    [[path]], [record], [inputs], self.skip_existing, self.overwrite,
                    "--prediction_writer.overwrite true",
                )  # fmt: skip
                if not plan.make:
                    continue
            elif self.skip_existing and sample_id in self._done:
                continue
            start_outputs([path], record, inputs)
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
