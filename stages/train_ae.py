"""Stage `train_ae`: fit the parameter autoencoder on the K snapshots -> models/ae.pt. With ``generator: tokens``
there is no autoencoder: the stage fits the tokenizer's normalizer instead (one streaming pass over the
snapshots), written to the same file."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import numels, save_torch
from pdiff.core.config import load_params
from pdiff.core.plots import loss_curves
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.snapstore import load_vectors
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.generative.autoencoder import fit_param_ae


def tokens(p, paths) -> None:
    from pdiff.generative.tokens import TokenLayout, fit_normalizer, open_rows, tokenizer_state

    rows, names, shapes = open_rows(paths.snapshots, "collect")
    mean, std = fit_normalizer(rows, numels(shapes), p.tokens.normalize)
    layout = TokenLayout(numels(shapes), p.tokens.size)
    padding = 1.0 - layout.dim / (layout.num_tokens * layout.size)
    tracker = Tracker(paths.live)
    tracker.log(1, tokens=layout.num_tokens, padding_share=round(padding, 6))
    tracker.close()
    print(f"tokens: {layout.num_tokens} tokens of {layout.size} values, padding {100 * padding:.1f}%")
    save_torch(tokenizer_state(names, shapes, p.tokens.size, p.tokens.normalize, mean, std), paths.out)
    loss_curves(tracker.history, f"{paths.plots}/loss.png", "tokenizer (generator: tokens, no autoencoder)")


def main() -> None:
    p = load_params()
    paths = stage_paths("train_ae", "snapshots", "out", "live", "plots")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "train_ae")
    if p.generator == "tokens":
        return tokens(p, paths)
    device = resolve_device(p.device)
    snaps = load_vectors(paths.snapshots, "collect")
    tracker = Tracker(paths.live)
    ae, ckpt = fit_param_ae(snaps, p.ae, device, gen, tracker)
    tracker.close()
    print(f"AE: latent {ae.latent_shape}, noise-free reconstruction MSE {ckpt['recon_mse']:.4g} (normalized units)")
    save_torch(ckpt, paths.out)
    loss_curves(tracker.history, f"{paths.plots}/loss.png", "parameter autoencoder", log_y=True)


if __name__ == "__main__":
    run_stage("train_ae", main)
