"""Stage `train_ldm`: fit the latent DDPM on the AE latents of the K snapshots -> models/ldm.pt. With
``generator: tokens``: fit the token generator (sequence model + per-token denoiser) on random token batches
read from the (memory-mapped) snapshots instead, written to the same file."""
import _bootstrap  # noqa: F401  (repo root on sys.path)
import torch

from pdiff.core.artifacts import save_torch
from pdiff.core.config import load_params
from pdiff.core.plots import loss_curves
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.snapstore import load_vectors
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.generative.autoencoder import load_autoencoder
from pdiff.generative.denoiser import UNet1D
from pdiff.generative.diffusion import linear_schedule, schedule_settings
from pdiff.generative.ldm import train_denoiser


def tokens(p, paths, gen, device) -> None:
    from pdiff.generative import tokens as tk

    layout, mean, std, _ = tk.load_tokenizer(paths.ae)
    rows, _, _ = tk.open_rows(paths.snapshots, "collect")
    schedule = schedule_settings(p.ldm)
    diffusion = linear_schedule(**schedule)
    model = tk.TokenGenerator(layout, p.tokens.width, p.tokens.depth, p.tokens.sequence, p.tokens.code)
    tracker = Tracker(paths.live)
    loss = tk.train_tokens(model, diffusion, tk.token_data(layout, rows, mean, std), p.tokens, device, gen, tracker)
    tracker.close()
    print(f"tokens: {layout.num_tokens} tokens x {rows.shape[0]} snapshots, sequence {p.tokens.sequence}, "
          f"code {p.tokens.code}, final loss {loss:.4g}")
    save_torch(tk.save_state(model, schedule), paths.out)
    loss_curves(tracker.history, f"{paths.plots}/loss.png", "token diffusion (noise-prediction MSE)", log_y=True)


def main() -> None:
    p = load_params()
    paths = stage_paths("train_ldm", "snapshots", "ae", "out", "live", "plots")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "train_ldm")
    device = resolve_device(p.device)
    if p.generator == "tokens":
        return tokens(p, paths, gen, device)
    ae, normalizer, _ = load_autoencoder(paths.ae)
    x = load_vectors(paths.snapshots, "collect")["params"]
    with torch.no_grad():
        z = ae.encode(normalizer(x))
    latent_mean, latent_std = z.mean().item(), z.std().item()
    schedule = schedule_settings(p.ldm)
    diffusion = linear_schedule(**schedule)
    config = dict(in_channels=z.shape[1], base=p.ldm.channels, mults=tuple(p.ldm.channel_mults))
    denoiser = UNet1D(**config)
    tracker = Tracker(paths.live)
    # with ldm.ema_decay > 0 the saved weights (what `generate` samples with) are the EMA of the trained ones
    loss, sampler_net = train_denoiser(denoiser, diffusion, (z - latent_mean) / latent_std, p.ldm, device, gen,
                                       tracker)
    tracker.close()
    print(f"LDM: latents {tuple(z.shape)}, final loss {loss:.4g}")
    save_torch({"state_dict": {k: v.cpu() for k, v in sampler_net.state_dict().items()}, "config": config,
                "ema_decay": p.ldm.ema_decay, "ema_warmup": p.ldm.ema_warmup,
                "schedule": schedule, "latent_mean": latent_mean,
                "latent_std": latent_std}, paths.out)
    loss_curves(tracker.history, f"{paths.plots}/loss.png", "latent diffusion (noise-prediction MSE)", log_y=True)


if __name__ == "__main__":
    run_stage("train_ldm", main)
