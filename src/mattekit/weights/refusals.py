"""Why a file could not be read weights-only, in a few words.

torch's own message runs to a dozen lines and advises re-running with weights-only loading off,
which would let the file run code. mattekit refuses such files in one line (the CLI prints it as
``mattekit <command>: error: <file>: <reason>``) and never passes that advice on.
"""

from __future__ import annotations

import pickletools
import re
import zipfile
from pathlib import Path

from mattekit.errors import RefusedFileError

NOT_PYTORCH = "not a PyTorch file (truncated or not a zip archive)"
# Modules whose globals a weights-only checkpoint may name (tensors, ordered dicts, bytes).
_WEIGHTS_MODULES = ("torch.", "collections.", "_codecs.")
# torch names the global it refused: "GLOBAL print was not an allowed global", "unsupported
# GLOBAL posix.system whose module posix is blocked".
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
# Otherwise its one line of substance: "WeightsUnpickler error: Unsupported operand 149".
_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*(.+)")
# A pickle opcode scan stops here: a multi-GB legacy file is not read to its end for a message.
_MAX_OPCODES = 100_000


def refused_object(name: str) -> str:
    """The reason for a checkpoint whose pickle names ``name`` (a class or function)."""
    return (
        f"not a weights-only PyTorch checkpoint: it holds a pickled object of class {name!r}, "
        "which weights-only loading refuses"
    )


def pickled_globals(path: Path) -> list[str]:
    """The classes and functions the pickle streams at the start of ``path`` name, in order.

    Read with :func:`pickletools.genops`, which decodes opcodes and runs nothing. Torch's
    legacy (non-zip) format is several pickles followed by raw tensor bytes: the scan stops at
    the first bytes that are not a pickle, keeping what it found before.
    """
    names: list[str] = []
    try:
        with path.open("rb") as handle:
            count = 0
            while handle.peek(1) and count < _MAX_OPCODES:
                strings: list[str] = []
                for opcode, argument, _ in pickletools.genops(handle):
                    count += 1
                    if isinstance(argument, str):
                        strings.append(argument)
                    if opcode.name == "GLOBAL":
                        names.append(str(argument).replace(" ", "."))
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        names.append(".".join(strings[-2:]))
                    if count >= _MAX_OPCODES:
                        break
    except (ValueError, EOFError, OSError):
        pass  # not (or no longer) a pickle stream
    return names


def refusal_reason(path: Path, error: BaseException) -> str:
    """What kept ``torch.load(path, weights_only=True)`` from reading ``path``, as one line.

    Args:
        path: the file torch failed on.
        error: the exception torch raised.
    """
    if path.stat().st_size == 0:
        return "an empty file, not a PyTorch checkpoint"
    if (refused := _REFUSED_GLOBAL.search(str(error))) is not None:
        return refused_object(refused.group(1))
    if zipfile.is_zipfile(path):
        # A whole archive torch still could not read: say what, never torch's advice.
        if (unpickler := _UNPICKLER_ERROR.search(str(error))) is not None:
            return f"not a weights-only PyTorch checkpoint ({unpickler.group(1).strip()})"
        return "a zip archive, but not a PyTorch checkpoint"
    # A legacy pickle (or no PyTorch file at all): torch only says "Unsupported operand".
    foreign = [name for name in pickled_globals(path) if not name.startswith(_WEIGHTS_MODULES)]
    return refused_object(foreign[0]) if foreign else NOT_PYTORCH


def first_line(error: BaseException) -> str:
    """The first line of another library's error (safetensors, diffusers), or its type when that
    line passes on torch's advice to load without weights-only."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines or "weights_only" in lines[0] or "Weights only" in lines[0]:
        return type(error).__name__
    return lines[0]


def refuse(path: Path, error: BaseException) -> RefusedFileError:
    """The error to raise for a file torch (or safetensors) could not read weights-only."""
    return RefusedFileError(f"{path}: {refusal_reason(path, error)}")
