"""Fill the numbers that README.md and docs/*.md quote from the JSON files commands write.

A quoted number is written between two markers that name its source, so the page shows the number and the
source says where it comes from:

    <!--@ metrics/bench.json repro_s .0f -->123<!--/@-->

The marker holds a JSON file (relative to the repository root), a dotted key into it (``eval.speedup``;
a list's row is picked by a key, ``seeds[seed=0].generated``, never by position) and an optional format: a
Python format spec (``.0f``, ``,``), or ``minsec``
(seconds as ``5 min 07 s``). Markdown renders the markers invisibly. A table or other text that a tool makes
from JSON files is one generated block, filled by the same command:

    <!--@@ tools.kernel_pins:docs_table -->
    ...the function's Markdown...
    <!--/@@-->

The block names a function in tools/ that takes ``load(path)`` (a JSON file, parsed) and returns the text;
`quote` and `markdown_table` build a table of quoted numbers, each row named by a key as a marker names it.
A table with many numbers is such a block, so that no page line outside a block is over 200 characters
(tests/test_docs.py).

    python -m tools.doc_numbers           # rewrite every marked number from its JSON
    python -m tools.doc_numbers --check   # exit 1, listing each page and key, when a page quotes another value

The rewrite reads the workspace's files. The docs test reads them as git records them (`committed_text`: the
index, what the next commit holds), so that it checks the pages against one committed state: after a
`make repro` on another CPU type, the workspace's metrics hold that CPU's bytes, and the pages still quote the
committed ones (README: the README's two commands pass in either order).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pdiff import PdiffError
from pdiff.core.artifacts import save_text

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"<!--@ (?P<file>\S+) (?P<key>(?:[^\s\[]|\[[^\]]*\])+)(?: (?P<fmt>\S+))? -->"
                    r"(?P<value>.*?)<!--/@-->")


def pages(root: Path = ROOT) -> list[Path]:
    """The pages that may quote numbers: README.md, data/README.md and docs/*.md."""
    return [root / "README.md", root / "data/README.md", *sorted((root / "docs").glob("*.md"))]


def workspace_text(path: Path, root: Path = ROOT) -> str:
    """The text of ``root/path`` in the working tree."""
    return (root / path).read_text()


def committed_text(path: Path, root: Path = ROOT) -> str:
    """The text of ``root/path`` as git's index records it (what was committed, plus what is staged for the
    next commit); the working tree's where git does not track the file or ``root`` is no git checkout."""
    rel = Path(path).as_posix()
    done = subprocess.run(["git", "show", f":{rel}"], cwd=root, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else workspace_text(path, root)


def read_json(path: str | Path, read: Callable[[Path, Path], str] = workspace_text, root: Path = ROOT):
    """The JSON file ``path`` (relative to ``root``) through ``read`` (`workspace_text` or `committed_text`)."""
    return json.loads(read(Path(path), root))


STEP = re.compile(r"\[(?P<field>[^=\]]+)=(?P<value>[^\]]*)\]|(?P<name>[^.\[\]]+)")


def select(rows: list, field: str, value: str, where: str):
    """The one element of ``rows`` whose ``field`` reads as ``value`` (a list is indexed by a key, never by a
    position: a row inserted later must not move a quoted number onto another row's label)."""
    found = [r for r in rows if isinstance(r, dict) and field in r and render(r[field], None) == value]
    if len(found) != 1:
        raise PdiffError(f"{where}: [{field}={value}] matches {len(found)} rows of the list, not one.")
    return found[0]


def lookup(data, key: str, where: str):
    """The value at ``key``: dotted names into objects, ``[field=value]`` to pick a list's row by a key
    (``seeds[seed=0].generated.acc_median``). A position into a list is refused."""
    for m in STEP.finditer(key):
        part = m.group(0)
        if m["field"] is not None:
            if not isinstance(data, list):
                raise PdiffError(f"{where}: `{part}` in `{key}` selects from a list, but the value there is not one.")
            data = select(data, m["field"], m["value"], where)
            continue
        if isinstance(data, list):
            raise PdiffError(f"{where}: `{key}` indexes a list by position (`{part}`); name the row by a key "
                             "instead, as in `seeds[seed=0]`.")
        try:
            data = data[part]
        except (KeyError, TypeError):
            raise PdiffError(f"{where}: the key `{key}` is not in the file (stopped at `{part}`).") from None
    return data


BLOCK = re.compile(r"<!--@@ (?P<source>[\w.]+:\w+) -->\n(?P<body>.*?)<!--/@@-->", re.S)


def block(source: str, read: Callable[[Path, Path], str], root: Path = ROOT, where: str = "") -> str:
    """The text of a generated block: ``tools.module:function`` called with ``load(path) -> parsed JSON``
    (through ``read``), returning Markdown that ends in a newline."""
    import importlib

    module, _, name = source.partition(":")
    if not module.startswith("tools."):
        raise PdiffError(f"{where}: a generated block names a function in tools/, not `{source}`.")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise PdiffError(f"{where}: the block's source `{source}` does not exist.") from None
    return fn(lambda path: read_json(path, read, root))


def render(value, fmt: str | None) -> str:
    if fmt == "minsec":
        minutes, seconds = divmod(round(float(value)), 60)
        return f"{minutes} min {seconds:02d} s"
    return format(value, fmt) if fmt else str(value)


def quote(data, key: str, fmt: str | None = None) -> str:
    """What a marker ``<!--@ file key fmt -->`` over ``data`` (the file, parsed) shows: the value at ``key``
    (a list's row named by a key, as in a marker), formatted; for the tables of generated blocks."""
    return render(lookup(data, key, key), fmt)


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (header, separator, a line per row; an empty cell as ``| |``), ending in a newline."""
    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|\n"

    return line(head) + "|" + "---|" * len(head) + "\n" + "".join(line(r) for r in rows)


def fill(text: str, root: Path = ROOT, page: str = "", read: Callable[[Path, Path], str] = workspace_text
         ) -> tuple[str, list[str]]:
    """(``text`` with every marked number and generated block taken from its JSON, the descriptions of what
    changed); ``read`` gives a file's text (`workspace_text`, or `committed_text` for the committed state)."""
    cache: dict[str, object] = {}
    changed: list[str] = []

    def one_block(m: re.Match) -> str:
        new = block(m["source"], read, root, f"{page}: {m['source']}")
        if new != m["body"]:
            changed.append(f"{page}: the block {m['source']} is not what its files give")
        return f"<!--@@ {m['source']} -->\n{new}<!--/@@-->"

    def one(m: re.Match) -> str:
        where = f"{page}: {m['file']} {m['key']}"
        if m["file"] not in cache:
            if not (root / m["file"]).exists():
                raise PdiffError(f"{where}: {m['file']} does not exist; run the command that writes it.")
            cache[m["file"]] = read_json(m["file"], read, root)
        new = render(lookup(cache[m["file"]], m["key"], where), m["fmt"])
        if new != m["value"]:
            changed.append(f"{where}: the page says {m['value']!r}, the file gives {new!r}")
        return m.group(0).replace(f"-->{m['value']}<!--/@-->", f"-->{new}<!--/@-->")

    return MARKED.sub(one, BLOCK.sub(one_block, text)), changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report differences instead of rewriting the pages")
    args = ap.parse_args(argv)
    stale = []
    for path in pages():
        text = path.read_text()
        new, changed = fill(text, ROOT, path.relative_to(ROOT).as_posix())
        stale += changed
        if changed and not args.check:
            save_text(new, path)
    for line in stale:
        print(line, file=sys.stderr if args.check else sys.stdout)
    if args.check and stale:
        print("Run `python -m tools.doc_numbers` to take the numbers from their files.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
