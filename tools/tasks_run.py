"""The task-conditioned pipeline stage by stage, timed: ``dvc repro --single-item`` of prepare, train and each
task stage of dvc.yaml in order (tasks_collect@run ... tasks_evaluate@run, which exist when params.yaml has
``task_pipeline: [run]``, as the task presets set it; ``--force``: rerun every one, the measured run from a
fresh state), then metrics/tasks/results.json plus ``stage_seconds`` (and whether each stage ran or came from
the cache, the CPU count and the load when it started; keyed by the stage names without ``@run``) ->
``--out``/results.json, with the per-task figure beside it.

    python -m tools.tasks_run --out reports/mnist5k-tasks [--force] [--from tasks_collect]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from pdiff import PdiffError
from pdiff.core.artifacts import save_json
from pdiff.core.config import load_params
from pdiff.core.stage import read_kernels, run_script, timing_folder
from tools.dvc_runner import run_dvc

# The task stages: `foreach` stages of dvc.yaml over params.yaml's task_pipeline, generated (as <name>@run) by
# `task_pipeline: [run]`. TARGET, the last, is what `make repro PRESET=*-tasks` and the task recipes run.
TASK_STAGES = ["tasks_collect@run", "tasks_ae@run", "tasks_ldm@run", "tasks_evaluate@run"]
TARGET = TASK_STAGES[-1]
STAGES = ["prepare", "train", *TASK_STAGES]


def require_task_stages(params) -> None:
    """Stop, saying how to fix it, unless params.yaml generates the task stages (``task_pipeline: [run]``)."""
    if params.task_pipeline != ["run"]:
        raise PdiffError(f"params.yaml has `task_pipeline: {params.task_pipeline}`, so dvc.yaml has no task stages "
                         f"({', '.join(TASK_STAGES)}); apply a task preset first (`python -m tools.presets apply "
                         "mnist5k-tasks`) or set `task_pipeline: [run]`.")


def run(out: Path, force: bool, first: str = "prepare", log=print) -> dict:
    """Run (``force``: rerun) the stages from ``first`` on; stages before it are neither run nor timed."""
    seconds, ran = {}, {}
    load, started = round(os.getloadavg()[0], 2), time.time()
    names = [s.split("@")[0] for s in STAGES]
    if first not in names:
        raise PdiffError(f"--from {first!r}: not a stage; choose one of {', '.join(names)}.")
    require_task_stages(load_params())
    for stage in STAGES[names.index(first):]:
        start = time.perf_counter()
        res = run_dvc(["repro", "--single-item", *(["--force"] if force else []), stage])
        name = stage.split("@")[0]
        seconds[name] = round(time.perf_counter() - start, 1)
        ran[name] = "Running stage" in res.stdout
        log(f"{name}: {seconds[name]} s ({'ran' if ran[name] else 'cached'})")
    results = json.loads(Path("metrics/tasks/results.json").read_text())
    results["stage_seconds"] = seconds | {"total": round(sum(seconds.values()), 1)}
    results["stage_ran"] = ran
    results["kernels"] = read_kernels(timing_folder(), since=started)  # {} for stages that came from the cache
    results["machine"] = {"cpus": os.cpu_count(), "load_avg_1m_at_start": load,
                          "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "threads": load_params().threads}
    save_json(results, out / "results.json")
    shutil.copyfile("plots/tasks/unseen.png", out / "unseen.png")
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/mnist5k-tasks"))
    ap.add_argument("--force", action="store_true", help="rerun every stage (a measured run from a fresh state)")
    ap.add_argument("--from", dest="first", default="prepare", help="first stage to run and time (default: prepare)")
    a = ap.parse_args(argv)
    r = run(a.out, a.force, a.first)
    print(json.dumps(r["summary"], indent=1))


if __name__ == "__main__":
    sys.exit(run_script(main))
