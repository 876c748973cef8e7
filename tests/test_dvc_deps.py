"""dvc.yaml is exact at folder level: every stage's code deps are its script, stages/_bootstrap.py,
pdiff/__init__.py and the pdiff subpackage folders it imports, directly or through other pdiff modules;
no more (an unused folder would rerun the stage for nothing) and no less (a missed one would let a code
change go unseen by `dvc status`)."""
import ast
from pathlib import Path

import yaml

from tests.conftest import ROOT

CODE_ROOTS = ("pdiff/", "stages/", "tools/")


def _imported_modules(path: Path) -> set[str]:
    """Dotted names of pdiff modules imported by ``path`` at any level of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "pdiff"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "pdiff":
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _files_of(dotted: str) -> list[Path]:
    """The module file, or the package's __init__.py, that a dotted name refers to (none for a symbol)."""
    parts = dotted.split(".")
    candidates = [ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")]
    return [c for c in candidates if c.exists()]


def code_files(script: Path) -> set[Path]:
    """Every pdiff module file ``script`` imports, directly or through other pdiff modules."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        for dotted in _imported_modules(path):
            for f in _files_of(dotted):
                if f not in seen:
                    seen.add(f)
                    todo.append(f)
    return seen


def code_deps(script: Path) -> set[str]:
    """The folder-level code deps of a stage script: pdiff/__init__.py plus pdiff/<subpackage> folders."""
    deps = set()
    for f in code_files(script):
        rel = f.relative_to(ROOT).parts
        deps.add("pdiff/__init__.py" if len(rel) == 2 else f"{rel[0]}/{rel[1]}")
    return deps


def _stages():
    """Every stage definition of dvc.yaml; a `foreach` stage (the task stages) by the stage it generates."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def test_every_stage_depends_on_exactly_the_code_it_imports():
    wrong = {}
    for name, stage in _stages().items():
        script = stage["cmd"].split()[1]
        deps = {d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]}
        listed = {d for d in deps if d.startswith(CODE_ROOTS)}
        needed = {script, "stages/_bootstrap.py", "pdiff/__init__.py"} | code_deps(ROOT / script)
        if listed != needed:
            wrong[name] = {"missing": sorted(needed - listed), "unused": sorted(listed - needed)}
    assert not wrong, f"dvc.yaml code deps differ from the imports: {wrong}"


def test_generative_part_does_not_import_data_or_networks():
    """The diffusion side diffuses any tensor: it must not depend on datasets or architectures."""
    deps = code_deps(ROOT / "pdiff/generative/ldm.py") | code_deps(ROOT / "pdiff/generative/autoencoder.py")
    assert not deps & {"pdiff/data", "pdiff/nets", "pdiff/base", "pdiff/analysis"}, deps


def test_method_library_does_not_import_tools_or_stages():
    for path in (ROOT / "pdiff").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in ("tools", "stages") for n in names), path


def test_dvcignore_hides_bytecode():
    """Folder deps hash every file inside: bytecode must never change a stage's hash."""
    lines = (ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in lines and "*.pyc" in lines


def test_stages_that_import_user_code_depend_on_it_and_train_on_the_weights():
    """Your own architecture lives in user/models/ (imported by pdiff.nets.custom), your own generator in
    user/generators/ (imported by pdiff.generative.registry): a stage lists a folder exactly when its code reaches
    the module that imports from it, so editing your generator reruns the generator's stages and never `train`;
    `train` also lists weights/ (train.init) and `prepare` what it reads at data.root."""
    from pdiff.generative.registry import GENERATOR
    from pdiff.nets.custom import ARCH
    from pdiff.nets.weights import INIT_DIR

    importers = {ARCH.folder: ROOT / "pdiff/nets/custom.py", GENERATOR.folder: ROOT / "pdiff/generative/registry.py"}
    assert ARCH.folder != GENERATOR.folder and not any(p.is_relative_to(q) for p in map(Path, importers)
                                                         for q in map(Path, importers) if p != q)
    imports = {folder: set() for folder in importers}
    for name, stage in _stages().items():
        deps = {d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]}
        files = code_files(ROOT / stage["cmd"].split()[1])
        for folder, importer in importers.items():
            if importer in files:
                imports[folder].add(name)
            assert (folder in deps) == (name in imports[folder]), (name, folder)
        assert "user" not in deps, name  # the whole folder would rerun train on a generator edit
        assert (INIT_DIR in deps) == (name == "train"), name
        assert ("${data.root}" in deps) == (name == "prepare"), name
    assert {"train", "collect", "evaluate", "analyze"} <= imports[ARCH.folder]  # the stages that build the model
    assert {"train_ae", "train_ldm", "generate", "analyze"} <= imports[GENERATOR.folder]  # the generator's stages
    assert "train" not in imports[GENERATOR.folder]
    assert {"seed", "data"} <= set(_stages()["prepare"]["params"])  # data.root is declared where interpolated
