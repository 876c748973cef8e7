"""Choose the collection optimizer on the validation split: for each setting, collect the K snapshots from a
finished run's base model (as the `collect` stage does, same seed) and score every `--every`-th snapshot on the
validation split, with the snapshots' nearest-neighbour L2 spacing.

    python -m tools.collect_sweep --repo . --out reports/mnist5k-resnet18/collect_sweep.json \\
        adamw:0.05:5e-4 adamw:0.01:5e-4 adamw:0.003:5e-4 sgd:0.1:5e-4

Each setting is optimizer:lr:weight_decay; every other `collect` key comes from the repo's params.yaml. Only
the validation split is read."""
import argparse
import os
from pathlib import Path

import torch

from pdiff import PdiffError
from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors
from pdiff.analysis.novelty import nearest_l2
from pdiff.base.training import LoopContext, collect_snapshots
from pdiff.core.artifacts import save_json
from pdiff.core.config import load_params
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.stage import run_script
from pdiff.core.tracking import Tracker
from pdiff.data.prepare import load_prepared
from pdiff.nets.models import load_base_model
from pdiff.nets.selection import select


def parse_setting(text: str) -> dict:
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("sgd", "adamw"):
        raise PdiffError(f"setting {text!r}: expected optimizer:lr:weight_decay, e.g. adamw:0.01:5e-4.")
    return {"optimizer": parts[0], "lr": float(parts[1]), "weight_decay": float(parts[2])}


def score(p, data, setting: dict, every: int) -> dict:
    gen = seed_everything(p.seed, "collect")
    model = load_base_model("models/base.pt")
    names = select(model, p.collect.params)
    cfg = p.collect.model_copy(update=setting)
    snaps, _ = collect_snapshots(model, data, names, cfg, LoopContext("cpu", gen, Tracker(None), p.precision, None))
    sub = snaps[::every]
    correct = evaluate_vectors(load_base_model("models/base.pt"), names, sub, data["val_x"], data["val_y"],
                               EvalOptions(batch_size=500, desc="val"))
    acc = correct.float().mean(1) * 100
    return setting | {"scored": len(sub), "val_median": round(acc.median().item(), 2),
                      "val_mean": round(acc.mean().item(), 3), "val_max": round(acc.max().item(), 2),
                      "val_min": round(acc.min().item(), 2), "val_std": round(acc.std().item(), 3),
                      "nn_l2_mean": round(nearest_l2(sub, sub, leave_one_out=True).mean().item(), 4),
                      "first_to_last_l2": round((snaps[-1] - snaps[0]).norm().item(), 3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("settings", nargs="+", type=parse_setting)
    ap.add_argument("--repo", type=Path, default=Path("."), help="a finished run (models/base.pt, data/prepared)")
    ap.add_argument("--every", type=int, default=4, help="score every N-th snapshot (default 4: 50 of 200)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    out = args.out.resolve() if args.out else None
    os.chdir(args.repo)
    p = load_params("params.yaml")
    setup_torch(p.threads)
    data = load_prepared("data/prepared")
    rows = []
    for setting in args.settings:
        rows.append(score(p, data, setting, args.every))
        print(rows[-1], flush=True)
    if out:
        save_json({"base_val_acc": torch.load("models/base.pt", weights_only=True)["val_acc"], "rows": rows}, out)


if __name__ == "__main__":
    run_script(main)
