"""The tables of docs/parameters.md, from the params schema (`pdiff.core.config`): every key with its default, what
it allows and its help text. The schema is the one full description of each key; the page's tables are its
printout, a generated block (`<!--@@ tools.params_doc:tables -->`) that `python -m tools.doc_numbers` fills like
every other generated content of the docs (tests/test_doc_numbers.py checks it).
"""
from __future__ import annotations

from collections.abc import Callable

from pdiff.core.config import constraints, describe


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def _allowed(key: str) -> str:
    c = constraints(key)
    if "choices" in c:
        return ", ".join(f"`{_value(x)}`" for x in c["choices"])
    symbols = {"ge": ">=", "gt": ">", "le": "<="}
    bounds = [f"{symbols[b]} {c[b]}" for b in symbols if b in c]
    bounds += [f"each item {symbols[b[len('each item '):]]} {v}" for b, v in c.items() if b.startswith("each item")]
    return c["type"] + (f", {', '.join(bounds)}" if bounds else "")


def tables(load: Callable | None = None) -> str:
    """One table per group of keys (top-level keys first). ``load`` (the generated-block protocol of
    tools.doc_numbers) is unused: the schema is code, not a JSON file."""
    groups: dict[str, list[str]] = {}
    for key, default, help_text in describe():
        group = key.split(".")[0] if "." in key else "top level"
        cell = help_text.replace("|", "\\|")
        groups.setdefault(group, []).append(f"| `{key}` | `{_value(default)}` | {_allowed(key)} | {cell} |")
    out = []
    for group, rows in groups.items():
        out += [f"## {group}", "", "| key | default | allowed | meaning |", "|---|---|---|---|", *rows, ""]
    return "\n".join(out[:-1]) + "\n"
