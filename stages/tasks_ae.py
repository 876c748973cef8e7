"""Stage `tasks_ae@run` (dvc.yaml, with task_pipeline: [run]): one parameter autoencoder shared by all seen tasks
-> models/tasks/ae.pt (the `train_ae` format, so `load_autoencoder` reads it)."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import save_torch
from pdiff.core.config import load_params, validate_tasks
from pdiff.core.plots import loss_curves
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.snapstore import load_vectors
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.generative.autoencoder import fit_param_ae


def main() -> None:
    p = validate_tasks(load_params())
    paths = stage_paths("tasks_ae", "snapshots", "out", "plot")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "tasks_ae")
    device = resolve_device(p.device)
    snaps = load_vectors(paths.snapshots, "tasks_collect")
    tracker = Tracker(None)
    ae, ckpt = fit_param_ae(snaps, p.conv_ae.train_ae, device, gen, tracker)
    print(f"task AE: {len(snaps['params'])} vectors, latent {ae.latent_shape}, reconstruction MSE "
          f"{ckpt['recon_mse']:.4g} (normalized units)")
    save_torch(ckpt, paths.out)
    loss_curves(tracker.history, paths.plot, "task parameter autoencoder", log_y=True)


if __name__ == "__main__":
    run_stage("tasks_ae", main)
