"""Per-task evaluation of a task-conditioned generator on tasks it never saw, beside the baselines a skeptic
tries first. Every model is scored on its own task's binary labels; a method's score on a task is the mean
accuracy of its models for that task.

- generated: ``num_models`` models generated for the task's code;
- trained: the task's own SGD-trained snapshots (the reference, never fitted on);
- nearest_task: (a) the average of the snapshots of the seen task whose code is nearest in Hamming distance
  (ties: the first in the seeded order of the seen tasks);
- code_regression: a ridge regression from the code's bits to the parameter vector, fitted on the seen tasks'
  snapshot means, its strength chosen on the validation tasks (`CodeRegression`): what a linear map from codes
  to weights gives;
- composed_head: (b) the base model's multi-class head, "positive" = summed probability of the positive classes
  above 1/2 (None when the base model has no output for some class of the code);
- all_tasks_average: (c) the average of every seen task's snapshots, one vector for all tasks;
- wrong_code: (d) models generated for the complement code, scored on the true task;
- no_task_info: latents drawn from a per-value Gaussian fitted to all seen tasks' latents, decoded: what the
  decoder gives with no task information (None for a generator without a decoder);
- majority: the accuracy of always answering the task's majority label (chance level of the task).

`TASK_SETS` is the one list of these methods: results.json, per_task.csv, the per-task figure, the per-task plot
of the tasks_evaluate stage in dvc.yaml (its template, .dvc/plots/per_task_methods.json; tests/test_tasks.py checks
it) and the task ablation reports (`tools.tasks_ablations`) follow it.
They are not the evaluated sets of the `analyze` stage (`pdiff.analysis.sets`): each is scored per task, on that
task's own labels.

Seen-task fit (`seen_fit`): on a seeded sample of seen tasks, the generated models against the task's own
snapshots, the AE's reconstructions of those snapshots (decoder only, no noise; None without a decoder), the code
regression and the majority label. A generator that cannot reproduce the tasks it was fitted on cannot be expected
to generalize, so the gap there is reported beside the unseen-task gap.

The generator is any conditional one of the registry (`TaskGenerator`: its sampler, given the codes, and its
decoder where it has one; pdiff.generative.protocol)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pdiff.generative.protocol import Decoder, Sampler
from pdiff.tasks.codes import code_str, hamming
from pdiff.tasks.heads import TaskHeadSpec, accuracy


@dataclass(frozen=True)
class TaskSet:
    """One method of the task evaluation: its key in every row, summary and CSV, and its marker in the per-task
    figure (a matplotlib format string)."""
    name: str
    style: str


# In this order in results.json, per_task.csv and the figure; `paired` compares generated with every other one.
TASK_SETS = (TaskSet("generated", "ro"), TaskSet("trained", "k_"), TaskSet("nearest_task", "b^"),
             TaskSet("code_regression", "C1d"), TaskSet("composed_head", "gs"), TaskSet("all_tasks_average", "cv"),
             TaskSet("wrong_code", "mx"), TaskSet("no_task_info", "y."))
METHODS = tuple(s.name for s in TASK_SETS)
MAJORITY = TaskSet("majority", "k:")  # chance level, beside the methods: summarized and drawn, never compared
# Seen-task fit, in this order in results.json's `seen_fit` and the figure's second panel.
SEEN_SETS = (TaskSet("generated", "ro"), TaskSet("trained", "k_"), TaskSet("reconstruction", "g."),
             TaskSet("code_regression", "C1d"), MAJORITY)


@dataclass(frozen=True)
class CodeRegression:
    """Ridge regression from a code's bits (as 2c - 1) to a parameter vector: ``vector = (x - x_mean) @ weight +
    y_mean``, the intercept unpenalized. Fitted in float64 by the closed form
    ``weight = (Xc^T Xc + strength I)^-1 Xc^T Yc`` on centred inputs Xc and targets Yc."""
    weight: torch.Tensor
    x_mean: torch.Tensor
    y_mean: torch.Tensor
    strength: float

    @classmethod
    def fit(cls, codes: torch.Tensor, targets: torch.Tensor, strength: float) -> CodeRegression:
        x, y = (2.0 * codes - 1.0).double(), targets.double()
        xm, ym = x.mean(0), y.mean(0)
        xc, yc = x - xm, y - ym
        gram = xc.T @ xc + strength * torch.eye(x.shape[1], dtype=torch.float64)
        return cls(torch.linalg.solve(gram, xc.T @ yc), xm, ym, strength)

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        """[T, bits] -> [T, D] (float32)."""
        return (((2.0 * codes - 1.0).double() - self.x_mean) @ self.weight + self.y_mean).float()


def choose_code_regression(seen_codes: torch.Tensor, seen_snaps: torch.Tensor, strengths: list[float],
                           val_codes: torch.Tensor, feats: torch.Tensor, y: torch.Tensor,
                           spec: TaskHeadSpec) -> tuple[CodeRegression, dict]:
    """The code regression fitted on the seen tasks' snapshot means with each ridge strength, scored on the
    validation tasks (``feats``, ``y``: the validation split); -> (the best, {strength: mean accuracy}); ties go
    to the first strength listed."""
    targets = seen_snaps.mean(1)
    scores, best = {}, None
    for s in strengths:
        reg = CodeRegression.fit(seen_codes, targets, s)
        scores[str(s)] = round(per_task_accuracy(reg(val_codes)[:, None], val_codes, feats, y, spec).mean().item(), 4)
        if best is None or scores[str(s)] > scores[str(best.strength)]:
            best = reg
    return best, scores


@dataclass
class TaskGenerator:
    """A conditional generator as the task evaluation uses it: its ``sampler`` (fitted with the seen tasks'
    codes; `Sampler.sample` with ``cond`` and ``guidance``) and its ``decoder`` (`Generator.load_decoder`), or None:
    then no_task_info and the seen-fit reconstruction are None."""
    sampler: Sampler
    decoder: Decoder | None = None


@dataclass
class SeenLatents:
    """The seen snapshots' latents, standardized by their global mean and std (``z`` = (latent - mean) / std,
    as the conv AE's prior standardizes them), for the no_task_info baseline."""
    z: torch.Tensor
    mean: float
    std: float


@torch.no_grad()
def seen_latents(g: TaskGenerator, params: torch.Tensor) -> SeenLatents | None:
    """`SeenLatents` of the seen snapshots [K, D] (None without a decoder)."""
    if g.decoder is None:
        return None
    z = g.decoder.encode(params)
    mean, std = z.mean().item(), z.std().item()
    return SeenLatents((z - mean) / std, mean, std)


@torch.no_grad()
def generate_for_codes(g: TaskGenerator, codes: torch.Tensor, num_models: int, guidance: float,
                       gen: torch.Generator) -> torch.Tensor:
    """[T, num_models, D]: ``num_models`` vectors generated for each of the T codes (guidance scale ``guidance``)."""
    rep = codes.repeat_interleave(num_models, dim=0)
    return g.sampler.sample(len(rep), rep, rng=gen, guidance=guidance).reshape(len(codes), num_models, -1)


@torch.no_grad()
def reconstruct(g: TaskGenerator, vectors: torch.Tensor) -> torch.Tensor | None:
    """The decoder's reconstructions of parameter vectors [..., D] (encode, decode; no noise, no prior), or None."""
    if g.decoder is None:
        return None
    flat = vectors.reshape(-1, vectors.shape[-1])
    return g.decoder.decode(g.decoder.encode(flat)).float().reshape(vectors.shape)


@torch.no_grad()
def gaussian_latent_vectors(g: TaskGenerator, z_seen: SeenLatents | None, n: int,
                            gen: torch.Generator) -> torch.Tensor | None:
    """``n`` vectors decoded from latents drawn from the per-value Gaussian of the seen latents (standardized), or
    None without a decoder (nothing drawn)."""
    if z_seen is None:
        return None
    mean, std = z_seen.z.mean(0), z_seen.z.std(0)
    z = mean + std * torch.randn((n, *mean.shape), generator=gen)
    return g.decoder.decode(z * z_seen.std + z_seen.mean).float()


def per_task_accuracy(vectors: torch.Tensor, codes: torch.Tensor, feats: torch.Tensor, y: torch.Tensor,
                      spec: TaskHeadSpec) -> torch.Tensor:
    """vectors [T, M, D] (M models for task t), codes [T, bits] -> [T, M] accuracy (%) on each task's labels."""
    t, m, d = vectors.shape
    labels = codes[:, y].repeat_interleave(m, dim=0)
    return accuracy(vectors.reshape(t * m, d), feats, labels, spec).reshape(t, m)


def summary(values: list[float | None]) -> dict | None:
    if not values or any(v is None for v in values):
        return None
    a = np.asarray(values, dtype=np.float64)
    return {"acc_mean": round(float(a.mean()), 4), "acc_median": round(float(np.median(a)), 4),
            "acc_min": round(float(a.min()), 4)}


def paired(gen: list[float], other: list[float | None]) -> dict | None:
    """Generated against another method, task by task: wins / ties / losses and the mean difference (points)."""
    if any(v is None for v in other):
        return None
    d = np.asarray(gen) - np.asarray(other)
    return {"wins": int((d > 1e-9).sum()), "ties": int((np.abs(d) <= 1e-9).sum()), "losses": int((d < -1e-9).sum()),
            "mean_diff": round(float(d.mean()), 4)}


def evaluate_codes(g: TaskGenerator, spec: TaskHeadSpec, codes: torch.Tensor, trained: torch.Tensor,
                   seen_codes: torch.Tensor, seen_snaps: torch.Tensor, z_seen: SeenLatents | None,
                   feats: torch.Tensor, y: torch.Tensor, composed: torch.Tensor | None, regression: CodeRegression,
                   num_models: int, guidance: float, gen: torch.Generator) -> list[dict]:
    """One row per code with every method's accuracy (%) on that task's labels of (``feats``, ``y``)."""
    generated = per_task_accuracy(generate_for_codes(g, codes, num_models, guidance, gen), codes, feats, y, spec)
    wrong = per_task_accuracy(generate_for_codes(g, 1 - codes, num_models, guidance, gen), codes, feats, y, spec)
    train_acc = per_task_accuracy(trained, codes, feats, y, spec)
    nearest = hamming(codes, seen_codes).min(1)
    nearest_idx = hamming(codes, seen_codes).argmin(1)   # the first of the nearest, in the seeded order
    nearest_acc = per_task_accuracy(seen_snaps[nearest_idx].mean(1, keepdim=True), codes, feats, y, spec)
    regression_acc = per_task_accuracy(regression(codes)[:, None], codes, feats, y, spec)
    average = seen_snaps.reshape(-1, seen_snaps.shape[-1]).mean(0)
    average_acc = per_task_accuracy(average.expand(len(codes), 1, -1), codes, feats, y, spec)
    noinfo = gaussian_latent_vectors(g, z_seen, num_models, gen)
    noinfo_acc = (None if noinfo is None else
                  per_task_accuracy(noinfo.expand(len(codes), -1, -1), codes, feats, y, spec))
    majority = majority_accuracy(codes, y)
    rows = []
    for i, code in enumerate(codes):
        rows.append({
            "code": code_str(code), "positives": [int(c) for c in torch.nonzero(code).flatten().tolist()],
            "generated": round(generated[i].mean().item(), 4), "generated_max": round(generated[i].max().item(), 4),
            "trained": round(train_acc[i].mean().item(), 4),
            "nearest_task": round(nearest_acc[i, 0].item(), 4),
            "nearest_code": code_str(seen_codes[nearest_idx[i]]), "nearest_hamming": int(nearest.values[i]),
            "code_regression": round(regression_acc[i, 0].item(), 4),
            "composed_head": None if composed is None else round(composed[i].item(), 4),
            "all_tasks_average": round(average_acc[i, 0].item(), 4),
            "wrong_code": round(wrong[i].mean().item(), 4),
            "no_task_info": None if noinfo_acc is None else round(noinfo_acc[i].mean().item(), 4),
            "majority": round(majority[i].item(), 4),
        })
    return rows


def majority_accuracy(codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[T] accuracy (%) of always answering each task's majority label on labels ``y``."""
    pos = codes[:, y].mean(1)
    return 100.0 * torch.maximum(pos, 1 - pos)


def seen_sample(num_seen: int, count: int, seed: int) -> torch.Tensor:
    """Indices of ``min(count, num_seen)`` seen tasks, drawn by their own generator seeded with ``seed`` (the same
    tasks whatever else the run draws, so every configuration is compared on the same seen tasks)."""
    return torch.randperm(num_seen, generator=torch.Generator().manual_seed(seed))[:count].sort().values


def seen_fit_rows(g: TaskGenerator, spec: TaskHeadSpec, codes: torch.Tensor, snaps: torch.Tensor,
                  regression: CodeRegression, splits: dict, num_models: int, guidance: float,
                  gen: torch.Generator) -> dict[str, list[dict]]:
    """Seen tasks ``codes`` [T, bits] with their own snapshots ``snaps`` [T, S, D]: one row per task and per
    split of ``splits`` ({name: (feats, y)}) with every set of `SEEN_SETS` (reconstruction None without a
    decoder). The models are generated once and scored on each split."""
    vectors = {"generated": generate_for_codes(g, codes, num_models, guidance, gen),
               "trained": snaps, "reconstruction": reconstruct(g, snaps), "code_regression": regression(codes)[:, None]}
    out = {}
    for split, (feats, y) in splits.items():
        acc = {k: per_task_accuracy(v, codes, feats, y, spec).mean(1) for k, v in vectors.items() if v is not None}
        acc[MAJORITY.name] = majority_accuracy(codes, y)
        out[split] = [{"code": code_str(c)} | {s.name: round(acc[s.name][i].item(), 4) if s.name in acc else None
                                               for s in SEEN_SETS}
                      for i, c in enumerate(codes)]
    return out


def summarize_seen(rows: list[dict]) -> dict:
    """results.json's `seen_fit`: the number of tasks, the share where the generated models fall below the
    majority label, and per set of `SEEN_SETS` its mean / median / min accuracy (%) and task count."""
    below = sum(r["generated"] < r[MAJORITY.name] for r in rows) / len(rows)
    sets = {s.name: summary([r[s.name] for r in rows]) for s in SEEN_SETS}
    return ({"tasks": len(rows), "below_majority_share": round(below, 4)}
            | {name: None if s is None else s | {"tasks": len(rows)} for name, s in sets.items()})


def summarize_rows(rows: list[dict]) -> tuple[dict, dict]:
    """(summary per method over the tasks, paired comparison of generated against trained and each baseline)."""
    stats = {k: summary([r[k] for r in rows]) for k in (*METHODS, MAJORITY.name)}
    gen = [r["generated"] for r in rows]
    pairs = {k: paired(gen, [r[k] for r in rows]) for k in METHODS if k != "generated"}
    return stats, pairs


def _task_panel(ax, rows: list[dict], sets, xlabel: str, title: str, codes: bool) -> None:
    order = sorted(range(len(rows)), key=lambda i: rows[i]["trained"])
    for method, style in ((s.name, s.style) for s in sets):
        ys = [rows[i][method] for i in order]
        if all(v is not None for v in ys):
            ax.plot(range(len(rows)), ys, style, label=method, markersize=14 if style == "k_" and codes else 6)
    if codes:
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([rows[i]["code"] for i in order], rotation=90, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=4, loc="lower left")


def per_task_figure(rows: list[dict], path, title: str, seen_rows: list[dict] | None = None) -> None:
    """Accuracy of every method on every unseen task (tasks sorted by the trained models' accuracy); with
    ``seen_rows``, a second panel: the seen-task fit (`SEEN_SETS`) on the sampled seen tasks."""
    from pdiff.core.plots import plt, save_figure

    width = max(6.0, 0.32 * len(rows))
    fig, axes = plt.subplots(1, 2 if seen_rows else 1, figsize=(2 * width if seen_rows else width, 4.0),
                             squeeze=False)
    _task_panel(axes[0, 0], rows, (*TASK_SETS, MAJORITY), "unseen task (class code, bit i = digit i)", title, True)
    if seen_rows:
        _task_panel(axes[0, 1], seen_rows, SEEN_SETS, "seen task (sorted by its own snapshots' accuracy)",
                    f"seen-task fit: {len(seen_rows)} sampled seen tasks", False)
    save_figure(fig, path)


def per_task_csv(rows: list[dict]) -> str:
    """One line per task (the `dvc plots` source): task index, code and each method's accuracy."""
    cols = [*METHODS, MAJORITY.name]
    lines = ["task,code," + ",".join(cols)]
    for i, r in enumerate(rows):
        lines.append(f"{i},{r['code']}," + ",".join("" if r[c] is None else str(r[c]) for c in cols))
    return "\n".join(lines) + "\n"
