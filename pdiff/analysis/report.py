"""What the `analyze` stage shows: per-method CSVs (for `dvc plots`), PNG figures, and report.md with one
table of all methods and sentences computed from the numbers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pdiff.analysis.novelty import Analysis
from pdiff.analysis.sets import BY_NAME, NAMES, of_kind
from pdiff.core.artifacts import save_text
from pdiff.core.plots import plt, save_figure

TABLE_COLUMNS = {"count": "count", "failed": "failed", "acc_mean": "acc mean", "acc_median": "acc median",
                 "acc_max": "acc max", "acc_min": "acc min", "max_similarity_mean": "max-IoU mean",
                 "nn_l2_mean": "NN L2 mean"}
FIGURES = {"novelty_scatter.png": "Accuracy against similarity to the nearest training snapshot",
           "distributions.png": "Per-method distributions of accuracy, max-IoU and nearest-neighbour L2"}
# t-SNE (and, to a lesser degree, PCA) turns the last-bit differences of floating-point kernels between CPUs
# into a visibly different picture, so the embedding figure goes to its own folder, outside the stage's hashed
# outputs: the `analyze` outputs in dvc.lock stay the same on every machine.
EMBEDDING_FIGURE = ("embedding.png", "2-D PCA and t-SNE of the parameter vectors (machine-dependent, not "
                    "tracked by DVC)")


def _present(analysis: Analysis) -> list[str]:
    return [m for m in NAMES if m in analysis.methods and len(analysis.methods[m].accuracy)]


# --------------------------------------------------------------------------------------------------- data
def method_csv(analysis: Analysis, method: str) -> str:
    """One row per model, sorted by accuracy: quantile, accuracy, max_similarity, nn_l2 (empty when undefined)."""
    r = analysis.methods[method]
    order = np.argsort(r.accuracy.numpy(), kind="stable")
    n = len(order)
    fmt = lambda v: "" if not np.isfinite(v) else f"{v:.6g}"  # noqa: E731
    rows = [f"{i / max(n - 1, 1):.4f},{fmt(float(r.accuracy[j]))},{fmt(float(r.max_similarity[j]))},"
            f"{fmt(float(r.nn_l2[j]))}" for i, j in enumerate(order)]
    return "quantile,accuracy,max_similarity,nn_l2\n" + "".join(row + "\n" for row in rows)


def write_csvs(analysis: Analysis, folder: str | Path) -> None:
    for method in analysis.methods:
        save_text(method_csv(analysis, method), Path(folder) / f"{method}.csv")


# --------------------------------------------------------------------------------------------------- figures
def scatter_figure(analysis: Analysis, path: str | Path) -> None:
    """Accuracy vs max_similarity (the key figure of Zeng et al.) and accuracy vs nn_l2, one colour per method.
    Accuracies on a finite test set are discrete, so points get a small vertical jitter
    (within a third of one test sample's step)."""
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method in _present(analysis):
        r = analysis.methods[method]
        acc = r.accuracy.numpy()
        step = 100.0 / max(analysis.settings.get("test_size", 1), 1)
        jitter = rng.uniform(-0.3, 0.3, len(acc)) * step
        for ax, xs in zip(axes, (r.max_similarity.numpy(), r.nn_l2.numpy()), strict=True):
            ok = np.isfinite(xs)
            ax.scatter(xs[ok], (acc + jitter)[ok], s=12, alpha=0.6, color=BY_NAME[method].color,
                       label=f"{method} (n={int(ok.sum())})")
    axes[0].set_xlabel("max IoU of error sets with a training snapshot")
    axes[1].set_xlabel("L2 distance to the nearest training snapshot")
    for ax in axes:
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("novelty: originals are compared with the other snapshots (leave-one-out)")
    save_figure(fig, path)


def distribution_figure(analysis: Analysis, path: str | Path) -> None:
    """Box plots with the individual models on top: accuracy, max_similarity and nn_l2 per method."""
    rng = np.random.default_rng(0)
    methods = _present(analysis)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    for ax, attr, label in zip(axes, ("accuracy", "max_similarity", "nn_l2"),
                               ("test accuracy (%)", "max IoU of error sets", "nearest-snapshot L2"), strict=True):
        data = [getattr(analysis.methods[m], attr).numpy() for m in methods]
        data = [d[np.isfinite(d)] for d in data]
        keep = [i for i, d in enumerate(data) if len(d)]
        if keep:
            ax.boxplot([data[i] for i in keep], positions=keep, widths=0.6, showfliers=False)
        for i in keep:
            ax.scatter(i + rng.uniform(-0.2, 0.2, len(data[i])), data[i], s=6, alpha=0.45,
                       color=BY_NAME[methods[i]].color)
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path)


def embedding_figure(embedding: dict, path: str | Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, title in zip(axes, ("pca", "tsne"), ("PCA (axes fitted on the snapshots)", "t-SNE"), strict=True):
        coords = embedding.get(key, {})
        for method in NAMES:
            if method in coords:
                c = coords[method]
                ax.scatter(c[:, 0], c[:, 1], s=10, alpha=0.6, color=BY_NAME[method].color,
                           label=f"{method} (n={len(c)})")
        if not coords:
            ax.text(0.5, 0.5, "too few vectors", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=8)
    fig.suptitle("parameter vectors, z-scored per parameter with the snapshots' mean and std")
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------------- report
def table_frame(summary: dict):
    """A pandas DataFrame, one row per method, the main columns of metrics/novelty.json."""
    import pandas as pd

    rows = {m: {label: s.get(key) for key, label in TABLE_COLUMNS.items()} for m, s in summary.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "method"
    return frame


def _fmt(v, digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _verdict(diff: float, step: float) -> str:
    """How a difference in mean accuracy reads: under one test sample (``step`` points) is a match."""
    return "is within one test sample of" if abs(diff) < step else "beats" if diff > 0 else "falls short of"


def findings(summary: dict, test_size: int) -> list[str]:
    """Plain sentences computed from ``summary`` (the novelty.json content): how close generated models
    are to the training snapshots, relative to the snapshots among themselves; how the best simple
    baseline compares with them in accuracy (a difference under one test sample, 100 / test_size points,
    is called a match); and, when the decoder sets are present, how decoded noise (no diffusion model)
    compares with the generated models, beside the reconstructions' accuracy."""
    gen, orig = summary.get("generated", {}), summary.get("original", {})
    g_l2, o_l2 = gen.get("nn_l2_mean"), orig.get("nn_l2_mean")
    g_sim, o_sim = gen.get("max_similarity_mean"), orig.get("max_similarity_mean")
    if None in (g_l2, o_l2, g_sim, o_sim):
        first = ("Closeness to the training snapshots cannot be compared here: "
                 + ("there is only one snapshot, so snapshots have no other snapshot to be compared with."
                    if o_l2 is None else "no generated vector was finite."))
    else:
        closer = "closer to" if g_l2 < o_l2 else ("as close to" if g_l2 == o_l2 else "farther from")
        overlap = "more" if g_sim > o_sim else ("as much" if g_sim == o_sim else "less")
        first = (f"Generated models are {closer} their nearest training snapshot (mean L2 {g_l2:.4g}) than "
                 f"training snapshots are to each other ({o_l2:.4g}), and their misclassified test samples "
                 f"overlap {overlap} with the most similar snapshot's (mean max-IoU {g_sim:.4f} against "
                 f"{o_sim:.4f} between snapshots, where 1 means the same misclassified samples).")
    baselines = {b.name: summary[b.name]["acc_mean"] for b in of_kind("baseline")
                 if (summary.get(b.name) or {}).get("acc_mean") is not None}
    g_acc, o_acc = gen.get("acc_mean"), orig.get("acc_mean")
    step = 100.0 / max(int(test_size), 1)
    if not baselines or g_acc is None:
        second = "No baseline or generated model could be evaluated, so accuracies cannot be compared."
    else:
        best = max(baselines, key=baselines.get)
        diff = baselines[best] - g_acc
        verdict = _verdict(diff, step)
        second = (f"In mean test accuracy the best simple baseline, `{best}` ({baselines[best]:.2f}%), {verdict} "
                  f"the generated models ({g_acc:.2f}%, {diff:+.2f} points; one test sample is {step:.2g} points), "
                  f"while the original snapshots average {_fmt(o_acc, 2)}%.")
    out = [first, second]
    decoded, recon = summary.get("decoded_noise", {}), summary.get("reconstruction", {})
    if decoded.get("acc_mean") is not None and g_acc is not None:
        diff = decoded["acc_mean"] - g_acc
        verdict = _verdict(diff, step)
        ceiling = (f", and the decoded snapshot latents (reconstructions) average {recon['acc_mean']:.2f}%"
                   if recon.get("acc_mean") is not None else "")
        out.append(f"Without the diffusion model, the autoencoder's decoder fed Gaussian latent noise "
                   f"(`decoded_noise`, {decoded['acc_mean']:.2f}%) {verdict} the LDM-generated models "
                   f"({diff:+.2f} points){ceiling}.")
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def learned_line(learned: dict) -> str:
    """One line on what the generator learned, from the ``learned`` entry of metrics/novelty.json
    (`pdiff.analysis.learned`): the verdict and the numbers it rests on, each beside the snapshots' own."""
    if not learned:
        return ""
    def g(key: str) -> str:
        return "n/a" if learned.get(key) is None else f"{learned[key]:.4g}"

    diverse = {True: "diverse", False: "not diverse", None: "diversity unknown"}[learned.get("diverse")]
    return (f"**What was learned: {learned.get('verdict')}** ({diverse}; rule: `pdiff.analysis.learned.verdict`). "
            f"Generated models: mean L2 {g('nn_l2_mean')} to the nearest snapshot (snapshots to each other: "
            f"{g('snapshot_nn_l2_mean')}), {g('mean_l2_mean')} to the snapshots' mean (snapshots: "
            f"{g('snapshot_mean_l2_mean')}); {learned.get('distinct_nearest')} distinct nearest snapshots among "
            f"{learned.get('num_generated')} models; two models predict different classes on "
            f"{_pct(learned.get('disagreement_generated'))} of test inputs (two snapshots: "
            f"{_pct(learned.get('disagreement_snapshots'))}).")


def _sets_text(summary: dict, settings: dict) -> str:
    """The sentences describing the baselines and, when the analysis had a decoder, the decoder sets, each set
    in the words of its registry entry (`pdiff.analysis.sets`)."""
    def phrases(kind: str) -> list[str]:
        return [f"`{s.name}` ({s.describe(settings)})" for s in of_kind(kind) if s.name in summary and s.describe]

    text = ""
    if baselines := phrases("baseline"):
        text += f" Baselines: {', '.join(baselines)}."
    if decoder := phrases("decoder"):
        text += f" Without the diffusion model: {', '.join(decoder[:-1]) + ' and ' if len(decoder) > 1 else ''}"
        text += f"{decoder[-1]}."
    return text


def report_markdown(analysis: Analysis, summary: dict, figures_dir: str = "plots/analyze",
                    embedding_dir: str | None = None) -> str:
    s = analysis.settings
    lines = [
        "# Honest evaluation: baselines and memorization",
        "",
        f"K = {s.get('num_snapshots')} training snapshots of {s.get('num_values')} values; {s.get('num_models')} "
        f"models per generated method; test split of {s.get('test_size')} samples, the same base model and code "
        "path as `evaluate`." + _sets_text(summary, s) + " `max-IoU`: largest IoU of a model's set of "
        "misclassified test samples with any training snapshot's; `NN L2`: distance to the nearest snapshot in "
        "parameter space. For `original` both leave the snapshot itself out. Accuracies in %.",
        "",
        table_frame(summary).to_markdown(floatfmt=".4g"),
        "",
        " ".join(findings(summary, s.get("test_size", 1))),
        "",
    ]
    if line := learned_line(analysis.learned):
        lines += [line, ""]
    notes = [f"- `{m}`: {v['note']}" for m, v in summary.items() if v.get("note")]
    if notes:
        lines += ["Notes:", *notes, ""]
    for name, caption in FIGURES.items():
        lines += [f"![{caption}]({figures_dir}/{name})", ""]
    if embedding_dir is not None:
        lines += [f"![{EMBEDDING_FIGURE[1]}]({embedding_dir}/{EMBEDDING_FIGURE[0]})", ""]
    return "\n".join(lines)


def write_outputs(analysis: Analysis, summary: dict, embedding: dict, figures_dir: str | Path,
                  report_path: str | Path, embedding_dir: str | Path) -> None:
    """CSVs and PNGs under ``figures_dir``, the machine-dependent embedding figure under ``embedding_dir``
    (`EMBEDDING_FIGURE`), the markdown report at ``report_path`` (figure links relative)."""
    figures_dir, embedding_dir = Path(figures_dir), Path(embedding_dir)
    write_csvs(analysis, figures_dir)
    scatter_figure(analysis, figures_dir / "novelty_scatter.png")
    distribution_figure(analysis, figures_dir / "distributions.png")
    embedding_figure(embedding, embedding_dir / EMBEDDING_FIGURE[0])
    save_text(report_markdown(analysis, summary, figures_dir.as_posix(), embedding_dir.as_posix()), report_path)
