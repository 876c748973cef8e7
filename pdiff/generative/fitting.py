"""The optimisation loop shared by the autoencoder and the latent diffusion model: AdamW with a cosine
decay to zero over ``cfg.steps``, a NaN/Inf check before every update, logging every ``log_every`` steps, and
optionally an exponential moving average (EMA) of the weights."""
from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from pdiff.core.tracking import Tracker, check_finite


def ema_warmup_end(decay: float) -> int:
    """The first update n at which the warm-up no longer caps ``decay``: the least n with
    (1 + n)/(10 + n) >= decay, i.e. n >= (10 decay - 1)/(1 - decay) (8,990 for 0.999, 89,990 for 0.9999)."""
    n = max(0, math.ceil((10 * decay - 1) / (1 - decay)) - 2)  # the exact n, less a margin for rounding
    while (1 + n) / (10 + n) < decay:
        n += 1
    return n


class EMA:
    """An exponential moving average of a module's weights: after update number n,
    ``ema = d * ema + (1 - d) * weights``. With ``warmup`` (the default) ``d = min(decay, (1 + n)/(10 + n))``:
    early on, when a decay of 0.9999 would still mostly hold the initial weights, the average follows the weights
    closely, and the configured decay takes effect only from update `ema_warmup_end`(decay) on (8,990 for 0.999).
    Without ``warmup``, ``d = decay`` from the first update. Buffers are copied, not averaged. ``module()`` is a
    copy of the module holding the averaged weights."""

    def __init__(self, module: nn.Module, decay: float, warmup: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.averaged = copy.deepcopy(module).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay used by the latest update (by the next one, before any update)."""
        n = max(self.updates, 1)
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        for avg, cur in zip(self.averaged.parameters(), module.parameters(), strict=True):
            avg.lerp_(cur.detach(), 1.0 - d)
        for avg, cur in zip(self.averaged.buffers(), module.buffers(), strict=True):
            avg.copy_(cur)

    def module(self) -> nn.Module:
        return self.averaged


def fit(module: nn.Module, batch_loss: Callable[[], torch.Tensor], cfg, tracker: Tracker, what: str,
        log_every: int = 25, ema: EMA | None = None) -> float:
    """Minimise ``batch_loss()`` (a fresh minibatch each call) over ``module``'s parameters for ``cfg.steps``
    steps with AdamW(``cfg.lr``, ``cfg.weight_decay``); returns the last step's loss. With ``ema``, its
    average is updated after every optimizer step."""
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    value = float("nan")
    for step in tqdm(range(1, cfg.steps + 1), desc=what, unit="step", mininterval=1.0):
        loss = batch_loss()
        value = loss.item()
        check_finite(value, step, what)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(module)
        if step % log_every == 0 or step == cfg.steps:
            tracker.log(step, loss=value)
    module.eval()
    return value
