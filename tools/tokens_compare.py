"""Settings of the tokens generator compared on the VALIDATION split (no choice is made on test): trained on the
workspace's snapshots with each sequence model (``tokens.train_ldm.sequence``; all else equal, one seed), or with
each ``--variant`` (a comma-separated list of overrides of the settings below), each scored on validation and by
the mean L2 distance of its samples to the nearest snapshot (beside the snapshots' own spacing)
-> reports/tokens/sequence_val.json (or --out).

Needs the pipeline's artifacts up to collect (data/prepared, models/base.pt, models/snapshots.pt:
`dvc repro collect`). With `generator: conv_ae` and models/generated.pt there, the conv AE's generated models
are scored on validation too (``conv_ae_val``), for reference.

    python -m tools.tokens_compare [--steps 400 --token-size 16 --width 64 --batch 128 --num 100 --clip 4]
    python -m tools.tokens_compare --variant steps=2000 --variant steps=8000,width=512 --out F.json
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, finite_rows, summarize
from pdiff.analysis.novelty import nearest_l2
from pdiff.core.artifacts import numels, save_json
from pdiff.core.config import load_params
from pdiff.core.kernels import record, set_environment
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.tracking import Tracker
from pdiff.data.prepare import load_prepared
from pdiff.generative import tokens as tk
from pdiff.generative.diffusion import linear_schedule, schedule_settings
from pdiff.nets.models import load_base_model


def run_one(name: str, rows, snapshots: torch.Tensor, sizes, args, p, model, names, data) -> dict:
    sequence = args.sequence
    gen = seed_everything(p.seed, "train_ldm")
    layout = tk.TokenLayout(sizes, args.token_size)
    mean, std = tk.fit_normalizer(rows, sizes, args.normalize)
    tdata = tk.token_data(layout, rows, mean, std)
    net = tk.TokenGenerator(layout, args.width, args.depth, sequence, args.code)
    diffusion = linear_schedule(**schedule_settings(p.tokens.train_ldm))
    cfg = SimpleNamespace(steps=args.steps, batch=args.batch, lr=args.lr, weight_decay=0.0)
    t0 = time.perf_counter()
    loss = tk.train_tokens(net, diffusion, tdata, cfg, "cpu", gen, Tracker(None))
    train_s = time.perf_counter() - t0
    gen = seed_everything(p.seed, "generate")
    t0 = time.perf_counter()
    vecs = torch.stack(list(tk.sample_vectors_tokens(net, diffusion, tdata, args.num, 4096, gen,
                                                     sampler=args.sampler, steps=args.ddim_steps,
                                                     clip=args.clip or None)))
    sample_s = time.perf_counter() - t0
    correct = evaluate_vectors(model, names, vecs, data["val_x"], data["val_y"], EvalOptions(batch_size=1000))
    ok = finite_rows(vecs)
    acc = 100.0 * correct[ok].float().mean(1)
    nn_l2 = nearest_l2(vecs[ok], snapshots)
    return {"name": name, "sequence": sequence, "final_loss": round(loss, 5), "train_s": round(train_s, 1),
            "sample_s": round(sample_s, 1), "val_generated": summarize(acc, int((~ok).sum())),
            "nn_l2_mean": round(float(nn_l2.mean()), 6) if len(nn_l2) else None}


SETTINGS = ("steps", "token_size", "batch", "width", "depth", "normalize", "clip", "lr", "sequence", "code",
            "sampler")


def variants(args) -> list[tuple[str, argparse.Namespace]]:
    """(name, settings) of each run: one per ``--variant`` if any are given, else one per ``--sequences``."""
    if not args.variant:
        return [(seq, argparse.Namespace(**vars(args) | {"sequence": seq})) for seq in args.sequences.split(",")]
    out = []
    for text in args.variant:
        over = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in SETTINGS:
                raise SystemExit(f"tokens_compare: --variant {text!r}: {item!r} is not KEY=VALUE with KEY one of "
                                 f"{', '.join(SETTINGS)}")
            base = getattr(args, key)
            over[key] = value if isinstance(base, str) else type(base)(float(value))
        out.append((text, argparse.Namespace(**vars(args) | over)))
    return out


def table(result: dict, conv_ae: tuple[str, dict, float | None] | None = None, label: str = "name") -> str:
    """Markdown table of a result file: one row per run, named by its ``label`` field (val median / mean / min,
    the mean NN-L2 to the snapshots when the file has it, final loss, training seconds), the originals first
    and, when given, a conv AE row ``conv_ae`` = (its label, its validation summary, its NN-L2 or None)."""
    o, nn = result["val_original"], "original_nn_l2_mean" in result
    head = ["run" if label == "name" else label, "val median", "val mean", "val min", *(["NN-L2"] if nn else []),
            "final loss", "train s"]
    rows = [[f"(originals, K = {result['k']})", o["acc_median"], o["acc_mean"], o["acc_min"],
             *([result["original_nn_l2_mean"]] if nn else []), "", ""]]
    if conv_ae:
        name, g, l2 = conv_ae
        rows.append([name, g["acc_median"], g["acc_mean"], g["acc_min"], *([l2] if nn else []), "", ""])
    for r in result["runs"]:
        g = r["val_generated"]
        rows.append([r[label], g["acc_median"], g["acc_mean"], g["acc_min"], *([r["nn_l2_mean"]] if nn else []),
                     r["final_loss"], r["train_s"]])
    cells = [[f" {c} " if c != "" else " " for c in row] for row in [head, *rows]]
    lines = ["|" + "|".join(row) + "|" for row in cells]
    return "\n".join([lines[0], "|" + "---|" * len(head), *lines[1:]]) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--token-size", type=int, default=16)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--normalize", default="per_param")
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--sampler", default="ddpm")
    ap.add_argument("--clip", type=float, default=4.0)
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sequence", default="gru", help="sequence model of every --variant that does not set one")
    ap.add_argument("--code", default="none", choices=tk.CODES)
    ap.add_argument("--sequences", default=",".join(tk.SEQUENCES), help="runs when no --variant is given")
    ap.add_argument("--variant", action="append", default=[], help="KEY=VALUE[,KEY=VALUE...]: one run each")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the params' `threads`)")
    ap.add_argument("--out", default="reports/tokens/sequence_val.json")
    args = ap.parse_args(argv)
    p = load_params()
    set_environment(p.kernels)  # before torch's first operation; setup_torch checks that it took hold
    setup_torch(args.threads or p.threads, p.kernels)
    data = load_prepared("data/prepared")
    model = load_base_model("models/base.pt")
    rows, names, shapes = tk.open_rows("models/snapshots.pt", "collect")
    snapshots = torch.from_numpy(np.array(rows))
    originals = evaluate_vectors(model, names, snapshots, data["val_x"], data["val_y"], EvalOptions(batch_size=1000))
    spacing = nearest_l2(snapshots, snapshots, leave_one_out=True)
    out = {"split": "validation", "dim": int(rows.shape[1]), "k": int(rows.shape[0]), "kernels": record(),
           "settings": vars(args) | {"seed": p.seed, "timesteps": p.tokens.train_ldm.timesteps},
           "val_original": summarize(100.0 * originals.float().mean(1)),
           "original_nn_l2_mean": round(float(spacing.mean()), 6), "runs": []}
    if p.generator == "conv_ae" and Path("models/generated.pt").exists():  # the workspace's own run, for reference
        from pdiff.core.snapstore import load_vectors

        conv = load_vectors("models/generated.pt", "generate")["params"]
        correct = evaluate_vectors(model, names, conv, data["val_x"], data["val_y"], EvalOptions(batch_size=1000))
        out["conv_ae_val"] = summarize(100.0 * correct.float().mean(1))
    for name, settings in variants(args):
        res = run_one(name, rows, snapshots, numels(shapes), settings, p, model, names, data)
        out["runs"].append(res | {"settings": {k: getattr(settings, k) for k in SETTINGS}})
        print(f"tokens_compare: {name}: val median {res['val_generated']['acc_median']}, NN-L2 {res['nn_l2_mean']} "
              f"(snapshots {out['original_nn_l2_mean']}), loss {res['final_loss']}, train {res['train_s']} s",
              flush=True)
        save_json(out, Path(args.out))
    return out


if __name__ == "__main__":
    main()
