"""A family's module saved as Lightning's Trainer saves it, without a Trainer: a checkpoint that
``--model.previous_stage``, ``teacher_checkpoint``, ``load_from_checkpoint`` and ``mattekit test``
read like a run's (tests and benchmarks chain stages with it)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning
import torch


def save_module_checkpoint(module, path: str | Path, drop: tuple[str, ...] = ()) -> Path:
    """``module`` (a :class:`~mattekit.models.base.MattingModule`) saved to ``path``, atomically.

    Args:
        drop: hyperparameters left out, as a checkpoint written by an older mattekit lacks them.
    """
    hparams = {k: v for k, v in dict(module.hparams).items() if k not in drop}
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": hparams,
        "pytorch-lightning_version": lightning.__version__,
    }
    module.on_save_checkpoint(checkpoint)
    path = Path(path)
    # Saved beside, then renamed: a multi-GB file is streamed to disk, never held as bytes.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        torch.save(checkpoint, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def save_fit_checkpoint(module, path: str | Path) -> Path:
    """``module`` saved as ``mattekit fit`` saves it: its hyperparameters also name its class and
    instantiator, which ``mattekit export`` / ``test`` / ``predict`` read to rebuild it."""
    from mattekit.models.registry import MODELS

    entry = next((e for e in MODELS.values() if e.cls is type(module)), None)
    if entry is None:
        raise ValueError(f"{type(module).__name__} is not a registered mattekit model")
    module.hparams["_class_path"] = entry.class_path
    module.hparams["_instantiator"] = "lightning.pytorch.cli.instantiate_module"
    return save_module_checkpoint(module, path)
