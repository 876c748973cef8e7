"""One entry layer: every tool is started as ``python -m tools.<name>``, has ``main(argv=None)`` and a
``__main__`` guard, and answers ``--help``; every such command the docs and the Makefile quote names a tool
that exists."""
from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

COMMAND = re.compile(r"python -m tools\.([a-z_]+)")
DOCS = [ROOT / "README.md", ROOT / "Makefile", ROOT / ".ci/run", *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "data/README.md", ROOT / "user/README.md"]


def has_main(module: str) -> tuple[bool, bool]:
    """(``main`` takes ``argv`` with a default, the module ends in an ``if __name__ == "__main__":`` block)."""
    tree = ast.parse((ROOT / "tools" / f"{module}.py").read_text())
    main = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    takes_argv = bool(main) and [a.arg for a in main[0].args.args] == ["argv"] and len(main[0].args.defaults) == 1
    guard = any(isinstance(n, ast.If) and isinstance(n.test, ast.Compare) and isinstance(n.test.left, ast.Name)
                and n.test.left.id == "__name__" for n in tree.body)
    return takes_argv, guard


def makefile_tools() -> list[str]:
    return sorted(set(COMMAND.findall((ROOT / "Makefile").read_text())))


def test_there_is_one_folder_of_tools():
    """No folder of scripts or benchmarks beside tools: every command-line program lives in tools/."""
    assert not [*(ROOT / "scripts").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]


def test_the_makefile_starts_every_python_program_as_a_module():
    """No recipe runs a Python file by path: tools through `python -m tools.X`, tests through `python -m pytest`."""
    recipes = [line.strip() for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t")]
    by_path = [line for line in recipes if re.search(r"\bpython3? (?!-m )\S+\.py\b", line)]
    assert not by_path, by_path
    assert {"bench", "soak", "ablations", "offline_plots", "gpu_check", "presets"} <= set(makefile_tools())


def test_every_tool_with_a_command_line_has_main_argv_and_a_main_guard():
    bad = []
    for path in sorted((ROOT / "tools").glob("*.py")):
        takes_argv, guard = has_main(path.stem)
        text = path.read_text()
        if ("def main(" in text or guard) and not (takes_argv and guard):
            bad.append(f"tools/{path.name}: main(argv=None) {takes_argv}, __main__ guard {guard}")
    assert not bad, bad


def test_every_quoted_tool_command_names_a_tool_with_a_command_line():
    quoted = {(path.relative_to(ROOT).as_posix(), name) for path in DOCS if path.exists()
              for name in COMMAND.findall(path.read_text())}
    bad = [f"{where}: python -m tools.{name}" for where, name in sorted(quoted)
           if not (ROOT / "tools" / f"{name}.py").exists() or has_main(name) != (True, True)]
    assert not bad, bad


@pytest.mark.longrun
def test_every_makefile_tool_answers_help():
    """Each command the Makefile starts imports and parses its arguments (the cheapest run of the real module)."""
    failed = []
    for name in makefile_tools():
        res = subprocess.run([sys.executable, "-m", f"tools.{name}", "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        if res.returncode != 0 or "usage" not in res.stdout.lower():
            failed.append(f"tools.{name}: exit {res.returncode}: {(res.stderr or res.stdout)[-500:]}")
    assert not failed, "\n".join(failed)


def makefile_rule(target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of ``target`` in the Makefile."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}:(?!=)", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return lines[start].split(":", 1)[1].split(), recipe


def test_make_test_installs_no_system_package_and_ci_installs_the_browser_first():
    from tools.browser import NAMES

    prereqs, recipe = makefile_rule("test")
    assert "browser" not in prereqs and not any("apt-get" in line for line in recipe), (prereqs, recipe)
    _, browser_recipe = makefile_rule("browser")
    assert all(f"command -v {name} " in " ".join(browser_recipe) for name in NAMES)  # the names the test looks for
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert "set -euo pipefail" in ci and ci.index("make browser") < ci.index("make test")
