"""Errors in what a user asked for (a flag, a file, a name): the CLI prints them without a
traceback and exits with status 2.

Every command's entry point is wrapped in :func:`reports_usage_errors`, the one place such an
error becomes a line on stderr.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: The exit status of a command refused for what the user gave (argparse's too).
USAGE_STATUS = 2


class UsageError(ValueError):
    """The message says what was wrong and what to do instead."""


class RefusedFileError(UsageError):
    """A file mattekit will not read as the weights it should hold: not a PyTorch file, a
    truncated one, or one whose pickle names an object weights-only loading refuses. The message
    names the file and the reason in one line."""


def reports_usage_errors(prog: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R | int]]:
    """Decorate a command's entry point: a :class:`UsageError` it raises (a refused checkpoint,
    a missing file, a bad flag) becomes ``"<prog>: error: <message>"`` on stderr, and the
    command returns :data:`USAGE_STATUS`; other exceptions (bugs) keep their traceback."""

    def decorate(command: Callable[_P, _R]) -> Callable[_P, _R | int]:
        @functools.wraps(command)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R | int:
            try:
                return command(*args, **kwargs)
            except UsageError as error:
                print(f"{prog}: error: {error}", file=sys.stderr)
                return USAGE_STATUS

        return run

    return decorate


def named_error(error: BaseException) -> BaseException | None:
    """The error mattekit raised about a file or an argument, under jsonargparse's wrapping.

    Building the data module or the model from the command line goes through jsonargparse,
    which reports a failed source as "Does not validate against any of the Union subtypes" and
    keeps mattekit's message (``folder not found: ...``) only in its exception chain. That is the
    outermost :class:`UsageError` of the chain (its message is complete, whatever library error
    it stands for), else the innermost error when mattekit raised it as an ``OSError`` or
    ``ValueError``. None otherwise (a bug keeps its traceback).
    """
    inner = error
    while (nested := inner.__cause__ or inner.__context__) is not None:
        if isinstance(nested, UsageError):
            return nested
        inner = nested
    if inner is error or not isinstance(inner, OSError | ValueError):
        return None
    frames = traceback.extract_tb(inner.__traceback__)
    return inner if frames and f"{os.sep}mattekit{os.sep}" in frames[-1].filename else None
