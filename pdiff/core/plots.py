"""Figures as PNG, rendered offline with matplotlib (dvc's HTML plots need a CDN)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pdiff.core.artifacts import write_atomic  # noqa: E402

# No "Software" tag (it names the matplotlib version): the bytes of a PNG depend only on what is drawn.
PNG_METADATA = {"Software": None}


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically (fixed dpi, no version metadata) and close it."""
    out = write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight",
                                                     metadata=PNG_METADATA))
    plt.close(fig)
    return out


def loss_curves(history: dict[str, list[tuple[int, float]]], path: str | Path, title: str,
                xlabel: str = "step", log_y: bool = False) -> None:
    keys = list(history)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        steps, values = zip(*history[key], strict=True)
        ax.plot(steps, values)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(key)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path)


def accuracy_histogram(groups: dict[str, list[float]], path: str | Path, title: str) -> None:
    """Overlaid histograms of per-model test accuracy, one colour per group, shared bins."""
    values = [v for vs in groups.values() for v in vs]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if values:
        lo, hi = min(values), max(values)
        bins = [lo + (hi - lo + 1e-9) * i / 30 for i in range(31)]
        for name, vs in groups.items():
            if vs:
                ax.hist(vs, bins=bins, alpha=0.55, label=f"{name} (n={len(vs)})")
    ax.set_xlabel("test accuracy (%)")
    ax.set_ylabel("models")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)
