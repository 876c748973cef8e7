"""Minibatches of training and collection: the train-time augmentation that the prepared dataset asks for,
and the GPU path (bf16 autocast, channels_last, device-resident data).

Prepared datasets are tensors in memory (decoded once by `prepare`), so there is no per-image decoding
to parallelise: instead of DataLoader workers, the whole training split is copied once to the GPU
(from pinned memory, without blocking) and minibatches are indexed and augmented there. CIFAR-10 as
float32 is 0.6 GB of GPU memory. On CPU nothing moves and fp32 is used, so CPU results are unchanged.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


def crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int | None = None) -> torch.Tensor:
    """Random crop after zero padding (``pad`` = size/8: 4 pixels for 32x32) and random horizontal flip,
    per image, on a batch [B, C, H, W] of standardized images (so the padding is the mean colour). The
    random draws come from ``gen`` (CPU), the work happens on ``x``'s device."""
    b, _, h, w = x.shape
    pad = max(1, h // 8) if pad is None else pad
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = oy[:, None] + torch.arange(h, device=x.device)[None]                      # [B, H]
    cols = ox[:, None] + torch.arange(w, device=x.device)[None]                      # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_b = torch.arange(b, device=x.device)[:, None, None, None]
    idx_c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return xp[idx_b, idx_c, rows[:, None, :, None], cols[:, None, None, :]]


AUGMENTATIONS = {"none": None, "crop_flip": crop_flip}


def augmenter(kind: str | None):
    """The batch augmentation function for ``kind`` ('none'/None -> None)."""
    return AUGMENTATIONS.get(kind or "none")


def use_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast? ``auto``: on CUDA devices that support bf16; ``bf16``: wherever it is supported."""
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return precision == "bf16"  # CPU autocast supports bf16 too, but only when asked for explicitly


def autocast(device: torch.device, precision: str):
    if not use_bf16(device, precision):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def is_convnet(model: nn.Module) -> bool:
    """Convolutional (channels_last helps) and not a transformer (where it does nothing useful)."""
    mods = list(model.modules())
    return any(isinstance(m, nn.Conv2d) for m in mods) and not any(isinstance(m, nn.MultiheadAttention)
                                                                   for m in mods)


def prepare_model(model: nn.Module, device: torch.device, precision: str) -> tuple[nn.Module, bool]:
    """channels_last for conv nets on CUDA with bf16 (tensor-core friendly); returns (model, channels_last)."""
    cl = device.type == "cuda" and use_bf16(device, precision) and is_convnet(model)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    return model, cl


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A whole split onto ``device`` once (pinned + non-blocking on CUDA); CPU tensors stay where they are."""
    if device.type != "cuda":
        return x
    return x.pin_memory().to(device, non_blocking=True)


class BatchLoss:
    """Cross-entropy of minibatch ``idx`` of ``(x, y)`` with the dataset's augmentation, autocast and
    memory format applied. ``x``/``y`` are moved to the device once; ``gen`` draws the augmentation."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, gen: torch.Generator,
                 augment: str | None = None, precision: str = "fp32"):
        self.model, self.device, self.gen, self.precision = model, torch.device(device), gen, precision
        self.x, self.y = to_device(x, self.device), to_device(y, self.device)
        self.augment = augmenter(augment)
        self.model, self.channels_last = prepare_model(model, self.device, precision)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(self.x.device)
        xb, yb = self.x[idx].to(self.device, non_blocking=True), self.y[idx].to(self.device, non_blocking=True)
        if self.augment is not None:
            xb = self.augment(xb, self.gen)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            return F.cross_entropy(self.model(xb), yb)
