"""The LightningCLI behind ``mattekit fit / validate / test / predict``: every registered family
over the shared DataModule, with registry aliases for ``--model``.

LightningCLI resolves ``--model`` only by class name or import path; the registry's lower-case
aliases are rewritten to import paths before parsing, so both spellings work.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import ClassVar

from lightning.pytorch.cli import LightningCLI

from mattekit.callbacks import AlphaPNGWriter, FamilyCheckpoint
from mattekit.checkpoint_config import CheckpointConfigError, plain, resolve_checkpoint_model
from mattekit.data.datamodule import MattingDataModule
from mattekit.errors import UsageError, named_error
from mattekit.models import MattingModule, get_model_entry
from mattekit.models.base import restoring_from_checkpoint
from mattekit.run_folder import refuse_earlier_outputs


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
