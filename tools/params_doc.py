"""Generate docs/parameters.md from the params schema (`pdiff.core.config`): every key with its default, what it
allows and its help text. The schema is the one full description of each key; this page is its printout.

    python -m tools.params_doc           # (re)write docs/parameters.md
    python -m tools.params_doc --check   # exit 1 when docs/parameters.md is not what the schema gives
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdiff.core.artifacts import save_text
from pdiff.core.config import constraints, describe

DOC = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"

HEADER = """# Parameters

Every key of `params.yaml`, generated from the schema in `pdiff/core/config.py` by `python -m tools.params_doc`
(do not edit by hand; `tests/test_config.py` checks that this page matches the schema). `load_params()` refuses
unknown keys, wrong types and values outside what a key allows, naming the key; a string that reads as a number
is accepted for a number key (YAML reads `1e-3` as a string). Checks across keys (`validate` in the schema):
`ldm.beta_end` >= `ldm.beta_start`; with `generate.sampler: ddim`, `generate.steps` <= `ldm.timesteps`;
`ae.channels` not empty; `collect.params` is `auto` or a non-empty list of patterns.
"""


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


def render() -> str:
    """The whole page, one table per group of keys (top-level keys first)."""
    groups: dict[str, list[str]] = {}
    for key, default, help_text in describe():
        group = key.split(".")[0] if "." in key else "top level"
        cell = help_text.replace("|", "\\|")
        groups.setdefault(group, []).append(f"| `{key}` | `{_value(default)}` | {_allowed(key)} | {cell} |")
    out = [HEADER]
    for group, rows in groups.items():
        out += [f"## {group}", "", "| key | default | allowed | meaning |", "|---|---|---|---|", *rows, ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with docs/parameters.md instead of writing it")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.name} is out of date; run `python -m tools.params_doc`.", file=sys.stderr)
            return 1
        return 0
    save_text(text, DOC)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
