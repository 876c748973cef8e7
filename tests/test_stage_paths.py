"""Each path is written in one place: a stage's entry in dvc.yaml. Its ``cmd`` passes the stage every input and
output path (``--name path``, pdiff.core.stage.stage_paths), the same paths its deps and outs declare, and no
stage script spells a path of its own."""
import ast
import shlex

import pytest
import yaml

from pdiff.core.stage import stage_command, stage_paths
from tests.conftest import ROOT

PATH_ROOTS = ("data/", "models/", "metrics/", "plots/", "reports/", "report.md")
# Inputs named by a params value, not by a path: prepare reads data.root, every stage that builds the model may
# import your model (model.arch: user.models.<file>:<function>), every stage that fits, samples or decodes may
# import your generator (generator: user.generators.<file>:<Class>), train may start from weights/ (train.init).
PARAM_NAMED = {"user/models", "user/generators", "weights", "${data.root}"}
# Written by a stage but no DVC output, on purpose: analyze's t-SNE picture depends on the CPU
# (pdiff.analysis.report), so it is neither cached nor compared.
UNDECLARED = {"plots/embedding"}


def stages() -> dict[str, dict]:
    """Stage name -> entry (the ``do`` template of a ``foreach`` stage)."""
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: entry.get("do", entry) for name, entry in raw.items()}


def declared(entry: dict) -> set[str]:
    """The data paths a stage declares: deps other than code and params-named inputs, outs, metrics, plots."""
    found = set()
    for key in ("deps", "outs", "metrics", "plots"):
        for item in entry.get(key, []):
            path = next(iter(item)) if isinstance(item, dict) else item
            if key == "deps" and (path.startswith(("stages/", "pdiff/")) or path in PARAM_NAMED):
                continue
            found.add(path)
    return found


def passed(entry: dict) -> dict[str, str]:
    """``--name path`` pairs of the stage's command."""
    argv = shlex.split(entry["cmd"])
    assert argv[:1] == ["python"] and argv[1].startswith("stages/"), entry["cmd"]
    rest = argv[2:]
    assert len(rest) % 2 == 0 and all(a.startswith("--") for a in rest[::2]), entry["cmd"]
    return dict(zip(rest[::2], rest[1::2], strict=True))


def covers(arg: str, path: str) -> bool:
    return path == arg or path.startswith(arg.rstrip("/") + "/")


@pytest.mark.parametrize("name", sorted(stages()))
def test_a_stage_command_passes_exactly_the_paths_its_entry_declares(name):
    entry = stages()[name]
    args = set(passed(entry).values())
    paths = declared(entry)
    unpassed = sorted(p for p in paths if not any(covers(a, p) for a in args))
    undeclared = sorted(a for a in args - UNDECLARED if not any(covers(a, p) or covers(p, a) for p in paths))
    assert not unpassed, f"{name}: declared in dvc.yaml but not passed in its cmd: {unpassed}"
    assert not undeclared, f"{name}: passed in its cmd but declared nowhere in its entry: {undeclared}"


def test_no_stage_script_spells_a_data_path():
    """Every path a stage reads or writes comes from its command line; a file name inside a folder it is given
    (``f"{paths.plots}/loss.png"``) is fine, a path from the repository root is not."""
    found = []
    for script in sorted((ROOT / "stages").glob("*.py")):
        tree = ast.parse(script.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.FunctionDef) and n.body and isinstance(n.body[0], ast.Expr)}
        found += [f"{script.name}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and node.value.startswith(PATH_ROOTS)]
    assert not found, found


def test_every_stage_script_reads_its_paths_from_its_command_line():
    for name, entry in stages().items():
        script = (ROOT / shlex.split(entry["cmd"])[1]).read_text()
        assert f'stage_paths("{name}"' in script, f"{name}: no stage_paths(\"{name}\", ...) in its script"


def test_stage_paths_needs_every_name_and_stage_command_reads_dvc_yaml(capsys):
    got = stage_paths("train", "data", "model_file", argv=["--data", "d", "--model-file", "m.pt"])
    assert (got.data, got.model_file) == ("d", "m.pt")
    with pytest.raises(SystemExit):
        stage_paths("train", "data", "model_file", argv=["--data", "d"])
    assert "--model-file" in capsys.readouterr().err
    argv = stage_command("train", ROOT / "dvc.yaml", python="py")
    assert argv[:2] == ["py", "stages/train.py"] and "--model" in argv
