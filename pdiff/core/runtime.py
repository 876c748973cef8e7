"""Seeding, devices and threads: one seed in params.yaml drives every random choice."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

# Offsets so that each stage draws from its own stream of the one seed.
STAGE_OFFSETS = {"prepare": 0, "train": 1, "collect": 2, "train_ae": 3, "train_ldm": 4, "generate": 5,
                 "evaluate": 6, "analyze": 7,
                 "tasks_collect": 9, "tasks_ae": 10, "tasks_ldm": 11, "tasks_evaluate": 12}


def seed_everything(seed: int, stage: str | None = None) -> torch.Generator:
    """Seed Python, NumPy and torch from ``seed`` (shifted per stage) and return a torch.Generator."""
    s = int(seed) * 1000 + STAGE_OFFSETS.get(stage or "", 0)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    gen = torch.Generator()
    gen.manual_seed(s)
    return gen


def setup_torch(threads: int, kernels: str = "native") -> None:
    """Fix CPU threads so results and timings are reproducible; prefer deterministic kernels; apply the CPU
    kernel setting ``kernels`` (portable | native, pdiff/core/kernels.py)."""
    from pdiff.core.kernels import apply_torch

    apply_torch(kernels)
    torch.set_num_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    if name != "cpu":  # PDIFF_GPUS set (one GPU per queued experiment): take a free GPU before CUDA starts
        from pdiff.core.gpus import pin_from_env

        pin_from_env()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from pdiff import PdiffError
        raise PdiffError("params: `device` = 'cuda' but no CUDA device is available; use 'auto' or 'cpu'.")
    return torch.device(name)
