"""The optimisation loop shared by the autoencoder and the latent diffusion model: AdamW with a cosine
decay to zero over ``cfg.steps``, a NaN/Inf check before every update, and logging every ``log_every`` steps."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from pdiff.core.tracking import Tracker, check_finite


def fit(module: nn.Module, batch_loss: Callable[[], torch.Tensor], cfg, tracker: Tracker, what: str,
        log_every: int = 25) -> float:
    """Minimise ``batch_loss()`` (a fresh minibatch each call) over ``module``'s parameters for ``cfg.steps``
    steps with AdamW(``cfg.lr``, ``cfg.weight_decay``); returns the last step's loss."""
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
        if step % log_every == 0 or step == cfg.steps:
            tracker.log(step, loss=value)
    module.eval()
    return value
