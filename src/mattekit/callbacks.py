"""Callbacks the CLI installs: the family-monitored checkpoint, alpha PNGs of predictions."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

from mattekit.data.io import write_png_atomic
from mattekit.models.base import run_dir

logger = logging.getLogger(__name__)


class AlphaPNGWriter(BasePredictionWriter):
    """Writes each predicted alpha as an 8-bit PNG at the image's original size.

    Files are written atomically (temporary file + rename), so an interrupted run never leaves a
    truncated PNG, and a rerun with ``skip_existing`` resumes where it stopped.

    Args:
        output_dir: folder for ``<sample_id>.png`` (default: ``<log dir>/predictions``).
        skip_existing: leave PNGs that already exist untouched.
    """

    def __init__(self, output_dir: str | None = None, skip_existing: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.skip_existing = skip_existing

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Resolved on every rank: run_dir is a collective call (see MattingModule.setup).
        self.folder = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "predictions"

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        folder = self.folder
        for sample_id, alpha in prediction:
            path = folder / f"{sample_id}.png"
            if self.skip_existing and path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            write_png_atomic(path, (alpha[0].cpu().numpy() * 255 + 0.5).astype("uint8"))

    def on_predict_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            logger.info("alpha PNGs written to %s", self.folder)


class FamilyCheckpoint(ModelCheckpoint):
    """Keeps the best checkpoint by the metric the family names, and ``last.ckpt``.

    ``monitor`` and ``mode`` left at None are taken from the model's ``checkpoint_monitor``
    (``("val/SAD", "min")`` for matting families; a segmentation family may choose another),
    so one CLI default serves every family. Given explicitly, they win.
    """

    def __init__(self, monitor: str | None = None, mode: str | None = None, **kwargs) -> None:
        super().__init__(monitor=monitor, mode=mode or "min", **kwargs)
        self._mode_given = mode is not None

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
