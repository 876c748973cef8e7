"""Working copies of the project and the commands run in them: the one helper behind the tests' tiny
repositories, `make bench`, `make soak`, `make gpu-check`, the paper-scale runner and the dvc runner.

- `subprocess_env`: the environment every child gets: this Python's folder (the venv: `dvc`, `python`) first on
  PATH, DVC analytics off, unbuffered Python output (log lines arrive when printed).
- `run`: a command to completion; a failure raises with the command and the tail of its output.
- `timed_run`: a command in its own process group, its output lines time-stamped, optionally SIGKILLed.
- `copy_pipeline` / `clone_head`: a git+DVC copy of the working tree's pipeline files (`COPY`) or a clone of
  the last commit.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a working-tree copy of the project needs to run its pipeline (stages run by dvc or one by one).
COPY = ("pdiff", "stages", "user", "weights", "data/raw/README.md", "dvc.yaml", "params.yaml", ".dvc/config",
        ".dvc/plots", ".dvcignore", ".gitignore")
TAIL = 3000  # characters of stdout and of stderr quoted when a command fails


def subprocess_env(base: dict | None = None, bin_dir: str | Path | None = None) -> dict:
    """``base`` (default: this process's environment) with ``bin_dir`` (default: this Python's folder) first
    on PATH, DVC analytics off and Python output unbuffered."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(bin_dir or Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(cmd: list[str] | str, cwd: str | Path, check: bool = True, env: dict | None = None,
        error: type[Exception] = RuntimeError) -> subprocess.CompletedProcess:
    """``cmd`` (a list, or a shell string) in ``cwd`` with `subprocess_env` (or ``env``); with ``check`` a
    non-zero exit raises ``error`` naming the command, the folder and the tail of its output."""
    res = subprocess.run(cmd, cwd=cwd, env=env or subprocess_env(), capture_output=True, text=True,
                         shell=isinstance(cmd, str))
    if check and res.returncode != 0:
        raise error(f"{cmd} failed ({res.returncode}) in {cwd}:\n{res.stdout[-TAIL:]}\n{res.stderr[-TAIL:]}")
    return res


def timed_run(cmd: list[str], cwd: str | Path, kill_after: float | None = None,
              kill_in: tuple[re.Pattern, float] | None = None) -> dict:
    """``cmd`` in its own process group with `subprocess_env`, stdout and stderr as one stream of lines
    time-stamped in seconds since the start. The whole group (the command and every process it started) gets
    SIGKILL, unless it has exited, ``kill_after`` seconds after the start, or with ``kill_in = (pattern, s)``
    ``s`` seconds after the first output line that matches ``pattern``. -> {"returncode", "killed",
    "elapsed_s", "lines": [(t, line), ...], "kill_at_s" (None when not killed)}."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines: list[tuple[float, str]] = []
    kill_at = {"t": kill_after}  # seconds since start; set by the reader when kill_in's line arrives

    def read():
        for line in proc.stdout:
            t = time.monotonic() - start
            lines.append((t, line.rstrip("\n")))
            if kill_in is not None and kill_at["t"] is None and kill_in[0].search(line):
                kill_at["t"] = t + kill_in[1]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed = False
    while proc.poll() is None:
        if kill_at["t"] is not None and time.monotonic() - start >= kill_at["t"]:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            proc.wait()
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    reader.join(timeout=30)
    return {"returncode": proc.returncode, "killed": killed, "elapsed_s": round(elapsed, 3), "lines": lines,
            "kill_at_s": round(kill_at["t"], 3) if killed else None}


def copy_files(dest: Path, items=COPY, root: Path = ROOT) -> Path:
    """``items`` (files or folders, relative to ``root``; bytecode left out) copied under ``dest``. Items
    that do not exist are skipped."""
    for item in items:
        src, target = root / item, dest / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, target)
    return dest


def commit_all(repo: Path, message: str = "init") -> None:
    """Everything in ``repo`` committed (a new git repository when there is none), so that `dvc exp` works."""
    run("git init -q && git config user.email pdiff@localhost && git config user.name pdiff && git add -A && "
        f"git commit -qm '{message}'", repo)


def copy_pipeline(dest: Path, params_text: str | None = None) -> Path:
    """A committed git+DVC copy of the working tree's pipeline files (uncommitted edits included) in ``dest``;
    ``params_text`` replaces params.yaml."""
    copy_files(dest)
    if params_text is not None:
        (dest / "params.yaml").write_text(params_text)
    commit_all(dest)
    return dest


def clone_head(dest: Path, root: Path = ROOT) -> str:
    """A fresh clone of the commit checked out in ``root`` (what is committed is what runs) -> its hash."""
    commit = run(["git", "rev-parse", "HEAD"], root).stdout.strip()
    run(["git", "clone", "-q", "--no-checkout", str(root), str(dest)], root)
    run(["git", "checkout", "-q", commit], dest)
    return commit
