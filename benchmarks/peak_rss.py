"""A child process's peak resident memory, sampled by its parent, with a cap that stops it:
how the memory budget and the export memory benchmark measure (CPU; Linux ``/proc``)."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

from mattekit.pipelines.benchmark.resident import GIB, resident_bytes


@dataclass(frozen=True)
class Watched:
    """How a watched child ended.

    Attributes:
        returncode: its exit status (None when it was stopped at the cap).
        peak_gib: the largest resident memory sampled (GiB).
        seconds: wall time from start to end.
        error: the last line of its standard error ('' when it wrote none), or the signal that
            killed it.
    """

    returncode: int | None
    peak_gib: float
    seconds: float
    error: str

    @property
    def over_cap(self) -> bool:
        return self.returncode is None


def run_watched(command: list[str], cap_gib: float, interval_s: float = 0.1) -> Watched:
    """Run ``command``, sampling its resident memory every ``interval_s``; kill it the moment it
    passes ``cap_gib`` (so that a too-large case never brings the machine down)."""
    began, peak = time.monotonic(), 0
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # stderr is read after the end: a child that fills the pipe would block, so a thread drains it.
    lines: list[bytes] = []
    drain = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    drain.start()
    while process.poll() is None:
        peak = max(peak, resident_bytes(process.pid))
        if peak > cap_gib * GIB:
            process.kill()
            process.wait()
            drain.join()
            return Watched(None, peak / GIB, time.monotonic() - began, "")
        time.sleep(interval_s)
    drain.join()
    text = b"".join(lines).decode(errors="replace").strip().splitlines()
    last = text[-1] if text else ""
    if process.returncode < 0:  # SIGKILL without a word is how the kernel's OOM killer ends one
        last = f"killed by signal {-process.returncode} (last line: {last or 'none'})"
    return Watched(process.returncode, peak / GIB, time.monotonic() - began, last)
