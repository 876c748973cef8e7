"""Shared test helpers (import them as ``from tests.conftest import ...``) and fixtures.

Test files never import one another: whatever two files share lives here, so that any file, test or order
runs on its own (checked with pytest-randomly, see docs/testing.md)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import bench  # noqa: E402  (after the repository root is on sys.path)

# Tiny params for end-to-end runs of the real stages: the whole pipeline in well under a minute on 2 cores.
TINY = {
    "data": {"name": "digits", "val_size": 200, "test_size": 300},
    "model": {"width": 4},
    "train": {"epochs": 3},
    "collect": {"num_snapshots": 10, "batch_size": 64},
    "ae": {"channels": [8, 16], "steps": 60, "batch_size": 10},
    "ldm": {"channels": 8, "steps": 60, "timesteps": 50, "batch_size": 10},
    "generate": {"num_models": 8},
    "baselines": {"decoded_num": 8},
}
# What a working-tree copy of the project needs to run its pipeline: one list, shared with `make bench`.
COPY = bench.COPY


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one)")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    torch.manual_seed(0)


def stage_env() -> dict:
    """The environment for subprocesses: this Python's folder (dvc, the venv) first on PATH, no analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def run(cmd, cwd, check=True) -> subprocess.CompletedProcess:
    """``cmd`` (a list, or a shell string) in ``cwd``; with ``check`` a non-zero exit fails the test, quoting
    the output's tail."""
    res = subprocess.run(cmd, cwd=cwd, env=stage_env(), capture_output=True, text=True, shell=isinstance(cmd, str))
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def merge(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s keys replaced, nested dicts merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def make_tiny_repo(dest: Path, overrides: dict | None = None) -> Path:
    """A git+DVC copy of the project's pipeline files with TINY params (plus ``overrides``), committed so that
    `dvc exp` works."""
    for item in COPY:
        src = ROOT / item
        target = dest / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), merge(TINY, overrides or {}))
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git init -q && git config user.email t@t && git config user.name t && git add -A && "
        "git commit -qm init", dest)
    return dest
