"""Running the `dvc` command line from Python (the ablation runner, the offline plots)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pdiff import PdiffError
from tools.workcopy import run, subprocess_env


def dvc_executable() -> str:
    """`dvc` on PATH, else the one installed beside this Python (a venv used without activating it)."""
    found = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    if not found:
        raise PdiffError("the `dvc` command was not found on PATH or beside this Python; install requirements.txt "
                         "(`make venv`) or activate .venv.")
    return found


def run_dvc(args: list[str], cwd: str | Path = ".", check: bool = True, env: dict | None = None,
            hint: str = "") -> subprocess.CompletedProcess:
    """``dvc ARGS`` in ``cwd``; with ``check`` a non-zero exit becomes a PdiffError quoting dvc's message,
    followed by ``hint`` (what to check)."""
    dvc = dvc_executable()
    # dvc starts more dvc processes by name (queue workers, `dvc exp exec-run`): put its folder on their PATH.
    res = run([dvc, *args], cwd, check=False, env=subprocess_env(env, Path(dvc).parent))
    if check and res.returncode != 0:
        message = (res.stderr or res.stdout).strip()[-800:].rstrip(".")
        raise PdiffError(f"`dvc {' '.join(args)}` failed ({res.returncode}): {message}." + (f" {hint}" if hint else ""))
    return res
