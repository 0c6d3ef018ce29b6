"""Initialising a submodule from a Lightning checkpoint: how a stage starts from the last.

TeachDiffusionMatting's student starts from its teacher's checkpoint, its decoder stage from the
student's; a grid's runs start from a pretrained model. Each reads some prefix of another run's
``state_dict`` into some submodule of a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from mattekit.weights.files import map_prefixes, read_weights_only
from mattekit.weights.report import LoadReport

logger = logging.getLogger(__name__)


def read_lightning_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The whole ``state_dict`` of a Lightning checkpoint, read weights-only.

    Raises:
        FileNotFoundError / ValueError naming the file (missing, not weights-only, not Lightning).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = read_weights_only(path)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    return state


def load_submodule(
    module: nn.Module,
    path: str | Path,
    prefixes: Mapping[str, str],
    allow_missing: tuple[str, ...] = (),
) -> LoadReport:
    """Copy the checkpoint's weights under each source prefix into ``module`` under the target.

    Args:
        module: the submodule to fill (a student UNet, a whole network).
        path: a Lightning ``.ckpt``.
        prefixes: checkpoint-key prefix -> module-key prefix, e.g. ``{"model.unet.": ""}``;
            checkpoint keys under no source prefix are ignored.
        allow_missing: module-key prefixes the checkpoint is not expected to fill (new layers).

    Returns:
        What was loaded, left at initialisation and not used (logged in one line).

    Raises:
        ValueError naming the file and the keys when a module key outside ``allow_missing`` is
        not filled, or when a shape differs.
    """
    state = read_lightning_state_dict(path)
    mapped = map_prefixes(state, prefixes)
    own = module.state_dict()
    missing = [k for k in own if k not in mapped]
    unexpected = [k for k in mapped if k not in own]
    absent = [k for k in missing if not k.startswith(allow_missing)] if allow_missing else missing
    if absent or not mapped:
        raise ValueError(
            f"{path}: does not fill {type(module).__name__} through {dict(prefixes)}: "
            f"missing {absent[:5]} ({len(absent)} in all); checkpoint keys look like "
            f"{list(state)[:3]}"
        )
    wrong = {k: (tuple(mapped[k].shape), tuple(own[k].shape)) for k in own if k in mapped}
    wrong = {k: shapes for k, shapes in wrong.items() if shapes[0] != shapes[1]}
    if wrong:
        raise ValueError(
            f"{path}: shapes differ (checkpoint, model): {dict(list(wrong.items())[:3])}"
        )
    module.load_state_dict({k: v for k, v in mapped.items() if k in own}, strict=False)
    report = LoadReport(
        loaded=[k for k in mapped if k in own],
        left_at_init=missing,
        unused=unexpected + [k for k in state if not k.startswith(tuple(prefixes))],
    )
    logger.info("%s: %s", path, report.summary())
    return report
