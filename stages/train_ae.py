"""Stage `train_ae`: fit the parameter autoencoder on the K snapshots -> models/ae.pt."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import load_vectors, save_torch
from pdiff.core.config import load_params
from pdiff.core.plots import loss_curves
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.stage import run_stage
from pdiff.core.tracking import Tracker
from pdiff.generative.autoencoder import fit_param_ae


def main() -> None:
    p = load_params()
    setup_torch(p.threads)
    gen = seed_everything(p.seed, "train_ae")
    device = resolve_device(p.device)
    snaps = load_vectors("models/snapshots.pt", "collect")
    tracker = Tracker("metrics/train_ae")
    ae, ckpt = fit_param_ae(snaps, p.ae, device, gen, tracker)
    tracker.close()
    print(f"AE: latent {ae.latent_shape}, noise-free reconstruction MSE {ckpt['recon_mse']:.4g} (normalized units)")
    save_torch(ckpt, "models/ae.pt")
    loss_curves(tracker.history, "plots/train_ae/loss.png", "parameter autoencoder", log_y=True)


if __name__ == "__main__":
    run_stage("train_ae", main)
