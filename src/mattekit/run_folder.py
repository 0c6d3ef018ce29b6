"""A run's folder must not hold an earlier run's outputs (they would be replaced)."""

from __future__ import annotations

from pathlib import Path

from mattekit.errors import UsageError
from mattekit.models.nonfinite import SUMMARY_NAME

# What a run writes in its folder; a folder already holding one belongs to an earlier run.
RUN_OUTPUTS = (
    "config.yaml",
    "metrics_*.md",
    "metrics_*.csv",
    "predictions_*",
    SUMMARY_NAME,
)


def refuse_earlier_outputs(folder: Path) -> None:
    """Raise :class:`UsageError` when ``folder`` holds the outputs of an earlier run.

    A versioned run folder (the default logger's ``version_N``) is always new; a fixed one
    (``--trainer.logger false``, a fixed logger version) may not be.
    """
    found = sorted({path.name for pattern in RUN_OUTPUTS for path in folder.glob(pattern)})
    if found:
        raise UsageError(
            f"{folder} holds the outputs of an earlier run ({', '.join(found)}); pass "
            "--overwrite true to replace them, or choose another --trainer.default_root_dir"
        )
