"""`make bench`'s ``scaling.tokens`` entry: the tokenized generator's cost against D, up to a whole ResNet-18.

For each D a [K, D] memory-mapped store (pdiff/core/snapstore.py) of random rows is written row by row, then
one child process per sequence model (a fresh process, so its peak resident set is its own) maps it, fits the
normalizer in one streaming pass and times AdamW steps of the token generator at a fixed token batch (the median
of STEPS steps after a warm-up step). Recorded per D: ``s_per_step`` (the default sequence model's,
``tokens.train_ldm.sequence`` = gru), ``s_per_step_none`` (no sequence model), ``s_per_step_layers`` (a GRU over
the tensors) and ``s_per_step_tensors`` (one transformer layer over the tensors), ``peak_rss_mb`` (the child's
own peak, `pdiff.core.stage.peak_rss_mb`; pages of the mapped file it touched count in it), ``rss_beyond_file_mb``
(peak RSS minus the mapped file) and ``mapped_file_mb``. The files are deleted at the end.

Shapes: D = 11.2 M is every parameter of ResNet-18 with the CIFAR stem on 1-channel 28x28 input (62 tensors,
10 classes); smaller D are four equal tensors, as the last-two-BN selection (4 x 512 at D = 2,048).

    python -m tools.bench_tokens                       # all D, written into metrics/bench.json's scaling entry
    python -m tools.bench_tokens --dims 2048,16384 --out /tmp/b.json
    python -m tools.bench_tokens --eval-only           # evaluation of whole-block / whole-network vectors
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
WHOLE = "resnet18"
TOKEN_DIMS = (2048, 16384, 131072, 1048576, WHOLE)
SEQUENCES = ("gru", "none", "layers", "tensors")  # the sequence models timed; the first is the default's
STEPS = 20  # timed steps per child (their median); with a mean over 5, noise alone gave `none` x1.4 across D
ROUNDS = 3  # rounds over every (D, sequence model); each keeps its fastest


def step_key(seq: str, sequences=SEQUENCES) -> str:
    """A row's seconds-per-step key for sequence model ``seq``: ``s_per_step`` for the first, else with a suffix."""
    return "s_per_step" if seq == sequences[0] else f"s_per_step_{seq}"


def resnet18_1ch() -> torch.nn.Module:
    """The pipeline's own ResNet-18 on 1-channel 28x28 input, 10 classes (CIFAR stem: 3x3 conv, no max-pool)."""
    from pdiff.nets.models import build_model

    return build_model("resnet18", 1, 10, 28)


def resnet18_shapes() -> list[list[int]]:
    """Shapes of every parameter of ResNet-18, CIFAR stem, 1 input channel, 10 classes."""
    return [list(p.shape) for p in resnet18_1ch().parameters()]


def shapes_for(dim) -> list[list[int]]:
    if dim == WHOLE:
        return resnet18_shapes()
    return [[int(dim) // 4]] * 3 + [[int(dim) - 3 * (int(dim) // 4)]]


def write_store(path: Path, shapes: list[list[int]], k: int, seed: int = 0) -> float:
    """Write a [k, D] store of random rows (snapshot-like: one base vector plus small noise); seconds taken."""
    from pdiff.core.snapstore import VectorWriter

    rng = np.random.default_rng(seed)
    d = int(sum(np.prod(s) for s in shapes))
    base = rng.standard_normal(d, dtype=np.float32)
    t0 = time.perf_counter()
    with VectorWriter(path, k, [f"p{i}" for i in range(len(shapes))], shapes) as w:
        for _ in range(k):
            w.append(base + 0.01 * rng.standard_normal(d, dtype=np.float32))
    return time.perf_counter() - t0


class StepClock:
    """A tracker for `train_tokens(..., log_every=1)` that keeps the time of every step's log call: `median` is
    the median step, from one log call to the next (the first from the clock's creation), so a step slowed by
    something else on the machine moves it less than a mean over all steps."""

    def __init__(self, sync=lambda: None):
        self.sync = sync
        sync()
        self.times = [time.perf_counter()]

    def log(self, step: int, **values) -> None:
        self.sync()
        self.times.append(time.perf_counter())

    def median(self) -> float:
        return float(np.median(np.diff(self.times)))


def child(args) -> dict:
    """One measurement in this (fresh) process: map, fit the normalizer, time training steps."""
    from types import SimpleNamespace

    from pdiff.core.stage import peak_rss_mb
    from pdiff.core.tracking import Tracker
    from pdiff.generative import tokens as tk
    from pdiff.generative.diffusion import linear_schedule

    torch.set_num_threads(args.threads)
    rows, _, shapes = tk.open_rows(args.store, "bench")
    sizes = [int(np.prod(s)) for s in shapes]
    t0 = time.perf_counter()
    mean, std = tk.fit_normalizer(rows, sizes, "per_param")
    fit_s = time.perf_counter() - t0
    layout = tk.TokenLayout(sizes, args.token_size)
    data = tk.token_data(layout, rows, mean, std)
    model = tk.TokenGenerator(layout, args.width, args.depth, args.sequence)
    diffusion = linear_schedule(1000)
    gen = torch.Generator().manual_seed(0)
    cfg = SimpleNamespace(steps=1, batch=args.batch, lr=1e-4, weight_decay=0.0)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tk.train_tokens(model, diffusion, data, cfg, device, gen, Tracker(None))  # warm-up
    cfg.steps = args.steps
    clock = StepClock(sync)
    tk.train_tokens(model, diffusion, data, cfg, device, gen, clock, log_every=1)
    step_s = clock.median()
    gpu = ({"peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)}
           if device.type == "cuda" else {})
    return {"s_per_step": round(step_s, 4), "normalizer_fit_s": round(fit_s, 2), "tokens": layout.num_tokens,
            "padding_share": round(1 - layout.dim / (layout.num_tokens * layout.size), 4),
            "generator_params": sum(p.numel() for p in model.parameters()),
            "peak_rss_mb": peak_rss_mb()} | gpu


def run_child(store: Path, seq: str, token_size: int, batch: int, width: int, depth: int, steps: int, threads: int,
              device: str) -> dict:
    """One `child` measurement in a fresh process: sequence model ``seq`` on the store at ``store``."""
    cmd = [sys.executable, "-m", "tools.bench_tokens", "--child", "--store", str(store), "--sequence", seq,
           "--token-size", str(token_size), "--batch", str(batch), "--width", str(width), "--depth", str(depth),
           "--steps", str(steps), "--threads", str(threads), "--device", device]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"bench_tokens child failed for {store.parent.name}, {seq}:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure_dims(dims, k: int = 8, token_size: int = 1024, batch: int = 256, width: int = 256, depth: int = 3,
                 steps: int = STEPS, threads: int = 2, sequences=SEQUENCES, rounds: int = 1,
                 workdir: str | None = None, device: str = "cpu") -> list[dict]:
    """Write a store for every D of ``dims``, then run ``rounds`` rounds, each one child per (D, sequence model) in
    turn (training on ``device``); delete the stores. One row per D: per sequence model the fastest round's
    s/step (all of them in ``rounds_s_per_step``) and the largest peak RSS (on CUDA also ``peak_gpu_mib``, the
    allocator's peak). A machine's speed drifts over minutes (a shared 2-core VM by up to x1.6): rounds that visit
    every D spread the drift over all of them, where measuring D after D would read it as a cost of D."""
    tmp = Path(tempfile.mkdtemp(prefix="pdiff-tokens-bench-", dir=workdir))
    try:
        rows, stores = [], []
        for dim in dims:
            shapes = shapes_for(dim)
            store = tmp / f"d{len(stores)}" / "snapshots.safetensors"
            store.parent.mkdir()
            write_s = write_store(store, shapes, k)
            stores.append(store)
            rows.append({"dim": int(sum(np.prod(s) for s in shapes)), "tensors": len(shapes), "k": k,
                         "mapped_file_mb": round(store.stat().st_size / 2 ** 20, 1), "write_s": round(write_s, 2),
                         "rounds_s_per_step": {seq: [] for seq in sequences}})
        for r in range(rounds):
            for row, store in zip(rows, stores, strict=True):
                for seq in sequences:
                    out = run_child(store, seq, token_size, batch, width, depth, steps, threads, device)
                    row["rounds_s_per_step"][seq].append(out["s_per_step"])
                    suffix = step_key(seq, sequences).removeprefix("s_per_step")
                    peak = max(out["peak_rss_mb"], row.get(f"peak_rss_mb{suffix}", 0.0))
                    row |= {f"s_per_step{suffix}": min(row["rounds_s_per_step"][seq]), f"peak_rss_mb{suffix}": peak,
                            f"rss_beyond_file_mb{suffix}": round(peak - row["mapped_file_mb"], 1)}
                    if "peak_gpu_mib" in out:
                        row[f"peak_gpu_mib{suffix}"] = max(out["peak_gpu_mib"], row.get(f"peak_gpu_mib{suffix}", 0.0))
                    row |= {k2: out[k2] for k2 in ("tokens", "padding_share", "generator_params", "normalizer_fit_s")}
                done = ", ".join(f"{row['rounds_s_per_step'][seq][-1]} ({seq})" for seq in sequences)
                print(f"bench tokens: round {r + 1}/{rounds}, D={row['dim']}: s/step {done}, peak RSS "
                      f"{row['peak_rss_mb']} MB, file {row['mapped_file_mb']} MB", flush=True)
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(dim, **kw) -> dict:
    """The row for one D, one round (`measure_dims`)."""
    return measure_dims([dim], **kw)[0]


def tokens_scaling(dims=TOKEN_DIMS, **kw) -> dict:
    """{"settings": ..., "dims": {D: row}, summary ratios} for the D of ``dims`` (see `measure_dims`); `main`
    stores the rows as ``scaling.tokens[D]`` and the rest as ``scaling.tokens_settings``."""
    settings = {"k": 8, "token_size": 1024, "batch": 256, "width": 256, "depth": 3, "steps": STEPS, "threads": 2,
                "sequences": list(SEQUENCES), "rounds": ROUNDS, "normalize": "per_param"} | kw
    rows = measure_dims(dims, **{k: v for k, v in settings.items() if k != "normalize"}
                        | {"sequences": tuple(settings["sequences"])})
    return {"settings": settings, "dims": {str(row["dim"]): row for row in rows}} | tokens_scaling_summary(rows)


def tokens_scaling_summary(rows: list[dict]) -> dict:
    """Largest over smallest s/step across D (per sequence model) and the largest RSS beyond the mapped file."""
    out = {}
    if len(rows) > 1:
        for key in ["s_per_step"] + [f"s_per_step_{seq}" for seq in SEQUENCES[1:]]:
            vals = [r[key] for r in rows if key in r]
            if vals:
                out[f"{key}_max_over_min"] = round(max(vals) / min(vals), 2)
        out["max_rss_beyond_file_mb"] = max(r["rss_beyond_file_mb"] for r in rows)
    spreads = [max(v) / min(v) for r in rows for v in r.get("rounds_s_per_step", {}).values() if len(v) > 1]
    if spreads:  # how far one (D, model)'s rounds lie apart: the machine's drift the rounds guard against
        out["rounds_max_over_min"] = round(max(spreads), 2)
    return out


def tokens_figure(entry: dict, ae_rows: dict, path: Path) -> None:
    """Log-log: seconds per training step (tokens: each of SEQUENCES; the conv AE where it ran) and peak RSS
    vs D."""
    from pdiff.core.plots import plt, save_figure

    rows = sorted(entry["dims"].values(), key=lambda r: r["dim"])
    d = [r["dim"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"wspace": 0.3})
    left.plot(d, [r["s_per_step"] for r in rows], "o-", label="tokens, gru")
    for seq, marker in zip(SEQUENCES[1:], ("^-", "v-", "D-"), strict=True):
        if all(f"s_per_step_{seq}" in r for r in rows):
            left.plot(d, [r[f"s_per_step_{seq}"] for r in rows], marker, label=f"tokens, {seq}")
    ae = sorted((int(k), v) for k, v in ae_rows.items() if "ae_s_per_step" in v)
    if ae:
        left.plot([a for a, _ in ae], [v["ae_s_per_step"] for _, v in ae], "s--", label="conv AE (batch 64)")
        right.plot([a for a, _ in ae], [v["ae_peak_mb"] / 1024 for _, v in ae], "s--", label="conv AE")
    left.set_ylabel("seconds per training step")
    right.plot(d, [r["peak_rss_mb"] / 1024 for r in rows], "o-", label="tokens: peak RSS")
    right.plot(d, [r["mapped_file_mb"] / 1024 for r in rows], ":", color="0.4", label="mapped file")
    right.set_ylabel("GB")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("D (generated values)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    s = entry["settings"]
    fig.suptitle(f"tokens generator: token size {s['token_size']}, token batch {s['batch']}, K = {s['k']}",
                 fontsize=10)
    save_figure(fig, path)


@torch.no_grad()
def eval_per_vector(num_vectors: int = 2, num_inputs: int = 128, batch_size: int = 128, seed: int = 0) -> dict:
    """Seconds per evaluated vector on ResNet-18 (CIFAR stem, 1-channel 28x28, random weights and inputs) when
    the generated parameters are one whole block (``layer4.1``, 4.72 M values) or the whole network (11.2 M):
    the naive path against prefix caching (which, for the whole network, has nothing to cache), with the
    predictions checked identical. ``num_inputs`` test inputs per vector."""
    from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, split_at_selection
    from pdiff.nets.selection import flatten, select
    from tools.measure import timed

    gen = torch.Generator().manual_seed(seed)
    model = resnet18_1ch().eval()
    x = torch.randn(num_inputs, 1, 28, 28, generator=gen)
    y = torch.randint(10, (num_inputs,), generator=gen)
    out = {"num_inputs": num_inputs, "num_vectors": num_vectors}
    for label, patterns in (("layer4.1", ["layer4.1.*"]), ("whole", ["*"])):
        names = select(model, patterns)
        base = flatten(model, names)
        vectors = base + 0.01 * torch.randn(num_vectors, base.numel(), generator=gen)
        prefix, _ = split_at_selection(model, names)
        def run(cache: bool, names=names, vectors=vectors):
            return evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=batch_size,
                                                                             cache_prefix=cache))

        naive_s, naive = timed(lambda: run(False))
        fast_s, fast = timed(lambda: run(True))
        if not torch.equal(naive, fast):
            raise AssertionError(f"eval_per_vector: prefix caching changed predictions for {label}")
        out[label] = {"dim": base.numel(), "prefix_cached": not isinstance(prefix, torch.nn.Identity),
                      "naive_s_per_vector": round(naive_s / num_vectors, 3),
                      "cached_s_per_vector": round(fast_s / num_vectors, 3), "identical_predictions": True}
        print(f"bench eval: {label} (D={base.numel()}): naive {out[label]['naive_s_per_vector']} s/vector, "
              f"cached {out[label]['cached_s_per_vector']} s/vector", flush=True)
    return out


def add_tokens(scaling_entry: dict, dims_arg: str, figure: str | None = "reports/bench/scaling_tokens.png") -> dict:
    """`make bench`'s hook: ``scaling_entry`` with ``tokens`` (rows keyed by D) and ``tokens_settings`` added for
    the comma-separated ``dims_arg`` ('' adds nothing), and the tokens figure drawn beside the conv AE's rows."""
    dims = [d if d == WHOLE else int(d) for d in dims_arg.split(",") if d.strip()]
    if not dims:
        return scaling_entry
    entry = tokens_scaling(dims)
    scaling_entry["tokens"] = entry.pop("dims")
    scaling_entry["tokens_settings"] = entry
    if figure:
        tokens_figure({"dims": scaling_entry["tokens"], **entry}, scaling_entry.get("dims", {}), Path(figure))
    return scaling_entry


def _n(v) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.2f}" if isinstance(v, float) and v < 100 else f"{v:,.0f}"


def docs_tables(bench: dict, sequence_val: dict | None = None) -> str:
    """The Markdown tables of docs/tokens.md, from metrics/bench.json (and reports/tokens/sequence_val.json):
    `tables_block` puts them into the page (``python -m tools.doc_numbers``; tests/test_doc_numbers.py checks
    them)."""
    sc = bench["scaling"]
    rows = sorted(sc["tokens"].values(), key=lambda r: r["dim"])
    ae = sc.get("dims", {})
    seqs = [seq for seq in SEQUENCES if any(step_key(seq) in r for r in rows)]
    lines = ["| D | tensors | tokens | mapped file MB | " + " | ".join(f"s/step {seq}" for seq in seqs)
             + " | peak RSS MB (gru / none) | RSS beyond file MB | conv AE s/step |", "|---" * (7 + len(seqs)) + "|"]
    for r in rows:
        a = ae.get(str(r["dim"]), {})
        conv = _n(a["ae_s_per_step"]) if "ae_s_per_step" in a else ("does not fit" if "skipped" in a else "not run")
        steps = " | ".join(_n(r[step_key(seq)]) if step_key(seq) in r else "not run" for seq in seqs)
        lines.append(f"| {_n(r['dim'])} | {r['tensors']} | {_n(r['tokens'])} | {_n(r['mapped_file_mb'])} | {steps} | "
                     f"{_n(r['peak_rss_mb'])} / {_n(r.get('peak_rss_mb_none', float('nan')))} | "
                     f"{_n(r['rss_beyond_file_mb'])} | {conv} |")
    st = sc.get("tokens_settings", {})
    if "s_per_step_none_max_over_min" in st:
        ratios = ", ".join(f"{seq} x{st[step_key(seq) + '_max_over_min']}" for seq in seqs
                           if step_key(seq) + "_max_over_min" in st)
        lines += ["", f"Largest over smallest s/step across D: {ratios}; largest RSS beyond the mapped file: "
                  f"{_n(st['max_rss_beyond_file_mb'])} MB.",
                  f"Tokens measured on: {st.get('machine', {}).get('cpu', '?')}; the conv AE column comes from another "
                  f"run of `make bench` (`scaling.dims`, {sc.get('machine', {}).get('cpu', '?')})."]
    ev = bench.get("eval_large")
    if ev:
        lines += ["", "| generated | D | prefix cached | naive s/vector | cached s/vector |", "|---|---|---|---|---|"]
        for label in ("layer4.1", "whole"):
            e = ev[label]
            lines.append(f"| {label} | {_n(e['dim'])} | {'yes' if e['prefix_cached'] else 'no (falls back)'} | "
                         f"{_n(e['naive_s_per_vector'])} | {_n(e['cached_s_per_vector'])} |")
    if sequence_val:
        from tools.tokens_compare import table

        conv = sequence_val.get("conv_ae_val")
        conv = ("(conv AE + latent DDPM, the same snapshots)", conv, None) if conv else None
        lines += ["", table(sequence_val, conv, label="sequence").rstrip("\n")]
    return "\n".join(lines) + "\n"


TUNING = "reports/mnist5k-resnet18/tokens/tuning_val.json"  # python -m tools.tokens_compare --variant ... --out


def tables_block(load) -> str:
    """The scaling and sequence tables of docs/tokens.md (a generated block, filled by tools.doc_numbers;
    ``load(path)``: a JSON file): metrics/bench.json, and reports/tokens/sequence_val.json where it exists, with
    the conv AE's validation row of the default run whose snapshots the sequences were compared on
    (``conv_ae_val`` in that file)."""
    seq = "reports/tokens/sequence_val.json"
    return docs_tables(load("metrics/bench.json"), load(seq) if (ROOT / seq).exists() else None)


def tuning_block(load) -> str:
    """The tokens settings compared on validation at the paper's D, beside the conv AE's seed-0 run (a generated
    block of docs/tokens.md)."""
    from tools.doc_numbers import lookup
    from tools.tokens_compare import table

    conv = lookup(load("reports/mnist5k-resnet18/conv_ae/results.json"), "seeds[seed=0]", "tuning_block")
    conv = ("(conv AE + latent DDPM)", conv["val"]["generated"], conv["novelty"]["generated"]["nn_l2_mean"])
    return table(load(TUNING), conv)


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store")
    ap.add_argument("--sequence", default="gru")
    ap.add_argument("--token-size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--steps", type=int, default=STEPS, help="timed AdamW steps per child, after one warm-up step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="rounds over every (D, sequence model): fastest counts")
    ap.add_argument("--device", default="cpu", help="where the child trains: cpu or cuda (`make gpu-check`)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--dims", default=",".join(map(str, TOKEN_DIMS)),
                    help=f"comma-separated D values; '{WHOLE}' = every parameter of ResNet-18")
    ap.add_argument("--out", default="metrics/bench.json")
    ap.add_argument("--figure", default="reports/bench/scaling_tokens.png")
    ap.add_argument("--eval-only", action="store_true",
                    help="measure only the evaluation of whole-block / whole-network vectors (eval_large)")
    ap.add_argument("--eval-vectors", type=int, default=2, help="--eval-only: vectors evaluated per selection")
    ap.add_argument("--eval-inputs", type=int, default=128, help="--eval-only: test inputs per vector")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return None
    from pdiff.core.artifacts import save_json

    out = Path(args.out)
    if args.eval_only:
        torch.set_num_threads(args.threads)
        result = json.loads(out.read_text()) if out.exists() else {}
        result["eval_large"] = eval_per_vector(args.eval_vectors, args.eval_inputs)
        save_json(result, out)
        return result
    dims = [d if d == WHOLE else int(d) for d in args.dims.split(",") if d.strip()]
    entry = tokens_scaling(dims, k=args.k, token_size=args.token_size, batch=args.batch, width=args.width,
                           depth=args.depth, steps=args.steps, threads=args.threads, rounds=args.rounds)
    from tools.measure import machine

    result = json.loads(out.read_text()) if out.exists() else {}
    scaling = result.setdefault("scaling", {})
    entry["machine"] = machine() | ({"load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
                                    if hasattr(os, "getloadavg") else {})
    # rows of the D measured now replace theirs; rows of other D (measured earlier, same settings) are kept
    if scaling.get("tokens_settings", {}).get("settings") != entry["settings"]:
        scaling["tokens"] = {}
    scaling["tokens"] = dict(sorted((scaling.get("tokens", {}) | entry["dims"]).items(), key=lambda kv: int(kv[0])))
    summary = tokens_scaling_summary(list(scaling["tokens"].values()))
    scaling["tokens_settings"] = {k: v for k, v in entry.items() if k != "dims"} | summary
    save_json(result, out)
    print(f"bench tokens: wrote {out}")
    if args.figure:
        tokens_figure({"dims": scaling["tokens"], **scaling["tokens_settings"]}, scaling.get("dims", {}),
                      Path(args.figure))
        print(f"bench tokens: wrote {args.figure}")
    return result


if __name__ == "__main__":
    main()
