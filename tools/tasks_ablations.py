"""Ablations of the task-conditioned pipeline (docs/tasks.md): unseen-task accuracy against the number of seen
tasks, and how the task code enters the denoiser. The recipes (``seen_tasks``, ``seen_tasks_hard``,
``task_cond`` in `tools.ablations`) queue `dvc exp run ... tasks_evaluate@run` with a task preset's values
(`task_pipeline: [run]` among them, which generates the task stages); the report
reads each finished experiment's ``metrics/tasks/results.json`` from `dvc exp show`:

    python -m tools.ablations run seen_tasks       # -> reports/ablations/seen_tasks.{md,json,png}

``python -m tools.tasks_ablations FOLDER`` gathers the older runs made with `tools.tasks_run` instead
(``FOLDER/results.json`` and ``FOLDER/seen-*/results.json``) -> ``FOLDER/seen_tasks.json`` and ``.png``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pdiff import PdiffError
from pdiff.core.artifacts import save_json, save_text
from pdiff.core.stage import run_script
from pdiff.tasks.evaluation import METHODS, SEEN_SETS
from tools.doc_numbers import markdown_table, quote
from tools.presets import lookup

TASKS_METRICS = "metrics/tasks/results.json"
HARD_TASKS = "reports/mnist5k-hard-tasks"  # the folder of the hard task preset's recipes (docs/tasks.md)
UNSEEN_DRAWN_BY = ("seed", "data.name", "tasks.num_val", "tasks.num_unseen")
# Validation-task columns of a row (`val_<method>`: mean accuracy on the validation tasks at the run's guidance),
# where a sweep shows where generation starts or stops beating retrieval and the linear map without the test.
VAL_COLUMNS = ("generated", "trained", "nearest_task", "code_regression")


def row(results: dict) -> dict:
    """One table row of a task run's results.json: mean accuracy over the unseen tasks per method."""
    val = (results.get("val") or {}).get(str(results.get("guidance"))) or {}
    return ({"num_seen": results["num_seen"], "unseen_tasks": results.get("unseen_tasks")}
            | {m: results["summary"][m]["acc_mean"] if results["summary"].get(m) else None for m in METHODS}
            | {"generated_beats_nearest": results["paired"]["nearest_task"]["wins"]}
            | {f"val_{m}": (val.get(m) or {}).get("acc_mean") for m in VAL_COLUMNS})


def same_unseen_tasks(rows: list[dict], where: str) -> list[dict]:
    if any(r["unseen_tasks"] != rows[0]["unseen_tasks"] for r in rows):
        raise PdiffError(f"{where}: the runs were scored on different unseen tasks (another seed or num_unseen); "
                         "compare runs that differ only in what the ablation varies.")
    return [{k: v for k, v in r.items() if k != "unseen_tasks"} for r in rows]


def gather(folder: Path) -> list[dict]:
    """Rows of the `tools.tasks_run` runs in ``folder`` (the preset run and its ``seen-N`` reruns)."""
    rows = []
    for path in [folder / "results.json", *sorted(folder.glob("seen-*/results.json"))]:
        if path.exists():
            rows.append({**row(json.loads(path.read_text())), "source": str(path.relative_to(folder))})
    if not rows:
        raise PdiffError(f"{folder}: no results.json found; run `python -m tools.tasks_run` first.")
    return sorted(same_unseen_tasks(rows, str(folder)), key=lambda r: r["num_seen"])


def experiment_rows(recipe, found: list) -> list[dict]:
    """Rows of ``recipe``'s finished experiments, in the order of its points: ``found`` is what
    `tools.ablations.finished_points` gives for ``TASKS_METRICS`` (point, experiment name, record)."""
    # `dvc exp show` keeps a metrics file's numbers and strings only (the lists of codes are dropped), so the
    # check that every point was scored on the same unseen tasks compares what draws them: the seed, the
    # dataset and the numbers of validation and unseen tasks (pdiff.tasks.codes.split_codes).
    rows = [{"point": point.label, "experiment": name, **row(rec["metrics"]),
             "unseen_tasks": [lookup(rec["params"], k) for k in UNSEEN_DRAWN_BY]} for point, name, rec in found]
    if not rows:
        raise PdiffError(f"no finished experiments of ablation {recipe.name!r} in `dvc exp show`; run "
                         f"`make ablation NAME={recipe.name}` first.")
    return same_unseen_tasks(rows, f"ablation {recipe.name!r}")


def figure(rows: list[dict], path: Path, xlabel: str = "seen tasks (log scale)", title: str = "") -> None:
    """Mean unseen-task accuracy per method against the number of seen tasks (log x), or, when the rows are
    ablation points that keep the number of seen tasks, against the points."""
    from pdiff.core.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    seen_axis = len({r["num_seen"] for r in rows}) == len(rows)
    xs = [r["num_seen"] for r in rows] if seen_axis else list(range(len(rows)))
    for method in METHODS:
        ys = [r[method] for r in rows]
        if all(y is not None for y in ys):
            ax.plot(xs, ys, "o-", label=method)
    if seen_axis:
        ax.set_xscale("log")
    else:
        ax.set_xticks(xs, [r["point"] for r in rows])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean accuracy over unseen tasks (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def write_report(recipe, found: list, out_dir: Path, run: dict | None = None) -> Path:
    """``out_dir``/<name>.json (rows), .png (figure) and .md (table) of a task-pipeline recipe (``found``: as for
    `experiment_rows`)."""
    rows = experiment_rows(recipe, found)
    seconds = {n: round(sum(e["stage_seconds"].values()), 1) for n, e in ((run or {}).get("experiments") or {}).items()}
    for r in rows:
        r["ran"] = ", ".join(run["experiments"][r["experiment"]]["ran"]) if r["experiment"] in seconds else None
        r["seconds"] = seconds.get(r["experiment"])
    out_dir.mkdir(parents=True, exist_ok=True)
    save_json(rows, out_dir / f"{recipe.name}.json")
    figure(rows, out_dir / f"{recipe.name}.png", recipe.axis, recipe.title)
    cols = ["point", "num_seen", *METHODS, "generated_beats_nearest", *(f"val_{m}" for m in VAL_COLUMNS), "seconds"]
    fmt = lambda v: "n/a" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = [f"# Ablation: {recipe.title}", "", recipe.note, "",
             "Mean test accuracy (%) over the unseen tasks (the same ones at every point; each model scored on "
             "its own task's labels), per grid point; `generated_beats_nearest`: unseen tasks (of all) where the "
             "generated models beat the nearest seen task's average; `val_<method>`: the method's mean on the "
             "validation tasks (validation split), where choices are made. `composed_head` is n/a where the "
             "base model has no trained output for every digit.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    if run:
        lines += ["", f"Cost: {run['wall_seconds']:.0f} s wall for {len(recipe.points)} experiments with "
                      f"`dvc queue start -j {run['jobs']}`."]
    lines += ["", f"![{recipe.name}]({recipe.name}.png)", ""]
    return save_text("\n".join(lines), out_dir / f"{recipe.name}.md")


def docs_task_cond_table(load) -> str:
    """docs/tasks.md: the `task_cond` recipe's points (how the task code enters the denoiser), each row named
    by its point: mean accuracy (%) of the generated models on the unseen and the validation tasks, the unseen
    tasks where they beat the nearest seen task, and the generated models given a wrong code."""
    rows = load(f"{HARD_TASKS}/task_cond.json")
    head = ["`tasks_ldm.cond`", "generated (unseen)", "generated (validation tasks)",
            "beats nearest task (of 20)", "wrong code"]
    return markdown_table(head, [[f"`{p}`", quote(rows, f"[point={p}].generated", ".2f"),
                                  quote(rows, f"[point={p}].val_generated", ".2f"),
                                  quote(rows, f"[point={p}].generated_beats_nearest"),
                                  quote(rows, f"[point={p}].wrong_code", ".2f")]
                                 for p in ("add", "concat", "none")])


def docs_seen_tasks_hard_table(load) -> str:
    """docs/tasks.md: the `seen_tasks_hard` recipe's points (the number of seen tasks), each row named by its
    point: mean accuracy (%) per method on the validation tasks (where the choices are made) and on the unseen
    tasks, and the unseen tasks where the generated models beat the nearest seen task."""
    rows = load(f"{HARD_TASKS}/seen_tasks_hard.json")
    val = ("generated", "nearest_task", "code_regression")
    unseen = ("generated", "trained", "nearest_task", "code_regression")
    head = ["seen tasks", *(f"{m} (validation)" for m in val), *(f"{m} (unseen)" for m in unseen),
            "generated beats nearest (of 20 unseen)"]
    return markdown_table(head, [[quote(rows, f"[point={p}].num_seen"),
                                  *(quote(rows, f"[point={p}].val_{m}", ".2f") for m in val),
                                  *(quote(rows, f"[point={p}].{m}", ".2f") for m in unseen),
                                  quote(rows, f"[point={p}].generated_beats_nearest")]
                                 for p in ("10", "50", "200", "982")])


def summary_table(results: dict) -> str:
    """A task run's unseen-task summary (results.json): per method of `TASK_SETS` and the majority label, mean /
    median / min accuracy (%) over the unseen tasks (n/a where the method does not apply), and the generated
    models' paired comparison with it (wins / ties / losses, mean difference in points)."""
    rows = []
    for method, s in results["summary"].items():
        p = results["paired"].get(method)
        cells = [f"{s[k]:.2f}" for k in ("acc_mean", "acc_median", "acc_min")] if s else ["n/a"] * 3
        rows.append([method, *cells, f"{p['wins']} / {p['ties']} / {p['losses']}, {p['mean_diff']:+.2f}" if p else ""])
    return markdown_table(["method", "mean", "median", "min",
                           "generated vs it: wins / ties / losses, mean difference (points)"], rows)


def docs_summary_easy(load) -> str:
    """docs/tasks.md: `summary_table` of reports/mnist5k-tasks/results.json."""
    return summary_table(load("reports/mnist5k-tasks/results.json"))


def docs_summary_hard(load) -> str:
    """docs/tasks.md: `summary_table` of reports/mnist5k-hard-tasks/results.json."""
    return summary_table(load(f"{HARD_TASKS}/results.json"))


def docs_seen_fit_table(load) -> str:
    """docs/tasks.md: the seen-task fit of both task presets (results.json's `seen_fit`, test split): mean
    accuracy (%) over the sampled seen tasks per set, the share where the generated models fall below the
    majority label, and the number of tasks."""
    runs = {"`mnist5k-tasks`": load("reports/mnist5k-tasks/results.json")["seen_fit"],
            "`mnist5k-hard-tasks`": load(f"{HARD_TASKS}/results.json")["seen_fit"]}
    rows = [[f"{s.name}", *(f"{fit[s.name]['acc_mean']:.2f}" for fit in runs.values())] for s in SEEN_SETS]
    rows.append(["generated below majority (share of tasks)",
                 *(f"{fit['below_majority_share']:.2f}" for fit in runs.values())])
    rows.append(["seen tasks sampled", *(str(fit["tasks"]) for fit in runs.values())])
    return markdown_table(["seen-task fit (mean accuracy, %)", *runs], rows)


# The generator's fit on the hard setting, one run per (train_ae.steps, train_ldm.steps) of conv_ae, each in
# reports/<preset>/fit/<name>/:
# the configurations tried, in order, before the preset took the last.
FIT_RUNS = ((1000, 1500), (1000, 6000), (4000, 6000), (8000, 10000), (16000, 10000))


def docs_fit_table(load) -> str:
    """docs/tasks.md: how the hard setting's fit was chosen, on validation only: per (train_ae.steps,
    train_ldm.steps), the generated models' mean accuracy (%) on the validation tasks at guidance 1 and 2 (the
    trained models' beside them), and the seen-task fit on the validation split at the run's guidance
    (generated, the AE's reconstructions, the tasks' own snapshots)."""
    rows = []
    for ae, ldm in FIT_RUNS:
        r = load(f"{HARD_TASKS}/fit/ae{ae}-ldm{ldm}/results.json")
        val, seen = r["val"], r["val_seen_fit"]
        rows.append([f"{ae:,}", f"{ldm:,}", *(f"{val[w]['generated']['acc_mean']:.2f}" for w in ("1.0", "2.0")),
                     f"{val['1.0']['trained']['acc_mean']:.2f}", f"{r['guidance']}",
                     *(f"{seen[k]['acc_mean']:.2f}" for k in ("generated", "reconstruction", "trained"))])
    head = ["`conv_ae.train_ae.steps`", "`conv_ae.train_ldm.steps`", "generated, w = 1 (validation tasks)",
            "generated, w = 2",
            "trained (validation tasks)", "w (seen fit)", "seen fit: generated", "seen fit: reconstruction",
            "seen fit: own snapshots"]
    return markdown_table(head, rows)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "reports/mnist5k-tasks")
    rows = gather(folder)
    save_json(rows, folder / "seen_tasks.json")
    figure(rows, folder / "seen_tasks.png")
    for r in rows:
        print(r)


if __name__ == "__main__":
    run_script(main)
