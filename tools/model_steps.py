"""Seeded steps of each model the default pipeline fits, on seeded random inputs, under whatever kernel setting is
in effect when torch loaded: the units `tools.op_trace` hashes and `tools.kernel_pins --profile` times. Import it
in a child process whose kernel pins are already set.

Each ``make_*(p, gen)`` builds its model (and optimizer) and returns ``step()``, one update (or one denoiser call)
on a fresh batch drawn from ``gen``:

- ``base_train``: an SGD step of the default base model (`model.arch`, `model.width`, `train.*`);
- ``ae_train``: an AdamW step of the parameter autoencoder (`conv_ae.train_ae.*`, D = 192) with its input and
  latent noise;
- ``ldm_train``: an AdamW step of the latent UNet on the DDPM objective (`conv_ae.train_ldm.*`);
- ``ldm_sample``: one denoiser call from t = T - 1 down, its x_0 prediction plus a little seeded noise (no
  gradient); ``step.decode()`` decodes the current latents with the AE.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pdiff.generative.autoencoder import ParamAE
from pdiff.generative.denoiser import UNet1D
from pdiff.generative.diffusion import linear_schedule, schedule_settings
from pdiff.nets.models import build_model

AE_DIM = 192  # the default's D
SAMPLES = 16  # latents per ldm_sample call


def make_ae(p) -> ParamAE:
    cfg = p.conv_ae.train_ae
    return ParamAE(AE_DIM, list(cfg.channels), cfg.latent_channels)


def latent_shape(p) -> tuple[int, ...]:
    """The AE's latent shape [C, L] (it builds a throwaway AE: call it outside a traced phase)."""
    return tuple(make_ae(p).latent_shape)


def make_unet(p, latent) -> UNet1D:
    cfg = p.conv_ae.train_ldm
    return UNet1D(latent[0], cfg.channels, tuple(cfg.channel_mults))


def base_train(p, gen):
    model = build_model(p.model.arch, 1, 10, 28, p.model.width)
    opt = torch.optim.SGD(model.parameters(), lr=p.train.lr, momentum=p.train.momentum)

    def step():
        x = torch.randn((p.train.batch_size, 1, 28, 28), generator=gen)
        y = torch.randint(0, 10, (p.train.batch_size,), generator=gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def ae_train(p, gen):
    cfg = p.conv_ae.train_ae
    ae = make_ae(p)
    opt = torch.optim.AdamW(ae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step():
        x = torch.randn((cfg.batch_size, AE_DIM), generator=gen)
        loss = F.mse_loss(ae(x, cfg.input_noise, cfg.latent_noise, gen), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def ldm_train(p, gen, latent):
    cfg = p.conv_ae.train_ldm
    net = make_unet(p, latent)
    diffusion = linear_schedule(**schedule_settings(cfg))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step():
        z = torch.randn((cfg.batch_size, *latent), generator=gen)
        loss = diffusion.training_loss(net, z, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def ldm_sample(p, gen, latent):
    net, ae = make_unet(p, latent).eval(), make_ae(p).eval()
    diffusion = linear_schedule(**schedule_settings(p.conv_ae.train_ldm))
    state = {"x": torch.randn((SAMPLES, *latent), generator=gen), "t": diffusion.num_timesteps - 1}

    @torch.no_grad()
    def step():
        t = torch.full((SAMPLES,), state["t"], dtype=torch.long)
        x0 = diffusion.predict_x0(state["x"], t, net(state["x"], t))
        state["x"] = x0 + 0.01 * torch.randn(state["x"].shape, generator=gen)
        state["t"] = max(state["t"] - 1, 0)

    step.decode = torch.no_grad()(lambda: ae.decode(state["x"]))
    return step


PHASES = ("base_train", "ae_train", "ldm_train", "ldm_sample")


def make(name: str, p, gen, latent) -> object:
    """``step`` of phase ``name`` (one of PHASES); ``latent`` (`latent_shape`) is what the LDM phases need."""
    makers = {"base_train": lambda: base_train(p, gen), "ae_train": lambda: ae_train(p, gen),
              "ldm_train": lambda: ldm_train(p, gen, latent), "ldm_sample": lambda: ldm_sample(p, gen, latent)}
    return makers[name]()
