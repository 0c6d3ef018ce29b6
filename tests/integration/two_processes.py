"""Scripts that run several cases in 2 CPU processes (gloo, ``torch.distributed.run``) and
report each as JSON: :func:`launch` for the pytest side, :func:`recording` for the script's
cases (``ddp_registry_script.py``, ``fsdp_script.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RESULTS = "results.json"


def launch(script: Path, out: Path, *args: str, timeout: float) -> dict[str, dict]:
    """``script out *args`` in 2 processes; the records of its cases, once the launch ended
    cleanly and no case failed (asserted, with the failures' tracebacks)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(script), str(out), *args,
    ]  # fmt: skip
    # A collective on one process only hangs: the timeout turns it into a failure.
    done = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=timeout)
    records = out / RESULTS
    results = json.loads(records.read_text()) if records.exists() else {}
    errors = {name: record["error"] for name, record in results.items() if "error" in record}
    assert done.returncode == 0 and not errors, (errors, done.stderr[-3000:])
    return results


@contextmanager
def recording(results: dict[str, dict], name: str, out: Path) -> Iterator[None]:
    """The block runs case ``name`` (it fills ``results[name]``); a failure is recorded as
    ``{"error": traceback}`` and raised again; the first process rewrites ``out/results.json``
    after each case, so a launch that dies still reports the cases before."""
    try:
        yield
    except Exception:
        results[name] = {"error": traceback.format_exc()[-3000:]}
        raise
    finally:
        if int(os.environ.get("RANK", "0")) == 0:
            (out / RESULTS).write_text(json.dumps(results, indent=1))
