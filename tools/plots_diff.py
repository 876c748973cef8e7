"""`dvc plots diff`, rendered offline to one PNG.

DVC's own HTML loads Vega from a CDN and stays blank without a network. `dvc plots diff REV... --json --split`
hands back, for every plot in dvc.yaml, the data points of each revision (`<DVC_METRIC_DATA>`, one row per
point with its `rev` and, for multi-file plots, its `filename`). This module draws those rows with matplotlib:
one panel per plot, one colour per revision, one line style per file. Image plots (PNGs) are listed, not drawn.

    python scripts/plots_diff.py noise-none noise-both          # -> reports/plots_diff/noise-none_vs_noise-both.png
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from pdiff import PdiffError
from tools.dvc_runner import run_dvc

LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3))]  # one per file of a multi-file plot


def plots_diff_json(revs: list[str], cwd: str | Path = ".") -> dict:
    """The `data` block of `dvc plots diff REVS --json --split` (plot id -> list of entries)."""
    res = run_dvc(["plots", "diff", *revs, "--json", "--split"], cwd,
                  hint="Check the revisions with `dvc exp show` or `git log`.")
    return json.loads(res.stdout).get("data") or {}


def _mark(content: dict) -> str:
    """'point' for scatter templates, else 'line' (the first Vega mark in the spec)."""
    found = re.search(r'"mark": (?:\{"type": )?"(\w+)"', json.dumps(content))
    return "point" if found and found.group(1) == "point" else "line"


def panels(data: dict) -> tuple[list[dict], list[str]]:
    """Vega plots as drawable panels ({title, x, y, kind, series: {(rev, file): ([x], [y])}}) and the ids
    of image plots (which cannot be overlaid)."""
    out, images = [], []
    for plot_id, entries in data.items():
        for entry in entries:
            if entry.get("type") != "vega":
                if plot_id not in images:
                    images.append(plot_id)
                continue
            anchors = entry.get("anchor_definitions") or {}
            rows = anchors.get("<DVC_METRIC_DATA>") or []
            # Field names from the spec's encoding; the axis labels (which equal them unless dvc.yaml sets
            # x_label / y_label) as the fallback.
            encoding = (entry.get("content") or {}).get("encoding") or {}
            x = (encoding.get("x") or {}).get("field") or anchors.get("<DVC_METRIC_X_LABEL>")
            y = (encoding.get("y") or {}).get("field") or anchors.get("<DVC_METRIC_Y_LABEL>")
            if not rows or x is None or y is None:
                continue
            series: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
            for row in rows:
                try:
                    xv, yv = float(row[x]), float(row[y])
                except (KeyError, TypeError, ValueError):
                    continue
                if math.isfinite(xv) and math.isfinite(yv):
                    xs, ys = series.setdefault((row.get("rev", "?"), row.get("filename", "")), ([], []))
                    xs.append(xv)
                    ys.append(yv)
            if series:
                out.append({"id": plot_id, "title": anchors.get("<DVC_METRIC_TITLE>") or plot_id,
                            "x": anchors.get("<DVC_METRIC_X_LABEL>") or x,
                            "y": anchors.get("<DVC_METRIC_Y_LABEL>") or y,
                            "kind": _mark(entry.get("content") or {}), "series": series})
    return out, images


def render(data: dict, path: str | Path, title: str = "") -> Path:
    """One PNG with a panel per Vega plot in ``data`` (output of `plots_diff_json`)."""
    from pdiff.core.plots import plt, save_figure

    drawn, images = panels(data)
    if not drawn:
        raise PdiffError("`dvc plots diff` returned no plot data for these revisions (are their metrics and plots "
                         "committed or in the experiment?).")
    revs = list(dict.fromkeys(rev for p in drawn for rev, _ in p["series"]))
    colours = {rev: f"C{i % 10}" for i, rev in enumerate(revs)}
    cols = min(3, len(drawn))
    rows = math.ceil(len(drawn) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, drawn):
        files = list(dict.fromkeys(f for _, f in panel["series"]))  # one line style / marker per file
        for (rev, fname), (xs, ys) in panel["series"].items():
            i = files.index(fname)
            label = rev + (f" · {Path(fname).stem}" if len(files) > 1 else "")
            if panel["kind"] == "point":
                ax.scatter(xs, ys, s=10, alpha=0.5, color=colours[rev], label=label, marker="ox+^v"[i % 5])
            else:
                ax.plot(xs, ys, linestyle=LINESTYLES[i % len(LINESTYLES)], color=colours[rev], label=label, lw=1.2)
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xlabel(panel["x"])
        ax.set_ylabel(panel["y"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(drawn):]:
        ax.axis("off")
    note = f" ({len(images)} image plots not overlaid)" if images else ""
    fig.suptitle((title or "dvc plots diff: " + " vs ".join(revs)) + note, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
