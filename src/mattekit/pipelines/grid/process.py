"""Each ``fit`` and ``test`` of a grid in its own Python process: both ends of that call.

    python -m mattekit.pipelines.grid.process SUMMARY.json fit --config ... --seed_everything 0

The child (:func:`run_in_this_process`, this module's ``__main__``) runs the arguments through
the mattekit CLI, as ``mattekit fit ...`` would, and writes a small JSON summary: the run
folder, the checkpoint to test, the test data's name, or the error. The parent
(:func:`run_process`) starts it and reads the summary back. A fresh interpreter per process,
because state a LightningCLI leaves in a process is not safe to reuse: a DataLoader worker forked
after OpenCV has started its thread pool in the parent (validation metrics use OpenCV) deadlocks
in the worker's ``cv2.setNumThreads``; a fit followed by a test in one process with
``num_workers > 0`` hung that way. A subprocess also lets a DDP run launch its ranks exactly as
it does from the shell.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

from mattekit.cli import show_mattekit_logs
from mattekit.errors import UsageError
from mattekit.matting_cli import MattingCLI, resolve_model_aliases


class ProcessFailed(RuntimeError):
    """A fit or test process failed; ``details`` is its traceback (or what is known)."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details or message


def run_process(args: list[str], summary: Path) -> dict:
    """Run ``mattekit <args>`` in a fresh Python process; its summary.

    Raises:
        ProcessFailed with the child's error and traceback, or how it died.
    """
    summary.unlink(missing_ok=True)
    command = [sys.executable, "-m", "mattekit.pipelines.grid.process", str(summary), *args]
    code = subprocess.run(command, check=False).returncode
    result = json.loads(summary.read_text()) if summary.exists() else {}
    if "error" in result:
        raise ProcessFailed(result["error"], result.get("traceback", ""))
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise ProcessFailed(f"mattekit {args[0]} {how}")
    return result


class _GridCLI(MattingCLI):
    """MattingCLI whose argument errors raise (and so reach the summary) instead of exiting."""

    # A grid re-runs a run that failed in that run's own folder.
    replaces_outputs = True

    def init_parser(self, **kwargs):
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)


def _summary_of(cli: MattingCLI) -> dict:
    checkpointer = cli.trainer.checkpoint_callback
    checkpoint = checkpointer and (checkpointer.best_model_path or checkpointer.last_model_path)
    sources = getattr(cli.datamodule, "sources", {}).get("test", [])
    return {
        "log_dir": str(cli.trainer.log_dir),
        "checkpoint": checkpoint or "",
        "test_set": "+".join(source.name for source in sources) or "test",
    }


def run_in_this_process(summary: Path, args: list[str]) -> int:
    """Run ``mattekit <args>``; write ``summary``; 0 on success, 1 on an error (in the summary)."""
    try:
        cli = _GridCLI(args=resolve_model_aliases(args))
        result, code = _summary_of(cli), 0
        if not cli.trainer.is_global_zero:
            return code  # DDP: rank 0 reports
    except Exception as error:
        # A UsageError's message is complete (it names the error it stands for, if any).
        named = str(error) if isinstance(error, UsageError) else f"{type(error).__name__}: {error}"
        result = {"error": named, "traceback": traceback.format_exc()}
        code = 1
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(result, indent=1))
    return code


if __name__ == "__main__":
    show_mattekit_logs()
    # ``args`` carries the CLI arguments while sys.argv keeps the summary path too: a DDP launcher
    # re-runs sys.argv for every rank, so it must stay this module's command line.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    sys.exit(run_in_this_process(Path(sys.argv[1]), sys.argv[2:]))
