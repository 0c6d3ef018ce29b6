"""Loading official SAM checkpoints (``sam_vit_b_01ec64.pth``, ...) into SAM-based families."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from torch import nn

from mattekit.weights.files import load_state_dict
from mattekit.weights.report import LoadReport

logger = logging.getLogger(__name__)


def load_sam_checkpoint(
    model: nn.Module,
    path: str | Path,
    renames: Mapping[str, str] | None = None,
    new_modules: tuple[str, ...] = (),
    dropped: tuple[str, ...] = (),
) -> LoadReport:
    """Copy a SAM checkpoint into ``model`` by parameter name.

    Args:
        model: a module whose names follow SAM's (``image_encoder.``, ``prompt_encoder.``,
            ``mask_decoder.``).
        path: the official checkpoint (a state dict, possibly wrapped; weights only).
        renames: checkpoint-key prefix -> model-key prefix (e.g. SAM's ``output_upscaling``
            moving under a pixel decoder).
        new_modules: model-key prefixes the checkpoint is not expected to fill.
        dropped: checkpoint-key prefixes the model is not expected to use.

    Raises:
        ValueError naming the keys when the checkpoint and the model disagree beyond
        ``new_modules`` / ``dropped``, or when a shape differs (a different SAM size).
    """
    checkpoint = load_state_dict(path)
    for old, new in (renames or {}).items():
        checkpoint = {
            (new + k[len(old) :] if k.startswith(old) else k): v for k, v in checkpoint.items()
        }
    own = model.state_dict()
    unused = [k for k in checkpoint if k not in own]
    missing = [k for k in own if k not in checkpoint]
    unexpected = [k for k in unused if not k.startswith(dropped)]
    absent = [k for k in missing if not k.startswith(new_modules)]
    if unexpected or absent:
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: missing {absent[:5]}, "
            f"unexpected {unexpected[:5]} (is it a SAM checkpoint of the same size?)"
        )
    wrong = [k for k in checkpoint if k in own and checkpoint[k].shape != own[k].shape]
    if wrong:
        shapes = {k: (tuple(checkpoint[k].shape), tuple(own[k].shape)) for k in wrong[:3]}
        raise ValueError(f"{path}: shapes differ from the model's (checkpoint, model): {shapes}")
    model.load_state_dict({k: v for k, v in checkpoint.items() if k in own}, strict=False)
    report = LoadReport(
        loaded=[k for k in checkpoint if k in own], left_at_init=missing, unused=unused
    )
    logger.info("%s: %s", path, report.summary())
    return report
