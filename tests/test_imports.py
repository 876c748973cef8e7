"""Every first-party import resolves, at any depth.

Each module of the project is parsed (not imported) with `ast`, and every ``import X`` / ``from X import name``
anywhere in it (inside functions too, where a stale name only fails when that code path runs) is checked: a
first-party module ``X`` must exist, and ``name`` must be a submodule of ``X`` or defined at the top level of
``X`` (a def, class, assignment or import). A bare ``import name`` of a sibling file (``import _bootstrap`` in
stages/, whose folder is on sys.path when a stage script runs) counts as that sibling; any other bare name must be
the standard library's or an installed package's (so no file imports a module by putting its folder on sys.path).
"""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("pdiff", "tools", "stages", "tests", "user")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the first-party folders (a package's name maps to
    its ``__init__.py``)."""
    out = {}
    for top in FIRST_PARTY:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = module_files()
# folders holding modules (packages, with or without __init__.py): importable as `from folder import module`
PACKAGES = {".".join(m.split(".")[:i]) for m in MODULES for i in range(1, m.count(".") + 1)}


def is_module(name: str) -> bool:
    return name in MODULES or name in PACKAGES


def top_level_names(path: Path) -> set[str]:
    """Names a module binds at its top level (also inside top-level if / try / with blocks)."""
    names: set[str] = set()

    def targets(node) -> None:
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)
        elif isinstance(node, ast.Starred):
            targets(node.value)

    def visit(body) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    targets(t)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets(node.target)
            elif isinstance(node, ast.Import):
                names.update(a.asname or a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.update(a.asname or a.name for a in node.names)
            elif isinstance(node, (ast.If, ast.For, ast.While)):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(ast.parse(path.read_text(), str(path)).body)
    return names


_NAMES: dict[str, set[str]] = {}


def defined_in(module: str) -> set[str]:
    if module not in _NAMES:
        _NAMES[module] = top_level_names(MODULES[module]) if module in MODULES else set()
    return _NAMES[module]


def is_first_party(name: str) -> bool:
    return name.split(".")[0] in FIRST_PARTY


def imports_of(module: str) -> list[tuple[int, str, str | None]]:
    """(line, module, name) for every import in ``module``'s file at any depth; name is None for ``import X``.
    Relative imports are made absolute; a bare import of a sibling file becomes that sibling's dotted name."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                sibling = f"{package}.{name}" if package else name
                if not is_first_party(name) and is_module(sibling):
                    name = sibling
                out.append((node.lineno, name, None))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                out.append((node.lineno, base, alias.name))
    return out


def unresolved(module: str) -> list[str]:
    """One line per import in ``module`` that would fail: a first-party module that does not exist, a name it
    does not define, or a bare name that is neither first-party, standard library nor installed."""
    path = MODULES[module]
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    bad = []
    for line, target, name in imports_of(module):
        if not is_first_party(target):
            top = target.split(".")[0]
            if name is None and top not in sys.stdlib_module_names and importlib.util.find_spec(top) is None:
                bad.append(f"{where}:{line}: `import {target}`: no such module (first-party, stdlib or installed)")
            continue
        if not is_module(target):
            bad.append(f"{where}:{line}: {target} does not exist")
        elif name is not None and name != "*" and not is_module(f"{target}.{name}") \
                and name not in defined_in(target):
            bad.append(f"{where}:{line}: `from {target} import {name}`: {target} defines no {name}")
    return bad


def test_the_module_list_covers_every_first_party_folder():
    assert {m.split(".")[0] for m in MODULES} >= {"pdiff", "tools", "stages", "tests", "user"}
    assert "tests.test_imports" in MODULES and "pdiff.core.artifacts" in MODULES


def test_the_checker_catches_a_missing_module_a_missing_name_and_a_stale_import_inside_a_function(tmp_path):
    """The checker itself, on files written here: each kind of stale import is reported, a good one is not."""
    src = tmp_path / "probe.py"
    src.write_text("import os\nfrom pdiff.core.artifacts import save_json\n"
                   "def f():\n    from pdiff.core.artifacts import no_such_function\n"
                   "    from pdiff.core import no_such_module\n    import pdiff.nowhere\n    import no_such_pkg_x\n")
    MODULES["pdiff.probe_for_test"] = src
    try:
        bad = unresolved("pdiff.probe_for_test")
    finally:
        del MODULES["pdiff.probe_for_test"]
    assert len(bad) == 4, bad
    assert any("defines no no_such_function" in b and ":4:" in b for b in bad)
    assert any("defines no no_such_module" in b for b in bad)
    assert any("pdiff.nowhere does not exist" in b for b in bad)
    assert any("`import no_such_pkg_x`: no such module" in b for b in bad)


def test_every_first_party_import_resolves_at_any_depth():
    bad = [line for module in sorted(MODULES) for line in unresolved(module)]
    assert not bad, "stale imports:\n" + "\n".join(bad)


def import_graph() -> dict[str, set[str]]:
    """module -> the first-party modules it imports at any depth (``from X import sub`` counts as importing the
    submodule ``X.sub``; any other name, as importing ``X``)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for _, target, name in imports_of(module):
            if not is_first_party(target):
                continue
            sub = f"{target}.{name}" if name is not None else None
            dest = sub if sub is not None and sub in MODULES else target
            if dest in MODULES and dest != module:
                graph[module].add(dest)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import circle per strongly connected group of modules (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [path_within(graph, group) for group in groups]


def path_within(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A closed import path through modules of ``group`` that starts and ends at its first module."""
    start, members = group[0], set(group)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [w, v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return group


def test_the_cycle_finder_reports_a_circle_through_imports_inside_functions():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_first_party_imports_form_no_circle():
    """No module imports, directly or through others, at any depth (inside functions too), a module that imports
    it: a circle means the piece both need lives in the wrong module."""
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)
