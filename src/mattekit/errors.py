"""Errors in what a user asked for (a flag, a file, a name): the CLI prints them without a
traceback and exits with status 2."""


class UsageError(ValueError):
    """The message says what was wrong and what to do instead."""
