"""``export.json``, the manifest of an export: written last, so its presence marks a complete set.

:func:`read_export` is the one way to open an export (tests, serving): it refuses a folder
without its manifest, which is what an interrupted export leaves, or one missing a file the
manifest names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mattekit.data.io import read_json

#: The manifest's file name, in the export folder beside the graphs it names.
MANIFEST = "export.json"


def _named(graph: dict) -> list[object]:
    """What one ``graphs`` entry names: its external-data side files (``data_files``, written
    by exports whose weights exceed the exporter's threshold), then its own ``file``."""
    data_files = graph.get("data_files", [])
    return [*(data_files if isinstance(data_files, list) else [data_files]), graph.get("file")]


def _plain(name: object) -> bool:
    """Whether ``name`` is a file name in the export's folder (no folder part)."""
    return isinstance(name, str) and bool(name) and Path(name).name == name


def graph_files(manifest: object) -> list[str]:
    """The file names a manifest's ``graphs`` give, in order, each graph's side files before its
    own file; entries that are not a plain file name in the export's folder (no folder part)
    are left out."""
    graphs = manifest.get("graphs") if isinstance(manifest, dict) else None
    names = [name for graph in graphs or [] if isinstance(graph, dict) for name in _named(graph)]
    return [name for name in names if _plain(name)]


def read_export(folder: str | Path) -> dict[str, Any]:
    """The manifest of the complete export in ``folder`` (as :func:`mattekit.pipelines.export.
    export_checkpoint` wrote it: ``graphs`` lists each file with its inputs and outputs, and
    the ``data_files`` holding its weights where they are too large to stay in it).

    Raises:
        FileNotFoundError: ``folder`` is not a folder, has no ``export.json`` (no export, or an
            interrupted one), or lacks a file the manifest names; the message names it.
        ValueError: the manifest is not valid json, or names a file outside ``folder``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such export folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: no {MANIFEST}, so not a complete export (an interrupted `mattekit "
            "export` leaves none); export again"
        )
    manifest = read_json(path, "the export manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("graphs"), list):
        raise ValueError(f"{path}: not an export manifest (no list of graphs)")
    graphs = manifest["graphs"]
    if not all(isinstance(graph, dict) and all(map(_plain, _named(graph))) for graph in graphs):
        raise ValueError(
            f"{path}: each graph needs a file name in {folder} (no folder part), and so "
            "does each of its data_files"
        )
    for name in graph_files(manifest):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: named by {path} but missing")
    return manifest
