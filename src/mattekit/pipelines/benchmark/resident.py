"""A process's resident memory, without torch: a parent that only watches children
(``benchmarks/peak_rss.py``) stays small."""

from __future__ import annotations

import os

#: Bytes in a GiB, the unit every memory figure is reported in.
GIB = 2**30
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(pid: int | None = None) -> int:
    """The resident memory of process ``pid`` (default: this one; 0 once it has ended), from
    Linux's ``/proc/<pid>/statm``."""
    try:
        with open(f"/proc/{pid or 'self'}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (FileNotFoundError, ProcessLookupError):
        return 0
