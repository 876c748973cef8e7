"""Stage `train_ae`: fit the generator's representation on the K snapshots -> models/ae.pt (params
`generator`, pdiff/generative/protocol.py): the parameter autoencoder (conv_ae), the tokenizer's normalizer
(tokens, one streaming pass over the snapshots), or whatever your own generator fits, if anything."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.config import load_params
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.generative.protocol import Context, fit_step
from pdiff.generative.registry import resolve


def main() -> None:
    p = load_params()
    paths = stage_paths("train_ae", "snapshots", "out", "live", "plots")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "train_ae")
    generator = resolve(p.generator)
    ctx = Context(p, gen, snapshots=paths.snapshots, tracker=Tracker(paths.live))
    fit_step(generator.fit_representation, generator, ctx, paths.out, f"{paths.plots}/loss.png")


if __name__ == "__main__":
    run_stage("train_ae", main)
