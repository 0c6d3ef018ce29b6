"""``mattekit``: LightningCLI with registry aliases, plus commands beside fit/validate/test/predict.

    mattekit models [PATTERN]              list the registered families
    mattekit grid experiments/NAME.yaml    run an ablation grid (experiments/README.md)
    mattekit benchmark experiments/NAME.yaml   compare methods under one protocol
    mattekit fit --model baseline          train (any LightningCLI flag works)
    mattekit test --model baseline --ckpt_path runs/baseline/version_0/checkpoints/last.ckpt
    mattekit predict --model baseline --ckpt_path ... --prediction_writer.output_dir out/

LightningCLI resolves ``--model`` only by class name or import path; the registry's lower-case
aliases are rewritten to import paths before parsing, so both spellings work.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import ClassVar

from lightning.pytorch.cli import LightningCLI

from mattekit.callbacks import AlphaPNGWriter, FamilyCheckpoint
from mattekit.checkpoint_config import CheckpointConfigError, plain, resolve_checkpoint_model
from mattekit.data.datamodule import MattingDataModule
from mattekit.errors import UsageError, named_error
from mattekit.models import MODELS, MattingModule, get_model_entry, list_models
from mattekit.models.base import restoring_from_checkpoint
from mattekit.run_folder import refuse_earlier_outputs


def _handler(target: str) -> Callable[[list[str]], int | None]:
    """``"module:function"`` imported on first use (command modules import this one)."""
    module, function = target.split(":")
    return lambda argv: getattr(importlib.import_module(module), function)(argv)


# Commands beside LightningCLI's fit/validate/test/predict: name -> (help, handler(argv) -> code).
EXTRA_COMMANDS: dict[str, tuple[str, Callable[[list[str]], int | None]]] = {
    "models": ("list the registered model families", lambda argv: print_models(*argv[:1])),
    "grid": ("run an ablation grid YAML", _handler("mattekit.pipelines.grid:grid_main")),
    "benchmark": (
        "compare methods on datasets under one protocol (a benchmark YAML)",
        _handler("mattekit.pipelines.benchmark:benchmark_main"),
    ),
    "convert-labels": (
        "convert images + segmentation masks into mattes with a trained ZIM label converter",
        _handler("mattekit.pipelines.label_conversion:convert_labels_main"),
    ),
}


def resolve_model_aliases(argv: list[str]) -> list[str]:
    """Rewrite ``--model <alias>`` / ``--model=<alias>`` to the registered class path.

    Anything that is not a registered alias or class name (a config file, an import path, a
    ``class_path`` dict) is passed through untouched; an unknown bare name is a
    :class:`~mattekit.errors.UsageError` listing the registered models.
    """

    def resolve(value: str) -> str:
        try:
            return get_model_entry(value).class_path
        except KeyError as error:
            # A bare name (no module path, no config file, no dict) can only mean an alias.
            if value.isidentifier():
                raise UsageError(f"--model {error.args[0]}") from None
            return value

    rewritten = list(argv)
    for i, arg in enumerate(rewritten):
        if arg == "--model" and i + 1 < len(rewritten):
            rewritten[i + 1] = resolve(rewritten[i + 1])
        elif arg.startswith("--model="):
            rewritten[i] = "--model=" + resolve(arg.split("=", 1)[1])
    return rewritten


class MattingCLI(LightningCLI):
    """LightningCLI over every :class:`MattingModule` and the shared :class:`MattingDataModule`."""

    #: Whether a run may write into a folder holding an earlier run's outputs without
    #: ``--overwrite`` (the grid, which re-runs a failed run in that run's own folder).
    replaces_outputs: ClassVar[bool] = False

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        self._argv = list(sys.argv[1:] if args is None else args)
        super().__init__(
            MattingModule,
            MattingDataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            auto_configure_optimizers=False,
            trainer_defaults={
                "default_root_dir": "runs",
                "callbacks": [
                    FamilyCheckpoint(save_last=True, filename="best-{epoch}-{step}"),
                ],
            },
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(AlphaPNGWriter, "prediction_writer")
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="replace the outputs of an earlier run in the run folder (config.yaml, metric "
            "tables, prediction pictures); without it, such a folder is an error",
        )

    def _parse_ckpt_path(self) -> None:
        """The checkpoint's model with the command line's settings (:mod:`.checkpoint_config`).

        Replaces Lightning's, which lets the checkpoint override the command line and imports
        any class path the file names. Every checkpoint is loaded weights-only.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        if "weights_only" in config:
            if config["weights_only"] is False:
                raise CheckpointConfigError(
                    "--weights_only false: mattekit loads checkpoints weights-only, always"
                )
            config["weights_only"] = True
        path = config.get("ckpt_path")
        if path is None:
            return
        model = config["model"]
        class_path, init_args = resolve_checkpoint_model(
            path, model.get("class_path"), plain(model.get("init_args") or {}), self._argv
        )
        update = {subcommand: {"model": {"class_path": class_path, "init_args": init_args}}}
        self.config = self.parser.parse_object(update, self.config)

    def instantiate_classes(self) -> None:
        # With --ckpt_path every weight comes from that checkpoint: the files training started
        # from (a SAM checkpoint, ...) are not read, and need not exist on this machine.
        config = self.config.get(self.subcommand) if self.subcommand else None
        restoring = config is not None and config.get("ckpt_path") is not None
        with restoring_from_checkpoint() if restoring else nullcontext():
            try:
                super().instantiate_classes()
            except Exception as error:
                named = named_error(error)
                if named is None:
                    raise
                raise UsageError(f"{type(named).__name__}: {named}") from named
        if config is not None and not (config.get("overwrite") or self.replaces_outputs):
            refuse_earlier_outputs(Path(self.trainer.log_dir or self.trainer.default_root_dir))


def print_models(pattern: str = "*") -> None:
    """The registry as a table: alias, class, prompts, loss terms, summary."""
    entries = list_models(pattern)
    if not entries:
        print(f"no model matches {pattern!r}; registered: {', '.join(MODELS)}")
        return
    rows = [
        (entry.alias, entry.cls.__name__, "[" + ",".join(entry.prompts) + "]", entry.summary)
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

    Returns an extra command's exit code (the console script exits with it).
    """
    show_mattekit_logs()
    from_command_line = argv is None
    argv = list(sys.argv[1:] if from_command_line else argv)
    if argv and argv[0] in EXTRA_COMMANDS:
        return EXTRA_COMMANDS[argv[0]][1](argv[1:])
    if not argv or argv[0] in ("-h", "--help"):
        print("extra commands: " + "; ".join(f"{k}: {v[0]}" for k, v in EXTRA_COMMANDS.items()))
    if not from_command_line:
        MattingCLI(args=resolve_model_aliases(argv))
        return None
    try:
        # LightningCLI reads sys.argv itself, and warns when given both it and ``args``.
        sys.argv[1:] = resolve_model_aliases(argv)
        MattingCLI()
    except UsageError as error:
        print(f"mattekit: error: {error}", file=sys.stderr)
        return 2
    return None


if __name__ == "__main__":
    sys.exit(main())
