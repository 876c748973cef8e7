"""Does the diffusion model matter? Two reference sets that use a trained decoder but no diffusion model.

- ``decoded_noise``: n latents drawn from a Gaussian fitted to the training snapshots' own latents, decoded.
  ``per_position``: every latent value (channel and position) has its own mean and std over the K latents;
  ``global``: one mean and one std over all latent values, which is the LDM's starting noise x_T (the LDM is
  trained on latents standardized by exactly these two numbers) decoded without a single denoising step.
- ``reconstruction``: the decoding of the K snapshots' own latents, the best a perfect latent generator could
  hand the decoder (the AE's ceiling).

Both cost a decode and an evaluation, no sampling loop. When decoded noise scores as well as the LDM-generated
models, the accuracy of "generated" models comes from the autoencoder, not from diffusion.

The functions take any decoder: a callable from latents ``[B, *latent_shape]`` to parameter vectors ``[B, D]``
(in parameter space, normalization undone), plus the snapshots' latents. `analyze` takes both from the
generator's own decoder (`pdiff.generative.protocol.Decoder`: the conv AE's, or yours) and passes them as a
`DecoderReference` to `pdiff.analysis.sets.make_sets`, which makes both sets (their registry entries, with the
other evaluated sets).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pdiff import PdiffError

FORMS = ("per_position", "global")

Decoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class DecoderReference:
    """What the decoder sets (`pdiff.analysis.sets`) are made from: the decoder, the K snapshots'
    latents, how many noise latents to decode (``num``) and the Gaussian's ``form`` (per_position | global)."""
    decode: Decoder
    latents: torch.Tensor
    num: int = 100
    form: str = "per_position"


def latent_gaussian(latents: torch.Tensor, form: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of a Gaussian fitted to ``latents`` [K, ...], broadcastable to one latent: per latent value
    over the K (``per_position``; sample std, so K >= 2) or one scalar pair over all values (``global``)."""
    if form not in FORMS:
        raise PdiffError(f"baselines.decoded_form is {form!r}; choose one of {', '.join(FORMS)}.")
    z = latents.double()
    if form == "global":
        if z.numel() < 2:
            raise PdiffError("a global latent Gaussian needs at least 2 latent values.")
        return z.mean(), z.std()
    if len(z) < 2:
        raise PdiffError(f"a per-position latent Gaussian needs K >= 2 latents, got K = {len(z)}; use "
                         "baselines.decoded_form: global.")
    return z.mean(dim=0), z.std(dim=0)


@torch.no_grad()
def decode_in_batches(decode: Decoder, latents: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``decode`` over ``latents`` [M, ...] in batches -> [M, D] float32 on the CPU, each batch written into the
    result as it comes (one batch: its output itself), so a whole network's set is never held twice."""
    if len(latents) == 0:
        raise PdiffError("nothing to decode: no latents were given.")
    out = None
    for i in range(0, len(latents), batch_size):
        part = decode(latents[i:i + batch_size]).float().cpu()
        if len(part) == len(latents):
            return part
        if out is None:
            out = torch.empty((len(latents), *part.shape[1:]), dtype=part.dtype)
        out[i:i + len(part)] = part
    return out


def decoded_noise(decode: Decoder, latents: torch.Tensor, n: int, form: str, gen: torch.Generator) -> torch.Tensor:
    """n vectors [n, D]: latents drawn from `latent_gaussian` (``form``) of the snapshots' ``latents``, decoded."""
    if n < 1:
        raise PdiffError(f"baselines.decoded_num must be >= 1, got {n}.")
    mean, std = latent_gaussian(latents, form)
    noise = torch.randn((n, *latents.shape[1:]), generator=gen, dtype=torch.float64)
    z = (mean + std * noise).to(latents.dtype)
    return decode_in_batches(decode, z.to(latents.device))


def reconstructions(decode: Decoder, latents: torch.Tensor) -> torch.Tensor:
    """[K, D]: the decoding of the snapshots' own latents."""
    return decode_in_batches(decode, latents)

