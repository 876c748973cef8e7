"""The paper's ablations as DVC experiments: recipes (small grids of params overrides), a runner that queues
them with `dvc exp run --queue -S ...` and runs them with `dvc queue start -j N`, and a comparison that turns
the finished experiments (DVC's `Repo.experiments.show()`, the data behind `dvc exp show --json`) into a pandas
table, a Markdown report and PNG figures.

Each grid point becomes one named experiment, ``<recipe>-<label>``. A recipe that is a plain sweep of one key
(seeds, K) is queued by one `dvc exp run --queue -S 'key=choice(...)'`, DVC's own sweep syntax; DVC then names
the experiments ``<recipe>-1``, ``<recipe>-2``, ... in the order of the points. Points whose overrides leave a
stage's params and deps alone reuse that stage from the DVC cache (the queue's logs say "didn't change,
skipping"); `run_recipe` reads those logs, so every report states which stages each point really ran and for
how long. The queue's state comes from DVC's Python API (`Repo.experiments.celery_queue.status()`), not from
parsing `dvc queue status` text.

    python -m tools.ablations list
    python -m tools.ablations run NAME [--jobs N]   # queue the grid, `dvc queue start -j N`, wait, report
    python -m tools.ablations report NAME           # reports/ablations/NAME.md + NAME.png from `dvc exp show`

Both write reports/ablations/NAME_plots/ too: `dvc plots diff` of the points as a page that opens offline, with
one PNG per plot (tools/offline_plots.py), linked from NAME.md (--no-plots skips it). --out DIR writes the
report, logs and run summary to DIR instead of reports/ablations (for instance reports/mnist5k-resnet18/ablations
for a run on that preset). Run it from the repository root of a committed git + DVC repo (queued runs only see
git-tracked files). A task-pipeline recipe's report is `tools.tasks_ablations`'.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pdiff import PdiffError
from pdiff.analysis.sets import BY_NAME, SETS, of_kind
from pdiff.core.artifacts import save_json, save_text
from pdiff.core.stage import read_timings, run_script, timing_folder
from tools.dvc_runner import run_dvc
from tools.presets import lookup, resolved
from tools.tasks_run import TARGET as TASKS_TARGET

METRICS_FILE = "metrics/evaluate.json"
NOVELTY_FILE = "metrics/novelty.json"  # analyze stage: how close models sit to the training snapshots


@dataclass
class Point:
    label: str        # short, used in the experiment name and as the x tick label
    overrides: dict   # dotted params key -> value, passed as `-S key=value`


@dataclass
class Recipe:
    name: str
    title: str
    axis: str         # what varies (x axis label)
    points: list[Point]
    note: str = ""
    keys: list[str] = field(default_factory=list)  # params shown as table columns
    sweep: bool = False  # queue as one DVC sweep over the one key that varies (see `queue_commands`)
    target: str = ""     # the stage to run ("" = all of dvc.yaml; TASKS_TARGET: a task-pipeline recipe)

    def __post_init__(self):
        if not self.keys:
            self.keys = sorted({k for p in self.points for k in p.overrides})
        if self.sweep:
            swept = self.swept_key()
            if any(isinstance(p.overrides[swept], (list, dict)) for p in self.points):
                raise PdiffError(f"recipe {self.name!r}: a sweep needs scalar values of `{swept}`.")

    def swept_key(self) -> str:
        """The one key whose value differs between the points (all others equal in every point)."""
        keys = {k for p in self.points for k in p.overrides}
        varying = [k for k in sorted(keys) if len({repr(p.overrides.get(k)) for p in self.points}) > 1]
        if len(varying) != 1 or any(set(p.overrides) != keys for p in self.points):
            raise PdiffError(f"recipe {self.name!r} is not a plain sweep of one key (varying: {varying}).")
        return varying[0]


def recipes(params: dict | None = None) -> dict[str, Recipe]:
    """All ablation recipes. ``params`` (the parsed params.yaml) sets the `ae_steps` recipe's base value."""
    params = params or {}
    k_values = [1, 10, 50, 200, 500]
    out = [
        Recipe("k", "Number of training snapshots K", "K (snapshots)",
               [Point(str(k), {"collect.num_snapshots": k, "collect.epochs": 3}) for k in k_values], sweep=True,
               note="All points collect over 3 epochs (657 steps at batch 16), since K = 500 needs more than the "
                    "219 steps of one epoch; K snapshots are spread evenly over them."),
        Recipe("noise", "Noise augmentation in the parameter autoencoder", "noise",
               [Point("none", {"conv_ae.train_ae.input_noise": 0.0, "conv_ae.train_ae.latent_noise": 0.0}),
                Point("input", {"conv_ae.train_ae.input_noise": 0.001, "conv_ae.train_ae.latent_noise": 0.0}),
                Point("latent", {"conv_ae.train_ae.input_noise": 0.0, "conv_ae.train_ae.latent_noise": 0.1}),
                Point("both", {"conv_ae.train_ae.input_noise": 0.001, "conv_ae.train_ae.latent_noise": 0.1})],
               note="input sigma 0.001, latent sigma 0.1 (the paper's values) switched on and off."),
        Recipe("params", "Which parameters are generated", "generated parameters",
               [Point("last_bn", {"model.width": 16, "collect.params": "auto"}),
                Point("bn2", {"model.width": 16, "collect.params": ["bn2.*"]}),
                Point("w4_last_bn", {"model.width": 4, "collect.params": "auto", "collect.lr": 0.001}),
                Point("w4_whole", {"model.width": 4, "collect.params": ["*"], "collect.lr": 0.001})],
               note="The whole width-16 network has 16,954 values; its AE/LDM would take hours on 2 CPU cores, so "
                    "the whole-network point uses the width-4 network (1,270 values), next to that network's own "
                    "last-BN point (48 values) for reference. Both width-4 points collect at lr 0.001: at the "
                    "default 0.01, training the whole width-4 network with frozen norm statistics falls to chance "
                    "(8.8%) within the first snapshots, so there is nothing sensible to learn from."),
    ]
    grid = [("ddpm", 1000), ("ddim", 100), ("ddim", 50), ("ddim", 20)]
    out.append(Recipe("sampler", "Sampler and sampling steps", "sampler / steps",
                      [Point(f"{s}{n}", {"conv_ae.generate.sampler": s, "conv_ae.generate.steps": n}) for s, n in grid],
                      note="The LDM is trained once (T = 1000); only `generate` and `evaluate` rerun."))
    ae_steps = int(lookup(params, "conv_ae.train_ae.steps") or 2000)
    out.append(Recipe("ae_steps", "AE training steps: when does the diffusion model start to matter?", "AE steps",
                      [Point(f"{s:,}", {"conv_ae.train_ae.steps": s})
                       for s in (ae_steps, 5 * ae_steps, 15 * ae_steps)],
                      sweep=True,
                      note="The parameter autoencoder trained for 1x, 5x and 15x params.yaml's "
                           "`conv_ae.train_ae.steps` (on the "
                           "default 2,000 / 10,000 / 30,000; the official first release trained its AE for "
                           "30,000). A longer-trained AE may fit the K latents so tightly that its decoder maps "
                           "plain Gaussian latents badly; `decoded-noise` (no diffusion model) beside "
                           "`generated` (the LDM's latents, same decoder) and the originals shows where diffusion "
                           "earns its place. Every point reruns train_ae and what follows it."))
    out.append(Recipe("decoded_form", "Decoded noise: the latent Gaussian's form", "baselines.decoded_form",
                      [Point(f, {"baselines.decoded_form": f}) for f in ("per_position", "global")], sweep=True,
                      note="Gaussian latents decoded by the trained AE with no diffusion model, drawn per latent "
                           "value (a mean and std for each over the K snapshots' latents) or globally (one mean "
                           "and std: the LDM's own starting noise). Only `analyze` reruns."))
    out.append(Recipe("seeds", "Headline over 5 seeds", "seed",
                      [Point(str(s), {"seed": s}) for s in range(5)], sweep=True,
                      note="`seed` drives everything (data split, base model, collection, AE, LDM, sampling), so "
                           "every point but seed 0 reruns the whole pipeline."))
    return {r.name: r for r in out + task_recipes()}


def task_recipes() -> list[Recipe]:
    """Recipes of the task-conditioned pipeline (docs/tasks.md): every point carries its task preset's values,
    `task_pipeline: [run]` included, which generates the task stages in the experiment, so the committed
    params.yaml stays the default; each runs ``TASKS_TARGET`` (tasks_evaluate@run and the stages it needs).
    Reported by `tools.tasks_ablations`."""
    def on(preset: str, key: str, values, label=str) -> list[Point]:
        base = resolved(preset)
        return [Point(label(v), {**base, key: v}) for v in values]

    seen = (10, 50, 200, 982)
    seen_note = ("`tasks.num_seen` seen tasks (seeded; the unseen and validation tasks are the same at every "
                 "point), 5 snapshots each; 982 is the whole rest of the 1,022 tasks. Every point reruns "
                 "tasks_collect and what follows it.")
    return [
        Recipe("seen_tasks", "Unseen-task accuracy against seen tasks (mnist5k-tasks)", "seen tasks (log scale)",
               on("mnist5k-tasks", "tasks.num_seen", seen), keys=["tasks.num_seen"], sweep=True,
               target=TASKS_TARGET, note=seen_note),
        Recipe("seen_tasks_hard", "Unseen-task accuracy against seen tasks, backbone on digits 0-4 "
               "(mnist5k-hard-tasks)", "seen tasks (log scale)", on("mnist5k-hard-tasks", "tasks.num_seen", seen),
               keys=["tasks.num_seen"], sweep=True, target=TASKS_TARGET,
               note=seen_note + " The base model was trained on digits 0-4 only (`train.classes`)."),
        Recipe("task_cond", "How the task code enters the denoiser (mnist5k-hard-tasks)", "tasks_ldm.cond",
               on("mnist5k-hard-tasks", "tasks_ldm.cond", ("add", "concat", "none")), keys=["tasks_ldm.cond"],
               sweep=True, target=TASKS_TARGET,
               note="add: an MLP embedding of the code added to the time embedding; concat: the code's bits as "
                    "extra input channels of the UNet; none: the code ignored (unconditional). Condition dropout "
                    "0.1 and guidance 2.0 (the preset's) at every point; only tasks_ldm and tasks_evaluate rerun."),
    ]


def get_recipe(name: str, params: dict | None = None) -> Recipe:
    all_ = recipes(params)
    if name not in all_:
        raise PdiffError(f"unknown ablation {name!r}; choose one of: {', '.join(all_)}.")
    return all_[name]


def exp_name(recipe: Recipe, point: Point) -> str:
    """``<recipe>-<label>``; for a sweep, the name DVC gives the point: ``<recipe>-<1-based position>``."""
    if recipe.sweep:
        return f"{recipe.name}-{recipe.points.index(point) + 1}"
    return f"{recipe.name}-{re.sub(r'[^A-Za-z0-9_]+', '_', point.label)}"


def legacy_name(recipe: Recipe, point: Point) -> str:
    """The name a sweep recipe's point had when each point was queued on its own (older runs)."""
    return f"{recipe.name}-{re.sub(r'[^A-Za-z0-9_]+', '_', point.label)}"


def format_value(value) -> str:
    """A value in the Hydra override syntax that `dvc exp run -S` parses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) else "'" + text.replace("'", "\\'") + "'"


def queue_command(recipe: Recipe, point: Point) -> list[str]:
    cmd = ["exp", "run", "--queue", "--name", exp_name(recipe, point)]
    for key, value in point.overrides.items():
        cmd += ["-S", f"{key}={format_value(value)}"]
    return cmd + ([recipe.target] if recipe.target else [])


def queue_commands(recipe: Recipe) -> list[list[str]]:
    """The `dvc` calls that queue the whole grid: one per point, or for a sweep recipe a single
    ``exp run --queue --name <recipe> -S 'key=choice(v1,v2,...)' -S fixed=...`` (Hydra sweep syntax; DVC expands
    it in the order given and names the experiments ``<recipe>-1``, ``<recipe>-2``, ...)."""
    if not recipe.sweep:
        return [queue_command(recipe, p) for p in recipe.points]
    swept = recipe.swept_key()
    cmd = ["exp", "run", "--queue", "--name", recipe.name,
           "-S", f"{swept}=choice({','.join(format_value(p.overrides[swept]) for p in recipe.points)})"]
    for key, value in recipe.points[0].overrides.items():
        if key != swept:
            cmd += ["-S", f"{key}={format_value(value)}"]
    return [cmd + ([recipe.target] if recipe.target else [])]


# ---------------------------------------------------------------------------------------------------------
# Running (shells out to dvc; the repository must be a committed git + DVC repo)

def queue_status(cwd: Path) -> dict[str, tuple[str, str]]:
    """task id (the full stash rev) -> (experiment name, status: Queued, Running, Success or Failed), from DVC's
    Python API (the data `dvc queue status` prints as a table)."""
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        return {e["rev"]: (e["name"], e["status"]) for e in repo.experiments.celery_queue.status()}


def experiment_names(cwd: Path) -> set[str]:
    """Names of the experiments derived from HEAD (`dvc exp ls --name-only`)."""
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        return {name for exps in repo.experiments.ls().values() for name, _ in exps if name}


def _json_default(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "msg": str(value)}
    raise TypeError(f"cannot encode {type(value).__name__}")


def show_experiments(cwd: Path) -> list:
    """What `dvc exp show --json` prints, from DVC's Python API: ``Repo.experiments.show()`` serialized the same
    way. (`dvc.api.exp_show` flattens this into table rows: lists become strings and metric names shared by
    evaluate.json and novelty.json get file prefixes, so the nested form is used.)"""
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        return json.loads(json.dumps([exp.dumpd() for exp in repo.experiments.show()], default=_json_default))


def parse_log(text: str) -> dict:
    """Which stages ran / were reused in one experiment's log (dvc's own lines: the queue has no API for it)."""
    ran = re.findall(r"Running stage '([^']+)'", text)
    skipped = re.findall(r"Stage '([^']+)' (?:didn't change, skipping|is cached - skipping run)", text)
    return {"ran": ran, "reused": skipped}


def default_jobs(threads: int) -> int:
    """Queue workers that fit the CPU: cores / torch threads per worker, at least 1. On 2 cores with
    threads 2 that is 1, measured faster than 2 oversubscribing workers (docs/ablations.md)."""
    return max(1, (os.cpu_count() or 1) // max(1, threads))


def uncached_outputs(cwd: Path) -> list[str]:
    """Outputs of the pipeline (dvc.yaml) whose dvc.lock hash is not in the local DVC cache. `dvc exp run`
    saves every output of dvc.lock when an experiment ends, so an experiment that runs one target (a task
    recipe: tasks_evaluate@run and what it needs) fails there if the default pipeline has never run in this
    clone."""
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        return [f"{stage.name}: {out.def_path}" for stage in repo.index.stages if stage.path_in_repo == "dvc.yaml"
                for out in stage.outs
                if out.use_cache and out.hash_info and out.hash_info.value
                and not repo.cache.local.exists(out.hash_info.value)]


def run_recipe(recipe: Recipe, jobs: int, cwd: Path, out_dir: Path, poll: float = 5.0,
               timeout: float = 4 * 3600) -> dict:
    """Queue every point, start ``jobs`` workers, wait until all finish; save logs and a run summary
    (wall time, per-experiment stages run / reused) to ``out_dir``. Rerunning a recipe replaces its
    experiments."""
    cwd = Path(cwd)
    if recipe.target and (missing := uncached_outputs(cwd)):
        raise PdiffError(f"recipe {recipe.name!r} runs {recipe.target}, but `dvc exp run` also saves every output of "
                         f"dvc.lock (the default pipeline's), and {len(missing)} of them are not in this clone's DVC "
                         f"cache ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}). Run `dvc repro` "
                         "(the default pipeline, about 2 minutes) first, then rerun the recipe.")
    names = [exp_name(recipe, p) for p in recipe.points]
    existing = experiment_names(cwd)
    old = [n for n in names if n in existing]
    if old:
        run_dvc(["exp", "remove", *old], cwd)
    for name in names:  # each experiment's stages write their timings here (pdiff.core.stage); start afresh
        shutil.rmtree(timing_folder(cwd, name), ignore_errors=True)
    before = set(queue_status(cwd))
    for cmd in queue_commands(recipe):
        run_dvc(cmd, cwd)
    tasks = {t: name for t, (name, _) in queue_status(cwd).items() if t not in before and name in names}
    if len(tasks) != len(names):
        raise PdiffError(f"queued {len(names)} experiments but found {len(tasks)} new tasks in `dvc queue status`.")
    start = time.time()
    # Workers inherit this environment. With several workers sharing the cores, idle OpenMP threads that sleep
    # instead of spinning change no result and waste less CPU (two concurrent train_ae on 2 cores: 142 s
    # passive vs 151 s spinning; under heavy load 0.32 s vs 2.8 s per step). A lone worker is faster spinning
    # (train_ae alone: 27 s vs 41 s passive), so the policy is only set for jobs > 1 and never overridden.
    env = dict(os.environ)
    if jobs > 1:
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run_dvc(["queue", "start", "-j", str(jobs)], cwd, env=env)
    while True:
        status = {t: s for t, (_, s) in queue_status(cwd).items() if t in tasks}
        if all(s in ("Success", "Failed") for s in status.values()) and len(status) == len(tasks):
            break
        if time.time() - start > timeout:
            raise PdiffError(f"ablation {recipe.name!r} did not finish within {timeout:.0f} s: {status}")
        time.sleep(poll)
    wall = time.time() - start
    logs_dir = out_dir / f"{recipe.name}_logs"
    experiments = {}
    for task, name in tasks.items():
        log = run_dvc(["queue", "logs", task], cwd, check=False).stdout
        save_text(log, logs_dir / f"{name}.log")
        info = parse_log(log)
        info["stage_seconds"] = read_timings(timing_folder(cwd, name))  # each run stage's own timer
        info["status"] = status[task]
        experiments[name] = info
    summary = {"recipe": recipe.name, "jobs": jobs, "wall_seconds": round(wall, 1), "experiments": experiments}
    save_json(summary, out_dir / f"{recipe.name}_run.json")
    failed = [n for n, e in experiments.items() if e["status"] != "Success"]
    if failed:
        raise PdiffError(f"ablation {recipe.name!r}: experiments {failed} failed; see {logs_dir}/.")
    return summary


# ---------------------------------------------------------------------------------------------------------
# Comparison

def experiments_from_show(show: list, metrics_file: str = METRICS_FILE) -> dict[str, dict]:
    """name -> {"params": flat params, "metrics": ``metrics_file`` (evaluate.json; a task recipe's
    metrics/tasks/results.json)} for every finished experiment (and the baseline commits, under their revs) in
    `dvc exp show --json` output (`show_experiments`)."""
    out = {}

    def add(entry):
        data = entry.get("data") or {}
        metrics = ((data.get("metrics") or {}).get(metrics_file) or {}).get("data")
        novelty = ((data.get("metrics") or {}).get(NOVELTY_FILE) or {}).get("data") or {}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        if metrics is not None:
            out[entry.get("name") or entry.get("rev")] = {"params": params, "metrics": metrics, "novelty": novelty}

    for base in show:
        add(base)
        for exp in base.get("experiments") or []:
            if (exp.get("executor") or {}).get("state") in ("queued", "running", "failed"):
                continue  # a running experiment shows its baseline's metrics until it finishes
            for rev in exp.get("revs") or []:
                add(rev)
    return out


COLUMNS = [("original", "acc_median"), ("original", "acc_max"), ("generated", "acc_median"),
           ("generated", "acc_max"), ("generated", "acc_min"), ("generated", "acc_std"), ("generated", "failed")]


# From the analyze stage (Zeng et al. 2025), for the sets of its registry (pdiff.analysis.sets): the median
# accuracy of every no-learning baseline, the mean over generated models of the best error-set IoU with any
# training snapshot, and the mean L2 distance to the nearest snapshot, beside the originals' own leave-one-out
# nearest distance (the spacing of the training set). Then, for every set that uses the trained AE but no diffusion
# model (Gaussian latents decoded, the snapshots' reconstructions), its median, max, min, max-IoU and NN-L2.
# Experiments run before analyze had a set leave its columns empty (n/a in the report).
DECODER_STATS = {"median": "acc_median", "max": "acc_max", "min": "acc_min", "max-IoU": "max_similarity_mean",
                 "NN-L2": "nn_l2_mean"}
NOVELTY_COLUMNS = {**{f"{s.label} median": (s.name, "acc_median") for s in of_kind("baseline")},
                   "generated max-IoU": ("generated", "max_similarity_mean"),
                   "generated NN-L2": ("generated", "nn_l2_mean"),
                   "original NN-L2": ("original", "nn_l2_mean"),
                   **{f"{s.label} {stat}": (s.name, key) for s in of_kind("decoder")
                      for stat, key in DECODER_STATS.items()}}


def find_experiment(recipe: Recipe, point: Point, finished: dict[str, dict]) -> str | None:
    """The finished experiment of ``point``: its current name, else (a sweep recipe run before it was a sweep)
    its per-point name, provided the experiment's params carry the point's overrides."""
    for name in dict.fromkeys((exp_name(recipe, point), legacy_name(recipe, point))):
        rec = finished.get(name)
        if rec is not None and all(lookup(rec["params"], k) == v for k, v in point.overrides.items()):
            return name
    return None


def finished_points(recipe: Recipe, show: list, metrics_file: str = METRICS_FILE) -> list[tuple[Point, str, dict]]:
    """(point, experiment name, its `experiments_from_show` record) for each point of ``recipe`` that has
    finished, in the order of the points."""
    finished = experiments_from_show(show, metrics_file)
    return [(p, name, finished[name]) for p in recipe.points if (name := find_experiment(recipe, p, finished))]


def table(recipe: Recipe, finished: dict[str, dict], run: dict | None = None):
    """One row per grid point that has finished: the varied params, test-accuracy summaries and, when a run
    summary is given, the stages it ran and their seconds."""
    import pandas as pd

    rows = []
    for point in recipe.points:
        name = find_experiment(recipe, point, finished)
        if name is None:
            continue
        rec = finished[name]
        row = {"point": point.label, "experiment": name}
        for key in recipe.keys:
            value = lookup(rec["params"], key)
            row[key] = json.dumps(value) if isinstance(value, list) else value
        for method, key in COLUMNS:
            row[f"{method} {key.replace('acc_', '')}"] = rec["metrics"].get(method, {}).get(key)
        novelty = rec.get("novelty") or {}
        for column, (method, key) in NOVELTY_COLUMNS.items():
            if (novelty.get(method) or {}).get(key) is not None:
                row[column] = round(float(novelty[method][key]), 4)
        if run and name in run.get("experiments", {}):
            info = run["experiments"][name]
            row["stages run"] = (", ".join(info["ran"]) if info["reused"] else "all") if info["ran"] \
                else "none (all cached)"
            row["seconds"] = round(sum(info["stage_seconds"].values()), 1)
        rows.append(row)
    df = pd.DataFrame(rows)
    # Fixed column order whatever the first row lacks (K = 1 has no leave-one-out distance, for instance).
    order = ["point", "experiment", *recipe.keys, *(f"{m} {k.replace('acc_', '')}" for m, k in COLUMNS),
             *NOVELTY_COLUMNS, "stages run", "seconds"]
    return df[[c for c in order if c in df.columns]]


def mean_std(df, columns: list[str], digits: int | None = None) -> dict[str, str]:
    """'mean ± std' (sample std) of each column, for the seeds summary; ``digits`` after the point (default:
    2 for accuracies, 4 for values below 1 such as IoU and L2 distances)."""
    out = {}
    for col in columns:
        vals = [float(v) for v in df[col] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not vals:
            continue
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        d = digits if digits is not None else (2 if abs(mean) >= 1 else 4)
        out[col] = f"{mean:.{d}f} ± {std:.{d}f}"
    return out


def figure(recipe: Recipe, df, path: Path) -> None:
    """Left: generated median / max / min vs the ablation value, with the originals' median and max as
    reference lines (dashed), every baseline's median (dotted) and, when analyze had them, the decoder sets'
    median and min (the AE without diffusion), each set in its colour of the registry (pdiff.analysis.sets).
    Right, when the analyze stage ran: how far generated (and decoder-set) models sit from their nearest
    training snapshot, against the spacing of the snapshots themselves (log scale)."""
    from pdiff.core.plots import plt, save_figure

    x = list(range(len(df)))
    novelty = "generated NN-L2" in df.columns
    width = max(4.5, 1.3 * len(df) + 2)
    fig, axes = plt.subplots(1, 2 if novelty else 1, figsize=(width * (1.8 if novelty else 1), 3.6), squeeze=False)
    ax = axes[0][0]
    gen_color, orig_color = BY_NAME["generated"].color, BY_NAME["original"].color
    ax.plot(x, df["generated median"], "o-", color=gen_color, label="generated median")
    ax.plot(x, df["generated max"], "^-", color=gen_color, alpha=0.6, label="generated max")
    ax.plot(x, df["generated min"], "v:", color=gen_color, alpha=0.4, label="generated min")
    ax.plot(x, df["original median"], "s--", color=orig_color, label="original median (reference)")
    ax.plot(x, df["original max"], "--", color=orig_color, alpha=0.5, label="original max (reference)")
    for s in of_kind("baseline"):
        if f"{s.label} median" in df.columns:
            ax.plot(x, df[f"{s.label} median"].astype(float), "d:", color=s.color, label=f"{s.label} median (baseline)")
    for s in of_kind("decoder"):
        if f"{s.label} median" in df.columns:
            ax.plot(x, df[f"{s.label} median"].astype(float), "P-", color=s.color,
                    label=f"{s.label} median (AE, no diffusion)")
            if f"{s.label} min" in df.columns:
                ax.plot(x, df[f"{s.label} min"].astype(float), "v:", color=s.color, alpha=0.4, label=f"{s.label} min")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(recipe.title, fontsize=10)
    if novelty:
        ax = axes[0][1]
        gen = df["generated NN-L2"].astype(float)
        ax.plot(x, gen.where(gen > 0), "o-", color=gen_color, label="generated: L2 to nearest snapshot")
        for s in of_kind("decoder"):
            if f"{s.label} NN-L2" in df.columns:
                ax.plot(x, df[f"{s.label} NN-L2"].astype(float), "P-", color=s.color,
                        label=f"{s.label}: L2 to nearest snapshot")
        if "original NN-L2" in df.columns:
            ax.plot(x, df["original NN-L2"].astype(float), "s--", color=orig_color,
                    label="original: L2 to nearest other snapshot (spacing)")
        ax.set_yscale("log")
        ax.set_ylabel("L2 distance (mean over models)")
        ax.set_title("Distance to the training snapshots (0 = exact copy, not drawn)", fontsize=10)
    for ax in axes[0]:
        ax.set_xticks(x, list(df["point"]))
        ax.set_xlabel(recipe.axis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plots_page(recipe: Recipe, show: list, out_dir: Path, cwd: Path) -> Path:
    """reports/ablations/<name>_plots/: `dvc plots diff` of the recipe's finished experiments as an offline page
    (DVC's HTML with Vega inlined) and one PNG per plot (tools/offline_plots.py). Returns the folder."""
    from tools import offline_plots

    names = [name for _, name, _ in finished_points(recipe, show)]
    if not names:
        raise PdiffError(f"no finished experiments of ablation {recipe.name!r} to plot; run "
                         f"`make ablation NAME={recipe.name}` first.")
    folder = out_dir / f"{recipe.name}_plots"
    offline_plots.render(names, folder, cwd=cwd, title=f"Ablation: {recipe.title} (dvc plots diff {' '.join(names)})")
    return folder


def write_report(recipe: Recipe, show: list, out_dir: Path, run: dict | None = None,
                 plots: Path | None = None) -> Path:
    """reports/ablations/<name>.md (table) and <name>.png (figure) from `dvc exp show --json` output; with
    ``plots`` (the folder from `plots_page`), a link to its offline page."""
    import pandas as pd

    df = table(recipe, experiments_from_show(show), run)
    if df.empty:
        raise PdiffError(f"no finished experiments of ablation {recipe.name!r} in `dvc exp show`; run "
                         f"`make ablation NAME={recipe.name}` first.")
    out_dir.mkdir(parents=True, exist_ok=True)
    figure(recipe, df, out_dir / f"{recipe.name}.png")
    shown = df.drop(columns=["experiment"])
    lines = [f"# Ablation: {recipe.title}", "", recipe.note, "",
             "Test accuracy (%) of the K original snapshots and the generated models, per grid point.", ""]
    if recipe.name == "seeds":
        acc_cols = [c for c in shown.columns if c.startswith(tuple(f"{s.label} " for s in SETS))
                    and "failed" not in c]
        summary = {"point": "mean ± std", **mean_std(shown, acc_cols)}
        shown = pd.concat([shown.astype(object), pd.DataFrame([summary])], ignore_index=True).fillna("")
    lines.append(shown.astype(object).where(shown.notna(), None).to_markdown(index=False, missingval="n/a"))
    if recipe.name == "seeds" and len(df) > 1:
        paired = pd.DataFrame({s: df[f"generated {s}"] - df[f"original {s}"] for s in ("median", "max")})
        diffs = {stat: mean_std(paired, [stat], digits=2) for stat in ("median", "max")}
        lines += ["", "Paired difference over the seeds, generated − original (points): "
                  + ", ".join(f"{stat} {d[stat]}" for stat, d in diffs.items() if stat in d) + "."]
    found = set(df["experiment"])
    missing = [exp_name(recipe, p) for p in recipe.points
               if exp_name(recipe, p) not in found and legacy_name(recipe, p) not in found]
    if missing:
        lines += ["", f"Not finished (left out): {', '.join(missing)}"]
    if run:
        lines += ["", f"Cost: {run['wall_seconds']:.0f} s wall for {len(recipe.points)} experiments with "
                      f"`dvc queue start -j {run['jobs']}`."]
    lines += ["", f"![{recipe.name}]({recipe.name}.png)", ""]
    if plots is not None:
        rel = plots.relative_to(out_dir).as_posix() if plots.is_relative_to(out_dir) else plots.as_posix()
        lines += [f"DVC's plots of every point (`dvc plots diff`: accuracy distributions, novelty, loss curves), "
                  f"offline: [{rel}/index.html]({rel}/index.html), one PNG per plot in `{rel}/png/`.", ""]
    return save_text("\n".join(lines), out_dir / f"{recipe.name}.md")


OUT = Path("reports/ablations")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("list", "run", "report"))
    ap.add_argument("name", nargs="?")
    ap.add_argument("--jobs", "-j", type=int, help="parallel queue workers (dvc queue start -j); default: CPU "
                    "cores / params.yaml `threads`, at least 1")
    ap.add_argument("--out", type=Path, default=OUT, help=f"report folder (default {OUT})")
    ap.add_argument("--no-plots", action="store_true", help="skip the offline `dvc plots diff` page of the points")
    args = ap.parse_args(argv)
    import yaml

    params = yaml.safe_load(Path("params.yaml").read_text())
    jobs = args.jobs or default_jobs(int(params.get("threads") or 1))
    if args.action == "list":
        for r in recipes(params).values():
            print(f"{r.name:8} {r.title}: " + "; ".join(f"{p.label} {p.overrides}" for p in r.points))
        return
    if not args.name:
        raise PdiffError("give the ablation's NAME; `python -m tools.ablations list` shows them.")
    recipe = get_recipe(args.name, params)
    run = None
    if args.action == "run":
        run = run_recipe(recipe, jobs, Path.cwd(), args.out)
        print(f"ablation {recipe.name}: {len(recipe.points)} experiments in {run['wall_seconds']:.0f} s "
              f"(-j {jobs})")
        for name, info in run["experiments"].items():
            print(f"  {name}: ran {', '.join(info['ran']) or 'nothing'}; reused {', '.join(info['reused'])}")
    elif (args.out / f"{recipe.name}_run.json").exists():
        run = json.loads((args.out / f"{recipe.name}_run.json").read_text())
    show = show_experiments(Path.cwd())
    if recipe.target == TASKS_TARGET:  # the task pipeline's own report (unseen-task accuracy per method)
        from tools import tasks_ablations

        found = finished_points(recipe, show, tasks_ablations.TASKS_METRICS)
        path = tasks_ablations.write_report(recipe, found, args.out, run)
        print(f"wrote {path} and {path.with_suffix('.png')}")
        return
    plots = None
    if not args.no_plots:
        try:
            plots = plots_page(recipe, show, args.out, Path.cwd())
        except PdiffError as exc:  # the table does not need the plots
            print(f"no offline plots page: {exc}", file=sys.stderr)
    path = write_report(recipe, show, args.out, run, plots)
    print(f"wrote {path} and {path.with_suffix('.png')}" + (f"; offline plots {plots}/index.html" if plots else ""))


if __name__ == "__main__":
    run_script(main)
