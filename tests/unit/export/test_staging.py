"""An export is written as a unit: staged beside the output, moved in with its manifest last,
replacing the previous export as a whole; what a killed export left is removed only when its
process is gone."""

import json
import os
import socket
import subprocess
import sys

import pytest

from mattekit.export.manifest import MANIFEST, read_export
from mattekit.export.staging import commit, remove_stale, staging_folder


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def stage(staging, files: list[str]) -> None:
    for name in files:
        (staging / name).write_bytes(name.encode())
    graphs = [{"name": name.split(".")[0], "file": name} for name in files]
    (staging / MANIFEST).write_text(json.dumps({"graphs": graphs}))


def test_a_new_export_replaces_the_previous_one_as_a_whole_and_leaves_other_files(tmp_path):
    with staging_folder(tmp_path) as staging:
        stage(staging, ["m_model.pt"])
        commit(staging, tmp_path, ["m_model.pt"])
    (tmp_path / "notes.txt").write_text("mine")
    with staging_folder(tmp_path) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".export-")
        stage(staging, ["m_model.onnx"])
        assert commit(staging, tmp_path, ["m_model.onnx"]) == tmp_path / MANIFEST
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "m_model.onnx", "notes.txt"]
    assert read_export(tmp_path)["graphs"] == [{"name": "m_model", "file": "m_model.onnx"}]
    assert (tmp_path / "m_model.onnx").read_bytes() == b"m_model.onnx"


def test_a_failed_export_leaves_the_previous_one_untouched(tmp_path):
    with staging_folder(tmp_path) as staging:
        stage(staging, ["m_model.onnx"])
        commit(staging, tmp_path, ["m_model.onnx"])
    with pytest.raises(RuntimeError, match="parity"), staging_folder(tmp_path) as staging:
        (staging / "m_model.onnx").write_bytes(b"new")
        raise RuntimeError("parity")
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "m_model.onnx"]
    assert (tmp_path / "m_model.onnx").read_bytes() == b"m_model.onnx"


def test_only_leftovers_of_exports_whose_process_is_gone_are_removed(tmp_path):
    host, gone, alive = socket.gethostname(), dead_pid(), os.getpid()
    stale = [f".export-{host}-{gone}-ab_12.tmp", f".zim_encoder.{gone}.tmp.onnx",
             f".export.json.{gone}.0123abcd.tmp"]  # fmt: skip
    kept = [f".export-{host}-{alive}-ab_12.tmp", f".export-other-host-{gone}-ab_12.tmp",
            f".zim_encoder.{alive}.tmp.onnx", f"notes.{gone}.tmp", "zim_encoder.onnx"]  # fmt: skip
    for name in stale + kept:
        if name.endswith(".tmp") and name.startswith(".export-"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "zim_encoder.onnx").write_bytes(b"onnx")
        else:
            (tmp_path / name).write_bytes(b"onnx")
    assert sorted(p.name for p in remove_stale(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
