"""Training the base model (step 1) and snapshot collection (step 2), with SGD (momentum) or AdamW."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from pdiff import PdiffError
from pdiff.base import distributed
from pdiff.base.batches import BatchLoss
from pdiff.core.tracking import Tracker, check_finite
from pdiff.nets.selection import flatten


def minibatches(n: int, batch_size: int, gen: torch.Generator):
    """Index tensors of one shuffled epoch (the last batch may be smaller)."""
    perm = torch.randperm(n, generator=gen)
    yield from torch.split(perm, batch_size)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device, batch_size: int = 1000) -> float:
    was_training = model.training
    model.eval()
    correct = sum((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    model.train(was_training)
    return 100.0 * correct / len(x)


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW, from a config's ``optimizer``, ``lr``, ``momentum`` and ``weight_decay``."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def optimizer_step(batch_loss, idx: torch.Tensor, opt: torch.optim.Optimizer, step: int, what: str,
             dist: distributed.Context | None) -> torch.Tensor:
    """One update on minibatch ``idx`` (under DDP: this rank's share of it); stops on a NaN/Inf loss."""
    local = distributed.shard(idx, dist)
    loss = batch_loss(local) * distributed.loss_scale(len(local), len(idx), dist)
    check_finite(loss.item(), step, what)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


@dataclass
class LoopContext:
    """Where and how a training loop runs: the device, the seeded generator (minibatch order, augmentation),
    the curve tracker, the arithmetic (``precision``, see `pdiff.base.batches`) and the DDP context (None: one
    process)."""
    device: torch.device | str
    gen: torch.Generator
    tracker: Tracker
    precision: str = "fp32"
    dist: distributed.Context | None = None


def keep_classes(data: dict, classes: list[int]) -> dict:
    """``data`` with its train and val splits restricted to images of ``classes`` (labels unchanged); the test
    split stays whole. ``classes`` empty: ``data`` itself."""
    if not classes:
        return data
    bad = [c for c in classes if not 0 <= c < data["num_classes"]]
    if bad:
        raise PdiffError(f"params: `train.classes` = {classes} names class {bad[0]}, but the dataset has "
                         f"{data['num_classes']} classes (0 to {data['num_classes'] - 1}); list classes of the "
                         "dataset, or [] for all of them.")
    out = dict(data)
    wanted = torch.tensor(sorted(set(classes)))
    for split in ("train", "val"):
        keep = torch.isin(data[f"{split}_y"], wanted)
        out[f"{split}_x"], out[f"{split}_y"] = data[f"{split}_x"][keep], data[f"{split}_y"][keep]
    return out


def train_classifier(model: nn.Module, data: dict, cfg, ctx: LoopContext) -> dict:
    """The `train.optimizer` (SGD with momentum, or AdamW) with weight decay and a cosine schedule; logs loss and
    validation accuracy.
    The dataset's ``augment`` and ``precision`` (see `pdiff.base.batches`) apply to every minibatch."""
    device, gen, tracker, precision, dist = ctx.device, ctx.gen, ctx.tracker, ctx.precision, ctx.dist
    x, y = data["train_x"], data["train_y"]
    if cfg.epochs == 0:  # starting weights used as they are (train.init)
        val_acc = accuracy(model, data["val_x"], data["val_y"], device)
        tracker.log(0, val_acc=val_acc)
        return {"val_acc": val_acc, "steps": 0}
    batch_loss = BatchLoss(distributed.wrap(model, dist), x, y, device, gen, data.get("augment"), precision)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    opt = make_optimizer(model.parameters(), cfg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    step = 0
    val_acc = float("nan")
    for epoch in tqdm(range(cfg.epochs), desc="train", unit="epoch"):
        model.train()
        running = 0.0
        for idx in minibatches(len(x), cfg.batch_size, gen):
            step += 1
            loss = optimizer_step(batch_loss, idx, opt, step, "train", dist)
            sched.step()
            running += loss.item()
        val_acc = accuracy(model, data["val_x"], data["val_y"], device)
        tracker.log(epoch + 1, train_loss=distributed.all_mean(running / steps_per_epoch, dist), val_acc=val_acc)
    return {"val_acc": val_acc, "steps": step}


def snapshot_steps(total_steps: int, k: int) -> list[int]:
    """K distinct steps (1-based) spread evenly over ``total_steps``, the last one being the final step."""
    if k > total_steps:
        raise PdiffError(f"params: `collect.num_snapshots` = {k} exceeds the {total_steps} optimizer steps that "
                         f"`collect.epochs` and `collect.batch_size` give; lower K, add epochs or use smaller "
                         f"batches.")
    return [((i + 1) * total_steps) // k for i in range(k)]


def collect_snapshots(model: nn.Module, data: dict, names: list[str], cfg,
                      ctx: LoopContext, sink=None) -> tuple[torch.Tensor | None, list[int]]:
    """Train only ``names`` (all else frozen, norm running statistics frozen by eval mode, so each snapshot
    is exactly the model at that step) and return K flat snapshots [K, D] and their steps. With ``sink`` (a
    callable taking the list of steps and returning a callable that takes one flat snapshot), each snapshot
    goes to it as soon as it is taken and None is returned in place of the [K, D] tensor."""
    device, gen, tracker, precision, dist = ctx.device, ctx.gen, ctx.tracker, ctx.precision, ctx.dist
    x, y = data["train_x"], data["train_y"]
    chosen = set(names)
    params = []
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
        if n in chosen:
            params.append(p)
    opt = make_optimizer(params, cfg)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    save_at = snapshot_steps(cfg.epochs * steps_per_epoch, cfg.num_snapshots)
    wanted = set(save_at)
    put = sink(save_at) if sink is not None else None
    model.eval()
    batch_loss = BatchLoss(distributed.wrap(model, dist, sync_bn=False), x, y, device, gen, data.get("augment"),
                           precision)
    snaps, step = [], 0
    bar = tqdm(total=len(save_at), desc="collect", unit="snapshot")
    for _ in range(cfg.epochs):
        for idx in minibatches(len(x), cfg.batch_size, gen):
            step += 1
            loss = optimizer_step(batch_loss, idx, opt, step, "collect", dist)
            if step in wanted:
                (put or snaps.append)(flatten(model, names))
                tracker.log(step, loss=loss.item())
                bar.update()
    bar.close()
    return (torch.stack(snaps) if put is None else None), save_at
