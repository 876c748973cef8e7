"""The tokenized generator (``generator: tokens``): a DDPM over fixed-size tokens of the parameter vector, whose
training and sampling memory is set by the token batch, not by D (after RPG, Wang et al. 2025).

- `TokenLayout`: each generated tensor is flattened and cut into tokens of ``size`` values; a tensor's last
  token is padded and a mask [T, size] marks the real values. The real positions of all tokens, in order, are
  exactly the flat vector, so tokenizing and detokenizing are one masked scatter/gather.
- Normalization (`fit_normalizer`): the modes of the conv AE's `Normalizer`, fitted in one streaming pass over
  the rows of a (memory-mapped) [K, D] store.
- `position_embedding`: sinusoidal embedding of (tensor index, token index in the tensor).
- `SequenceModel`: turns the position embeddings of the whole token sequence into one condition (prototype)
  per token: ``none`` (a per-token MLP, tokens independent), ``gru`` (recurrent over the sequence, as RPG) or
  ``attention`` (one transformer layer). It sees positions only, so prototypes are the same for every sample.
- Sample code (``code``): what all tokens of one sample share. ``none``: nothing, so tokens are independent
  given their position and a sample mixes tokens of different snapshots. ``step``: the snapshot's position
  s = k / (K - 1) in the collect epoch, embedded and added to every token's prototype in training; sampling
  draws one s ~ U[0, 1] per sample, so all its tokens come from one point of the trajectory. ``task`` (set by
  the task stages, not a params value): the sample's task code (C bits, as 2c - 1) through an MLP, added the
  same way; with condition dropout p a training token's code is replaced by a learned "no code" embedding with
  probability p, and sampling takes one code per sample and a classifier-free guidance scale w
  (eps = eps_u + w (eps_c - eps_u)).
- `TokenDenoiser`: one residual MLP shared by all tokens, predicting the DDPM noise of a token from the noisy
  token, the timestep and its prototype. Padded inputs are zeroed and padded outputs are left out of the
  loss, so padding never reaches the loss.
- `train_tokens` draws ``batch`` random (snapshot, token) pairs per step from the store; `sample_tokens`
  denoises ``chunk`` tokens at a time with noise drawn per block of 64 token rows from generators seeded by
  the block's index, so the result does not depend on the chunk size.

Raw normalized tokens are diffused (no per-token autoencoder): one model and one training stage fewer, no
reconstruction error, and the token batch already bounds memory. `generative/` imports neither data nor nets.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pdiff.core.config import TOKEN_CODES as CODES
from pdiff.core.config import TOKEN_SEQUENCES as SEQUENCES
from pdiff.generative.denoiser import timestep_embedding
from pdiff.generative.diffusion import GaussianDiffusion, _gather

NOISE_BLOCK = 64  # token rows per noise generator in sampling: chunks are multiples of this


class TokenLayout:
    """Where every token of a flat [D] vector comes from: ``tensor[T]``, ``index[T]`` (token number inside its
    tensor), ``start[T]`` and ``length[T]`` (its slice of the flat vector) and ``mask`` [T, size] (bool)."""

    def __init__(self, sizes: list[int], size: int):
        self.size, self.sizes = int(size), [int(n) for n in sizes]
        counts = [max(1, math.ceil(n / self.size)) for n in self.sizes]
        self.tensor = np.repeat(np.arange(len(self.sizes)), counts)
        self.index = np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.start = offsets[self.tensor] + self.index * self.size
        ends = (offsets + np.asarray(self.sizes))[self.tensor]
        self.length = np.minimum(self.size, ends - self.start)
        self.mask = torch.arange(self.size)[None, :] < torch.from_numpy(self.length)[:, None]
        self.dim = int(sum(self.sizes))

    @property
    def num_tokens(self) -> int:
        return len(self.start)

    def tokenize(self, vectors: torch.Tensor, pad: float = 0.0) -> torch.Tensor:
        """[B, D] -> [B, T, size], padded positions set to ``pad``."""
        out = torch.full((len(vectors), self.num_tokens * self.size), pad, dtype=vectors.dtype)
        out[:, self.mask.flatten()] = vectors
        return out.reshape(len(vectors), self.num_tokens, self.size)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T, size] -> [B, D] (padding dropped)."""
        return tokens.reshape(len(tokens), -1)[:, self.mask.flatten()]

    def gather(self, rows, k: np.ndarray, t: np.ndarray) -> torch.Tensor:
        """Tokens [n, size] (padding 0) of rows ``k`` at token positions ``t`` of a [K, D] array-like (a numpy
        memmap is read only where the tokens lie)."""
        out = np.zeros((len(k), self.size), np.float32)
        for i, (ki, ti) in enumerate(zip(k.tolist(), t.tolist(), strict=True)):
            a, n = int(self.start[ti]), int(self.length[ti])
            out[i, :n] = rows[ki, a:a + n]
        return torch.from_numpy(out)


@torch.no_grad()
def fit_normalizer(rows, sizes: list[int], mode: str, block: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [D], std [D]) of a [K, D] array-like in one streaming pass of ``block`` rows at a time (default: as
    many as hold about 2^22 values, at least one), with the modes of `pdiff.generative.autoencoder.Normalizer`
    (per-value mean; std per value, per tensor or global; none = identity). Float64 sums; stds floored at 1e-8."""
    k, d = rows.shape
    if mode == "none":
        return torch.zeros(d), torch.ones(d)
    block = block or max(1, 2 ** 22 // max(d, 1))
    s1, s2 = np.zeros(d), np.zeros(d)
    for a in range(0, k, block):
        chunk = np.asarray(rows[a:a + block], dtype=np.float64)
        s1 += chunk.sum(0)
        s2 += (chunk * chunk).sum(0)
    mean = s1 / k
    var = np.maximum(s2 / k - mean * mean, 0.0)
    if mode == "per_tensor":
        bounds = np.cumsum([0, *sizes])
        var = np.concatenate([np.full(n, var[a:a + n].mean()) for a, n in zip(bounds[:-1], sizes, strict=True)])
    elif mode == "global":
        var = np.full(d, var.mean())
    elif mode != "per_param":
        raise ValueError(f"unknown normalization {mode!r}")
    return torch.from_numpy(mean).float(), torch.from_numpy(np.sqrt(var)).float().clamp_min(1e-8)


def position_embedding(tensor: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """[T, dim]: half a sinusoidal embedding of the tensor number, half of the token number in its tensor."""
    return torch.cat([timestep_embedding(tensor, dim // 2), timestep_embedding(index, dim - dim // 2)], dim=1)


def tensor_embedding(sizes: list[int], dim: int) -> torch.Tensor:
    """[L, dim]: what the `layers` sequence model reads of each of the L tensors: half a sinusoidal embedding of
    its number, half of its size (log2 of its values, scaled to the timestep range)."""
    number = torch.arange(len(sizes), dtype=torch.float32)
    size = torch.log2(torch.tensor(sizes, dtype=torch.float32).clamp_min(1)) * 40.0  # 2^25 values -> 1,000
    return torch.cat([timestep_embedding(number, dim // 2), timestep_embedding(size, dim - dim // 2)], dim=1)


class SequenceModel(nn.Module):
    """Position embeddings [T, width] -> one prototype [T, width] per token.

    ``none``: each token from its own position; ``gru`` / ``attention``: over the whole token sequence, so a step
    costs O(T) = O(D / token size); ``layers`` / ``tensors``: a model over the L tensors (`tensor_embedding`: their
    number and size) whose output for a token's tensor is added to the token's own. ``layers`` runs a GRU over them,
    L steps one after another, so a step costs O(L): the same at any D for one architecture, more for a network
    of more tensors. ``tensors`` runs one transformer layer over all L at once (memory L², a few thousand values):
    a step costs about the same whatever D and L."""

    def __init__(self, kind: str, width: int):
        super().__init__()
        self.kind = kind
        self.inp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        if kind in ("gru", "layers"):
            self.seq = nn.GRU(width, width, num_layers=1, batch_first=True)
        elif kind in ("attention", "tensors"):
            self.seq = nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=2 * width, dropout=0.0,
                                                  batch_first=True, norm_first=True)
        elif kind != "none":
            raise ValueError(f"unknown sequence model {kind!r}; use {', '.join(SEQUENCES)}")
        if self.over_tensors:
            self.layer_inp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    @property
    def whole_sequence(self) -> bool:
        """False when a token's prototype needs its own position only, or that and its tensor's state (then only
        the tokens in use run)."""
        return self.kind in ("gru", "attention")

    @property
    def over_tensors(self) -> bool:
        """True when the model reads one row per tensor (`tensor_embedding`) rather than the tokens."""
        return self.kind in ("layers", "tensors")

    def tensor_states(self, tensors: torch.Tensor) -> torch.Tensor:
        """[L, width]: what ``layers`` / ``tensors`` add to the tokens of each tensor, from ``tensors`` [L, width]."""
        out = self.seq(self.layer_inp(tensors)[None])
        return (out[0] if self.kind == "layers" else out)[0]

    def forward(self, pos: torch.Tensor, tensors: torch.Tensor | None = None,
                tensor: torch.Tensor | None = None) -> torch.Tensor:
        """``pos`` [n, width]; for ``layers`` and ``tensors`` also ``tensors`` [L, width] (`tensor_embedding`) and
        ``tensor`` [n], each token's tensor number."""
        h = self.inp(pos)
        if self.kind == "gru":
            h = h + self.seq(h[None])[0][0]
        elif self.kind == "attention":
            h = self.seq(h[None])[0]
        elif self.over_tensors:
            h = h + self.tensor_states(tensors)[tensor]
        return h


class TokenDenoiser(nn.Module):
    """eps_theta(x_t [n, size], t [n], prototype [n, width]) -> [n, size]: a residual MLP, the condition
    (timestep embedding + prototype) added inside every block."""

    def __init__(self, size: int, width: int, depth: int):
        super().__init__()
        self.width = width
        self.inp = nn.Linear(size, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList(nn.ModuleDict({"norm": nn.LayerNorm(width), "cond": nn.Linear(width, width),
                                                   "fc1": nn.Linear(width, 2 * width),
                                                   "fc2": nn.Linear(2 * width, width)}) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, size)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, proto: torch.Tensor) -> torch.Tensor:
        cond = self.time(timestep_embedding(t, self.width)) + proto
        h = self.inp(x)
        for b in self.blocks:
            h = h + b["fc2"](F.silu(b["fc1"](b["norm"](h) + b["cond"](F.silu(cond)))))
        return self.out(F.silu(self.out_norm(h)))


TASK_CODE = "task"  # the task stages' sample code (CODES are the params values, tokens.train_ldm.code)
CODE_SCALE = 1000.0  # s in [0, 1] is embedded as timestep s * CODE_SCALE (the diffusion timesteps' range)


class TokenGenerator(nn.Module):
    """The sequence model, the sample code's embedding (``code``: none | step) and the per-token denoiser of one
    `TokenLayout`."""

    def __init__(self, layout: TokenLayout, width: int = 256, depth: int = 3, sequence: str = "gru",
                 code: str = "none", code_bits: int = 0):
        super().__init__()
        if code not in (*CODES, TASK_CODE):
            raise ValueError(f"unknown sample code {code!r}; use none or step")
        if (code == TASK_CODE) != (code_bits > 0):
            raise ValueError("code task takes the number of code bits (code_bits > 0), and only it does")
        self.layout, self.width, self.code, self.code_bits = layout, width, code, code_bits
        self.sequence = SequenceModel(sequence, width)
        self.denoiser = TokenDenoiser(layout.size, width, depth)
        if code == "step":
            self.code_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        elif code == TASK_CODE:
            self.code_mlp = nn.Sequential(nn.Linear(code_bits, width), nn.SiLU(), nn.Linear(width, width))
            self.null = nn.Parameter(torch.zeros(width))

    def config(self) -> dict:
        config = {"width": self.width, "depth": len(self.denoiser.blocks), "sequence": self.sequence.kind,
                  "code": self.code}
        return config | ({"code_bits": self.code_bits} if self.code == TASK_CODE else {})

    def condition(self, proto: torch.Tensor, codes: torch.Tensor | None,
                  keep: torch.Tensor | None = None) -> torch.Tensor:
        """Prototypes [n, width] plus the embedding of each token's sample code: s [n] (code ``step``), or task
        code bits [n, C] (code ``task``; rows with ``keep`` False, or all rows when ``codes`` is None, get the
        "no code" embedding)."""
        if self.code == "none":
            return proto
        if self.code == TASK_CODE:
            if codes is None:
                return proto + self.null
            emb = self.code_mlp(2.0 * codes.to(proto.device, proto.dtype) - 1.0)
            if keep is not None:
                emb = torch.where(keep.to(proto.device)[:, None], emb, self.null[None].expand_as(emb))
            return proto + emb
        return proto + self.code_mlp(timestep_embedding(codes.to(proto.device) * CODE_SCALE, self.width))

    def prototypes(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Prototypes [n, width] of token positions ``tokens`` (all T when None)."""
        device = self.denoiser.out.weight.device
        ids = torch.arange(self.layout.num_tokens) if tokens is None or self.sequence.whole_sequence else tokens
        tensor = torch.from_numpy(self.layout.tensor)[ids]
        pos = position_embedding(tensor, torch.from_numpy(self.layout.index)[ids], self.width).to(device)
        if self.sequence.over_tensors:
            tensors = tensor_embedding(self.layout.sizes, self.width).to(device)
            return self.sequence(pos, tensors, tensor.to(device))
        proto = self.sequence(pos)
        return proto if tokens is None or not self.sequence.whole_sequence else proto[tokens.to(device)]

    def loss(self, diffusion: GaussianDiffusion, x0: torch.Tensor, tokens: torch.Tensor,
             gen: torch.Generator | None = None, codes: torch.Tensor | None = None,
             keep: torch.Tensor | None = None) -> torch.Tensor:
        """DDPM noise-prediction MSE over the real (unpadded) values of tokens ``x0`` [n, size] at positions
        ``tokens`` [n] (sample codes ``codes`` [n] with code ``step``, [n, C] with code ``task``, where ``keep``
        [n] False drops a code): padded inputs are zeroed and padded outputs weigh nothing."""
        device = x0.device
        mask = self.layout.mask[tokens].to(device, x0.dtype)
        t = torch.randint(diffusion.num_timesteps, (len(x0),), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        xt = diffusion.q_sample(x0 * mask, t, noise) * mask
        err = (self.denoiser(xt, t, self.condition(self.prototypes(tokens), codes, keep)) - noise) ** 2
        return (err * mask).sum() / mask.sum().clamp_min(1)


@dataclass
class TokenData:
    """What `train_tokens` draws from: rows (a [K, D] tensor or memmap), the normalizer tokenized [T, size] and,
    for code ``task``, each row's task code ``codes`` [K, C] and the condition dropout."""
    rows: object
    mean: torch.Tensor
    std: torch.Tensor
    codes: torch.Tensor | None = None
    dropout: float = 0.0


def token_batch(layout: TokenLayout, data: TokenData, n: int,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random (snapshot, token) pairs: normalized tokens [n, size] (padding 0), their positions [n] and
    their snapshots' codes: s = k / (K - 1) [n] (0 when K = 1), or their task codes [n, C] when ``data.codes``
    is set."""
    num = data.rows.shape[0]
    k = torch.randint(num, (n,), generator=gen)
    t = torch.randint(layout.num_tokens, (n,), generator=gen)
    x = layout.gather(data.rows, k.numpy(), t.numpy())
    codes = k.float() / max(num - 1, 1) if data.codes is None else data.codes[k]
    return (x - data.mean[t]) / data.std[t] * layout.mask[t], t, codes


def token_data(layout: TokenLayout, rows, mean: torch.Tensor, std: torch.Tensor, codes: torch.Tensor | None = None,
               dropout: float = 0.0) -> TokenData:
    """`TokenData` of ``rows`` with the normalizer's mean / std [D] tokenized (std padded with 1); ``codes``
    [K, C]: the rows' task codes (code ``task``), each dropped with probability ``dropout`` in training."""
    return TokenData(rows, layout.tokenize(mean[None])[0], layout.tokenize(std[None], pad=1.0)[0],
                     None if codes is None else codes.float(), dropout)


def train_tokens(model: TokenGenerator, diffusion: GaussianDiffusion, data: TokenData, cfg, device,
                 gen: torch.Generator, tracker, log_every: int = 25) -> float:
    """Fit ``model`` for ``cfg.steps`` AdamW steps on ``cfg.batch`` random tokens each; returns the last loss."""
    from pdiff.generative.fitting import fit

    model.to(device)

    def batch_loss() -> torch.Tensor:
        x0, t, codes = token_batch(model.layout, data, cfg.batch, gen)
        keep = None
        if model.code == TASK_CODE:  # condition dropout, per token (the default codes draw nothing more)
            keep = torch.rand(len(t), generator=gen) >= data.dropout
        return model.loss(diffusion, x0.to(device), t, gen, codes, keep)

    return fit(model, batch_loss, cfg, tracker, "train_tokens", log_every)


class _BlockNoise:
    """Standard normal noise for token rows [a, b), a a multiple of NOISE_BLOCK: each block of NOISE_BLOCK rows
    has its own generator, seeded from ``base`` and the block's index, so a row's noise does not depend on
    which chunk it is sampled in."""

    def __init__(self, base: int, a: int, b: int, size: int):
        self.size = size
        self.parts = []
        for start in range(a, b, NOISE_BLOCK):
            g = torch.Generator().manual_seed((base + 1_000_003 * (start // NOISE_BLOCK)) % 2 ** 63)
            self.parts.append((g, min(NOISE_BLOCK, b - start)))

    def __call__(self) -> torch.Tensor:
        return torch.cat([torch.randn(n, self.size, generator=g) for g, n in self.parts])


@torch.no_grad()
def sample_tokens(model: TokenGenerator, diffusion: GaussianDiffusion, num_rows: int, chunk: int,
                  gen: torch.Generator, device="cpu", sampler: str = "ddpm", steps: int = 50,
                  progress: bool = True, clip: float | None = None, cond: torch.Tensor | None = None,
                  guidance: float = 1.0) -> Iterator[torch.Tensor]:
    """Yield normalized tokens for token rows 0 .. ``num_rows`` - 1 in order, ``chunk`` rows at a time (row r is
    token r mod T of sample r // T). ``sampler`` ddpm (all timesteps, ancestral) or ddim (``steps``, eta 0).
    One seed is drawn from ``gen``; the result is the same for every chunk size (up to float rounding).
    With code ``step``, sample i's code s_i ~ U[0, 1] comes from a generator seeded by that seed, shared by all
    of its tokens.
    ``clip``: each step's x0 estimate is clamped to [-clip, clip] (normalized units), as DDPM implementations
    clip denoised images: an under-trained denoiser otherwise lets x grow by up to prod 1/sqrt(alpha_t).
    With code ``task``, ``cond`` [num_rows / T, C] holds each sample's task code and ``guidance`` w mixes the
    conditional and the "no code" predictions, eps = eps_u + w (eps_c - eps_u) (w = 1: the conditional one)."""
    if (model.code == TASK_CODE) != (cond is not None):
        raise ValueError("a tokens prior fitted with task codes samples with one code per sample (cond), and "
                         "only such a prior takes cond")
    model.to(device).eval()
    layout, size = model.layout, model.layout.size
    chunk = max(NOISE_BLOCK, math.ceil(chunk / NOISE_BLOCK) * NOISE_BLOCK)
    base = int(torch.randint(2 ** 62, (1,), generator=gen))
    protos = model.prototypes()
    codes = None
    if model.code == "step":
        codes = torch.rand(math.ceil(num_rows / layout.num_tokens), generator=torch.Generator().manual_seed(
            (base + 7_777_777) % 2 ** 63))
    mask_all = layout.mask.to(device, torch.float32)
    if sampler == "ddim":
        ts = diffusion.ddim_timesteps(steps)
    else:
        ts = list(range(diffusion.num_timesteps - 1, -1, -1))
    for a in tqdm(range(0, num_rows, chunk), desc="sample tokens", disable=not progress, mininterval=1.0):
        b = min(num_rows, a + chunk)
        tok = torch.arange(a, b) % layout.num_tokens
        mask, proto = mask_all[tok], protos[tok.to(device)]
        uncond = None
        if codes is not None:
            proto = model.condition(proto, codes[torch.arange(a, b) // layout.num_tokens])
        elif cond is not None:
            base_proto = proto
            proto = model.condition(base_proto, cond[torch.arange(a, b) // layout.num_tokens])
            if guidance != 1.0:
                uncond = model.condition(base_proto, None)
        noise = _BlockNoise(base, a, b, size)
        x = noise().to(device) * mask
        for j, i in enumerate(ts):
            t = torch.full((b - a,), i, dtype=torch.long, device=device)
            eps = model.denoiser(x, t, proto)
            if uncond is not None:
                eps_u = model.denoiser(x, t, uncond)
                eps = eps_u + guidance * (eps - eps_u)
            x0 = diffusion.predict_x0(x, t, eps)
            if clip is not None:
                x0 = x0.clamp(-clip, clip)
                eps = (x - _gather(diffusion.sqrt_alphas_cumprod, t, x) * x0) / _gather(
                    diffusion.sqrt_one_minus_alphas_cumprod, t, x)
            if sampler == "ddim":
                abar = _gather(diffusion.alphas_cumprod, t, x)
                nxt = ts[j + 1] if j + 1 < len(ts) else None
                abar_prev = (_gather(diffusion.alphas_cumprod, torch.full_like(t, nxt), x) if nxt is not None
                             else torch.ones_like(abar))
                x = abar_prev.sqrt() * x0 + (1 - abar_prev).clamp_min(0).sqrt() * eps
            else:
                mean = _gather(diffusion.posterior_mean_coef1, t, x) * x0 + _gather(diffusion.posterior_mean_coef2,
                                                                                    t, x) * x
                x = mean + _gather(diffusion.posterior_variance, t, x).sqrt() * noise().to(device) if i > 0 else mean
            x = x * mask
        yield x.cpu()


def sample_vectors_tokens(model: TokenGenerator, diffusion: GaussianDiffusion, data: TokenData, num: int,
                          chunk: int, gen: torch.Generator, device="cpu", sampler: str = "ddpm",
                          steps: int = 50, progress: bool = True, clip: float | None = None,
                          cond: torch.Tensor | None = None, guidance: float = 1.0) -> Iterator[torch.Tensor]:
    """Yield ``num`` de-normalized parameter vectors [D], one at a time, sampled ``chunk`` tokens at a time
    (memory: one chunk and one vector, whatever ``num`` is); code ``task``: vector i for code ``cond[i]``."""
    layout = model.layout
    pending, have = [], 0
    for x in sample_tokens(model, diffusion, num * layout.num_tokens, chunk, gen, device, sampler, steps, progress,
                           clip, cond, guidance):
        pending.append(x)
        have += len(x)
        while have >= layout.num_tokens:
            flat = torch.cat(pending)
            one, rest = flat[:layout.num_tokens], flat[layout.num_tokens:]
            pending, have = [rest], len(rest)
            yield layout.detokenize((one * data.std + data.mean)[None])[0]


def save_state(model: TokenGenerator, schedule: dict) -> dict:
    lay = model.layout
    return {"kind": "tokens", "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "config": model.config(), "token_size": lay.size, "sizes": lay.sizes, "schedule": schedule}


def load_state(ckpt: dict) -> tuple[TokenGenerator, GaussianDiffusion]:
    from pdiff.generative.diffusion import linear_schedule

    model = TokenGenerator(TokenLayout(ckpt["sizes"], ckpt["token_size"]), **ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), linear_schedule(**ckpt["schedule"])


# --------------------------------------------------------------------------------------------- stage helpers
def open_rows(path: str, produced_by: str) -> tuple[object, list[str], list[list[int]]]:
    """(rows [K, D], names, shapes) of a vector file: a read-only numpy memmap for a memory-mapped store
    (`pdiff.core.snapstore`), the tensor read whole for a torch one."""
    from pdiff.core import snapstore

    if snapstore.is_vector_store(path):
        store = snapstore.open_vectors(path, produced_by)
        return store.rows, store.names, store.shapes
    obj = snapstore.load_vectors(path, produced_by)
    return obj["params"].float().numpy(), obj["names"], obj["shapes"]


def tokenizer_state(names, shapes, token_size: int, normalize: str, mean, std) -> dict:
    """What `train_ae` writes to models/ae.pt with ``generator: tokens``: the layout and the normalizer."""
    return {"kind": "tokens", "names": list(names), "shapes": [list(s) for s in shapes], "token_size": token_size,
            "normalize": normalize, "mean": mean, "std": std}


def tokenizer_from_state(obj: dict) -> tuple[TokenLayout, torch.Tensor, torch.Tensor]:
    """(layout, mean [D], std [D]) of a `tokenizer_state` dict."""
    from pdiff.core.artifacts import numels

    return TokenLayout(numels(obj["shapes"]), obj["token_size"]), obj["mean"], obj["std"]
