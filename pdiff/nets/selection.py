"""Which parameters are generated, and moving them between a model and a flat vector.

A *selection* is an ordered list of parameter names. ``flatten`` concatenates them into one vector
of length D; ``unflatten`` splits a vector back into named tensors; ``load_vector`` writes a vector
into a model in place, touching nothing else.
"""
from __future__ import annotations

import fnmatch

import torch
from torch import nn

from pdiff import PdiffError
from pdiff.core.artifacts import numels

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


SHOWN_NAMES = 60  # parameter names listed in an error


def _available(model: nn.Module) -> str:
    shapes = [f"{n} {tuple(p.shape)}" for n, p in model.named_parameters()]
    more = f", and {len(shapes) - SHOWN_NAMES} more" if len(shapes) > SHOWN_NAMES else ""
    return ", ".join(shapes[:SHOWN_NAMES]) + more


def _model_label(model: nn.Module) -> str:
    arch = getattr(model, "pdiff_arch", None)  # set by `load_base_model`
    return f"the base model (`model.arch` = {arch!r})" if arch else f"the model ({type(model).__name__})"


def last_norm_params(model: nn.Module, num_layers: int = 2) -> list[str]:
    """Weight and bias of the last ``num_layers`` normalization layers (the paper's default)."""
    norms = [name for name, m in model.named_modules()
             if isinstance(m, NORM_TYPES) and any(True for _ in m.parameters(recurse=False))]
    if not norms:
        raise PdiffError(f"params: `collect.params` = 'auto' needs normalization layers (BatchNorm, GroupNorm, "
                         f"LayerNorm), and {_model_label(model)} has none; list fnmatch patterns over its "
                         f"parameter names instead, e.g. ['fc3.*']. Its parameters are: {_available(model)}.")
    chosen = set(norms[-num_layers:])
    return [n for n, _ in model.named_parameters() if n.rsplit(".", 1)[0] in chosen]


def select(model: nn.Module, patterns: str | list[str]) -> list[str]:
    """Parameter names matching ``patterns`` ('auto' or fnmatch patterns), in the model's order."""
    if patterns == "auto":
        return last_norm_params(model)
    names = [n for n, _ in model.named_parameters()]
    for pat in patterns:
        if not fnmatch.filter(names, pat):
            raise PdiffError(f"params: `collect.params` pattern {pat!r} matches no parameter of "
                             f"{_model_label(model)}; its parameters (name, shape) are: {_available(model)}.")
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def shapes_of(model: nn.Module, names: list[str]) -> list[list[int]]:
    params = dict(model.named_parameters())
    return [list(params[n].shape) for n in names]


def flatten(model: nn.Module, names: list[str]) -> torch.Tensor:
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1).float().cpu() for n in names])


def unflatten(vector: torch.Tensor, names: list[str], shapes: list[list[int]]) -> dict[str, torch.Tensor]:
    sizes = numels(shapes)
    if vector.dim() != 1 or vector.numel() != sum(sizes):
        raise PdiffError(f"a parameter vector of shape {tuple(vector.shape)} does not fit the selection of "
                         f"{len(names)} tensors with {sum(sizes)} values in all.")
    return {n: chunk.reshape(s) for n, chunk, s in zip(names, torch.split(vector, sizes), shapes, strict=True)}


def check_compatible(model: nn.Module, names: list[str], shapes: list[list[int]], source: str) -> None:
    """Refuse vectors whose names or shapes differ from the model's, naming both sides."""
    params = dict(model.named_parameters())
    unknown = [n for n in names if n not in params]
    if unknown:
        raise PdiffError(f"{source}: parameter names {unknown[:5]} are not in the model "
                         f"(model has e.g. {list(params)[:5]}).")
    model_shapes = [list(params[n].shape) for n in names]
    if [list(s) for s in shapes] != model_shapes:
        raise PdiffError(f"{source}: shapes {shapes} do not match the model's {model_shapes} for {names}.")


def check_same_selection(reference: dict, other: dict, source: str) -> None:
    """Refuse a vector file whose selection (names, shapes, length) differs from the reference file's."""
    ref = (list(reference["names"]), [list(s) for s in reference["shapes"]], reference["params"].shape[1])
    got = (list(other["names"]), [list(s) for s in other["shapes"]], other["params"].shape[1])
    if ref != got:
        raise PdiffError(f"{source}: vectors of length {got[2]} over {got[0]} with shapes {got[1]} do not match "
                         f"the snapshots' selection: length {ref[2]} over {ref[0]} with shapes {ref[1]}.")


@torch.no_grad()
def load_vector(model: nn.Module, names: list[str], vector: torch.Tensor) -> None:
    params = dict(model.named_parameters())
    tensors = unflatten(vector, names, [list(params[n].shape) for n in names])
    for n, t in tensors.items():
        params[n].copy_(t.to(params[n].device, params[n].dtype))
