"""An export is opened only through its manifest: a folder without one (what an interrupted
export leaves) or missing a file it names is refused, naming the folder or the file."""

import json
import re

import pytest

from mattekit.export.manifest import MANIFEST, read_export


def write_manifest(folder, files: list[str]) -> dict:
    manifest = {"family": "ZIM", "graphs": [{"name": f.split(".")[0], "file": f} for f in files]}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def test_a_folder_of_graphs_without_its_manifest_is_refused_naming_the_folder(tmp_path):
    for name in ["zim_encoder.onnx", "zim_decoder.onnx"]:
        (tmp_path / name).write_bytes(b"onnx")
    with pytest.raises(
        FileNotFoundError, match=f"^{re.escape(f'{tmp_path}: no {MANIFEST}, so not a complete')}"
    ):
        read_export(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(str(tmp_path / 'absent'))}: no such"):
        read_export(tmp_path / "absent")


def test_a_manifest_is_read_only_with_every_file_it_names(tmp_path):
    manifest = write_manifest(tmp_path, ["zim_encoder.onnx", "zim_decoder.onnx"])
    (tmp_path / "zim_encoder.onnx").write_bytes(b"onnx")
    with pytest.raises(
        FileNotFoundError, match=f"^{re.escape(str(tmp_path / 'zim_decoder.onnx'))}: named"
    ):
        read_export(tmp_path)
    (tmp_path / "zim_decoder.onnx").write_bytes(b"onnx")
    assert read_export(tmp_path) == manifest


def test_a_manifest_naming_a_file_elsewhere_is_refused(tmp_path):
    (tmp_path / "elsewhere.onnx").write_bytes(b"onnx")
    folder = tmp_path / "exported"
    folder.mkdir()
    write_manifest(folder, ["../elsewhere.onnx"])
    with pytest.raises(ValueError, match="each graph needs a file name in"):
        read_export(folder)
