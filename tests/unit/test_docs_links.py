"""Every relative link in the hand-written documentation points at a file that exists, and every
``#anchor`` on such a link (or on the page itself) names a heading of the page it points at.

Pages checked: ``README.md``, ``docs/*.md``, ``experiments/*.md`` and every ``README.md`` under
``src/mattekit``. Anchors follow GitHub's rule: the heading's text, lower-case, punctuation
dropped, spaces as hyphens, ``-1``, ``-2`` ... on repeats.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = sorted(
    [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "experiments").glob("*.md"),
        *(ROOT / "src" / "mattekit").rglob("README.md"),
    ]
)
# [text](target) and ![alt](target); the text may hold one level of brackets (badges, images).
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
EXTERNAL = ("http://", "https://", "mailto:")


def prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks (a link in a code block is not a link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a heading's Markdown text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub gives ``page``'s headings (repeats numbered from 1)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(page.read_text()):
        match = HEADING.match(line)
        if match is None:
            continue
        anchor = heading_anchor(match.group(1))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """``page``'s relative links whose file, or whose anchor in that file, does not exist."""
    broken = []
    for line in prose_lines(page.read_text()):
        for target in LINK.findall(line):
            if target.startswith(EXTERNAL):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{target} (no such file: {linked.name})")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{target} (no heading #{anchor} in {linked.name})")
    return broken


def test_the_pages_to_check_are_found() -> None:
    names = {str(page.relative_to(ROOT)) for page in PAGES}
    assert {"README.md", "docs/README.md", "experiments/RESULTS.md"} <= names
    assert "src/mattekit/models/baseline/README.md" in names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_and_a_missing_anchor_are_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Speed (`nn/`)\n" + "## Speed and memory\n" * 2)
    page.write_text(
        "# Title\n"
        "[ok](other.md#speed-nn) [ok](other.md#speed-and-memory-1) [ok](#title)\n"
        "[gone](missing.md) [gone](other.md#speed) ![gone](pic.png) [ok](https://x.org/a.md)\n"
        "```\n[in code](not_a_link.md)\n```\n"
    )
    assert [entry.split(" ")[0] for entry in broken_links(page)] == [
        "missing.md",
        "other.md#speed",
        "pic.png",
    ]


def test_the_readme_gives_the_commands_ci_runs() -> None:
    # .ci/run runs the README's set-up, test and quickstart through make, and lists the
    # quickstart's outputs: a newcomer following the README runs what CI runs.
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    targets = re.findall(r"^make (\w[\w-]*)", ci, flags=re.M)
    assert {"install", "test-all", "quickstart"} <= set(targets)
    assert [target for target in targets if f"make {target}" not in readme] == []
    recipe = re.search(r"^quickstart:.*\n\t\$\(BIN\)/(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None and recipe.group(1) in readme
    for output in re.findall(r"runs/quickstart/\*/version_0/(\S+)", ci):
        assert f"`{output.split('/')[-1]}`" in readme or output in readme, output
