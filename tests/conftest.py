"""Shared test helpers (import them as ``from tests.conftest import ...``) and fixtures.

Test files never import one another: whatever two files share lives here, so that any file, test or order
runs on its own (checked with pytest-randomly, see docs/testing.md). The API (docs/testing.md):

- fixture ``tiny_repo`` (session): the pipeline on TINY params, reproduced once per test run (`dvc repro`,
  dvc.lock and outputs committed). Shared: a test that changes it restores it (params, outputs) before it ends.
- fixture ``tiny_copy``: a private copy of ``tiny_repo`` (git, DVC cache and outputs included) in ``tmp_path``,
  to change at will; `copy_repo` makes one anywhere (e.g. once per module).
- `make_tiny_repo(dest, overrides)`: a committed copy of the pipeline files with TINY params plus ``overrides``,
  nothing run yet (for tests whose params differ from TINY).
- `run(cmd, cwd)`: a command whose failure fails the test with its output's tail; `stage_env()`: the
  environment it runs with (this Python's folder first on PATH, DVC analytics off).
- `png_size(path)`: (width, height) in pixels of a PNG, for figure tests that check more than a file's existence.
"""
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import workcopy  # noqa: E402  (after the repository root is on sys.path)

# Tiny params for end-to-end runs of the real stages: the whole pipeline in well under a minute on 2 cores.
TINY = {
    "data": {"name": "digits", "val_size": 200, "test_size": 300},
    "model": {"width": 4},
    "train": {"epochs": 3},
    "collect": {"num_snapshots": 10, "batch_size": 64},
    "conv_ae": {"train_ae": {"channels": [8, 16], "steps": 60, "batch_size": 10},
                "train_ldm": {"channels": 8, "steps": 60, "timesteps": 50, "batch_size": 10}},
    "generate": {"num_models": 8},
    "kernels": "native",  # tests compare runs on one machine: the fast kernels will do
    "baselines": {"decoded_num": 8},
}


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one)")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    torch.manual_seed(0)


def stage_env() -> dict:
    """The environment for subprocesses: this Python's folder (dvc, the venv) first on PATH, no analytics."""
    return workcopy.subprocess_env()


def run(cmd, cwd, check=True):
    """``cmd`` (a list, or a shell string) in ``cwd``; with ``check`` a non-zero exit fails the test, quoting
    the output's tail."""
    return workcopy.run(cmd, cwd, check, error=AssertionError)


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels of the PNG at ``path``, from its header; fails the test when it is no PNG."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def merge(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s keys replaced, nested dicts merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def make_tiny_repo(dest: Path, overrides: dict | None = None) -> Path:
    """A git+DVC copy of the project's pipeline files with TINY params (plus ``overrides``), committed so that
    `dvc exp` works. Nothing is run."""
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), merge(TINY, overrides or {}))
    return workcopy.copy_pipeline(dest, yaml.safe_dump(params, sort_keys=False))


def copy_repo(src: Path, dest: Path) -> Path:
    """A private copy of the repository ``src`` (working tree, git, DVC cache) at ``dest``."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """The pipeline on TINY params, reproduced once per test run, dvc.lock and metrics committed. Shared by
    every test that asks for it: leave it as you found it, or take `tiny_copy`."""
    repo = make_tiny_repo(tmp_path_factory.mktemp("tiny") / "repo")
    run(["dvc", "repro", "-q"], repo)
    run("git add -A && git commit -qm reproduced", repo)
    return repo


@pytest.fixture
def tiny_copy(tiny_repo, tmp_path) -> Path:
    """A private copy of ``tiny_repo`` (outputs and DVC cache included) for a test that changes it."""
    return copy_repo(tiny_repo, tmp_path / "tiny")


def user_package(tmp_path: Path, monkeypatch, files: dict[str, str], elsewhere: str, subdir: str):
    """A throwaway repository root at ``tmp_path`` whose user folder is a fresh package ``<pkg>`` (no clash with
    user/ or another test); ``files`` (name -> text) go into its ``subdir`` (models, generators), with
    ``elsewhere`` as elsewhere.py outside it; the import-path code (pdiff.core.plugins, used by model.arch and
    generator) looks there. Yields the import path of that subfolder, ``<pkg>.<subdir>``, and forgets its
    modules afterwards."""
    import uuid

    from pdiff.core import plugins

    pkg = f"user_{uuid.uuid4().hex[:8]}"
    (tmp_path / pkg / subdir).mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / pkg / subdir / name).write_text(text)
    (tmp_path / "elsewhere.py").write_text(elsewhere)
    monkeypatch.setattr(plugins, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(plugins, "USER_DIR", pkg)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{pkg}.{subdir}"
    for name in [m for m in sys.modules if m.startswith(pkg) or m == "elsewhere"]:
        del sys.modules[name]
