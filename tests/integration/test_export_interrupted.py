"""``mattekit export`` killed part-way (SIGKILL: no cleanup of its own runs) leaves no partial set
and a previous export whole; the next export into the folder removes what the killed one left."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mattekit.cli import main
from mattekit.export.manifest import MANIFEST, read_export

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")

GRAPHS = ["zim_decoder.onnx", "zim_encoder.onnx"]


def export_args(checkpoint: Path, out: Path) -> list[str]:
    return ["export", f"--ckpt_path={checkpoint}", f"--output_dir={out}"]


def paths_under(folder: Path) -> list[Path]:
    try:
        return list(folder.rglob("*"))
    except OSError:  # a folder renamed or removed while it was walked: look again
        return []


def export_killed_when(checkpoint: Path, out: Path, seen: Callable[[list[Path]], bool]) -> None:
    """Run ``mattekit export`` in a process and SIGKILL it as soon as ``seen`` holds for the
    paths under ``out`` (polled every 2 ms); fail when the export ends first."""
    command = [sys.executable, "-m", "mattekit.cli", *export_args(checkpoint, out)]
    log = out.parent / "export.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        while process.poll() is None:
            if seen(paths_under(out)):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        else:
            pytest.fail(f"the export ended (exit {process.returncode}) before the moment to kill "
                        f"it:\n{log.read_text()[-2000:]}")  # fmt: skip
    finally:
        process.kill()
        process.wait()  # reaped: its pid is gone, as a later run's cleanup expects


def graph_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".onnx", ".pt"))


def test_a_kill_during_the_parity_check_leaves_no_set_and_the_next_export_cleans_up(
    tiny_checkpoint, tmp_path
):
    checkpoint, out = tiny_checkpoint("zim"), tmp_path / "exported"
    # The encoder's file exists, in its private folder (.zim_encoder.<pid>.tmp), while
    # onnxruntime checks it.
    export_killed_when(
        checkpoint, out,
        lambda paths: any(p.suffix == ".onnx" and p.parent.name.endswith(".tmp") and
                          p.parent.name.startswith(".zim_") for p in paths),
    )  # fmt: skip
    assert graph_files(out) == [] and not (out / MANIFEST).exists()
    (staging,) = out.iterdir()  # all the killed export left: its staging folder
    assert staging.name.startswith(".export-") and staging.is_dir()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{out}: no {MANIFEST}")):
        read_export(out)

    assert main(export_args(checkpoint, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, *GRAPHS]  # the leftovers removed
    assert sorted(graph["file"] for graph in read_export(out)["graphs"]) == GRAPHS


def test_a_kill_between_graphs_leaves_the_previous_export_whole(tiny_checkpoint, tmp_path):
    checkpoint, out = tiny_checkpoint("zim"), tmp_path / "exported"
    assert main(export_args(checkpoint, out)) == 0
    previous = read_export(out)
    identity = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}

    def new_encoder(paths: list[Path]) -> bool:
        """A second encoder file exists: the new export is on to its decoder."""
        try:
            return any(
                p.name == "zim_encoder.onnx" and p.stat().st_ino != identity[p.name][0]
                for p in paths
            )
        except OSError:
            return False

    export_killed_when(checkpoint, out, new_encoder)
    assert read_export(out) == previous
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir() if
            not p.name.startswith(".")} == identity  # fmt: skip
