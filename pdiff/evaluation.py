"""Accuracy of many parameter vectors on one base model, plus summary statistics."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pdiff.selection import flatten, load_vector


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device, batch_size: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


def split_at_selection(model: nn.Module, names: list[str]) -> tuple[nn.Module, nn.Module]:
    """(prefix, suffix) of a Sequential model such that no selected parameter lies in the prefix, so the
    prefix's output is the same for every candidate vector. Other models: (Identity, model)."""
    if isinstance(model, nn.Sequential):
        children = list(model.named_children())
        for i, (child, _) in enumerate(children):
            if any(n.startswith(child + ".") for n in names):
                return nn.Sequential(OrderedDict(children[:i])), nn.Sequential(OrderedDict(children[i:]))
    return nn.Identity(), model


@torch.no_grad()
def evaluate_vectors(model: nn.Module, names: list[str], vectors: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                     device, batch_size: int = 1000, desc: str = "evaluate", cache_prefix: bool = True) -> torch.Tensor:
    """Per-sample correctness [M, n] (bool) of each of the M vectors loaded into ``model``.

    With ``cache_prefix`` the layers before the first generated parameter run once per test batch and
    only the rest of the network runs per vector (identical predictions, far less compute when the
    generated layers are late). Non-finite vectors are not run; their rows are all False (see
    `summarize`'s ``failed``). The model's own values of ``names`` are restored afterwards."""
    model.eval()
    prefix, suffix = split_at_selection(model, names) if cache_prefix else (nn.Identity(), model)
    inputs = [prefix(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    original = flatten(model, names)
    correct = torch.zeros(len(vectors), len(y), dtype=torch.bool)
    try:
        for i, vec in enumerate(tqdm(vectors, desc=desc, unit="model", mininterval=1.0)):
            if not torch.isfinite(vec).all():
                continue
            load_vector(model, names, vec)
            correct[i] = torch.cat([suffix(h).argmax(1).cpu() for h in inputs]) == y
    finally:
        load_vector(model, names, original)
    return correct


def summarize(acc: torch.Tensor | np.ndarray, failed: int = 0) -> dict:
    """count, acc_mean/median/max/min/std (percent) over the models that ran; ``failed`` counts vectors
    with NaN/Inf, excluded from the statistics."""
    a = np.asarray(acc, dtype=np.float64)
    stats = {"count": int(a.size), "failed": int(failed)}
    if a.size == 0:
        return stats | {k: None for k in ("acc_mean", "acc_median", "acc_max", "acc_min", "acc_std")}
    return stats | {
        "acc_mean": round(float(a.mean()), 4), "acc_median": round(float(np.median(a)), 4),
        "acc_max": round(float(a.max()), 4), "acc_min": round(float(a.min()), 4),
        "acc_std": round(float(a.std()), 4),
    }


def finite_rows(vectors: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(vectors).all(dim=1)
