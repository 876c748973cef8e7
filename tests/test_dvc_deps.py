"""dvc.yaml is exact: every stage lists as deps its script, stages/_bootstrap.py and every pdiff module it
imports, directly or through other pdiff modules (so `dvc status` sees every code change that matters)."""
import ast
from pathlib import Path

import yaml

from tests.conftest import ROOT


def _pdiff_imports(path: Path) -> set[str]:
    """Module files (relative paths) under pdiff/ imported by ``path`` at any level of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name == "pdiff" or name.startswith("pdiff."):
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    module = ROOT.joinpath(*parts[:i]).with_suffix(".py")
                    package = ROOT.joinpath(*parts[:i], "__init__.py")
                    for candidate in (module, package):
                        if candidate.exists():
                            found.add(str(candidate.relative_to(ROOT)))
    return found


def transitive_imports(script: Path) -> set[str]:
    seen, todo = set(), list(_pdiff_imports(script))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_pdiff_imports(ROOT / module))
    return seen


def test_every_stage_depends_on_all_code_it_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        script = stage["cmd"].split()[1]
        deps = {d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]}
        needed = {script, "stages/_bootstrap.py"} | transitive_imports(ROOT / script)
        if needed - deps:
            missing[name] = sorted(needed - deps)
    assert not missing, f"dvc.yaml deps lack imported code: {missing}"
