"""The two built-in generators on the protocol of `pdiff.generative.protocol`, wrapping the code that does the
work: `ConvAE` (``generator: conv_ae``, the paper's parameter autoencoder of `autoencoder` and latent DDPM of
`ldm`) and `Tokens` (``generator: tokens``, the tokenized DDPM of `tokens`). Their artifacts and outputs are
byte for byte those the stages wrote before the protocol, plus the ``kind`` tag of the tokens generator's files.

Both are conditional: given ``ctx.condition`` (the task stages), the conv AE fits the code-conditioned latent
denoiser of `conditional` (byte for byte what tasks_ldm fitted before it went through the protocol) and the
tokens generator a token denoiser whose sample code is the task code (`tokens`, code ``task``)."""
from __future__ import annotations

from collections.abc import Iterator

import torch

from pdiff import PdiffError
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


class ConditionalLatentSampler(Sampler):
    """Latents of the code-conditioned denoiser (`pdiff.generative.conditional`) for the codes ``cond``, with
    classifier-free guidance, ``conv_ae.generate.batch_size`` at a time, decoded by the AE."""

    def __init__(self, representation: dict, prior: dict, ctx: Context):
        from pdiff.generative.autoencoder import autoencoder_from_checkpoint
        from pdiff.generative.conditional import CodeConditionedUNet
        from pdiff.generative.diffusion import linear_schedule

        super().__init__(representation["names"], representation["shapes"])
        self.ae, self.normalizer = autoencoder_from_checkpoint(representation)
        self.denoiser = CodeConditionedUNet(**prior["config"])
        self.denoiser.load_state_dict(prior["state_dict"])
        self.denoiser.eval()
        self.diffusion = linear_schedule(**prior["schedule"])
        self.latent_mean, self.latent_std = prior["latent_mean"], prior["latent_std"]
        self.cfg, self.device = ctx.settings.generate, ctx.device

    @torch.no_grad()
    def sample(self, n: int, cond=None, *, rng: torch.Generator, guidance: float = 1.0) -> torch.Tensor:
        from pdiff.generative.conditional import sample_latents

        if cond is None or len(cond) != n:
            raise PdiffError(f"this conv_ae prior was fitted with task codes: sample({n}, cond=...) needs one code "
                             f"per vector, got {'none' if cond is None else len(cond)}.")
        z = sample_latents(self.denoiser, self.diffusion, cond, self.ae.latent_shape, guidance, self.cfg.sampler,
                           self.cfg.steps, rng, self.device, batch_size=self.cfg.batch_size)
        return self.normalizer.inverse(self.ae.decode(z * self.latent_std + self.latent_mean)).float()


class ConvAE(Generator):
    """the paper's 1-D conv parameter autoencoder (conv_ae.train_ae) and a DDPM on its latents (conv_ae.train_ldm);
    conditional: with ``ctx.condition``, the latent DDPM is `pdiff.generative.conditional`'s code-conditioned UNet"""
    name = "conv_ae"
    conditional = True

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
        if ctx.condition is not None:
            return self._fit_conditional(ctx, z, latent_mean, latent_std, schedule)
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

    @staticmethod
    def _fit_conditional(ctx: Context, z: torch.Tensor, latent_mean: float, latent_std: float,
                         schedule: dict) -> Fitted:
        """The task stages' prior: the code-conditioned latent denoiser (``ctx.condition``: codes per snapshot,
        mode = tasks_ldm.cond, dropout = tasks_ldm.cond_dropout). No EMA (conv_ae.train_ldm.ema_* are not used)."""
        from pdiff.generative.conditional import CodeConditionedUNet, train_conditional
        from pdiff.generative.diffusion import linear_schedule

        cfg, cond = ctx.settings.train_ldm, ctx.condition
        config = dict(in_channels=z.shape[1], base=cfg.channels, mults=tuple(cfg.channel_mults),
                      code_bits=cond.codes.shape[1], cond=cond.mode)
        denoiser = CodeConditionedUNet(**config)
        loss = train_conditional(denoiser, linear_schedule(**schedule), (z - latent_mean) / latent_std, cond.codes,
                                 cfg, cond.dropout, ctx.device, ctx.gen, ctx.tracker)
        print(f"task LDM: latents {tuple(z.shape)}, cond {cond.mode}, dropout {cond.dropout}, final loss {loss:.4g}")
        return Fitted({"state_dict": {k: v.cpu() for k, v in denoiser.state_dict().items()}, "config": config,
                       "schedule": schedule, "latent_mean": latent_mean, "latent_std": latent_std},
                      "task-conditioned latent diffusion", log_y=True)

    def load_sampler(self, representation: dict, prior: dict, ctx: Context) -> Sampler:
        from pdiff.generative.ldm import latent_model

        if "code_bits" in prior["config"]:  # fitted with a condition (the task stages)
            return ConditionalLatentSampler(representation, prior, ctx)
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

    def rows(self, n: int, cond=None, *, rng: torch.Generator, guidance: float = 1.0) -> Iterator[torch.Tensor]:
        from pdiff.generative.tokens import TASK_CODE, sample_vectors_tokens

        cfg = self.cfg
        if self.model.code != TASK_CODE:
            cond = None  # fitted without a condition, or with it ignored (tasks_ldm.cond: none)
        elif cond is None or len(cond) != n:
            raise PdiffError(f"this tokens prior was fitted with task codes: sample({n}, cond=...) needs one code "
                             f"per vector, got {'none' if cond is None else len(cond)}.")
        yield from sample_vectors_tokens(self.model, self.diffusion, self.data, n, cfg.sample_chunk, rng, self.device,
                                         cfg.sampler, cfg.steps, clip=self.clip, cond=cond, guidance=guidance)

    def sample(self, n: int, cond=None, *, rng: torch.Generator, guidance: float = 1.0) -> torch.Tensor:
        return torch.stack(list(self.rows(n, cond, rng=rng, guidance=guidance)))


class Tokens(Generator):
    """a DDPM over fixed-size tokens of the parameter vector (the tokens group), docs/tokens.md; conditional: with
    ``ctx.condition`` each sample's code is its task code (code ``task``, in place of tokens.train_ldm.code)"""
    name = "tokens"
    conditional = True

    def fit_representation(self, ctx: Context) -> Fitted:
        from pdiff.core.artifacts import numels
        from pdiff.generative import tokens as tk

        cfg = ctx.settings.train_ae
        rows, names, shapes = tk.open_rows(ctx.snapshots, ctx.snapshots_stage)
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

        cfg, cond = ctx.settings.train_ldm, ctx.condition
        layout, mean, std = tk.tokenizer_from_state(ctx.representation)
        rows, _, _ = tk.open_rows(ctx.snapshots, ctx.snapshots_stage)
        schedule = schedule_settings(cfg)
        diffusion = linear_schedule(**schedule)
        code, bits, codes, dropout = cfg.code, 0, None, 0.0
        if cond is not None:  # the task stages: the sample code is the task code (mode none: no code at all)
            if cond.mode not in ("add", "none"):
                raise PdiffError(f"params: `tasks_ldm.cond` = {cond.mode!r} is not a mode of `generator: tokens`, "
                                 "whose task code is an embedding added to every token's condition; use add, or none "
                                 "(the code ignored).")
            code = tk.TASK_CODE if cond.mode == "add" else "none"
            if cond.mode == "add":
                bits, codes, dropout = cond.codes.shape[1], cond.codes, cond.dropout
        model = tk.TokenGenerator(layout, cfg.width, cfg.depth, cfg.sequence, code, bits)
        loss = tk.train_tokens(model, diffusion, tk.token_data(layout, rows, mean, std, codes, dropout), cfg,
                               ctx.device, ctx.gen, ctx.tracker)
        print(f"tokens: {layout.num_tokens} tokens x {rows.shape[0]} snapshots, sequence {cfg.sequence}, "
              f"code {code}{f' (dropout {dropout})' if codes is not None else ''}, final loss {loss:.4g}")
        return Fitted(tk.save_state(model, schedule), "token diffusion (noise-prediction MSE)", log_y=True)

    def load_sampler(self, representation: dict, prior: dict, ctx: Context) -> Sampler:
        return TokenSampler(representation, prior, ctx)

    def report_note(self) -> str:
        return ""  # report.md's own text describes it as "the generator"
