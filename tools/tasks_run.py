"""The task-conditioned pipeline stage by stage, timed: ``dvc repro --single-item`` of prepare, train and each
stage of tasks/dvc.yaml in order (``--force``: rerun every one, the measured run from a fresh state), then
metrics/tasks/results.json plus ``stage_seconds`` (and whether each stage ran or came from the cache, the CPU
count and the load when it started) -> ``--out``/results.json, with the per-task figure beside it.

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

STAGES = ["prepare", "train", "tasks/dvc.yaml:tasks_collect", "tasks/dvc.yaml:tasks_ae", "tasks/dvc.yaml:tasks_ldm",
          "tasks/dvc.yaml:tasks_evaluate"]


def run(out: Path, force: bool, first: str = "prepare", log=print) -> dict:
    """Run (``force``: rerun) the stages from ``first`` on; stages before it are neither run nor timed."""
    seconds, ran = {}, {}
    load, started = round(os.getloadavg()[0], 2), time.time()
    names = [s.rsplit(":", 1)[-1] for s in STAGES]
    if first not in names:
        raise PdiffError(f"--from {first!r}: not a stage; choose one of {', '.join(names)}.")
    for stage in STAGES[names.index(first):]:
        start = time.perf_counter()
        res = run_dvc(["repro", "--single-item", *(["--force"] if force else []), stage])
        name = stage.rsplit(":", 1)[-1]
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
