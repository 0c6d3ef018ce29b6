"""``mattekit``: LightningCLI with registry aliases, plus commands beside fit/validate/test/predict.

    mattekit models [PATTERN]              list the registered families
    mattekit grid experiments/NAME.yaml    run an ablation grid (experiments/README.md)
    mattekit benchmark experiments/NAME.yaml   compare methods under one protocol
    mattekit clicks RUN/checkpoints/last.ckpt  metrics against the number of clicks
    mattekit matte photos/ --ckpt_path CKPT --box 10,20,200,300 --output_dir out/   cut-outs
    mattekit export --ckpt_path CKPT --output_dir exported/   ONNX, checked against PyTorch
    mattekit demo --ckpt_path CKPT         a web page: click on a photo, get the cut-out
    mattekit fit --model baseline          train (any LightningCLI flag works)
    mattekit test --model baseline --ckpt_path runs/baseline/version_0/checkpoints/last.ckpt
    mattekit predict --model baseline --ckpt_path ... --prediction_writer.output_dir out/

This module imports only what every command needs: the training commands load Lightning and
the registry (:mod:`mattekit.matting_cli`), the extra ones their own modules, on first use. It is
also the ``__main__`` that a spawned worker process (the benchmark's classical methods) imports
again, so that stays cheap.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable

from mattekit.errors import reports_usage_errors


def _handler(target: str) -> Callable[[list[str]], int | None]:
    """``"module:function"`` imported on first use (command modules import this one)."""
    module, function = target.split(":")
    return lambda argv: getattr(importlib.import_module(module), function)(argv)


# Commands beside LightningCLI's fit/validate/test/predict: name -> (help, handler(argv) -> code).
EXTRA_COMMANDS: dict[str, tuple[str, Callable[[list[str]], int | None]]] = {
    "models": ("list the registered model families", lambda argv: print_models(*argv[:1])),
    "grid": ("run an ablation grid YAML", _handler("mattekit.pipelines.grid.command:grid_main")),
    "benchmark": (
        "compare methods on datasets under one protocol (a benchmark YAML)",
        _handler("mattekit.pipelines.benchmark.command:benchmark_main"),
    ),
    "clicks": (
        "test a checkpoint with 1, 3, 5, 10 clicks and plot a metric against them",
        _handler("mattekit.pipelines.click_curve:click_curve_main"),
    ),
    "matte": (
        "alpha mattes and RGBA cut-outs of photos with a checkpoint and a prompt",
        _handler("mattekit.pipelines.matte:matte_main"),
    ),
    "export": (
        "export a checkpoint's networks to ONNX, checked against PyTorch",
        _handler("mattekit.pipelines.export:export_main"),
    ),
    "demo": (
        "a local web page: upload a photo, click, get the alpha and the cut-out",
        _handler("mattekit.demo.app:demo_main"),
    ),
    "convert-labels": (
        "convert images + segmentation masks into mattes with a trained ZIM label converter",
        _handler("mattekit.pipelines.label_conversion:convert_labels_main"),
    ),
}


def print_models(pattern: str = "*") -> None:
    """The registry as a table: alias, class, prompts, loss terms, summary."""
    from mattekit.models import MODELS, list_models

    entries = list_models(pattern)
    if not entries:
        print(f"no model matches {pattern!r}; registered: {', '.join(MODELS)}")
        return
    rows = [
        (
            entry.alias,
            entry.cls.__name__,
            "[" + ",".join(entry.prompts) + "]",
            entry.summary + (f"; stages {' -> '.join(entry.stages)}" if entry.stages else ""),
        )
        for entry in entries
    ]
    header = ("alias", "class", "prompts", "summary")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[3]
        )


def show_mattekit_logs(level: int = logging.INFO) -> None:
    """Print mattekit's log lines (file conversions, fallbacks, outputs) on stderr.

    Only the ``mattekit`` logger is configured, and only once, so a host application's logging
    setup is left alone.
    """
    package_logger = logging.getLogger("mattekit")
    if not package_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package_logger.addHandler(handler)
        package_logger.setLevel(level)


def main(argv: list[str] | None = None) -> int | None:
    """Entry point of the ``mattekit`` console script (``argv`` defaults to ``sys.argv[1:]``).

    Returns an extra command's exit code (the console script exits with it). From the command
    line, a :class:`~mattekit.errors.UsageError` (a refused checkpoint, an unknown model, ...) is
    one line on stderr and status 2, in every command (:func:`~mattekit.errors.reports_usage_errors`
    wraps each); called with ``argv``, a Lightning command raises it.
    """
    show_mattekit_logs()
    from_command_line = argv is None
    argv = list(sys.argv[1:] if from_command_line else argv)
    if argv and argv[0] in EXTRA_COMMANDS:
        return EXTRA_COMMANDS[argv[0]][1](argv[1:])
    if not argv or argv[0] in ("-h", "--help"):
        print("extra commands: " + "; ".join(f"{k}: {v[0]}" for k, v in EXTRA_COMMANDS.items()))
    from mattekit.matting_cli import MattingCLI, resolve_model_aliases

    if not from_command_line:
        MattingCLI(args=resolve_model_aliases(argv))
        return None

    @reports_usage_errors("mattekit")
    def run_lightning() -> None:
        # LightningCLI reads sys.argv itself, and warns when given both it and ``args``.
        sys.argv[1:] = resolve_model_aliases(argv)
        MattingCLI()

    return run_lightning()


if __name__ == "__main__":
    sys.exit(main())
