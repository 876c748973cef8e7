"""Presets: one params file per paper setting (``presets/<name>.yaml``, a partial params.yaml).

Two ways to use one, both DVC-native (the preset's values end up in params.yaml / the experiment's params):

- ``make repro PRESET=cifar10-resnet18`` runs ``python -m tools.presets apply cifar10-resnet18`` (writes the
  preset's values into params.yaml in place, keeping every comment) and then ``dvc repro``;
- ``make exp PRESET=cifar10-resnet18`` runs ``dvc exp run --temp`` with one ``-S key=value`` per preset value
  (``python -m tools.presets exp-args NAME`` prints them), leaving the workspace's params.yaml and outputs alone.

Applying a preset also resets every key that *another* preset sets and this one does not to its schema
default, so switching from one preset to another never leaves a stale value behind. Keys that no preset
touches keep whatever params.yaml says.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import yaml

from pdiff import PdiffError
from pdiff.core.config import describe, from_dict

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"


def available(folder: Path = PRESETS_DIR) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _leaves(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def lookup(params: dict, dotted: str):
    """The value of a dotted key (``conv_ae.train_ae.steps``) in nested ``params``; None when a part is missing."""
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        *parents, leaf = key.split(".")
        d = out
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = v
    return out


def load_preset(name: str, folder: Path = PRESETS_DIR) -> dict:
    """The preset's values as {dotted key: value}, validated against the schema."""
    path = folder / f"{name}.yaml"
    if not path.exists():
        raise PdiffError(f"preset {name!r}: {path} does not exist; available presets: "
                         f"{', '.join(available(folder)) or 'none'}.")
    raw = yaml.safe_load(path.read_text()) or {}
    from_dict(raw)  # unknown keys, wrong types, out-of-range values: ConfigError naming the key
    return _leaves(raw)


def resolved(name: str, folder: Path = PRESETS_DIR) -> dict:
    """{dotted key: value} to write: the preset's values, plus schema defaults for keys other presets set."""
    defaults = {k: d for k, d, _ in describe()}
    touched = set().union(*(load_preset(n, folder) for n in available(folder)))
    return {k: defaults[k] for k in sorted(touched)} | load_preset(name, folder)


def _yaml_value(v) -> str:
    text = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def set_values(text: str, values: dict) -> str:
    """params.yaml ``text`` with each dotted key's value replaced in place, by ruamel.yaml's round trip (comments,
    order and layout kept; lists written in flow style, one key per line as params.yaml has them)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 10_000
    doc = rt.load(text)
    for key, value in values.items():
        *groups, leaf = key.split(".")
        node = doc
        for depth, group in enumerate(groups):
            node = node.get(group) if isinstance(node, CommentedMap) else None
            if not isinstance(node, CommentedMap):
                raise PdiffError(f"preset: params.yaml has no group `{'.'.join(groups[:depth + 1])}:` to set "
                                 f"`{key}` in.")
        if not isinstance(node, CommentedMap) or leaf not in node:
            raise PdiffError(f"preset: params.yaml has no line for `{key}`; add the key (see docs/parameters.md) "
                             "first.")
        if isinstance(value, list):
            value = CommentedSeq(value)
            value.fa.set_flow_style()
        node[leaf] = value
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def apply(name: str, params_path: str | Path = "params.yaml", folder: Path = PRESETS_DIR) -> dict:
    """Write preset ``name`` into params.yaml (atomically); returns the values written."""
    from pdiff.core.artifacts import save_text
    from pdiff.core.config import load_params

    values = resolved(name, folder)
    path = Path(params_path)
    new = set_values(path.read_text(), values)
    from_dict(yaml.safe_load(new))
    save_text(new, path)
    load_params(path)
    return values


def exp_args(name: str, folder: Path = PRESETS_DIR) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run`` (values in YAML flow style, no spaces)."""
    out = []
    for k, v in resolved(name, folder).items():
        val = _yaml_value(v).replace(", ", ",")
        out += ["-S", f"{k}={val}"]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage = ("usage: python -m tools.presets list | show NAME | apply NAME [params.yaml] | exp-args NAME\n"
             f"presets: {', '.join(available())}")
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if not argv or argv[0] not in ("list", "show", "apply", "exp-args") or (argv[0] != "list" and len(argv) < 2):
        print(usage, file=sys.stderr)
        return 2
    try:
        if argv[0] == "list":
            print("\n".join(available()))
        elif argv[0] == "show":
            print(yaml.safe_dump(_nest(resolved(argv[1])), sort_keys=False).rstrip())
        elif argv[0] == "apply":
            values = apply(argv[1], argv[2] if len(argv) > 2 else "params.yaml")
            print(f"preset {argv[1]}: wrote {len(values)} values into params.yaml", file=sys.stderr)
        else:
            import shlex
            print(" ".join(shlex.quote(a) for a in exp_args(argv[1])))
    except PdiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
