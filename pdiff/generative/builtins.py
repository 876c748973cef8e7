"""The two built-in generators on the protocol of `pdiff.generative.protocol`, wrapping the code that does the
work: `ConvAE` (``generator: conv_ae``, the paper's parameter autoencoder of `autoencoder` and latent DDPM of
`ldm`) and `Tokens` (``generator: tokens``, the tokenized DDPM of `tokens`). Their artifacts and outputs are
byte for byte those the stages wrote before the protocol, plus the ``kind`` tag of the conv AE's two files."""
from __future__ import annotations

from collections.abc import Iterator

import torch

from pdiff.generative.protocol import Context, Decoder, Fitted, Generator, Sampler


class AEDecoder(Decoder):
    """The conv AE's decoder and encoder in parameter space: encode normalizes then encodes, decode decodes then
    undoes the normalization; eval mode, no noise, no gradients."""

    def __init__(self, ae, normalizer):
        self.ae, self.normalizer = ae.eval(), normalizer

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.ae.encode(self.normalizer(x.float()))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.normalizer.inverse(self.ae.decode(z))


class LatentSampler(Sampler):
    """Latents sampled by the DDPM (or DDIM) in batches of ``conv_ae.generate.batch_size``, decoded by the AE."""

    def __init__(self, model, meta: dict, ctx: Context):
        super().__init__(meta["names"], meta["shapes"])
        self.model, self.cfg, self.device = model, ctx.settings.generate, ctx.device

    def sample(self, n: int, cond=None, *, rng: torch.Generator) -> torch.Tensor:
        from pdiff.generative.ldm import SamplingConfig, sample_vectors

        cfg = SamplingConfig(n, self.cfg.batch_size, self.cfg.sampler, self.cfg.steps)
        return sample_vectors(self.model, cfg, rng, self.device)


class ConvAE(Generator):
    """the paper's 1-D conv parameter autoencoder (conv_ae.train_ae) and a DDPM on its latents (conv_ae.train_ldm)"""
    name = "conv_ae"

    def fit_representation(self, ctx: Context) -> Fitted:
        from pdiff.generative.autoencoder import fit_param_ae

        ae, ckpt = fit_param_ae(ctx.load_snapshots(), ctx.settings.train_ae, ctx.device, ctx.gen, ctx.tracker)
        print(f"AE: latent {ae.latent_shape}, noise-free reconstruction MSE {ckpt['recon_mse']:.4g} (normalized "
              "units)")
        return Fitted(ckpt, "parameter autoencoder", log_y=True)

    def fit_prior(self, ctx: Context) -> Fitted:
        from pdiff.generative.autoencoder import autoencoder_from_checkpoint
        from pdiff.generative.denoiser import UNet1D
        from pdiff.generative.diffusion import linear_schedule, schedule_settings
        from pdiff.generative.ldm import train_denoiser

        cfg = ctx.settings.train_ldm
        ae, normalizer = autoencoder_from_checkpoint(ctx.representation)
        x = ctx.load_snapshots()["params"]
        with torch.no_grad():
            z = ae.encode(normalizer(x))
        latent_mean, latent_std = z.mean().item(), z.std().item()
        schedule = schedule_settings(cfg)
        diffusion = linear_schedule(**schedule)
        config = dict(in_channels=z.shape[1], base=cfg.channels, mults=tuple(cfg.channel_mults))
        denoiser = UNet1D(**config)
        # with ldm.ema_decay > 0 the saved weights (what `generate` samples with) are the EMA of the trained ones
        loss, sampler_net = train_denoiser(denoiser, diffusion, (z - latent_mean) / latent_std, cfg, ctx.device,
                                           ctx.gen, ctx.tracker)
        print(f"LDM: latents {tuple(z.shape)}, final loss {loss:.4g}")
        return Fitted({"state_dict": {k: v.cpu() for k, v in sampler_net.state_dict().items()}, "config": config,
                       "ema_decay": cfg.ema_decay, "ema_warmup": cfg.ema_warmup, "schedule": schedule,
                       "latent_mean": latent_mean, "latent_std": latent_std},
                      "latent diffusion (noise-prediction MSE)", log_y=True)

    def load_sampler(self, representation: dict, prior: dict, ctx: Context) -> Sampler:
        from pdiff.generative.ldm import latent_model

        return LatentSampler(latent_model(representation, prior), representation, ctx)

    def load_decoder(self, representation: dict) -> Decoder:
        from pdiff.generative.autoencoder import autoencoder_from_checkpoint

        return AEDecoder(*autoencoder_from_checkpoint(representation))

    def report_note(self) -> str:
        return ""  # report.md's own text describes the paper's generator


class TokenSampler(Sampler):
    """Vectors sampled ``tokens.generate.sample_chunk`` token rows at a time and streamed one vector at a time."""
    streams = True

    def __init__(self, tokenizer: dict, prior: dict, ctx: Context):
        from pdiff.generative import tokens as tk

        super().__init__(tokenizer["names"], tokenizer["shapes"])
        layout, mean, std = tk.tokenizer_from_state(tokenizer)
        self.model, self.diffusion = tk.load_state(prior)
        self.data = tk.token_data(layout, None, mean, std)
        self.cfg, self.device = ctx.settings.generate, ctx.device
        self.clip = self.cfg.clip if self.cfg.clip > 0 and tokenizer["normalize"] != "none" else None

    def rows(self, n: int, cond=None, *, rng: torch.Generator) -> Iterator[torch.Tensor]:
        from pdiff.generative.tokens import sample_vectors_tokens

        cfg = self.cfg
        yield from sample_vectors_tokens(self.model, self.diffusion, self.data, n, cfg.sample_chunk, rng, self.device,
                                         cfg.sampler, cfg.steps, clip=self.clip)

    def sample(self, n: int, cond=None, *, rng: torch.Generator) -> torch.Tensor:
        return torch.stack(list(self.rows(n, cond, rng=rng)))


class Tokens(Generator):
    """a DDPM over fixed-size tokens of the parameter vector (the tokens group), docs/tokens.md"""
    name = "tokens"

    def fit_representation(self, ctx: Context) -> Fitted:
        from pdiff.core.artifacts import numels
        from pdiff.generative import tokens as tk

        cfg = ctx.settings.train_ae
        rows, names, shapes = tk.open_rows(ctx.snapshots, "collect")
        mean, std = tk.fit_normalizer(rows, numels(shapes), cfg.normalize)
        layout = tk.TokenLayout(numels(shapes), cfg.size)
        padding = 1.0 - layout.dim / (layout.num_tokens * layout.size)
        ctx.tracker.log(1, tokens=layout.num_tokens, padding_share=round(padding, 6))
        print(f"tokens: {layout.num_tokens} tokens of {layout.size} values, padding {100 * padding:.1f}%")
        return Fitted(tk.tokenizer_state(names, shapes, cfg.size, cfg.normalize, mean, std),
                      "tokenizer (generator: tokens, no autoencoder)")

    def fit_prior(self, ctx: Context) -> Fitted:
        from pdiff.generative import tokens as tk
        from pdiff.generative.diffusion import linear_schedule, schedule_settings

        cfg = ctx.settings.train_ldm
        layout, mean, std = tk.tokenizer_from_state(ctx.representation)
        rows, _, _ = tk.open_rows(ctx.snapshots, "collect")
        schedule = schedule_settings(cfg)
        diffusion = linear_schedule(**schedule)
        model = tk.TokenGenerator(layout, cfg.width, cfg.depth, cfg.sequence, cfg.code)
        loss = tk.train_tokens(model, diffusion, tk.token_data(layout, rows, mean, std), cfg, ctx.device, ctx.gen,
                               ctx.tracker)
        print(f"tokens: {layout.num_tokens} tokens x {rows.shape[0]} snapshots, sequence {cfg.sequence}, "
              f"code {cfg.code}, final loss {loss:.4g}")
        return Fitted(tk.save_state(model, schedule), "token diffusion (noise-prediction MSE)", log_y=True)

    def load_sampler(self, representation: dict, prior: dict, ctx: Context) -> Sampler:
        return TokenSampler(representation, prior, ctx)

    def report_note(self) -> str:
        return ""  # report.md's own text describes it as "the generator"
