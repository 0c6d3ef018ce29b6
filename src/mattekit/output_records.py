"""What made an output file, recorded beside it, so that a rerun keeps only what it would make.

``mattekit matte``, ``predict`` (with an output folder) and ``convert-labels`` write, for every
output, a small json record of its inputs: the checkpoint's SHA-256, the prompt, the settings
that shape the result, and mattekit's version. A rerun into the same folder then decides per
output (:func:`plan_outputs`):

- the outputs and their record exist and the record equals this run's inputs: the output is
  done (skipped when the command resumes);
- the outputs exist but were made from other inputs (or by a version that wrote no record):
  they are replaced only with ``overwrite``; otherwise the run refuses before anything runs,
  naming the first such output and what differs;
- otherwise the output is made.

Making an output starts with :func:`start_outputs`: the old files are removed and the record
written, then the outputs are written (each atomically). A run killed in between leaves a record
with missing outputs, which the next run makes again; never an old output under a new record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from mattekit.atomic_files import write_bytes_atomic
from mattekit.errors import UsageError

#: The suffix of a record, beside the output it names (``cat_alpha.png`` -> ``cat.inputs.json``).
RECORD_SUFFIX = ".inputs.json"


def mattekit_version() -> str:
    try:
        return version("mattekit")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256 (hex), read in 1 MiB blocks; cached per (path, size, mtime)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(module: torch.nn.Module) -> str:
    """A SHA-256 of a network's state dict (names, dtypes, shapes and values, in order): its
    identity in records when no checkpoint file names it."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def record_inputs(**inputs: object) -> dict:
    """``inputs`` with mattekit's version, as plain json values (tuples become lists, values
    json cannot hold their ``repr``), so that a record read back compares equal to the run that
    wrote it."""
    return json.loads(json.dumps({**inputs, "mattekit": mattekit_version()}, default=repr))


@dataclass(frozen=True)
class OutputPlan:
    """What a run will do with its outputs: the indices to make, and how many are done."""

    make: list[int]
    done: int


def read_record(path: Path) -> dict | None:
    """A record's inputs; None when it is missing or unreadable (then nothing is known)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def start_outputs(files: Sequence[Path], record: Path, inputs: Mapping) -> None:
    """Before writing ``files``: remove the old ones, then write the record of ``inputs``."""
    for path in files:
        path.unlink(missing_ok=True)
    write_bytes_atomic(record, (json.dumps(inputs, indent=1, sort_keys=True) + "\n").encode())


def differences(recorded: Mapping | None, wanted: Mapping, prefix: str = "") -> str:
    """What differs between a record and this run's inputs (nested settings by their dotted
    names), for an error message."""
    if recorded is None:
        return "no record of its inputs (written by another command or an older mattekit)"
    changed = []
    for key in sorted(set(recorded) | set(wanted)):
        then, now = recorded.get(key), wanted.get(key)
        if then == now:
            continue
        if isinstance(then, Mapping) and isinstance(now, Mapping):
            changed.append(differences(then, now, f"{prefix}{key}."))
        else:
            changed.append(f"{prefix}{key}: {then!r} then, {now!r} now")
    return "; ".join(changed)


def plan_outputs(
    outputs: Sequence[Sequence[Path]],
    records: Sequence[Path],
    inputs: Sequence[Mapping],
    skip_existing: bool,
    overwrite: bool,
    option: str = "--overwrite true",
) -> OutputPlan:
    """Decide, for each item (its output files, its record, this run's inputs), whether to make
    it (see the module docstring).

    Raises:
        UsageError naming the first output made from other inputs, what differs, and
        ``option``, when such outputs exist and ``overwrite`` is false (before anything runs).
    """
    make, done, foreign = [], 0, []
    for index, (files, record, wanted) in enumerate(zip(outputs, records, inputs, strict=True)):
        present = [path for path in files if path.exists()]
        recorded = read_record(record) if record.exists() else None
        if present and recorded == dict(wanted) and len(present) == len(files):
            if skip_existing:
                done += 1
                continue
        elif present and recorded != dict(wanted) and not overwrite:
            foreign.append((present[0], differences(recorded, wanted)))
        make.append(index)
    if foreign:
        first, why = foreign[0]
        more = f" (and {len(foreign) - 1} more outputs)" if len(foreign) > 1 else ""
        raise UsageError(
            f"{first}{more} was made from other inputs ({why}); give {option} to replace "
            "such outputs, or choose another output folder"
        )
    return OutputPlan(make, done)
