"""Writing an export as a unit: a process killed at any point never leaves a mixed set.

Every graph is exported and checked in a private staging folder inside the output folder
(``.export-<host>-<pid>-<random>.tmp``: same file system, so moving out is a rename). Only once
all of them pass, :func:`commit` moves the set in: the previous manifest is removed first (from
then on readers refuse the folder), then the previous set's files, then the new files, and the
new manifest last. The output folder may hold other files; they are left alone.

A process killed while exporting leaves only its staging folder; the next export into the same
folder removes it (:func:`remove_stale`), as well as the per-graph temporaries that exports
written before staging left directly in the output folder.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mattekit.data.io import read_json
from mattekit.export.manifest import MANIFEST, graph_files

#: A staging folder: host and pid of the process that made it (``tempfile.mkdtemp``'s random
#: part has no ``-``, so a host name with ``-`` still parses).
_STAGING = re.compile(r"\.export-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+\.tmp")
#: What exports before staging left in the output folder when killed: a graph's temporary
#: (``.<alias>_<graph>.<pid>.tmp.onnx`` or ``.pt``) or the manifest's (``write_bytes_atomic``).
_LEGACY = re.compile(
    r"\.[a-z0-9_]+_[a-z0-9_]+\.(?P<pid>\d+)\.tmp\.(?:onnx|pt)"
    r"|\.export\.json\.(?P<manifest_pid>\d+)\.[0-9a-f]{8}\.tmp"
)


def _process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs on this machine (a zombie still counts as running)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows: keep all
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: another user's process
        return False
    return False


def remove_stale(output_dir: Path) -> list[Path]:
    """Remove the staging folders and temporaries of exports into ``output_dir`` whose process
    is gone; those of a live process, or of another host (a shared file system), stay.

    Returns:
        What was removed.
    """
    host, removed = socket.gethostname(), []
    for entry in sorted(output_dir.iterdir()):
        staging, legacy = _STAGING.fullmatch(entry.name), _LEGACY.fullmatch(entry.name)
        if staging and staging["host"] == host and _process_gone(int(staging["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
        elif legacy and _process_gone(int(legacy["pid"] or legacy["manifest_pid"])):
            entry.unlink(missing_ok=True)
        else:
            continue
        removed.append(entry)
    return removed


@contextmanager
def staging_folder(output_dir: Path) -> Iterator[Path]:
    """A new, empty folder inside ``output_dir`` (created) for one export, removed on exit
    (after :func:`commit` it is empty). Stale ones of killed exports are removed first."""
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(output_dir)
    prefix = f".export-{socket.gethostname()}-{os.getpid()}-"
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=output_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _previous_files(output_dir: Path) -> list[str]:
    """The files the export already in ``output_dir`` names (none when its manifest is
    missing or unreadable)."""
    try:
        return graph_files(read_json(output_dir / MANIFEST, "the export manifest"))
    except (OSError, ValueError):
        return []


def _flush(path: Path) -> None:
    # The exporters do not fsync: without it, a power cut after the renames could leave a
    # manifest naming empty files.
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def commit(staging: Path, output_dir: Path, files: list[str]) -> Path:
    """Move ``files`` and the manifest from ``staging`` into ``output_dir``, replacing the
    export already there as a whole; returns the manifest's path.

    A kill part-way leaves no manifest, so readers refuse the folder rather than see a mix.
    """
    for name in [*files, MANIFEST]:
        _flush(staging / name)
    manifest = output_dir / MANIFEST
    previous = _previous_files(output_dir)
    manifest.unlink(missing_ok=True)
    for name in set(previous) - set(files):
        (output_dir / name).unlink(missing_ok=True)
    for name in files:
        os.replace(staging / name, output_dir / name)
    os.replace(staging / MANIFEST, manifest)
    return manifest
