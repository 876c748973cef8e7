"""The documentation stays a short landing page plus docs/ pages whose links resolve and that speak of the
repository only (no path outside it)."""
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

README_MAX_LINES = 200
LINE_MAX = 200  # characters of a docs source line outside generated blocks
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "data/README.md", *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links outside code blocks that point into the repository (not URLs)."""
    text = FENCE.sub("", text)
    targets = [a or b for a, b in LINK.findall(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {github_anchor(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def test_readme_is_a_short_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert 0 < len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move depth into docs/"


def test_link_helpers_find_links_and_anchors():
    text = "see [a](docs/x.md#Part-two), ![fig](p.png), [web](https://e.org) and [top](#intro)\n```\n[no](y.md)\n```"
    assert relative_links(text) == ["docs/x.md#Part-two", "p.png", "#intro"]
    assert github_anchor("Over five seeds") == "over-five-seeds"
    assert github_anchor("`make bench`: the GPU path!") == "make-bench-the-gpu-path"


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    links = relative_links(doc.read_text())
    broken = []
    for link in links:
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        if not path.exists():
            broken.append(f"{link} (no file {rel})")
        elif anchor and path.suffix == ".md" and anchor not in anchors_of(path):
            broken.append(f"{link} (no heading #{anchor} in {rel})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {broken}"


def test_docs_index_lists_every_page():
    index = (ROOT / "docs/README.md").read_text()
    listed = {(ROOT / "docs" / t.partition("#")[0]).resolve() for t in relative_links(index)}
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md" and p.resolve() not in listed]
    assert not missing, f"docs/README.md does not list {missing}"


@pytest.mark.parametrize("name", ["README.md", "data/README.md", "requirements.txt", *sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))])
def test_docs_name_no_path_outside_the_repository(name):
    text = (ROOT / name).read_text()
    for outside in ("/work/", "../shared"):
        assert outside not in text, f"{name} mentions {outside!r}: cite the paper or a public repository instead"


def long_lines(text: str, limit: int = LINE_MAX) -> list[tuple[int, int]]:
    """(line number, length) of every line over ``limit`` characters outside the generated blocks
    (``<!--@@ tools.module:function -->`` ... ``<!--/@@-->``, whose tables a tool writes)."""
    from tools.doc_numbers import BLOCK

    text = BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # a block's lines, blanked, keep the numbering
    return [(n, len(line)) for n, line in enumerate(text.splitlines(), 1) if len(line) > limit]


def test_long_lines_skips_generated_blocks_only():
    row = "| " + "x" * 250 + " |"
    text = f"short\n<!--@@ tools.kernel_pins:docs_table -->\n{row}\n<!--/@@-->\n{row}\nend"
    assert long_lines(text) == [(5, len(row))]


@pytest.mark.parametrize("name", ["README.md", "data/README.md", "user/README.md", *sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))])
def test_no_docs_source_line_is_over_200_characters(name):
    """Prose wraps (at 120 characters), a marker stays whole on its line, and a table of many quoted numbers is a
    generated block; a prose-like table with long rows reads better as a list."""
    found = long_lines((ROOT / name).read_text())
    assert not found, f"{name}: lines over {LINE_MAX} characters (line, length): {found}"
