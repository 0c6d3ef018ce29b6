"""docs/architecture.md is checked against the tree, not kept by hand.

Every package under ``src/mattekit`` (a folder with an ``__init__.py``) and every family folder
under ``src/mattekit/models`` must be named on the page as ``name/``; every ``src/mattekit/...``
path, every ``name/`` folder and every ``module.py`` the page names must exist. A folder or module
named without its full path is found by its trailing path (``grid/``, ``grid/command.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
PAGE = ROOT / "docs" / "architecture.md"
SOURCE = Path("src") / "mattekit"

# `src/mattekit/...` as written (a file or a folder).
SOURCE_PATH = re.compile(r"(?<![\w/.-])src/mattekit(?:/[\w.-]+)*/?")
# `name/` or `a/b/`: a folder, not the head of a longer path (`grid/command.py`).
FOLDER = re.compile(r"(?<![\w./<-])((?:[A-Za-z_]\w*/)+)(?![\w.*<])")
# `module.py` or `a/module.py`.
MODULE = re.compile(r"(?<![\w./-])((?:[A-Za-z_]\w*/)*[A-Za-z_]\w*\.py)\b")


def packages(root: Path) -> list[str]:
    """Every package folder under ``root/src/mattekit``, relative to it (``pipelines/grid``)."""
    source = root / SOURCE
    return sorted(str(init.parent.relative_to(source)) for init in source.rglob("__init__.py"))


def families(root: Path) -> list[str]:
    """Every folder directly under ``models/`` (a family, or a part families share)."""
    models = root / SOURCE / "models"
    return sorted(
        path.name for path in models.iterdir() if path.is_dir() and path.name[0] not in "_."
    )


def found(root: Path, name: str, want_dir: bool) -> bool:
    """``name`` exists from the repository root, or as the tail of a path under src/mattekit."""
    name = name.rstrip("/")
    if (root / name).is_dir() if want_dir else (root / name).is_file():
        return True
    source = root / SOURCE
    for path in source.rglob(Path(name).name):
        if path.is_dir() == want_dir and path.as_posix().endswith("/" + name):
            return True
    return False


def problems(root: Path, text: str) -> list[str]:
    """What the page ``text`` gets wrong about the tree under ``root``."""
    folders = set(FOLDER.findall(text))
    named = {folder.rstrip("/").rsplit("/", 1)[-1] for folder in folders}
    wrong = []
    for package in packages(root):
        if package == ".":
            if "src/mattekit/" not in text:
                wrong.append("package src/mattekit/ is not named")
        elif package.rsplit("/", 1)[-1] not in named:
            wrong.append(f"package {package}/ is not named")
    wrong += [f"family models/{name}/ is not named" for name in families(root) if name not in named]
    for path in sorted(set(SOURCE_PATH.findall(text))):
        if not (root / path).exists():
            wrong.append(f"{path} does not exist")
    for folder in sorted(folders):
        if not found(root, folder, want_dir=True):
            wrong.append(f"folder {folder} does not exist")
    for module in sorted(set(MODULE.findall(text)) - set(SOURCE_PATH.findall(text))):
        if not found(root, module, want_dir=False):
            wrong.append(f"module {module} does not exist")
    return wrong


def test_the_architecture_page_matches_the_tree() -> None:
    assert problems(ROOT, PAGE.read_text()) == []


def test_the_page_names_the_packages_it_must() -> None:
    # The rule above is not empty: the tree has packages and families to name.
    assert {"data", "models", "pipelines/grid", "models/baseline"} <= set(packages(ROOT))
    assert "baseline" in families(ROOT)


def test_missing_and_stale_names_are_caught(tmp_path: Path) -> None:
    source = tmp_path / SOURCE
    for package in ("", "data", "models", "models/alpha", "models/beta", "pipelines/grid"):
        (source / package).mkdir(parents=True, exist_ok=True)
        (source / package / "__init__.py").write_text("")
    (source / "models" / "half_made").mkdir()  # a family folder without __init__.py yet
    (source / "pipelines" / "grid" / "command.py").write_text("")
    page = (
        "src/mattekit/\n  data/ models/ alpha/ half_made/ grid/ (grid/command.py, spec.py)\n"
        "  gone/ src/mattekit/old.py; see configs/model/<alias>.yaml\n"
    )
    assert problems(tmp_path, page) == [
        "package models/beta/ is not named",
        "family models/beta/ is not named",
        "src/mattekit/old.py does not exist",
        "folder gone/ does not exist",
        "module spec.py does not exist",
    ]
