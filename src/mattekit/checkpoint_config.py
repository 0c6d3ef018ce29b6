"""What ``mattekit <command> --ckpt_path CKPT`` builds: the checkpoint's model, with the command
line's settings.

Lightning's CLI reads a checkpoint's hyperparameters *over* the command line (a
``--model.metric_preset`` given with ``--ckpt_path`` was silently replaced) and imports whatever
class path the file names. Here instead:

- The file is read weights-only, from a local path (a URL is refused: download it first).
- Its class path must be a registered family's; nothing else is imported.
- A hyperparameter the command line sets explicitly wins when it is a *run setting* of the family
  (``MattingModule.run_settings``: evaluation, prompts, optimisation, ...), with a log line. When
  it shapes the network and differs from the checkpoint, that is an error naming both values.
- Every other hyperparameter comes from the checkpoint.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from jsonargparse import Namespace

from mattekit.errors import UsageError
from mattekit.models import MODELS, MattingModule, ModelEntry
from mattekit.weights.files import read_weights_only

logger = logging.getLogger(__name__)

# Lightning's bookkeeping entries in ``hyper_parameters``, not init arguments.
_BOOKKEEPING = ("_class_path", "_instantiator")


class CheckpointConfigError(UsageError):
    """A checkpoint that cannot be used as the command line asks (the message says why)."""


def is_remote(path: str | Path) -> bool:
    """Whether ``path`` is a URL (``http://``, ``s3://``, ...) rather than a local file."""
    return "://" in str(path)


def refuse_remote(path: str | Path) -> None:
    """Raise :class:`CheckpointConfigError` for a URL: checkpoints are read from local files.

    Lightning would fetch a URL with ``weights_only=False``, letting the file run code.
    """
    if is_remote(path):
        raise CheckpointConfigError(
            f"--ckpt_path {path}: mattekit reads checkpoints from local files only (weights-only); "
            "download the file first and pass its path"
        )


def run_folder_of(checkpoint: str | Path) -> Path:
    """The run folder of a checkpoint written by ``mattekit fit`` (``<run>/checkpoints/x.ckpt``),
    which holds the run's ``config.yaml``."""
    return Path(checkpoint).parent.parent


def checkpoint_hparams(path: str | Path) -> dict:
    """The ``hyper_parameters`` of a local Lightning checkpoint, read weights-only.

    Raises:
        CheckpointConfigError / RefusedFileError naming the file: a URL, no such file, not a
        weights-only PyTorch file, or no mapping inside.
    """
    refuse_remote(path)
    if not Path(path).is_file():
        raise CheckpointConfigError(f"checkpoint not found: {path}")
    checkpoint = read_weights_only(Path(path))
    if not isinstance(checkpoint, Mapping):
        raise CheckpointConfigError(f"{path}: not a Lightning checkpoint (no mapping inside)")
    return dict(checkpoint.get("hyper_parameters") or {})


def checkpoint_entry(path: str | Path) -> ModelEntry:
    """The registered family a local checkpoint holds (read weights-only; nothing imported).

    Raises:
        CheckpointConfigError: the file names no model class, or one that is not registered.
    """
    class_path = checkpoint_hparams(path).get("_class_path")
    if class_path is None:
        raise CheckpointConfigError(f"{path} does not name its model class")
    return registered_entry(str(class_path), path)


def registered_entry(class_path: str, path: str | Path) -> ModelEntry:
    """The registered family whose class is ``class_path``; nothing is imported to find it."""
    for entry in MODELS.values():
        if class_path == entry.class_path:
            return entry
    known = ", ".join(f"{e.alias} ({e.class_path})" for e in MODELS.values())
    raise CheckpointConfigError(
        f"{path} names model class {class_path!r}, which is not a registered mattekit model; "
        f"registered: {known}"
    )


def init_defaults(cls: type[MattingModule]) -> dict:
    """Default value of every init argument of ``cls`` (its own, then the base's via kwargs)."""
    defaults: dict = {}
    for klass in reversed(cls.__mro__):
        if klass is MattingModule or (isinstance(klass, type) and issubclass(klass, MattingModule)):
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if parameter.default is not inspect.Parameter.empty:
                    defaults[name] = parameter.default
    return defaults


def plain(value: object) -> object:
    """``value`` with tuples as lists and mappings as dicts: equal settings compare equal."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def explicit_names(argv: Sequence[str]) -> set[str]:
    """Init arguments named on the command line (``--model.NAME`` or ``--model.init_args.NAME``)."""
    names = set()
    for arg in argv:
        for prefix in ("--model.init_args.", "--model."):
            if arg.startswith(prefix):
                names.add(arg[len(prefix) :].split("=", 1)[0].split(".", 1)[0])
                break
    return names


def merge_with_command_line(
    entry: ModelEntry,
    from_checkpoint: Mapping[str, object],
    given: Mapping[str, object],
    named: set[str],
    path: str | Path,
) -> dict:
    """The init arguments to build: the checkpoint's, with the command line's run settings.

    Args:
        entry: the checkpoint's family.
        from_checkpoint: the checkpoint's hyperparameters (bookkeeping entries removed).
        given: the init arguments the command line resolved (defaults included).
        named: arguments named on the command line; an argument that differs from its default
            counts as set too (a config file may have set it).
        path: the checkpoint, for messages.

    Raises:
        CheckpointConfigError naming every argument that shapes the network and that the
        command line sets to another value than the checkpoint's.
    """
    defaults = init_defaults(entry.cls)
    merged = dict(given)
    conflicts = []
    for name, stored in from_checkpoint.items():
        if name not in given:
            logger.warning(
                "%s: %s=%r is not an argument of %s (any more); ignored",
                path, name, stored, entry.cls.__name__,
            )  # fmt: skip
            continue
        wanted = given[name]
        is_set = name in named or (name in defaults and plain(wanted) != plain(defaults[name]))
        if not is_set or plain(wanted) == plain(stored):
            merged[name] = stored
        elif name in entry.cls.run_settings:
            logger.info(
                "%s: --model.%s=%r from the command line replaces the checkpoint's %r",
                path, name, wanted, stored,
            )  # fmt: skip
        else:
            conflicts.append(f"--model.{name}={wanted!r} (the checkpoint has {stored!r})")
    if conflicts:
        raise CheckpointConfigError(
            f"{path} was trained with other network settings than the command line asks: "
            + "; ".join(conflicts)
            + ". Drop these flags, or train a new model with them"
        )
    return merged


def resolve_checkpoint_model(
    path: str | Path, class_path: str | None, given: Mapping[str, object], argv: Sequence[str]
) -> tuple[str, dict]:
    """The class path and init arguments ``mattekit <command> --ckpt_path path`` builds.

    Args:
        path: the local checkpoint.
        class_path: the ``--model`` class the command line names (None: the checkpoint's).
        given: the init arguments the command line resolved.
        argv: the command line, to tell the arguments it names.
    """
    hparams = checkpoint_hparams(path)
    stored_class = hparams.get("_class_path")
    if stored_class is None:
        if class_path is None:
            raise CheckpointConfigError(f"{path} does not name its model class; pass --model")
        stored_class = class_path
    entry = registered_entry(str(stored_class), path)
    if class_path is not None and class_path != entry.class_path:
        raise CheckpointConfigError(
            f"{path} holds a {entry.alias} model ({entry.class_path}) but the command line asks "
            f"for {class_path}; pass --model {entry.alias} or another checkpoint"
        )
    stored = {k: v for k, v in hparams.items() if k not in _BOOKKEEPING}
    # An old name must not override the command line's run setting of its new one.
    stored = entry.cls.current_names(stored, path)
    stored |= entry.cls.missing_earlier_defaults(stored, path)
    return entry.class_path, merge_with_command_line(
        entry, stored, given, explicit_names(argv), path
    )
