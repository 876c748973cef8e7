"""Whole-network generation of a small MLP on the embedded `digits` set: does p-diff collapse to chance, and
which parameter normalization avoids it? An experiment, not a stage (it runs the library chain in process):

    python -m tools.whole_network --normalize none per_tensor per_param --ae-steps 600 --ldm-steps 600

For each ``ae.normalize`` mode it trains the AE and the latent DDPM on the same K snapshots of *all* the
MLP's parameters and reports validation accuracy of the originals, of the AE's reconstructions of the
originals (isolates the AE), and of N generated models; JSON on stdout. Every number is on the validation
split; the test split is not looked at.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace

import torch

from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors
from pdiff.analysis.novelty import nearest_l2
from pdiff.base.training import LoopContext, collect_snapshots, train_classifier
from pdiff.core.config import CollectConfig, TrainConfig
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.tracking import Tracker
from pdiff.data.prepare import prepare
from pdiff.generative.autoencoder import Normalizer, ParamAE, train_autoencoder
from pdiff.generative.denoiser import UNet1D
from pdiff.generative.diffusion import linear_schedule
from pdiff.generative.ldm import LatentModel, SamplingConfig, sample_vectors, train_denoiser
from pdiff.nets.models import build_model
from pdiff.nets.selection import numels, select, shapes_of


def val_acc(model, names, vectors, data) -> list[float]:
    ok = torch.isfinite(vectors).all(1)
    correct = evaluate_vectors(model, names, vectors[ok], data["val_x"], data["val_y"],
                               EvalOptions(desc="val"))
    return (100.0 * correct.float().mean(1)).tolist() + [0.0] * int((~ok).sum())


def stats(a: list[float]) -> dict:
    t = torch.tensor(a)
    return {"mean": round(t.mean().item(), 2), "median": round(t.median().item(), 2), "max": round(t.max().item(), 2),
            "min": round(t.min().item(), 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--normalize", nargs="+", default=["none", "per_tensor", "per_param"])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--k", type=int, default=200)
    ap.add_argument("--ae-steps", type=int, default=600)
    ap.add_argument("--ldm-steps", type=int, default=600)
    ap.add_argument("--num-models", type=int, default=50)
    ap.add_argument("--timesteps", type=int, default=1000,
                    help="DDPM timesteps of the latent diffusion (training and sampling; default 1000, the "
                    "pipeline's); fewer for a quick run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    setup_torch(args.threads)
    cpu = torch.device("cpu")
    gen = seed_everything(args.seed, "prepare")
    data = prepare(SimpleNamespace(name="digits", root="", image_size=8, download=False, augment="none",
                                   val_size=300, test_size=500), gen)
    gen = seed_everything(args.seed, "train")
    model = build_model("mlp", 1, 10, 8, args.width)
    train_classifier(model, data, TrainConfig(epochs=30, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4),
                     LoopContext(cpu, gen, Tracker(None)))
    names = select(model, ["*"])
    sizes = numels(shapes_of(model, names))
    gen = seed_everything(args.seed, "collect")
    snaps, _ = collect_snapshots(model, data, names, CollectConfig(
        optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, batch_size=16, epochs=4, num_snapshots=args.k),
        LoopContext(cpu, gen, Tracker(None)))
    result = {"setting": {"arch": f"mlp width {args.width}", "D": sum(sizes), "K": args.k, "ae_steps": args.ae_steps,
                          "ldm_steps": args.ldm_steps, "timesteps": args.timesteps, "N": args.num_models,
                          "split": "val (300 digits)"},
              "original": stats(val_acc(model, names, snaps, data))}
    for mode in args.normalize:
        t0 = time.time()
        gen = seed_everything(args.seed, "train_ae")
        norm = Normalizer(snaps.shape[1]).fit(snaps, mode, sizes)
        ae = ParamAE(snaps.shape[1], [16, 32, 64], 4)
        ae_cfg = SimpleNamespace(lr=1e-3, weight_decay=2e-6, steps=args.ae_steps, batch_size=64, input_noise=0.001,
                                 latent_noise=0.1)
        mse = train_autoencoder(ae, norm(snaps), ae_cfg, cpu, gen, Tracker(None))
        with torch.no_grad():
            recon = norm.inverse(ae(norm(snaps)))
            z = ae.encode(norm(snaps))
        zm, zs = z.mean().item(), z.std().item()
        gen = seed_everything(args.seed, "train_ldm")
        diffusion = linear_schedule(args.timesteps)
        den = UNet1D(in_channels=z.shape[1], base=32)
        train_denoiser(den, diffusion, (z - zm) / zs, SimpleNamespace(lr=1e-3, weight_decay=0.0, steps=args.ldm_steps,
                                                                        batch_size=64), cpu, gen, Tracker(None))
        gen = seed_everything(args.seed, "generate")
        vecs = sample_vectors(LatentModel(ae, norm, den, diffusion, zm, zs),
                              SamplingConfig(args.num_models, args.num_models), gen, cpu)
        dist = nearest_l2(vecs, snaps)  # L2 to the nearest snapshot
        spread = nearest_l2(snaps, snaps, leave_one_out=True)  # the snapshots' own spacing
        result[mode] = {
            "ae_recon_mse_normalized": round(mse, 5),
            "ae_recon_max_abs_error": round((recon - snaps).abs().max().item(), 5),
            "reconstructed": stats(val_acc(model, names, recon, data)),
            "generated": stats(val_acc(model, names, vecs, data)),
            "gen_nearest_snapshot_l2_median": round(dist.median().item(), 4),
            "snapshot_nearest_neighbour_l2_median": round(spread.median().item(), 4),
            "seconds": round(time.time() - t0, 1),
        }
        print(json.dumps({mode: result[mode]}), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
