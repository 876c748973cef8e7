"""Stage `tasks_ae` (tasks/dvc.yaml): one parameter autoencoder shared by all seen tasks -> models/tasks/ae.pt
(the `train_ae` format, so `load_autoencoder` reads it)."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import load_vectors, numels, save_torch
from pdiff.core.config import load_params
from pdiff.core.plots import loss_curves
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.stage import run_stage
from pdiff.core.tracking import Tracker
from pdiff.generative.autoencoder import Normalizer, ParamAE, train_autoencoder


def main() -> None:
    p = load_params()
    setup_torch(p.threads)
    gen = seed_everything(p.seed, "tasks_ae")
    device = resolve_device(p.device)
    snaps = load_vectors("models/tasks/snapshots.pt", "tasks_collect")
    x = snaps["params"]
    normalizer = Normalizer(x.shape[1]).fit(x, p.ae.normalize, numels(snaps["shapes"]))
    config = dict(dim=x.shape[1], channels=p.ae.channels, latent_channels=p.ae.latent_channels)
    ae = ParamAE(**config)
    tracker = Tracker(None)
    mse = train_autoencoder(ae, normalizer(x), p.ae, device, gen, tracker)
    print(f"task AE: {len(x)} vectors, latent {ae.latent_shape}, reconstruction MSE {mse:.4g} (normalized units)")
    save_torch({"state_dict": {k: v.cpu() for k, v in ae.state_dict().items()}, "config": config,
                "normalizer": normalizer.state_dict(), "names": snaps["names"], "shapes": snaps["shapes"],
                "recon_mse": mse}, "models/tasks/ae.pt")
    loss_curves(tracker.history, "plots/tasks/ae_loss.png", "task parameter autoencoder", log_y=True)


if __name__ == "__main__":
    run_stage("tasks_ae", main)
