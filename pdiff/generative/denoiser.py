"""The network the diffusion trains: a small 1-D conv UNet over latents [B, C, L], conditioned on the
timestep through a sinusoidal embedding, predicting the added noise."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, ch), ch)


class ResBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv1d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv1d(cout, cout, 3, padding=1)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.temb(emb)[:, :, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet1D(nn.Module):
    def __init__(self, in_channels: int, base: int = 64, mults: tuple[int, ...] = (1, 2),
                 out_channels: int | None = None):
        super().__init__()
        temb = 4 * base
        self.base = base
        self.levels = len(mults)
        self.time_mlp = nn.Sequential(nn.Linear(base, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.stem = nn.Conv1d(in_channels, base, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        chans, prev = [], base
        for m in mults:
            self.down.append(ResBlock1d(prev, base * m, temb))
            prev = base * m
            chans.append(prev)
            self.downsample.append(nn.Conv1d(prev, prev, 4, stride=2, padding=1))
        self.mid = ResBlock1d(prev, prev, temb)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for m, skip in zip(reversed(mults), reversed(chans), strict=True):
            self.upsample.append(nn.ConvTranspose1d(prev, prev, 4, stride=2, padding=1))
            self.up.append(ResBlock1d(prev + skip, base * m, temb))
            prev = base * m
        self.out_norm = _norm(prev)
        self.out = nn.Conv1d(prev, out_channels or in_channels, 3, padding=1)  # fewer when inputs carry a condition
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, extra_emb: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted noise for ``x`` [B, C, L] at timesteps ``t`` [B]; ``extra_emb`` [B, 4 * base], when given, is
        added to the time embedding (how `pdiff.generative.conditional` feeds in a task code)."""
        length = x.shape[-1]
        factor = 2 ** self.levels
        x = F.pad(x, (0, (-length) % factor))
        emb = self.time_mlp(timestep_embedding(t, self.base))
        if extra_emb is not None:
            emb = emb + extra_emb
        h = self.stem(x)
        skips = []
        for block, down in zip(self.down, self.downsample, strict=True):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, emb)
        for up, block in zip(self.upsample, self.up, strict=True):
            h = block(torch.cat([up(h), skips.pop()], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))[..., :length]
