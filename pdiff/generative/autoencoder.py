"""The parameter autoencoder (step 3): a normalizer, a 1-D conv encoder/decoder, and its training loop
with the paper's noise augmentation (Gaussian noise on the input vectors and on the latents)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pdiff.core.tracking import Tracker
from pdiff.generative.fitting import fit


class Normalizer(nn.Module):
    """x_norm = (x - mean) / std, with mean and std fitted on the K training vectors.

    per_param: mean and std of every value over K; per_tensor: per-value mean, one std per tensor;
    global: per-value mean, one std overall; none: identity. Stds are floored at 1e-8 (K = 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, mode: str, sizes: list[int]) -> Normalizer:
        if mode == "none":
            return self
        self.mean.copy_(x.mean(0))
        dev = x - self.mean
        if mode == "per_param":
            std = dev.pow(2).mean(0).sqrt()
        elif mode == "per_tensor":
            std = torch.cat([c.pow(2).mean().sqrt().expand(c.shape[1]) for c in torch.split(dev, sizes, dim=1)])
        elif mode == "global":
            std = dev.pow(2).mean().sqrt().expand(x.shape[1])
        else:
            raise ValueError(f"unknown normalization {mode!r}")
        self.std.copy_(std.clamp_min(1e-8))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ParamAE(nn.Module):
    """Vectors [B, D] -> latents [B, latent_channels, L] -> vectors [B, D].

    D is zero-padded to a multiple of 2^levels; each encoder level is a stride-2 Conv1d, each decoder
    level a stride-2 ConvTranspose1d. A learned position embedding after the stem tells the (translation
    equivariant) convolutions which parameter they look at. The output has no activation, so any value
    can be produced."""

    def __init__(self, dim: int, channels: list[int] = (64, 128, 128), latent_channels: int = 4):
        super().__init__()
        channels = list(channels)
        factor = 2 ** len(channels)
        self.dim = dim
        self.padded = math.ceil(dim / factor) * factor
        self.latent_len = self.padded // factor
        self.latent_channels = latent_channels
        self.enc_stem = nn.Conv1d(1, channels[0], 3, padding=1)
        self.enc_pos = nn.Parameter(torch.zeros(1, channels[0], self.padded))
        enc, prev = [], channels[0]
        for ch in channels:
            enc += [nn.Conv1d(prev, ch, 4, stride=2, padding=1), _act()]
            prev = ch
        enc.append(nn.Conv1d(prev, latent_channels, 1))
        self.encoder = nn.Sequential(*enc)
        self.dec_stem = nn.Conv1d(latent_channels, prev, 1)
        self.dec_pos = nn.Parameter(torch.zeros(1, prev, self.latent_len))
        dec = []
        for ch in reversed([channels[0]] + channels[:-1]):
            dec += [nn.ConvTranspose1d(prev, ch, 4, stride=2, padding=1), _act()]
            prev = ch
        dec.append(nn.Conv1d(prev, 1, 3, padding=1))
        self.decoder = nn.Sequential(*dec)

    @property
    def latent_shape(self) -> tuple[int, int]:
        return (self.latent_channels, self.latent_len)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x, (0, self.padded - self.dim)).unsqueeze(1)
        h = F.leaky_relu(self.enc_stem(h) + self.enc_pos, 0.2)
        return self.encoder(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.dec_stem(z) + self.dec_pos, 0.2)
        return self.decoder(h).squeeze(1)[:, :self.dim]

    def forward(self, x: torch.Tensor, input_noise: float = 0.0, latent_noise: float = 0.0,
                gen: torch.Generator | None = None) -> torch.Tensor:
        if input_noise > 0:
            x = x + input_noise * torch.randn(x.shape, generator=gen).to(x.device)
        z = self.encode(x)
        if latent_noise > 0:
            z = z + latent_noise * torch.randn(z.shape, generator=gen).to(z.device)
        return self.decode(z)


def train_autoencoder(ae: ParamAE, x: torch.Tensor, cfg, device, gen: torch.Generator, tracker: Tracker,
                      log_every: int = 25) -> float:
    """Fit ``ae`` to reconstruct the normalized vectors ``x`` [K, D] from noised inputs and latents.
    Returns the final noise-free reconstruction MSE (in normalized units)."""
    ae.to(device)
    x = x.to(device)

    def batch_loss() -> torch.Tensor:
        batch = x[torch.randint(len(x), (cfg.batch_size,), generator=gen).to(device)]
        return F.mse_loss(ae(batch, cfg.input_noise, cfg.latent_noise, gen), batch)

    fit(ae, batch_loss, cfg, tracker, "train_ae", log_every)
    with torch.no_grad():
        return F.mse_loss(ae(x), x).item()


def fit_param_ae(snaps: dict, cfg, device, gen: torch.Generator, tracker: Tracker) -> tuple[ParamAE, dict]:
    """Normalize the vectors of a snapshot file (``params`` [K, D], ``names``, ``shapes``) with ``cfg.normalize``,
    fit a `ParamAE` of ``cfg.channels`` / ``cfg.latent_channels`` on them; -> (the AE, its checkpoint dict in the
    format `load_autoencoder` reads)."""
    from pdiff.core.artifacts import numels

    x = snaps["params"]
    normalizer = Normalizer(x.shape[1]).fit(x, cfg.normalize, numels(snaps["shapes"]))
    config = dict(dim=x.shape[1], channels=cfg.channels, latent_channels=cfg.latent_channels)
    ae = ParamAE(**config)
    mse = train_autoencoder(ae, normalizer(x), cfg, device, gen, tracker)
    return ae, {"state_dict": {k: v.cpu() for k, v in ae.state_dict().items()}, "config": config,
                "normalizer": normalizer.state_dict(), "names": snaps["names"], "shapes": snaps["shapes"],
                "recon_mse": mse}


def autoencoder_from_checkpoint(ckpt: dict) -> tuple[ParamAE, Normalizer]:
    """The AE (eval mode) and its normalizer of a checkpoint dict in the `fit_param_ae` format."""
    ae = ParamAE(**ckpt["config"])
    ae.load_state_dict(ckpt["state_dict"])
    normalizer = Normalizer(ckpt["config"]["dim"])
    normalizer.load_state_dict(ckpt["normalizer"])
    return ae.eval(), normalizer


def load_autoencoder(path: str) -> tuple[ParamAE, Normalizer, dict]:
    """The trained AE (eval mode), its normalizer, and the checkpoint's metadata (names, shapes)."""
    from pdiff.core.artifacts import load_torch

    ckpt = load_torch(path, "train_ae", required=("state_dict", "config", "normalizer", "names", "shapes"))
    return *autoencoder_from_checkpoint(ckpt), ckpt
