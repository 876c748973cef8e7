"""Stage `tasks_ldm@run` (dvc.yaml, with task_pipeline: [run]): the latent DDPM conditioned on the task code ->
models/tasks/ldm.pt."""
import _bootstrap  # noqa: F401  (repo root on sys.path)
import torch

from pdiff.core.artifacts import load_torch, save_torch
from pdiff.core.config import load_params, validate_tasks
from pdiff.core.plots import loss_curves
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.generative.autoencoder import load_autoencoder
from pdiff.generative.conditional import CodeConditionedUNet, train_conditional
from pdiff.generative.diffusion import linear_schedule, schedule_settings


def main() -> None:
    p = validate_tasks(load_params())
    paths = stage_paths("tasks_ldm", "snapshots", "ae", "out", "plot")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "tasks_ldm")
    device = resolve_device(p.device)
    ae, normalizer, _ = load_autoencoder(paths.ae)
    snaps = load_torch(paths.snapshots, "tasks_collect", required=("params", "codes"))
    with torch.no_grad():
        z = ae.encode(normalizer(snaps["params"]))
    latent_mean, latent_std = z.mean().item(), z.std().item()
    ldm = p.conv_ae.train_ldm
    schedule = schedule_settings(ldm)
    config = dict(in_channels=z.shape[1], base=ldm.channels, mults=tuple(ldm.channel_mults),
                  code_bits=snaps["codes"].shape[1], cond=p.tasks_ldm.cond)
    denoiser = CodeConditionedUNet(**config)
    tracker = Tracker(None)
    loss = train_conditional(denoiser, linear_schedule(**schedule), (z - latent_mean) / latent_std,
                             snaps["codes"], p.conv_ae.train_ldm, p.tasks_ldm.cond_dropout, device, gen, tracker)
    print(f"task LDM: latents {tuple(z.shape)}, cond {p.tasks_ldm.cond}, dropout {p.tasks_ldm.cond_dropout}, "
          f"final loss {loss:.4g}")
    save_torch({"state_dict": {k: v.cpu() for k, v in denoiser.state_dict().items()}, "config": config,
                "schedule": schedule, "latent_mean": latent_mean, "latent_std": latent_std}, paths.out)
    loss_curves(tracker.history, paths.plot, "task-conditioned latent diffusion", log_y=True)


if __name__ == "__main__":
    run_stage("tasks_ldm", main)
