"""Latent diffusion (step 4) and generation (step 5): train a denoiser on standardized AE latents,
then sample latents and decode them back to parameter vectors."""
from __future__ import annotations


import torch

from pdiff.autoencoder import Normalizer, ParamAE
from pdiff.diffusion import GaussianDiffusion
from pdiff.fitting import fit
from pdiff.tracking import Tracker


def train_denoiser(denoiser, diffusion: GaussianDiffusion, z: torch.Tensor, cfg, device, gen: torch.Generator,
                   tracker: Tracker, log_every: int = 25) -> float:
    """Fit ``denoiser`` to the DDPM objective on latents ``z`` [K, C, L]; returns the last step's loss."""
    denoiser.to(device)
    z = z.to(device)

    def batch_loss() -> torch.Tensor:
        return diffusion.training_loss(denoiser, z[torch.randint(len(z), (cfg.batch_size,), generator=gen).to(device)],
                                       gen)

    return fit(denoiser, batch_loss, cfg, tracker, "train_ldm", log_every)


@torch.no_grad()
def sample_vectors(ae: ParamAE, normalizer: Normalizer, denoiser, diffusion: GaussianDiffusion,
                   latent_mean: float, latent_std: float, num: int, batch_size: int, gen: torch.Generator,
                   device, sampler: str = "ddpm", steps: int = 100) -> torch.Tensor:
    """Sample ``num`` latents, undo the latent standardization, decode and de-normalize: [num, D]."""
    ae.to(device).eval()
    denoiser.to(device).eval()
    normalizer.to(device)
    out = []
    for start in range(0, num, batch_size):
        shape = (min(batch_size, num - start), *ae.latent_shape)
        if sampler == "ddim":
            z = diffusion.ddim_sample_loop(denoiser, shape, steps, gen=gen, device=device)
        else:
            z = diffusion.p_sample_loop(denoiser, shape, gen=gen, device=device)
        out.append(normalizer.inverse(ae.decode(z * latent_std + latent_mean)).float().cpu())
    return torch.cat(out)


def load_ldm(path: str = "models/ldm.pt"):
    """(denoiser in eval mode, GaussianDiffusion, checkpoint dict with latent_mean / latent_std)."""
    from pdiff.artifacts import load_torch
    from pdiff.denoiser import UNet1D
    from pdiff.diffusion import linear_betas

    ckpt = load_torch(path, "train_ldm", required=("state_dict", "config", "schedule", "latent_mean", "latent_std"))
    denoiser = UNet1D(**ckpt["config"])
    denoiser.load_state_dict(ckpt["state_dict"])
    return denoiser.eval(), GaussianDiffusion(linear_betas(**ckpt["schedule"])), ckpt
