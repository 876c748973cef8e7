"""Stage `train_ldm`: fit the generator's prior, what it samples from, given train_ae's representation ->
models/ldm.pt (params `generator`, pdiff/generative/protocol.py): the DDPM on the standardized AE latents
(conv_ae), the token denoiser trained on random token batches of the memory-mapped snapshots (tokens), or your
own generator's."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.config import load_params
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.generative.protocol import Context, fit_step, read_artifact
from pdiff.generative.registry import resolve


def main() -> None:
    p = load_params()
    paths = stage_paths("train_ldm", "snapshots", "ae", "out", "live", "plots")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "train_ldm")
    generator = resolve(p.generator)
    ctx = Context(p, gen, snapshots=paths.snapshots, representation=read_artifact(paths.ae, "train_ae", generator),
                  tracker=Tracker(paths.live))
    fit_step(generator.fit_prior, generator, ctx, paths.out, f"{paths.plots}/loss.png")


if __name__ == "__main__":
    run_stage("train_ldm", main)
