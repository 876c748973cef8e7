"""No-learning baselines (after Zeng et al., 2025): each a [n, D] tensor of parameter vectors built from the K
training snapshots alone, with no generator at all. `pdiff.analysis.sets` registers each of them as an evaluated
set; `pdiff.analysis.novelty` evaluates and measures them like the generated models.

- `noise_baseline`: a random snapshot plus Gaussian noise, ``sigma`` times each tensor's own scale;
- `average_baseline`: the mean of min(k, K) randomly chosen snapshots;
- `gaussian_baseline`: every value drawn independently from its per-parameter mean and std over the
  snapshots (not applicable when K = 1: there is no spread to draw from);
- `interpolation_baseline`: a uniformly random point on the segment between two distinct random snapshots
  (not applicable when K = 1), the "simple interpolation" Zeng et al. found generated models to be at best.

The first three draw, in this order, from the one generator the `analyze` stage seeds. A baseline added later
draws from its own generator (`own_stream`), so that adding it leaves every other set's draws, and numbers,
as they were.
"""
from __future__ import annotations

import hashlib

import torch

from pdiff import PdiffError
from pdiff.core.artifacts import numels


def tensor_scales(vectors: torch.Tensor, shapes: list[list[int]]) -> torch.Tensor:
    """[M, D]: for every vector, each value's tensor scale, broadcast over that tensor's values.

    The scale of a tensor is the standard deviation of its values; a tensor with a single value or
    constant values (std 0) uses its root mean square instead, and an all-zero tensor uses 1."""
    scales = _per_tensor_scale(vectors, shapes)
    columns = torch.split(vectors, numels(shapes), dim=1)
    return torch.cat([scale.expand_as(c) for c, scale in zip(columns, scales, strict=True)], dim=1)


def _per_tensor_scale(vectors: torch.Tensor, shapes: list[list[int]]) -> list[torch.Tensor]:
    """[M, 1] per tensor of ``shapes``, in order: each vector's scale of that tensor, as `tensor_scales`
    defines it."""
    sizes = numels(shapes)
    if sum(sizes) != vectors.shape[1]:
        raise PdiffError(f"shapes covering {sum(sizes)} values do not match vectors of width {vectors.shape[1]}.")
    out = []
    for chunk in torch.split(vectors, sizes, dim=1):
        std = chunk.std(dim=1, unbiased=False, keepdim=True)
        rms = chunk.pow(2).mean(dim=1, keepdim=True).sqrt()
        out.append(torch.where(std > 0, std, torch.where(rms > 0, rms, torch.ones_like(rms))))
    return out


def own_stream(gen: torch.Generator, name: str) -> torch.Generator:
    """A new generator for the set ``name``, seeded from ``gen``'s seed and the name (``gen`` itself is neither
    drawn from nor changed): the same seed gives the same draws, and other sets' draws do not depend on it."""
    digest = hashlib.sha256(f"{gen.initial_seed()}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)


def noise_baseline(snapshots: torch.Tensor, shapes: list[list[int]], n: int, sigma: float,
                   gen: torch.Generator) -> torch.Tensor:
    """n vectors: a uniformly chosen snapshot + N(0, (sigma * scale of each tensor)^2) noise."""
    idx = torch.randint(len(snapshots), (n,), generator=gen)
    base = snapshots[idx]
    out = torch.randn(base.shape, generator=gen, dtype=base.dtype)
    # base + (sigma * scale) * noise, one tensor's columns at a time and in place (the same values as the whole
    # [n, D] expression, without its three temporaries of that size)
    for columns, scale in zip(torch.split(out, numels(shapes), dim=1), _per_tensor_scale(base, shapes), strict=True):
        columns.mul_(sigma * scale)
    return out.add_(base)


def average_baseline(snapshots: torch.Tensor, n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """n vectors, each the mean of min(k, K) distinct, randomly chosen snapshots."""
    k = min(int(k), len(snapshots))
    if k < 1:
        raise PdiffError(f"the average baseline needs k >= 1 snapshots, got k = {k}.")
    out = snapshots.new_empty(n, snapshots.shape[1])
    for row in out:  # one mean at a time, written in place (no list of rows and stacked copy)
        row.copy_(snapshots[torch.randperm(len(snapshots), generator=gen)[:k]].mean(dim=0))
    return out


def gaussian_baseline(snapshots: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor | None:
    """n vectors drawn value by value from N(mean, std^2) of that value over the K snapshots (sample std).
    None when K = 1 (no spread to estimate)."""
    if len(snapshots) < 2:
        return None
    mean, std = snapshots.mean(dim=0), snapshots.std(dim=0, unbiased=True)
    # mean + std * noise, in place (the same values, no [n, D] temporaries)
    return torch.randn((n, snapshots.shape[1]), generator=gen, dtype=snapshots.dtype).mul_(std).add_(mean)


def interpolation_pairs(k: int, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, b, t) for n interpolations between K snapshots: a and b [n] two distinct indices, each pair uniform
    over the K (K - 1) ordered pairs, and t [n] uniform in [0, 1)."""
    if k < 2:
        raise PdiffError(f"an interpolation needs two distinct snapshots, got K = {k}.")
    a = torch.randint(k, (n,), generator=gen)
    b = torch.randint(k - 1, (n,), generator=gen)
    b = b + (b >= a).long()  # one of the K - 1 others: never a itself
    t = torch.rand(n, generator=gen, dtype=torch.float64)
    return a, b, t


def interpolation_baseline(snapshots: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor | None:
    """n vectors, each s_a + t (s_b - s_a) for two distinct random snapshots s_a, s_b and t uniform in [0, 1)
    (`interpolation_pairs`), in the snapshots' dtype. None when K = 1 (no second snapshot to interpolate
    towards)."""
    if len(snapshots) < 2:
        return None
    a, b, t = interpolation_pairs(len(snapshots), n, gen)
    return snapshots[a].lerp_(snapshots[b], t.to(snapshots.dtype).unsqueeze(1))  # in place: one [n, D] fewer
