"""The prediction picture of each evaluation epoch: a PNG, a TensorBoard image, the samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.visualize import logged_samples, prediction_grid, write_png_grid, write_samples


def log_prediction_grid(
    module: L.LightningModule,
    batch: MattingBatch,
    alpha: Tensor,
    stage: str,
    count: int,
    output_dir: Path,
    kinds: Sequence[str] | str = "box",
) -> None:
    """Draw the first ``count`` samples of ``batch`` with their predicted ``alpha`` and the
    prompt ``kinds`` they were given (one per sample, or one for all).

    Writes ``predictions_<stage>.png`` and ``predictions_<stage>.pt`` (the same samples as
    tensors, so that runs can later be compared side by side) in ``output_dir``, and adds the
    picture to TensorBoard. Rank 0 only; nothing during the sanity check.
    """
    trainer = module.trainer
    if trainer.sanity_checking or not trainer.is_global_zero:
        return
    samples = logged_samples(batch, alpha, count, kinds)
    grid = prediction_grid(samples, {"": samples["prediction"]})
    if isinstance(module.logger, TensorBoardLogger):
        module.logger.experiment.add_image(f"{stage}/predictions", grid, module.global_step)
    write_png_grid(grid, output_dir / f"predictions_{stage}.png")
    write_samples(samples, output_dir / f"predictions_{stage}.pt")
