"""Gaussian diffusion (DDPM, Ho et al. 2020) and its deterministic DDIM sampler (Song et al. 2021).

Independent of what is diffused: every function takes tensors of any shape [B, ...] and a denoiser
``model(x_t, t) -> predicted noise``. Schedules are kept in float64 and cast when gathered. Every schedule in
the project is the linear one, built by `linear_schedule` (checkpoints store its three settings,
`schedule_settings`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm


def linear_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 2e-2) -> GaussianDiffusion:
    """The DDPM paper's linear noise schedule over T = ``timesteps`` steps, t = 0 .. T-1, in float64:

        beta_t        = beta_start + (beta_end - beta_start) * t / (T - 1)      (torch.linspace)
        alpha_t       = 1 - beta_t
        abar_t        = prod_{s <= t} alpha_s                                   (abar_{-1} = 1)
        q(x_t | x_0)  = N(sqrt(abar_t) x_0, (1 - abar_t) I)
        q(x_{t-1} | x_t, x_0) = N(coef1_t x_0 + coef2_t x_t, var_t) with
            coef1_t = beta_t sqrt(abar_{t-1}) / (1 - abar_t),  coef2_t = (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t),
            var_t   = beta_t (1 - abar_{t-1}) / (1 - abar_t).

    Returns the `GaussianDiffusion` holding these tables (computed once, in its constructor)."""
    return GaussianDiffusion(torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64))


def schedule_settings(ldm) -> dict:
    """A ``train_ldm`` params group's schedule as checkpoints store it: ``linear_schedule(**settings)`` rebuilds it."""
    return {"timesteps": ldm.timesteps, "beta_start": ldm.beta_start, "beta_end": ldm.beta_end}


def _gather(a: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """a[t] shaped to broadcast against ``like`` ([B] -> [B, 1, ...])."""
    return a.to(like.device)[t].to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


class GaussianDiffusion:
    """The tables of a noise schedule ``betas`` [T] (the equations: `linear_schedule`) and the DDPM / DDIM math."""

    def __init__(self, betas: torch.Tensor):
        self.betas = betas
        self.num_timesteps = len(betas)
        alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(alphas, 0)                        # alpha-bar_t
        self.alphas_cumprod_prev = F.pad(self.alphas_cumprod[:-1], (1, 0), value=1.0)
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        # Posterior q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, posterior_variance).
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef1 = betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * alphas.sqrt() / (1.0 - self.alphas_cumprod)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward process in closed form: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        return (_gather(self.sqrt_alphas_cumprod, t, x0) * x0
                + _gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert the forward process: x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
        eps_part = _gather(self.sqrt_one_minus_alphas_cumprod, t, xt) * eps
        return (xt - eps_part) / _gather(self.sqrt_alphas_cumprod, t, xt)

    def training_loss(self, model, x0: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The simple DDPM objective: E_{t, eps} || eps - eps_theta(x_t, t) ||^2, t uniform in [0, T)."""
        t = torch.randint(self.num_timesteps, (x0.shape[0],), generator=gen).to(x0.device)
        noise = torch.randn(x0.shape, generator=gen).to(x0.device)
        return F.mse_loss(model(self.q_sample(x0, t, noise), t), noise)

    @torch.no_grad()
    def p_sample_loop(self, model, shape, gen: torch.Generator | None = None, device="cpu",
                      progress: bool = True) -> torch.Tensor:
        """Ancestral DDPM sampling: x_T ~ N(0, I), then x_{t-1} ~ N(mu_theta(x_t, t), posterior variance)."""
        x = torch.randn(shape, generator=gen).to(device)
        for i in tqdm(range(self.num_timesteps - 1, -1, -1), desc="ddpm", disable=not progress, mininterval=1.0):
            t = torch.full((shape[0],), i, dtype=torch.long, device=device)
            x0 = self.predict_x0(x, t, model(x, t))
            mean = _gather(self.posterior_mean_coef1, t, x) * x0 + _gather(self.posterior_mean_coef2, t, x) * x
            if i > 0:
                noise = torch.randn(shape, generator=gen).to(device)
                x = mean + _gather(self.posterior_variance, t, x).sqrt() * noise
            else:
                x = mean
        return x

    def ddim_timesteps(self, steps: int) -> list[int]:
        """The DDIM sampler's timesteps: ``steps`` evenly spaced from T-1 down to 0, rounded, repeats dropped."""
        return torch.linspace(self.num_timesteps - 1, 0, steps).round().long().unique_consecutive().tolist()

    @torch.no_grad()
    def ddim_sample_loop(self, model, shape, steps: int, gen: torch.Generator | None = None, device="cpu",
                         eta: float = 0.0, progress: bool = True) -> torch.Tensor:
        """DDIM over ``steps`` evenly spaced timesteps:
        x_{s} = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z, with eta=0 deterministic."""
        ts = self.ddim_timesteps(steps)
        x = torch.randn(shape, generator=gen).to(device)
        for j, i in enumerate(tqdm(ts, desc="ddim", disable=not progress, mininterval=1.0)):
            t = torch.full((shape[0],), i, dtype=torch.long, device=device)
            eps = model(x, t)
            x0 = self.predict_x0(x, t, eps)
            abar = _gather(self.alphas_cumprod, t, x)
            if j + 1 < len(ts):
                abar_prev = _gather(self.alphas_cumprod, torch.full_like(t, ts[j + 1]), x)
            else:
                abar_prev = torch.ones_like(abar)
            sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
            x = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma ** 2).clamp_min(0).sqrt() * eps
            if eta > 0 and j + 1 < len(ts):
                x = x + sigma * torch.randn(shape, generator=gen).to(device)
        return x
