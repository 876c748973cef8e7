"""What every stage script shares: turning user errors into one clear paragraph, and each stage's own timing.

`run_stage` writes how long the stage took as JSON (`timing_path`) for the tools that report stage times
(`make gpu-check`, the paper-scale runner, the ablation runner), so that nothing parses log text. Timings depend
on the machine, so they are neither a DVC output nor a committed metric: they go to the git-ignored folder
TIMINGS_DIR of the repository dvc runs in, under ``exp/<name>/`` for a DVC experiment (dvc gives every stage
command the repository in DVC_ROOT and, in an experiment, its name in DVC_EXP_NAME; a queued experiment runs in a
temporary copy but DVC_ROOT names the workspace, so its timings survive it).
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pdiff import PdiffError

TIMINGS_DIR = ".pdiff/timings"


def timing_folder(root: str | Path | None = None, exp: str | None = None) -> Path:
    """The folder of the stage timings of the repository ``root`` (default: DVC_ROOT, else the current
    folder), of experiment ``exp`` (default: DVC_EXP_NAME) or of plain runs."""
    root = Path(root if root is not None else os.environ.get("DVC_ROOT") or ".")
    exp = exp if exp is not None else os.environ.get("DVC_EXP_NAME")
    return root / TIMINGS_DIR / ("exp/" + exp if exp else "")


def write_timing(name: str, seconds: float, folder: Path | None = None) -> None:
    """{"stage", "seconds", "finished_at" (Unix time), "kernels" (the CPU kernel setting in effect), "cpu",
    "isa", "arch"} -> ``folder``/<name>.json, atomically. A timing is a report, not a result: when it cannot be
    written the stage still succeeds, with a warning."""
    from pdiff.core.artifacts import save_json
    from pdiff.core.kernels import record

    try:
        save_json({"stage": name, "seconds": round(seconds, 3), "finished_at": round(time.time(), 3), **record()},
                  (folder or timing_folder()) / f"{name}.json")
    except OSError as exc:
        print(f"warning: stage `{name}`: its timing was not written ({exc})", file=sys.stderr)


def read_timings(folder: str | Path, since: float | None = None) -> dict[str, float]:
    """{stage: seconds} of the timings in ``folder`` (`timing_folder`), only those finished at or after
    ``since`` (Unix time) when given: a folder keeps the timings of stages that an earlier run ran."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        entry = json.loads(path.read_text())
        if since is None or entry["finished_at"] >= since:
            out[entry["stage"]] = entry["seconds"]
    return out


def read_kernels(folder: str | Path, since: float | None = None) -> dict:
    """What the timings in ``folder`` (`timing_folder`) record of the kernels: {"kernels", "cpu", "isa"}, each
    a single value where every stage agrees, else the list of values found; {} when no timing records them."""
    found: dict[str, list] = {}
    for path in sorted(Path(folder).glob("*.json")):
        entry = json.loads(path.read_text())
        if "kernels" in entry and (since is None or entry["finished_at"] >= since):
            for key in ("kernels", "cpu", "isa"):
                if entry.get(key) not in found.setdefault(key, []):
                    found[key].append(entry.get(key))
    return {k: v[0] if len(v) == 1 else v for k, v in found.items()}


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run ``main``; a PdiffError (bad params, missing or corrupt file, NaN loss) exits 1 with its
    message and no traceback. On success the stage's seconds are printed and written (`write_timing`)."""
    start = time.perf_counter()
    try:
        main()
    except PdiffError as exc:
        print(f"error in stage `{name}`: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"stage `{name}` interrupted; no partial output was written.", file=sys.stderr)
        sys.exit(130)
    seconds = time.perf_counter() - start
    write_timing(name, seconds)
    print(f"stage `{name}` done in {seconds:.1f} s", file=sys.stderr)


def run_script(main: Callable[[], None]) -> None:
    """Like `run_stage`, for the command-line tools (`python -m tools.<name>`): a PdiffError exits 1 with its
    message only."""
    try:
        main()
    except PdiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
