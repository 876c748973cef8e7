"""A latent denoiser conditioned on a task code, trained with optional condition dropout and sampled with
optional classifier-free guidance (Ho & Salimans 2022).

How the code c (0/1 bits) enters is ``cond``:

- ``add``: a small MLP on 2c - 1, added to the UNet's time embedding (so every residual block sees it);
- ``concat``: 2c - 1 as extra input channels, constant along the latent's length (the UNet's first
  convolution sees it, nothing later does directly);
- ``none``: ignored (the unconditional ablation, the same network with the code embedding never used).

With ``cond_dropout`` p > 0, training replaces the code by "no code" with probability p (``add``: a learned
embedding; ``concat``: zero channels, halfway between the two bit values), so one network also predicts the
unconditional noise, and sampling
with ``guidance`` w uses eps = eps_uncond + w (eps_cond - eps_uncond) (w = 1: plain conditional sampling)."""
from __future__ import annotations

import torch
from torch import nn

from pdiff.core.tracking import Tracker
from pdiff.generative.denoiser import UNet1D
from pdiff.generative.diffusion import GaussianDiffusion
from pdiff.generative.fitting import fit

COND_MODES = ("add", "concat", "none")


class CodeConditionedUNet(nn.Module):
    def __init__(self, in_channels: int, base: int, mults: tuple[int, ...], code_bits: int, cond: str = "add"):
        super().__init__()
        if cond not in COND_MODES:
            raise ValueError(f"unknown conditioning {cond!r}; choose one of {COND_MODES}")
        self.cond = cond
        extra = code_bits if cond == "concat" else 0
        self.unet = UNet1D(in_channels + extra, base, mults, out_channels=in_channels)
        temb = 4 * base
        self.code_mlp = nn.Sequential(nn.Linear(code_bits, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.null = nn.Parameter(torch.zeros(temb))

    def code_channels(self, x: torch.Tensor, code: torch.Tensor | None, keep: torch.Tensor | None) -> torch.Tensor:
        """``cond: concat``: ``x`` [B, C, L] with 2c - 1 appended as channels (zeros for "no code")."""
        bits = self.code_mlp[0].in_features
        if code is None:
            signs = x.new_zeros(x.shape[0], bits)
        else:
            signs = (2.0 * code - 1.0).expand(x.shape[0], -1)
            if keep is not None:
                signs = signs * keep[:, None]
        return torch.cat([x, signs[:, :, None].expand(-1, -1, x.shape[-1])], dim=1)

    def code_embedding(self, code: torch.Tensor | None, keep: torch.Tensor | None = None) -> torch.Tensor | None:
        if self.cond != "add":
            return None
        if code is None:
            return self.null[None]
        emb = self.code_mlp(2.0 * code - 1.0)
        if keep is not None:
            emb = torch.where(keep[:, None], emb, self.null[None].expand_as(emb))
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, code: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond == "concat":
            return self.unet(self.code_channels(x, code, keep), t)
        emb = self.code_embedding(code, keep)
        if emb is not None and emb.shape[0] != x.shape[0]:
            emb = emb.expand(x.shape[0], -1)
        return self.unet(x, t, emb)


def train_conditional(denoiser: CodeConditionedUNet, diffusion: GaussianDiffusion, z: torch.Tensor,
                      codes: torch.Tensor, cfg, cond_dropout: float, device, gen: torch.Generator,
                      tracker: Tracker, log_every: int = 25) -> float:
    """Fit ``denoiser`` to the DDPM objective on latents ``z`` [K, C, L] with their codes [K, bits]; each
    training code is dropped (replaced by the "no code" embedding) with probability ``cond_dropout``."""
    denoiser.to(device)
    z, codes = z.to(device), codes.to(device)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(len(z), (cfg.batch_size,), generator=gen).to(device)
        keep = (torch.rand(cfg.batch_size, generator=gen) >= cond_dropout).to(device)
        batch_codes = codes[idx]
        return diffusion.training_loss(lambda xt, t: denoiser(xt, t, batch_codes, keep), z[idx], gen)

    return fit(denoiser, batch_loss, cfg, tracker, "tasks_ldm", log_every)


def guided(denoiser: CodeConditionedUNet, codes: torch.Tensor, guidance: float):
    """The noise predictor ``model(x_t, t)`` the samplers call, for a batch whose row i has code ``codes[i]``."""
    if guidance == 1.0 or denoiser.cond == "none":
        return lambda x, t: denoiser(x, t, codes)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cond = denoiser(x, t, codes)
        uncond = denoiser(x, t, None)
        return uncond + guidance * (cond - uncond)
    return model


@torch.no_grad()
def sample_latents(denoiser: CodeConditionedUNet, diffusion: GaussianDiffusion, codes: torch.Tensor,
                   latent_shape: tuple[int, ...], guidance: float, sampler: str, steps: int,
                   gen: torch.Generator, device, batch_size: int = 500) -> torch.Tensor:
    """One latent per row of ``codes`` [M, bits] -> [M, *latent_shape] (standardized units)."""
    denoiser.to(device).eval()
    out = []
    for i in range(0, len(codes), batch_size):
        c = codes[i:i + batch_size].to(device)
        model, shape = guided(denoiser, c, guidance), (len(c), *latent_shape)
        if sampler == "ddim":
            out.append(diffusion.ddim_sample_loop(model, shape, steps, gen=gen, device=device, progress=False))
        else:
            out.append(diffusion.p_sample_loop(model, shape, gen=gen, device=device, progress=False))
    return torch.cat(out).cpu()


def load_conditional_model(ae_path: str = "models/tasks/ae.pt", ldm_path: str = "models/tasks/ldm.pt"):
    """A `LatentModel` whose denoiser is the `CodeConditionedUNet` saved by `tasks_ldm`."""
    from pdiff.core.artifacts import load_torch
    from pdiff.generative.autoencoder import load_autoencoder
    from pdiff.generative.diffusion import linear_schedule
    from pdiff.generative.ldm import LatentModel

    ae, normalizer, _ = load_autoencoder(ae_path)
    ckpt = load_torch(ldm_path, "tasks_ldm", required=("state_dict", "config", "schedule", "latent_mean",
                                                         "latent_std"))
    denoiser = CodeConditionedUNet(**ckpt["config"])
    denoiser.load_state_dict(ckpt["state_dict"])
    return LatentModel(ae, normalizer, denoiser.eval(), linear_schedule(**ckpt["schedule"]),
                       ckpt["latent_mean"], ckpt["latent_std"])
