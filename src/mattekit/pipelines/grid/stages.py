"""Chained training stages: each made once, recorded, reused, never silently replaced.

A stage is a ``fit`` whose best (else last) checkpoint later stages (and the runs) start from.
Its folder holds ``<name>.json``, the record: the command that made the checkpoint, the
checkpoint, when it was made (``made_at``, the identity of this making) and the ``made_at`` of
each stage it started from. The rules:

- A stage with no record is made (never made, or its folder was deleted to redo it).
- A stage with a record is reused when the grid's command for it is the recorded one and its
  inputs are the recorded ones. When its checkpoint file alone is gone, it is made again in
  place, with the same command, but only if something made now needs it.
- Otherwise the grid stops with :class:`StageConflict`, naming the folder to delete: the
  command changed, or a stage it started from was made again since. Redoing a stage behind a
  record would silently mix, in one table, runs started from different weights.

Everything is decided before anything trains, so a conflict late in the chain stops the grid
before hours go into its first stages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mattekit.atomic_files import write_bytes_atomic
from mattekit.pipelines.grid.commands import shell_line, stage_dir
from mattekit.pipelines.grid.process import ProcessFailed, run_process
from mattekit.pipelines.grid.spec import Stage

logger = logging.getLogger(__name__)

# (stage, the checkpoints of the stages it uses) -> the fit's command line.
CommandOf = Callable[[Stage, Mapping[str, str]], list[str]]


class StageConflict(ValueError):
    """A stage's folder holds a checkpoint another command made, or made from other inputs."""


@dataclass(frozen=True)
class MadeStage:
    """A stage's checkpoint and the identity of its making (``made_at``)."""

    checkpoint: str
    made_at: str
    made_now: bool = False


def record_path(folder: Path, stage: Stage) -> Path:
    """``<folder>/<name>.json``: for a grid's ``pretrain``, ``pretrain/pretrain.json`` as ever."""
    return folder / f"{stage.name}.json"


def _read_record(path: Path) -> dict | None:
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    # Records from before chains (a grid's pretrain) have no identity nor inputs: the checkpoint
    # path names that making as long as the record stays.
    record.setdefault("made_at", record["checkpoint"])
    record.setdefault("inputs", {})
    return record


def _to_make(
    stages: Sequence[Stage], records: Mapping[str, dict | None], needed: set[str]
) -> set[str]:
    """The stages to fit now: those without a record, and the needed ones whose file is gone.

    Walked from the last stage back, so a stage made now makes what it starts from needed.
    """
    needed, make = set(needed), set()
    for stage in reversed(stages):
        record = records[stage.name]
        if record is None or (stage.name in needed and not Path(record["checkpoint"]).is_file()):
            make.add(stage.name)
            needed |= set(stage.uses)
    return make


def _check_record(
    stage: Stage,
    folder: Path,
    record: dict,
    known: Mapping[str, MadeStage],
    remade: set[str],
    command_of: CommandOf,
) -> None:
    """Raise :class:`StageConflict` unless ``record`` is what the grid would make now."""
    # Starting from other stages is another command, whatever those stages hold.
    if set(record["inputs"]) != set(stage.uses) or _command_changed(
        stage, record, known, command_of
    ):
        raise StageConflict(
            f"{folder} holds stage '{stage.name}' made by another command: "
            f"{shell_line(record['command'])}; delete {folder} to make it again"
        )
    again = [name for name in stage.uses if name in remade]
    changed = again or [n for n in stage.uses if record["inputs"][n] != known[n].made_at]
    if changed:
        when = "is to be made again" if again else "was made again since"
        raise StageConflict(
            f"{folder} holds stage '{stage.name}' made from another checkpoint of "
            f"'{changed[0]}', which {when}; delete {folder} (and the folders of the stages "
            "made from it) to make it again from the new one"
        )


def _command_changed(
    stage: Stage, record: dict, known: Mapping[str, MadeStage], command_of: CommandOf
) -> bool:
    """Whether the grid's command differs from the recorded one, if that can be known yet.

    An input without a record has no checkpoint path yet; that case is a changed input.
    """
    if any(name not in known for name in stage.uses):
        return False
    checkpoints = {name: known[name].checkpoint for name in stage.uses}
    return record["command"] != command_of(stage, checkpoints)


def ensure_stages(
    stages: Sequence[Stage],
    root: Path,
    command_of: CommandOf,
    needed: set[str],
    given: Mapping[str, MadeStage] | None = None,
) -> dict[str, MadeStage]:
    """Each stage's checkpoint, in order: reused when recorded as made by this command from
    these inputs, else made now (see the module's rules).

    Args:
        stages: the chain, in order; a stage uses only earlier ones and ``given`` ones.
        root: stage ``s`` lives in ``root/<s.name>/``.
        command_of: the fit's arguments of a stage, given the checkpoints it uses.
        needed: the stages whose checkpoints the caller reads.
        given: stages made before this chain (a run's chain starts from the grid's stages).

    Raises:
        StageConflict before anything is made, when a record disagrees with the grid;
        ProcessFailed when a fit fails or saves no checkpoint.
    """
    known = dict(given or {})
    folders = {stage.name: stage_dir(root, stage) for stage in stages}
    records = {s.name: _read_record(record_path(folders[s.name], s)) for s in stages}
    make = _to_make(stages, records, needed)
    for stage in stages:
        record = records[stage.name]
        if record is not None:
            _check_record(stage, folders[stage.name], record, known, make, command_of)
            known[stage.name] = MadeStage(record["checkpoint"], record["made_at"])
    for stage in stages:
        if stage.name in make:
            known[stage.name] = _make(stage, folders[stage.name], known, command_of)
        else:
            logger.info("stage %s: reusing %s", stage.name, known[stage.name].checkpoint)
    return {stage.name: known[stage.name] for stage in stages}


def _make(
    stage: Stage, folder: Path, known: Mapping[str, MadeStage], command_of: CommandOf
) -> MadeStage:
    """Fit the stage and record it (atomically: a record is always whole, or absent)."""
    logger.info("stage %s: fitting in %s", stage.name, folder)
    command = command_of(stage, {name: known[name].checkpoint for name in stage.uses})
    fit = run_process(command, folder / "fit_summary.json")
    if not fit["checkpoint"]:
        raise ProcessFailed(f"the fit of stage '{stage.name}' saved no checkpoint")
    made_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    record = {
        "command": command,
        "checkpoint": fit["checkpoint"],
        "made_at": made_at,
        "inputs": {name: known[name].made_at for name in stage.uses},
    }
    write_bytes_atomic(record_path(folder, stage), json.dumps(record, indent=1).encode())
    return MadeStage(fit["checkpoint"], made_at, made_now=True)
