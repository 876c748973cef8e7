"""Latent diffusion (step 4) and generation (step 5): train a denoiser on standardized AE latents,
then sample latents and decode them back to parameter vectors."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pdiff.core.tracking import Tracker
from pdiff.generative.autoencoder import Normalizer, ParamAE
from pdiff.generative.diffusion import GaussianDiffusion
from pdiff.generative.fitting import EMA, fit


def train_denoiser(denoiser, diffusion: GaussianDiffusion, z: torch.Tensor, cfg, device, gen: torch.Generator,
                   tracker: Tracker, log_every: int = 25) -> tuple[float, torch.nn.Module]:
    """Fit ``denoiser`` to the DDPM objective on latents ``z`` [K, C, L]. Returns the last step's loss and the
    denoiser to sample with: ``denoiser`` itself, or, when ``cfg.ema_decay`` > 0, a copy holding the
    exponential moving average of its weights (`EMA`; ``cfg.ema_warmup``,
    default true, turns its warm-up on)."""
    denoiser.to(device)
    ema = (EMA(denoiser, cfg.ema_decay, getattr(cfg, "ema_warmup", True)) if getattr(cfg, "ema_decay", 0.0) > 0
           else None)
    z = z.to(device)

    def batch_loss() -> torch.Tensor:
        return diffusion.training_loss(denoiser, z[torch.randint(len(z), (cfg.batch_size,), generator=gen).to(device)],
                                       gen)

    loss = fit(denoiser, batch_loss, cfg, tracker, "train_ldm", log_every, ema)
    return loss, (ema.module() if ema is not None else denoiser)


@dataclass
class LatentModel:
    """Everything that turns noise into parameter vectors: the AE (decoder) and its normalizer, the denoiser
    with its diffusion, and the standardization of the latents it was trained on."""
    ae: ParamAE
    normalizer: Normalizer
    denoiser: torch.nn.Module
    diffusion: GaussianDiffusion
    latent_mean: float = 0.0
    latent_std: float = 1.0


@dataclass
class SamplingConfig:
    """N vectors (`generate.num_models`), then `conv_ae.generate`: ``batch_size`` latents at once, ``sampler`` ddpm |
    ddim, DDIM ``steps``."""
    num_models: int = 100
    batch_size: int = 100
    sampler: str = "ddpm"
    steps: int = 50


@torch.no_grad()
def sample_vectors(m: LatentModel, cfg: SamplingConfig, gen: torch.Generator, device) -> torch.Tensor:
    """Sample ``cfg.num_models`` latents, undo the latent standardization, decode and de-normalize: [N, D].
    ``cfg`` is any object with the fields of `SamplingConfig`."""
    m.ae.to(device).eval()
    m.denoiser.to(device).eval()
    m.normalizer.to(device)
    out = []
    for start in range(0, cfg.num_models, cfg.batch_size):
        shape = (min(cfg.batch_size, cfg.num_models - start), *m.ae.latent_shape)
        if cfg.sampler == "ddim":
            z = m.diffusion.ddim_sample_loop(m.denoiser, shape, cfg.steps, gen=gen, device=device)
        else:
            z = m.diffusion.p_sample_loop(m.denoiser, shape, gen=gen, device=device)
        out.append(m.normalizer.inverse(m.ae.decode(z * m.latent_std + m.latent_mean)).float().cpu())
    return torch.cat(out)


def ldm_from_checkpoint(ckpt: dict):
    """(denoiser in eval mode, GaussianDiffusion) of a `train_ldm` checkpoint dict."""
    from pdiff.generative.denoiser import UNet1D
    from pdiff.generative.diffusion import linear_schedule

    denoiser = UNet1D(**ckpt["config"])
    denoiser.load_state_dict(ckpt["state_dict"])
    return denoiser.eval(), linear_schedule(**ckpt["schedule"])


def load_ldm(path: str):
    """(denoiser in eval mode, GaussianDiffusion, checkpoint dict with latent_mean / latent_std)."""
    from pdiff.core.artifacts import load_torch

    ckpt = load_torch(path, "train_ldm", required=("state_dict", "config", "schedule", "latent_mean", "latent_std"))
    return *ldm_from_checkpoint(ckpt), ckpt


def latent_model(ae_ckpt: dict, ldm_ckpt: dict) -> LatentModel:
    """The `LatentModel` of a `train_ae` and a `train_ldm` checkpoint dict."""
    from pdiff.generative.autoencoder import autoencoder_from_checkpoint

    ae, normalizer = autoencoder_from_checkpoint(ae_ckpt)
    denoiser, diffusion = ldm_from_checkpoint(ldm_ckpt)
    return LatentModel(ae, normalizer, denoiser, diffusion, ldm_ckpt["latent_mean"], ldm_ckpt["latent_std"])


def load_latent_model(ae_path: str, ldm_path: str) -> tuple[LatentModel, dict]:
    """(`LatentModel` from the `train_ae` and `train_ldm` checkpoints, the AE checkpoint's names/shapes meta)."""
    from pdiff.generative.autoencoder import load_autoencoder

    ae, normalizer, meta = load_autoencoder(ae_path)
    denoiser, diffusion, ckpt = load_ldm(ldm_path)
    return LatentModel(ae, normalizer, denoiser, diffusion, ckpt["latent_mean"], ckpt["latent_std"]), meta
