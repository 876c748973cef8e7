"""A preset's headline over several seeds: run the whole pipeline once per seed in a
fresh clone of the current commit, collect each run's accuracies, baselines, novelty and per-stage seconds into
one results file, and render it as a Markdown table and a PNG figure.

Per seed: ``git clone`` of HEAD into a work folder, ``python -m tools.presets apply PRESET``, ``seed: S`` written
into params.yaml, ``dvc repro`` with its output time-stamped. A seed's entry (`collect`) holds:

- ``original`` / ``generated``: count, acc_mean, acc_median, acc_max, acc_min, acc_std on the test split (and the
  same under ``val`` for the validation split);
- ``baselines``: acc_median and max_similarity_mean of each baseline of the analyze stage (the registry of
  evaluated sets, `pdiff.analysis.sets`; a baseline added after a run was made is absent from its entry and
  shown as pending);
- ``novelty``: max-IoU and nearest-neighbour L2 of the originals and the generated models;
- ``decoder``: the analyze stage's sets that use the trained AE but no diffusion model (the registry's decoder
  sets: Gaussian latents decoded, the snapshots' own latents decoded): accuracy statistics, max-IoU and
  nearest-neighbour L2 (absent from entries of runs made before analyze had them: shown as pending);
- ``learned``: the analyze stage's ``learned`` entry as it is (copies, the mean or something new:
  `pdiff.analysis.learned`; absent from entries of runs made before analyze had it: shown as not rerun);
- ``original_test_errors``: how many test examples the originals get wrong (mean, min, max over the K);
- ``base``: the base model's validation accuracy after each epoch (the convergence the epochs were chosen on);
- ``dim``, ``test_size``, ``stage_seconds`` (each stage's own timer, from the timing files its stages wrote),
  ``stage_peak_rss_mb`` (each stage's peak resident set, from the same files), ``mapped_file_mb`` (the snapshot
  file, when memory-mapped) and ``wall_seconds`` (the whole `dvc repro`).

    python -m tools.paper_scale run --seeds 0 1 2     # -> reports/mnist5k-resnet18/results.{json,md,png}
    python -m tools.paper_scale collect REPO LOG      # add a finished run (REPO, its repro output LOG)
    python -m tools.paper_scale report                # re-render results.md / results.png

Options: --preset (default mnist5k-resnet18; ``default``: the committed params.yaml as it is), --out (default
reports/<preset>), --work (clone folder; default a temporary one), --set KEY=VALUE (repeatable: a params value on
top of the preset, for instance `--set generator=tokens --set collect.storage=mmap --out
reports/mnist5k-resnet18/tokens`; one results file holds one setting).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from pdiff import PdiffError
from pdiff.analysis.learned import DIVERSE_RATIO
from pdiff.analysis.sets import BY_NAME, of_kind
from pdiff.core.artifacts import load_torch, save_json, save_text
from pdiff.core.snapstore import is_vector_store, load_vectors
from pdiff.core.stage import run_script
from tools.doc_numbers import lookup, markdown_table, quote

SUMMARY_KEYS = ("count", "acc_mean", "acc_median", "acc_max", "acc_min", "acc_std")
DECODER_KEYS = ("count", "acc_mean", "acc_median", "acc_max", "acc_min", "max_similarity_mean", "nn_l2_mean")
STAGES = ("prepare", "train", "collect", "train_ae", "train_ldm", "generate", "evaluate", "analyze")


def wall_from_log(lines: list[str]) -> float | None:
    """Seconds between the first and last line of a log whose lines start with an HH:MM:SS time stamp (one run
    within a day), or None."""
    stamps = [m.group(1) for line in lines if (m := re.match(r"(\d\d:\d\d:\d\d) ", line))]
    if len(stamps) < 2:
        return None
    secs = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (t.split(":") for t in stamps)]
    return float((secs[-1] - secs[0]) % 86400)


def _summary(d: dict) -> dict:
    return {k: d[k] for k in SUMMARY_KEYS if k in d}


def _read_tsv(path: Path) -> list[float]:
    rows = path.read_text().split("\n")[1:] if path.exists() else []
    return [float(r.split("\t")[1]) for r in rows if r.strip()]


def collect(repo: Path, lines: list[str], wall_seconds: float | None = None) -> dict:
    """One seed's entry from a finished pipeline run in ``repo`` (its artifacts and the stage timings its
    stages wrote, `pdiff.core.stage.read_timings`) and the output ``lines`` of its `dvc repro` (for the wall
    time when ``wall_seconds`` is not given)."""
    from pdiff.core.stage import read_kernels, read_timings, timing_folder

    repo = Path(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    novelty = json.loads((repo / "metrics/novelty.json").read_text())
    snaps = load_vectors(repo / "models/snapshots.pt", "collect")
    correct = load_torch(repo / "models/correctness.pt", "evaluate", required=("methods",))["methods"]["original"]
    errors = (~correct["correct"]).sum(dim=1).float()
    entry = {
        "seed": params["seed"],
        "generator": params.get("generator", "conv_ae"),
        "dim": int(snaps["params"].shape[1]),
        "test_size": int(correct["correct"].shape[1]),
        "original": _summary(evaluate["original"]),
        "generated": _summary(evaluate["generated"]),
        "val": {m: _summary(evaluate["val"][m]) for m in ("original", "generated") if m in evaluate.get("val", {})},
        "baselines": {s.name: {"acc_median": novelty[s.name]["acc_median"],
                               "max_similarity_mean": novelty[s.name].get("max_similarity_mean")}
                      for s in of_kind("baseline") if s.name in novelty},
        "novelty": {m: {k: novelty[m].get(k) for k in ("max_similarity_mean", "nn_l2_mean")}
                    for m in ("original", "generated")},
        "decoder": {s.name: {k: novelty[s.name].get(k) for k in DECODER_KEYS}
                    for s in of_kind("decoder") if s.name in novelty},
        **({"learned": novelty["learned"]} if "learned" in novelty else {}),
        "original_test_errors": {"mean": round(float(errors.mean()), 2), "min": int(errors.min()),
                                 "max": int(errors.max())},
        "base": {"val_acc_per_epoch": _read_tsv(repo / "metrics/train/plots/metrics/val_acc.tsv")},
        "stage_seconds": read_timings(timing_folder(repo, exp="")),
        "stage_peak_rss_mb": read_timings(timing_folder(repo, exp=""), field="peak_rss_mb"),
        **({"mapped_file_mb": round((repo / "models/snapshots.pt").stat().st_size / 2 ** 20, 1)}
           if is_vector_store(repo / "models/snapshots.pt") else {}),
        "kernels": read_kernels(timing_folder(repo, exp="")),
    }
    wall_seconds = wall_seconds if wall_seconds is not None else wall_from_log(lines)
    if wall_seconds is not None:
        entry["wall_seconds"] = round(wall_seconds, 1)
    entry["claim"] = claim(entry)
    return entry


def claim(entry: dict) -> dict:
    """The paper's claim for one seed: generated max >= original max and generated median >= original median."""
    o, g = entry["original"], entry["generated"]
    return {"max": g["acc_max"] >= o["acc_max"], "median": g["acc_median"] >= o["acc_median"]}


DEFAULT = "default"  # --preset default: no preset applied, the committed params.yaml (with any --set on top)


def write_params(path: Path, preset: str, seed: int, overrides: dict | None = None) -> None:
    """``path`` (a params.yaml) with ``preset`` applied (none for ``default``), then ``overrides`` and ``seed``
    set; checked against the schema, so a wrong override stops here, naming the key, not in a stage."""
    from pdiff.core.config import from_dict
    from tools.presets import apply, set_values

    if preset != DEFAULT:
        apply(preset, path)
    save_text(set_values(path.read_text(), {**(overrides or {}), "seed": seed}), path)
    from_dict(yaml.safe_load(path.read_text()))


def run_seed(preset: str, seed: int, work: Path, log=print, overrides: dict | None = None) -> dict:
    """Clone HEAD into ``work``, apply ``preset``, set ``overrides`` ({dotted key: value}, on top of the
    preset) and ``seed``, `dvc repro`; the seed's entry."""
    from tools.workcopy import clone_head, timed_run

    commit = clone_head(work)
    write_params(work / "params.yaml", preset, seed, overrides)
    log(f"seed {seed}: dvc repro of {preset} in {work} (commit {commit[:7]})")
    start = time.monotonic()
    res = timed_run(["dvc", "repro"], work)
    lines = [line for _, line in res["lines"]]
    save_text("\n".join(f"{t:8.1f} {line}" for t, line in res["lines"]) + "\n", work / "repro.log")
    if res["returncode"] != 0:
        raise PdiffError(f"seed {seed}: `dvc repro` failed in {work} (exit {res['returncode']}); the last lines:\n"
                         + "\n".join(lines[-15:]))
    entry = collect(work, lines, time.monotonic() - start)
    entry["commit"] = commit
    return entry


def parse_overrides(items: list[str]) -> dict:
    """``["generator=tokens", "tokens.steps=500"]`` -> {dotted key: YAML value}."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise PdiffError(f"--set {item!r}: expected KEY=VALUE, for instance --set generator=tokens.")
        out[key.strip()] = yaml.safe_load(text)
    return out


def load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"preset": None, "seeds": []}


def check_preset(results: dict, preset: str, overrides: dict | None = None) -> None:
    """One results file holds one setting: the same preset, with the same ``overrides`` on top of it."""
    if results.get("preset") not in (None, preset):
        raise PdiffError(f"the results file holds preset {results['preset']!r}, not {preset!r}; use another --out.")
    if results.get("seeds") and results.get("overrides", {}) != (overrides or {}):
        raise PdiffError(f"the results file holds runs with overrides {results.get('overrides', {})}, not "
                         f"{overrides or {}}; use another --out.")


def add_entry(results: dict, preset: str, entry: dict, overrides: dict | None = None) -> dict:
    """``results`` with ``entry`` replacing any earlier entry of the same seed; seeds kept in order."""
    check_preset(results, preset, overrides)
    seeds = [e for e in results.get("seeds", []) if e["seed"] != entry["seed"]] + [entry]
    out = {"preset": preset, "seeds": sorted(seeds, key=lambda e: e["seed"])}
    return out | ({"overrides": overrides} if overrides else {})


def _mean_std(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def value(entry: dict, dotted: str):
    """``entry``'s value at a dotted path such as ``baselines.average.acc_median``; None where the entry has no
    such key (a run made before the key existed)."""
    for part in dotted.split("."):
        if not isinstance(entry, dict) or part not in entry:
            return None
        entry = entry[part]
    return entry


# (column title, dotted path into a seed's entry) of the results table: every baseline's median and every
# decoder set's median and max, in the order of the registry of evaluated sets (pdiff.analysis.sets)
COLUMNS = [("orig. median", "original.acc_median"), ("orig. max", "original.acc_max"),
           ("gen. median", "generated.acc_median"), ("gen. max", "generated.acc_max"),
           ("gen. min", "generated.acc_min"), ("gen. std", "generated.acc_std"),
           *((f"{s.label} median", f"baselines.{s.name}.acc_median") for s in of_kind("baseline")),
           ("gen. max-IoU", "novelty.generated.max_similarity_mean"), ("gen. NN-L2", "novelty.generated.nn_l2_mean"),
           ("orig. NN-L2", "novelty.original.nn_l2_mean"), ("orig. test errors", "original_test_errors.mean"),
           *((f"{s.label} {stat}", f"decoder.{s.name}.acc_{stat}") for s in of_kind("decoder")
             for stat in ("median", "max"))]


def table(results: dict) -> str:
    """The Markdown table: one row per seed and a mean ± std row."""
    seeds = results["seeds"]
    head = ["seed", *(c for c, _ in COLUMNS), "max ≥", "median ≥"]
    rows = [[str(e["seed"]), *(_cell(e, k) for _, k in COLUMNS), _yes(e["claim"]["max"]),
             _yes(e["claim"]["median"])] for e in seeds]
    if len(seeds) > 1:
        summary = []
        for c, k in COLUMNS:
            if all(_no_decoder(e, k) for e in seeds):
                summary.append("n/a")
                continue
            vals = [float(v) for e in seeds if (v := value(e, k)) is not None]
            if len(vals) < len(seeds):  # some seeds ran before this column existed: no mean over a subset
                summary.append("pending" if not vals else f"{len(vals)}/{len(seeds)} seeds")
                continue
            summary.append(f"{statistics.fmean(vals):.4g}" if "IoU" in c or "L2" in c else _mean_std(vals))
        rows.append(["mean ± std", *summary, f"{sum(e['claim']['max'] for e in seeds)}/{len(seeds)}",
                     f"{sum(e['claim']['median'] for e in seeds)}/{len(seeds)}"])
    return _markdown(head, rows)


def _no_decoder(entry: dict, key: str) -> bool:
    """A decoder column of a run whose generator has no decoder (the tokens generator): its analyze wrote no
    decoder set, so `collect` found none (a run from before the decoder sets has no ``decoder`` entry at all)."""
    return key.startswith("decoder.") and entry.get("decoder") == {}


def _cell(entry: dict, key: str) -> str:
    return "n/a" if _no_decoder(entry, key) else _fmt(value(entry, key))


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def _fmt(v) -> str:
    if v is None:
        return "pending"
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) and abs(v) < 1 else f"{v:g}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def stage_table(results: dict) -> str:
    """Seconds per stage (each stage's own timer) and the whole `dvc repro`, per seed."""
    seeds = results["seeds"]
    found = {s for e in seeds for s in e["stage_seconds"]}
    stages = [s for s in STAGES if s in found] + sorted(found - set(STAGES))
    head = ["seed", *stages, "sum of stages", "dvc repro wall"]
    rows = [[str(e["seed"]), *(f"{e['stage_seconds'][s]:.0f}" if s in e["stage_seconds"] else "—" for s in stages),
             f"{sum(e['stage_seconds'].values()):.0f}", f"{e.get('wall_seconds', float('nan')):.0f}"] for e in seeds]
    return _markdown(head, rows)


def rss_table(results: dict) -> str:
    """Peak resident set per stage (MB, ``ru_maxrss``: touched pages of a memory-mapped file count) and the mapped
    snapshot file, per seed; empty when no seed recorded them (runs made before stages did)."""
    seeds = [e for e in results["seeds"] if e.get("stage_peak_rss_mb")]
    if not seeds:
        return ""
    found = {s for e in seeds for s in e["stage_peak_rss_mb"]}
    stages = [s for s in STAGES if s in found] + sorted(found - set(STAGES))
    rows = [[str(e["seed"]), *(f"{e['stage_peak_rss_mb'][s]:,.0f}" if s in e["stage_peak_rss_mb"] else "—"
                               for s in stages), f"{e['mapped_file_mb']:,.0f}" if "mapped_file_mb" in e else "—"]
            for e in seeds]
    return _markdown(["seed", *stages, "mapped snapshot file"], rows)


LEARNED_HEAD = ["D", "NN-L2: generated / snapshot spacing", "mean-L2: generated / snapshots", "distinct nearest",
                "disagreement: generated / snapshots", "diverse", "verdict"]


def learned_cells(learned: dict | None) -> list[str]:
    """The cells of `LEARNED_HEAD` but D for one ``learned`` entry (`pdiff.analysis.learned`); "not rerun" as the
    verdict of a run made before analyze wrote it."""
    if not learned:
        return ["—"] * (len(LEARNED_HEAD) - 2) + ["not rerun"]

    def num(key: str) -> str:
        v = learned.get(key)
        return "n/a" if v is None else f"{v:.4g}"

    def pct(key: str) -> str:
        v = learned.get(key)
        return "n/a" if v is None else f"{100 * v:.2f} %"

    diverse = {True: "yes", False: "no", None: "n/a"}[learned.get("diverse")]
    return [f"{num('nn_l2_mean')} / {num('snapshot_nn_l2_mean')}", f"{num('mean_l2_mean')} / "
            f"{num('snapshot_mean_l2_mean')}", f"{learned.get('distinct_nearest')} of {learned.get('num_generated')}",
            f"{pct('disagreement_generated')} / {pct('disagreement_snapshots')}", diverse,
            f"**{learned.get('verdict')}**"]


def learned_table(results: dict) -> str:
    """What each seed's generator learned (its ``learned`` entry), one row per seed."""
    rows = [[str(e["seed"]), f"{e['dim']:,}", *learned_cells(e.get("learned"))] for e in results["seeds"]]
    return _markdown(["seed", *LEARNED_HEAD], rows)


def figure(results: dict, path: Path) -> None:
    """Per seed: originals' and generated models' median and max, and the medians of every other evaluated set
    (baselines, then the decoder sets) that at least one seed has, each in its colour of the registry."""
    from pdiff.core.plots import plt, save_figure

    seeds = results["seeds"]
    x = list(range(len(seeds)))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(seeds) + 2.5), 3.8))
    others = [*((f"{s.label} median", s.color, f"baselines.{s.name}.acc_median") for s in of_kind("baseline")),
              *((f"{s.label} median (AE, no LDM)", s.color, f"decoder.{s.name}.acc_median")
                for s in of_kind("decoder"))]
    bars = [(f"{m} median", BY_NAME[m].color, f"{m}.acc_median") for m in ("original", "generated")]
    bars += [bar for bar in others if any(value(e, bar[2]) is not None for e in seeds)]
    w = min(0.13, 0.8 / len(bars))
    offset = [(i - (len(bars) - 1) / 2) * w for i in range(len(bars))]
    for i, (label, color, key) in enumerate(bars):
        heights = [value(e, key) for e in seeds]
        ax.bar([xi + offset[i] for xi in x], [math.nan if h is None else h for h in heights], w, color=color,
               label=label)
    for i, m in enumerate(("original", "generated")):
        ax.scatter([xi + offset[i] for xi in x], [e[m]["acc_max"] for e in seeds], marker="^",
                   color=BY_NAME[m].color, edgecolor="k", zorder=3, label=f"{m} max")
    lows = [min(e["original"]["acc_min"], e["generated"]["acc_min"],
                *(v for _, _, k in bars[2:] if (v := value(e, k)) is not None)) for e in seeds]
    highs = [max(e["original"]["acc_max"], e["generated"]["acc_max"]) for e in seeds]
    ax.set_ylim(min(lows) - 0.3, max(highs) + 0.3)
    ax.set_xticks(x, [f"seed {e['seed']}" for e in seeds])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{setting(results)}: D = {seeds[0]['dim']:,}, test split {seeds[0]['test_size']:,}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_xlim(-0.6, len(seeds) - 0.4)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    save_figure(fig, path)


def setting(results: dict) -> str:
    """The preset's name and any values set on top of it: ``mnist5k-resnet18 (generator=tokens)``."""
    extra = ", ".join(f"{k}={v}" for k, v in results.get("overrides", {}).items())
    return f"{results['preset']} ({extra})" if extra else results["preset"]


def write_report(results: dict, out_dir: Path) -> Path:
    """results.md (tables) and results.png (figure) beside results.json."""
    figure(results, out_dir / "results.png")
    seeds = results["seeds"]
    text = [f"# {setting(results)}: the headline over {len(seeds)} seed(s)", "",
            "Test accuracy (%) of the K original snapshots, the generated models and the analyze stage's "
            "baselines (with decoded-noise, Gaussian latents decoded by the trained AE without the diffusion "
            "model, and reconstruction, the AE's reconstructions of the snapshots; \"pending\" for runs made "
            "before analyze had a set, \"n/a\" for the tokens generator, which has no decoder); novelty of the "
            "generated models (mean max-IoU of their error sets with any snapshot, mean L2 to the nearest "
            "snapshot) beside the snapshots' own spacing (original NN-L2). "
            "\"max ≥\" and \"median ≥\": does the generated max / median reach the originals'?", "", table(results), "",
            "What the generator learned (analyze's `learned` entry, docs/evaluation.md#what-was-learned; \"not "
            "rerun\" for runs made before analyze wrote it):", "", learned_table(results), "",
            "Seconds per stage (each stage's own timer; Python start-up excluded) and of the whole `dvc repro`:",
            "", stage_table(results), "",
            *(["Peak resident set per stage, MB (pages of the memory-mapped snapshot file it touched count in it):",
               "", rss_table(results), ""] if rss_table(results) else []),
            "![results](results.png)", ""]
    return save_text("\n".join(text), out_dir / "results.md")


def run(preset: str, seeds: list[int], out_dir: Path, work_root: Path | None = None, log=print,
        overrides: dict | None = None) -> dict:
    """Run every seed in turn (each in its own clone, ``overrides`` set on top of the preset), adding its entry
    to ``out_dir``/results.json as it finishes, then write the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    root = Path(work_root or tempfile.mkdtemp(prefix=f"pdiff-{preset}-"))
    check_preset(load_results(path), preset, overrides)  # before the first half-hour run, not after it
    for seed in seeds:
        entry = run_seed(preset, seed, root / f"seed{seed}", log=log, overrides=overrides)
        # re-read: entries added meanwhile are kept
        save_json(add_entry(load_results(path), preset, entry, overrides), path)
        log(f"seed {seed}: generated median/max {entry['generated']['acc_median']}/{entry['generated']['acc_max']}"
            f" vs original {entry['original']['acc_median']}/{entry['original']['acc_max']}")
    results = load_results(path)
    write_report(results, out_dir)
    return results


# The tables of docs/paper-scale.md, docs/block.md and docs/tokens.md, each a generated block filled by
# tools.doc_numbers from results files this tool writes (``load(path)``: a JSON file, parsed). A seed's row is
# named by its seed (``seeds[seed=0]``), never taken by its position in the list.
HEADLINE = "reports/mnist5k-resnet18/results.json"
BLOCK_RESULTS = "reports/mnist5k-resnet18-block/results.json"
TOKENS = "reports/mnist5k-resnet18/tokens/results.json"
CONV_AE = "reports/mnist5k-resnet18/conv_ae/results.json"
# seed 0 rerun at a later commit on another CPU (native kernels): the same numbers as HEADLINE's seed 0 (tested), plus
# the `learned` entry that analyze did not write yet when HEADLINE was made
HEADLINE_RERUN = "reports/mnist5k-resnet18/rerun-amd-epyc/results.json"
# the tokens generator on that rerun's base model and snapshots (the same originals' numbers: tested); TOKENS was made
# on an earlier base model
TOKENS_RERUN = "reports/mnist5k-resnet18/tokens/rerun-amd-epyc/results.json"


def seed_keys(results: dict) -> list[str]:
    """The key of every seed's entry in ``results``, in seed order: ``seeds[seed=0]``, ``seeds[seed=1]``, ..."""
    return [f"seeds[seed={s}]" for s in sorted(e["seed"] for e in results["seeds"])]


def _acc(v: float) -> str:
    """A test accuracy in %: two decimals, three where it lies between two digits' steps (a median: 97.375)."""
    return f"{v:.3f}" if abs(v * 100 - round(v * 100)) > 1e-6 else f"{v:.2f}"


def _bold(text: str, flag: bool) -> str:
    return f"**{text}**" if flag else text


def docs_seeds_table(load) -> str:
    """docs/paper-scale.md: per seed of the headline preset, the originals' and generated models' median / max
    (the generated ones in bold where they reach the originals'), the baselines' medians, the novelty measures
    and the originals' test errors."""
    results = load(HEADLINE)
    head = ["seed", "original median / max", "generated median / max", "generated min / std",
            "noise / average / gaussian median", "generated max-IoU", "NN-L2: generated / between originals",
            "originals' test errors (of 2,000)"]
    rows = []
    for key in seed_keys(results):
        e = lookup(results, key, key)
        orig, gen, claim, errors = e["original"], e["generated"], e["claim"], e["original_test_errors"]
        median, best = _acc(gen["acc_median"]), _acc(gen["acc_max"])
        if claim["median"] and claim["max"]:
            generated = _bold(f"{median} / {best}", True)
        else:
            generated = f"{_bold(median, claim['median'])} / {_bold(best, claim['max'])}"
        rows.append([str(e["seed"]), f"{_acc(orig['acc_median'])} / {_acc(orig['acc_max'])}", generated,
                     f"{gen['acc_min']:.2f} / {gen['acc_std']:.2f}",
                     " / ".join(f"{e['baselines'][b]['acc_median']:.2f}" for b in ("noise", "average", "gaussian")),
                     f"{e['novelty']['generated']['max_similarity_mean']:.3f}",
                     f"{e['novelty']['generated']['nn_l2_mean']:.2f} / {e['novelty']['original']['nn_l2_mean']:.2f}",
                     f"{errors['mean']:.1f} ({errors['min']}–{errors['max']})"])
    return markdown_table(head, rows)


def docs_decoder_table(load) -> str:
    """docs/paper-scale.md: per seed of the headline preset, the LDM's samples beside the decoder sets (Gaussian
    latents decoded, the snapshots' reconstructions), the average baseline and the originals."""
    results = load(HEADLINE)
    head = ["seed", "LDM-generated mean / median", "decoded noise mean / median / min", "average median",
            "reconstruction median", "original median", "NN-L2: decoded noise / generated"]

    def cell(key: str, *stats: str) -> str:
        return " / ".join(quote(results, f"{key}.{stat}", ".2f") for stat in stats)

    rows = [[quote(results, f"{k}.seed"), cell(f"{k}.generated", "acc_mean", "acc_median"),
             cell(f"{k}.decoder.decoded_noise", "acc_mean", "acc_median", "acc_min"),
             cell(f"{k}.baselines.average", "acc_median"), cell(f"{k}.decoder.reconstruction", "acc_median"),
             cell(f"{k}.original", "acc_median"),
             f"{cell(f'{k}.decoder.decoded_noise', 'nn_l2_mean')} / {cell(f'{k}.novelty.generated', 'nn_l2_mean')}"]
            for k in seed_keys(results)]
    return markdown_table(head, rows)


def docs_block_table(load) -> str:
    """docs/block.md: seed 0 of the whole-block preset, the originals and the generated models (count and
    accuracy statistics) and the baselines' medians."""
    results, key = load(BLOCK_RESULTS), "seeds[seed=0]"
    stats = ("count", "acc_median", "acc_mean", "acc_max", "acc_min")
    rows = [[label, *(quote(results, f"{key}.{name}.{stat}") for stat in stats)]
            for label, name in (("original snapshots", "original"), ("generated (tokens)", "generated"))]
    rows += [[label, "", quote(results, f"{key}.baselines.{name}.acc_median"), "", "", ""]
             for label, name in (("noise baseline (snapshot + 1 % noise)", "noise"),
                                 ("average of 16 snapshots", "average"), ("per-value gaussian", "gaussian"))]
    return markdown_table(["set", "count", "median", "mean", "max", "min"], rows)


def docs_generators_table(load) -> str:
    """docs/tokens.md: seed 0 of the headline preset with each generator (the tokens generator, the conv AE with
    its latent DDPM): accuracy statistics, novelty, the generator's stages' seconds and the whole run's."""
    tokens, conv, key = load(TOKENS), load(CONV_AE), "seeds[seed=0]"

    def stats(results: dict, name: str) -> list[str]:
        return [quote(results, f"{key}.{name}.{stat}") for stat in ("acc_median", "acc_min", "acc_max", "acc_std")]

    def seconds(results: dict, *stages: str) -> str:
        return " + ".join(f"{quote(results, f'{key}.stage_seconds.{s}', '.0f')} s" for s in stages)

    def generated(label: str, results: dict, *stages: str) -> list[str]:
        return [label, *stats(results, "generated"),
                quote(results, f"{key}.novelty.generated.max_similarity_mean", ".3f"),
                quote(results, f"{key}.novelty.generated.nn_l2_mean", ".3f"), seconds(results, *stages),
                quote(results, f"{key}.wall_seconds", "minsec")]

    head = ["generator", "test median", "min", "max", "std", "max-IoU", "NN-L2", "generator's stages", "whole run"]
    rows = [["(originals, K = 200)", *stats(tokens, "original"), "",
             quote(tokens, f"{key}.novelty.original.nn_l2_mean", ".3f"), "", ""],
            generated("tokens (`code: step`, width 512)", tokens, "train_ldm", "generate"),
            generated("conv AE + latent DDPM", conv, "train_ae", "train_ldm", "generate")]
    return markdown_table(head, rows)


# docs/evaluation.md, "What was learned": one row per run, (label, its file, the key of its entry in that file ("":
# the top level), D where the file does not exist yet). A run made before analyze wrote `learned`, or a preset not run
# yet, reads "not rerun".
DEFAULT_TOKENS = "reports/tokens/default/results.json"  # paper_scale run --preset default --set generator=tokens
LEARNED_ROWS = (("default (`small_cnn`), conv AE", "metrics/novelty.json", "", 192),
                ("default (`small_cnn`), tokens (seed 0)", DEFAULT_TOKENS, "seeds[seed=0].", 192),
                ("`mnist5k-resnet18`, conv AE (seed 0)", HEADLINE_RERUN, "seeds[seed=0].", None),
                ("`mnist5k-resnet18`, tokens (seed 0)", TOKENS_RERUN, "seeds[seed=0].", None),
                ("`mnist5k-resnet18-block`, tokens (seed 0)", BLOCK_RESULTS, "seeds[seed=0].", None),
                ("`mnist5k-resnet18-whole`, tokens (seed 0)", "reports/mnist5k-resnet18-whole/results.json",
                 "seeds[seed=0].", 11_172_810),
                ("`mnist5k-resnet18-whole`, low-rank Gaussian example (seed 0)",
                 "reports/mnist5k-resnet18-whole/lowrank/results.json", "seeds[seed=0].", 11_172_810),
                ("`mnist5k-resnet18-whole`, PCA diffusion example, no noise (seed 0)",
                 "reports/mnist5k-resnet18-whole/pca_diffusion/results.json", "seeds[seed=0].", 11_172_810),
                ("`mnist5k-resnet18-whole`, PCA diffusion example, no noise, 300 prior steps (seed 0)",
                 "reports/mnist5k-resnet18-whole/pca_diffusion-300-steps/results.json", "seeds[seed=0].", 11_172_810),
                ("`mnist5k-resnet18-whole`, PCA diffusion example, noise 1.0 (seed 0)",
                 "reports/mnist5k-resnet18-whole/pca_diffusion_noise/results.json", "seeds[seed=0].", 11_172_810),
                ("`digits-mlp-whole` (whole network), conv AE", "reports/digits-mlp-whole/results.json",
                 "seeds[seed=0].", 682))


WHOLE_RESULTS = "reports/mnist5k-resnet18-whole/results.json"


def docs_whole_cost(load) -> str:
    """docs/whole-network.md: seconds and peak resident set (MB) per stage of the whole-ResNet-18 run (seed 0),
    and how far each stage's peak is beyond the mapped snapshot file."""
    return _cost_table(load, WHOLE_RESULTS)


def docs_block_cost(load) -> str:
    """docs/block.md: the same table for the `layer4.1` run (seed 0)."""
    return _cost_table(load, BLOCK_RESULTS)


def _cost_table(load, path: str) -> str:
    entry = lookup(load(path), "seeds[seed=0]", path)
    rss, file_mb = entry["stage_peak_rss_mb"], entry["mapped_file_mb"]
    stages = [s for s in STAGES if s in entry["stage_seconds"]]
    before = ("prepare", "train")  # the snapshot file does not exist yet
    rows = [[f"`{s}`", f"{entry['stage_seconds'][s]:.0f}", f"{rss[s]:,.0f}" if s in rss else "—",
             f"{rss[s] - file_mb:,.0f}" if s in rss and s not in before else "—"] for s in stages]
    return markdown_table(["stage", "seconds", "peak RSS MB", "beyond the mapped file, MB"], rows)


PCA_VAL = "reports/mnist5k-resnet18-whole/pca_diffusion_val.json"


def pca_val_choice(record: dict) -> dict | None:
    """The candidate of the PCA-diffusion validation sweep (`PCA_VAL`) that its rule picks: among those diverse on
    validation (more than one distinct nearest snapshot, and two models disagreeing on at least `DIVERSE_RATIO`
    of the snapshots' share of validation digits) whose validation median is at most 1 point below the
    originals', the highest validation median (the first on a tie); None when none qualifies."""
    snaps = record["snapshots"]
    ok = [c for c in record["candidates"] if pca_val_qualifies(c, snaps)]
    return max(ok, key=lambda c: c["val_acc_median"]) if ok else None


def pca_val_qualifies(c: dict, snaps: dict) -> bool:
    return (c["distinct_nearest"] > 1 and c["val_disagreement"] >= DIVERSE_RATIO * snaps["val_disagreement"]
            and c["val_acc_median"] >= snaps["val_acc_median"] - 1)


def docs_pca_val_table(load) -> str:
    """docs/whole-network.md: the PCA diffusion example's validation sweep (`PCA_VAL`), one row per candidate,
    the chosen one in bold."""
    record = load(PCA_VAL)
    snaps, chosen = record["snapshots"], pca_val_choice(record)
    rows = [[_bold(f"{c['rank']}", c is chosen), _bold(f"{c['noise']:.1f}", c is chosen),
             f"{c['val_acc_median']:.1f} ({c['val_acc_min']:.1f})", f"{100 * c['val_disagreement']:.2f} %",
             f"{c['nn_l2_mean']:.2f}", f"{c['mean_l2_mean']:.2f}",
             f"{c['distinct_nearest']} of {record['num_generated']}",
             _yes(pca_val_qualifies(c, snaps))] for c in record["candidates"]]
    rows.append(["snapshots", "", f"{snaps['val_acc_median']:.1f}", f"{100 * snaps['val_disagreement']:.2f} %",
                 f"{snaps['nn_l2_mean']:.2f}", f"{snaps['mean_l2_mean']:.2f}", "", ""])
    return markdown_table(["rank", "noise", "val median (min)", "val disagreement", "NN-L2", "mean-L2",
                           "distinct nearest", "qualifies"], rows)


def docs_learned_table(load) -> str:
    """docs/evaluation.md: what the generator learned (`pdiff.analysis.learned`), one row per run of
    `LEARNED_ROWS`, at every size."""
    rows = []
    for label, path, prefix, dim in LEARNED_ROWS:
        try:
            data = load(path)
        except FileNotFoundError:
            data = None

        def get(key: str, data=data, prefix=prefix):
            try:
                return lookup(data, prefix + key, key) if data is not None else None
            except PdiffError:
                return None

        learned = get("learned")
        dim = (learned or {}).get("dim") or get("dim") or dim
        rows.append([label, f"{dim:,}" if dim else "n/a", *learned_cells(learned)])
    return markdown_table(["run", *LEARNED_HEAD], rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("run", "collect", "report"))
    ap.add_argument("paths", nargs="*", help="collect: the run's repository and the file with its repro output")
    ap.add_argument("--preset", default="mnist5k-resnet18")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="params value on top of the preset (YAML value), repeatable")
    args = ap.parse_args(argv)
    overrides = parse_overrides(args.overrides)
    out = args.out or Path("reports") / args.preset
    path = out / "results.json"
    if args.action == "run":
        run(args.preset, args.seeds, out, args.work, overrides=overrides)
        return
    if args.action == "collect":
        if len(args.paths) != 2:
            raise PdiffError("`collect` needs two paths: the run's repository and the file with its repro output.")
        repo, log = map(Path, args.paths)
        entry = collect(repo, log.read_text().splitlines())
        save_json(add_entry(load_results(path), args.preset, entry, overrides), path)
    if not load_results(path)["seeds"]:
        raise PdiffError(f"{path} holds no finished seed to report; `python -m tools.paper_scale run` (or `collect`) "
                         "writes it, and --out or --preset pick another folder.")
    write_report(load_results(path), out)
    print(f"wrote {out / 'results.md'} and {out / 'results.png'}")


if __name__ == "__main__":
    run_script(main)
