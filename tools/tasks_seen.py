"""Unseen-task accuracy against the number of seen tasks: gathers ``results.json`` of runs that differ only in
``tasks.num_seen`` (``reports/mnist5k-tasks/results.json`` and ``reports/mnist5k-tasks/seen-*/results.json``, each
written by `tools.tasks_run`) -> ``seen_tasks.json`` (one row per run) and ``seen_tasks.png`` beside them.

    python -m tools.tasks_seen reports/mnist5k-tasks
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pdiff import PdiffError
from pdiff.core.artifacts import save_json
from pdiff.core.stage import run_script

METHODS = ("generated", "trained", "nearest_task", "composed_head", "all_tasks_average", "wrong_code")


def gather(folder: Path) -> list[dict]:
    rows = []
    for path in [folder / "results.json", *sorted(folder.glob("seen-*/results.json"))]:
        if path.exists():
            r = json.loads(path.read_text())
            rows.append({"num_seen": r["num_seen"], "source": str(path.relative_to(folder)),
                         "unseen_tasks": r["unseen_tasks"]}
                        | {m: r["summary"][m]["acc_mean"] if r["summary"][m] else None for m in METHODS}
                        | {"generated_beats_nearest": r["paired"]["nearest_task"]["wins"]})
    if not rows:
        raise PdiffError(f"{folder}: no results.json found; run `python -m tools.tasks_run` first.")
    if any(row["unseen_tasks"] != rows[0]["unseen_tasks"] for row in rows):
        raise PdiffError(f"{folder}: the runs were scored on different unseen tasks (another seed or num_unseen); "
                         "compare runs that differ only in tasks.num_seen.")
    for row in rows:
        del row["unseen_tasks"]
    return sorted(rows, key=lambda r: r["num_seen"])


def figure(rows: list[dict], path: Path) -> None:
    from pdiff.core.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    xs = [r["num_seen"] for r in rows]
    for method in METHODS:
        ys = [r[method] for r in rows]
        if all(y is not None for y in ys):
            ax.plot(xs, ys, "o-", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("seen tasks (log scale)")
    ax.set_ylabel("mean accuracy over unseen tasks (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/mnist5k-tasks")
    rows = gather(folder)
    save_json(rows, folder / "seen_tasks.json")
    figure(rows, folder / "seen_tasks.png")
    for r in rows:
        print(r)


if __name__ == "__main__":
    run_script(main)
