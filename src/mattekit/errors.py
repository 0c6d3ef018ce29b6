"""Errors in what a user asked for (a flag, a file, a name): the CLI prints them without a
traceback and exits with status 2."""

from __future__ import annotations

import os
import traceback


class UsageError(ValueError):
    """The message says what was wrong and what to do instead."""


def named_error(error: BaseException) -> BaseException | None:
    """The error mattekit raised about a file or an argument, under jsonargparse's wrapping.

    Building the data module or the model from the command line goes through jsonargparse,
    which reports a failed source as "Does not validate against any of the Union subtypes" and
    keeps mattekit's message (``folder not found: ...``) only in its exception chain. None when
    the innermost error is not such a message (a bug keeps its traceback).
    """
    inner = error
    while (nested := inner.__cause__ or inner.__context__) is not None:
        inner = nested
    if inner is error or not isinstance(inner, OSError | ValueError):
        return None
    frames = traceback.extract_tb(inner.__traceback__)
    return inner if frames and f"{os.sep}mattekit{os.sep}" in frames[-1].filename else None
