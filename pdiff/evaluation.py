"""Accuracy of many parameter vectors on one base model, plus summary statistics."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pdiff.selection import flatten, load_vector


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device, batch_size: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def evaluate_vectors(model: nn.Module, names: list[str], vectors: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                     device, batch_size: int = 1000, desc: str = "evaluate") -> torch.Tensor:
    """Per-sample correctness [M, n] (bool) of each of the M vectors loaded into ``model``.
    Non-finite vectors are not run; their rows are all False (see `summarize`'s ``failed``).
    The model's own values of ``names`` are restored afterwards."""
    original = flatten(model, names)
    correct = torch.zeros(len(vectors), len(y), dtype=torch.bool)
    try:
        for i, vec in enumerate(tqdm(vectors, desc=desc, unit="model", mininterval=1.0)):
            if not torch.isfinite(vec).all():
                continue
            load_vector(model, names, vec)
            correct[i] = predict(model, x, device, batch_size) == y
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
