"""The LightningCLI behind ``mattekit fit / validate / test / predict``: every registered family
over the shared DataModule, with registry aliases for ``--model``.

LightningCLI resolves ``--model`` only by class name or import path; the registry's lower-case
aliases are rewritten to import paths before parsing, so both spellings work.

A run that sets no bound of its own trains :data:`DEFAULT_MAX_EPOCHS` epochs, not Lightning's
1000 (:meth:`MattingCLI.before_instantiate_classes`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
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

logger = logging.getLogger(__name__)

#: ``--trainer.max_epochs`` when a run sets none of max_epochs, max_steps and max_time.
#: Lightning's own default is 1000 epochs; with the data defaults (1000 synthetic scenes at
#: 512 px, batch 8) one epoch is 125 steps and a validation: the smallest run that writes a
#: checkpoint and a metric table (on a CPU the quickstart's 96 px run is the faster start).
DEFAULT_MAX_EPOCHS = 1
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def mentions(argv: Sequence[str], name: str) -> bool:
    """Whether the command line sets ``name``: in an argument, or in a config file it names
    (``--config run.yaml``, ``--trainer trainer.yaml``)."""
    for arg in argv:
        value = Path(arg.split("=", 1)[-1])
        if name in arg or (
            value.suffix in _CONFIG_SUFFIXES
            and value.is_file()
            and name in value.read_text(encoding="utf-8")
        ):
            return True
    return False


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
                "max_epochs": DEFAULT_MAX_EPOCHS,
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

    def before_instantiate_classes(self) -> None:
        """Drop the default epoch bound of a run bounded by steps or time: its own bound wins.

        ``max_epochs`` defaults to :data:`DEFAULT_MAX_EPOCHS` so that ``--print_config`` shows
        it; a run that sets ``max_steps`` or ``max_time`` (and no ``max_epochs``) is bounded by
        that alone, as in Lightning.
        """
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        trainer = config.get("trainer") if config is not None else None
        if trainer is None or trainer.get("max_epochs") != DEFAULT_MAX_EPOCHS:
            return
        if mentions(self._argv, "max_epochs"):
            return  # given explicitly, equal to the default
        if trainer.get("max_steps", -1) != -1 or trainer.get("max_time") is not None:
            trainer["max_epochs"] = None
        elif self.subcommand == "fit":
            logger.info(
                "no max_epochs, max_steps or max_time given: training %d epoch(s) "
                "(--trainer.max_epochs N for more)",
                DEFAULT_MAX_EPOCHS,
            )

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
                if isinstance(named, UsageError):
                    raise named from None  # its message is complete (a refused file, ...)
                raise UsageError(f"{type(named).__name__}: {named}") from named
        if hasattr(self.datamodule, "use_convention"):
            # Checked here, before any work, as well as when the model is set up (a Trainer
            # used from Python).
            try:
                self.datamodule.use_convention(
                    self.model.input_convention, type(self.model).__name__
                )
            except ValueError as error:
                raise UsageError(str(error)) from None
        if config is not None and not (config.get("overwrite") or self.replaces_outputs):
            refuse_earlier_outputs(Path(self.trainer.log_dir or self.trainer.default_root_dir))
