"""Does a sequence model over the tokens help? The tokens generator trained on the default run's snapshots with
``tokens.sequence`` = none, gru and attention (all else equal, one seed), each scored on the VALIDATION split
(no choice is made on test) -> reports/tokens/sequence_val.json.

Needs the default pipeline's artifacts (data/prepared, models/base.pt, models/snapshots.pt: `dvc repro collect`).

    python -m tools.tokens_compare [--steps 400 --token-size 16 --width 64 --batch 128 --num 100 --clip 4]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, finite_rows, summarize
from pdiff.core.artifacts import numels, save_json
from pdiff.core.config import load_params
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.tracking import Tracker
from pdiff.data.prepare import load_prepared
from pdiff.generative import tokens as tk
from pdiff.generative.diffusion import GaussianDiffusion, linear_betas
from pdiff.nets.models import load_base_model


def run_one(sequence: str, rows, sizes, args, p, model, names, data) -> dict:
    gen = seed_everything(p.seed, "train_ldm")
    layout = tk.TokenLayout(sizes, args.token_size)
    mean, std = tk.fit_normalizer(rows, sizes, args.normalize)
    tdata = tk.token_data(layout, rows, mean, std)
    net = tk.TokenGenerator(layout, args.width, args.depth, sequence)
    diffusion = GaussianDiffusion(linear_betas(p.ldm.timesteps, p.ldm.beta_start, p.ldm.beta_end))
    cfg = SimpleNamespace(steps=args.steps, batch=args.batch, lr=1e-3, weight_decay=0.0)
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
    return {"sequence": sequence, "final_loss": round(loss, 5), "train_s": round(train_s, 1),
            "sample_s": round(sample_s, 1), "val_generated": summarize(acc, int((~ok).sum()))}


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
    ap.add_argument("--sequences", default="none,gru,attention")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the params' `threads`)")
    ap.add_argument("--out", default="reports/tokens/sequence_val.json")
    args = ap.parse_args(argv)
    p = load_params()
    setup_torch(args.threads or p.threads)
    data = load_prepared("data/prepared")
    model = load_base_model("models/base.pt")
    rows, names, shapes = tk.open_rows("models/snapshots.pt", "collect")
    originals = evaluate_vectors(model, names, torch.from_numpy(rows.copy()), data["val_x"], data["val_y"],
                                 EvalOptions(batch_size=1000))
    out = {"split": "validation", "dim": int(rows.shape[1]), "k": int(rows.shape[0]),
           "settings": vars(args) | {"seed": p.seed, "timesteps": p.ldm.timesteps},
           "val_original": summarize(100.0 * originals.float().mean(1)), "runs": []}
    for seq in args.sequences.split(","):
        res = run_one(seq, rows, numels(shapes), args, p, model, names, data)
        out["runs"].append(res)
        print(f"tokens_compare: {seq}: val median {res['val_generated']['acc_median']}, loss {res['final_loss']}, "
              f"train {res['train_s']} s", flush=True)
        save_json(out, Path(args.out))
    return out


if __name__ == "__main__":
    main()
