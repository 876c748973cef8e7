"""Per-task models from one shared base model: the frozen network up to its head, then, per task, the affine
of the last normalization layer and a new binary head.

The base model must end in ``norm -> activation -> Linear`` (a BatchNorm1d or LayerNorm-free tail such as
small_cnn's ``bn4 -> relu4 -> fc2`` or mlp's). Its running statistics stay frozen (as in `collect`), so what
the layers before the head compute does not depend on the task: the pre-affine features
``(f - running_mean) / sqrt(running_var + eps)`` are computed once per split and cached, and every task
trains only

    logit = head_w . act(norm_w * features + norm_b) + head_b

(``tasks.train_norm: false`` keeps the base model's norm affine and trains the head alone). A task's
parameter vector is ``[norm_w, norm_b, head_w, head_b]`` (2F + F + 1 values with the norm, F + 1 without).
All tasks train at once: the parameters are stacked [T, ...] and one minibatch of cached features serves
every task, so T tasks cost about one batched matmul per step."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pdiff import PdiffError


@dataclass
class TaskHeadSpec:
    """What a task vector holds: ``names`` and ``shapes`` of its tensors, the activation between norm and head,
    and the base model's norm affine (used when the norm is not trained)."""
    names: list[str]
    shapes: list[list[int]]
    features: int
    train_norm: bool
    activation: nn.Module
    base_norm_w: torch.Tensor
    base_norm_b: torch.Tensor

    @property
    def dim(self) -> int:
        return (3 * self.features + 1) if self.train_norm else (self.features + 1)


def _tail(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], str, nn.BatchNorm1d, nn.Module, nn.Linear]:
    children = list(model.named_children())
    if (not isinstance(model, nn.Sequential) or len(children) < 4 or not isinstance(children[-1][1], nn.Linear)
            or not isinstance(children[-3][1], nn.BatchNorm1d)):
        layout = ", ".join(f"{n}: {type(m).__name__}" for n, m in children[-4:])
        raise PdiffError(f"tasks: per-task heads need a base model (nn.Sequential) that ends in BatchNorm1d -> "
                         f"activation -> Linear, such as `model.arch` small_cnn; this one ends in [{layout}].")
    return children[:-3], children[-3][0], children[-3][1], children[-2][1], children[-1][1]


def head_spec(model: nn.Module, train_norm: bool) -> TaskHeadSpec:
    _, norm_name, norm, act, head = _tail(model)
    f = head.in_features
    names = ([f"{norm_name}.weight", f"{norm_name}.bias"] if train_norm else []) + ["head.weight", "head.bias"]
    shapes = ([[f], [f]] if train_norm else []) + [[1, f], [1]]
    return TaskHeadSpec(names, shapes, f, train_norm, act, norm.weight.detach().clone(), norm.bias.detach().clone())


@torch.no_grad()
def cached_features(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The frozen base model's pre-affine features of the last norm layer, [N, F], in eval mode."""
    prefix, _, norm, _, _ = _tail(model)
    body = nn.Sequential(*[m for _, m in prefix]).eval()
    feats = torch.cat([body(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    return (feats - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)


def split_vectors(vectors: torch.Tensor, spec: TaskHeadSpec) -> tuple[torch.Tensor, ...]:
    """[M, D] -> (norm_w [M, F], norm_b [M, F], head_w [M, F], head_b [M])."""
    f = spec.features
    if vectors.shape[-1] != spec.dim:
        raise PdiffError(f"tasks: vectors of length {vectors.shape[-1]} do not fit task heads of {spec.dim} values.")
    if spec.train_norm:
        return vectors[:, :f], vectors[:, f:2 * f], vectors[:, 2 * f:3 * f], vectors[:, 3 * f]
    m = len(vectors)
    return (spec.base_norm_w.expand(m, f), spec.base_norm_b.expand(m, f), vectors[:, :f], vectors[:, f])


def logits(vectors: torch.Tensor, feats: torch.Tensor, spec: TaskHeadSpec) -> torch.Tensor:
    """[M, N] logits of M task vectors on N cached feature rows."""
    nw, nb, hw, hb = split_vectors(vectors, spec)
    h = spec.activation(feats[None] * nw[:, None, :] + nb[:, None, :])
    return torch.einsum("mnf,mf->mn", h, hw) + hb[:, None]


@torch.no_grad()
def accuracy(vectors: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor, spec: TaskHeadSpec,
             chunk: int = 64) -> torch.Tensor:
    """Accuracy (%) of each of M vectors on its own binary labels: ``labels`` [M, N] (one row per vector)."""
    out = []
    for i in range(0, len(vectors), chunk):
        pred = logits(vectors[i:i + chunk], feats, spec) > 0
        out.append(100.0 * (pred == labels[i:i + chunk].bool()).float().mean(1))
    return torch.cat(out) if out else torch.zeros(0)


@dataclass
class HeadTraining:
    """`tasks` params used here: Adam ``lr`` over ``steps`` minibatches of ``batch_size`` cached features;
    ``snapshots`` per task, taken at evenly spaced steps over the second half of training."""
    steps: int = 150
    lr: float = 0.01
    batch_size: int = 128
    snapshots: int = 5


def snapshot_steps(steps: int, count: int) -> list[int]:
    """``count`` distinct steps evenly spaced over (steps / 2, steps], the last one ``steps``."""
    first = steps // 2 + 1
    if steps - first + 1 < count:
        raise PdiffError(f"params: `tasks.snapshots` = {count} needs at least {2 * count} `tasks.steps`, got "
                         f"{steps}.")
    return torch.linspace(first, steps, count).round().long().tolist()


def train_task_heads(codes: torch.Tensor, feats: torch.Tensor, y: torch.Tensor, spec: TaskHeadSpec,
                     cfg: HeadTraining, gen: torch.Generator, desc: str = "task heads") -> torch.Tensor:
    """Train one head per code (all at once) on binary labels ``code[y]``; -> snapshots [T, S, D].

    Every task starts from the base model's norm affine and a zero head, sees the same minibatches and has its
    own Adam state (Adam is elementwise, and the summed per-task losses give each task its own gradient)."""
    t, f = len(codes), spec.features
    labels = codes[:, y]                                                    # [T, N]
    zeros = torch.zeros(t, f)
    parts = ([spec.base_norm_w.expand(t, f).clone(), spec.base_norm_b.expand(t, f).clone()]
             if spec.train_norm else [])
    vec = torch.cat(parts + [zeros, torch.zeros(t, 1)], dim=1).requires_grad_(True)
    opt = torch.optim.Adam([vec], lr=cfg.lr)
    keep = set(snapshot_steps(cfg.steps, cfg.snapshots))
    snaps = []
    for step in tqdm(range(1, cfg.steps + 1), desc=desc, mininterval=1.0):
        idx = torch.randint(len(feats), (cfg.batch_size,), generator=gen)
        out = logits(vec, feats[idx], spec)
        loss = F.binary_cross_entropy_with_logits(out, labels[:, idx], reduction="none").mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in keep:
            snaps.append(vec.detach().clone())
    return torch.stack(snaps, dim=1)


@torch.no_grad()
def composed_head_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, codes: torch.Tensor,
                           batch_size: int = 1000) -> torch.Tensor | None:
    """Baseline (b): the base model's own multi-class head, composed: "positive" when the summed softmax
    probability of the positive classes exceeds 1/2. Accuracy (%) per code, or None when the base model has no
    trained output for some class of the codes (fewer outputs, or `train.classes` left the class out)."""
    trained = getattr(model, "pdiff_classes", None)
    if trained is not None and not set(range(codes.shape[1])) <= set(trained):
        return None
    model.eval()
    probs = torch.cat([model(x[i:i + batch_size]).softmax(1) for i in range(0, len(x), batch_size)])
    if probs.shape[1] < codes.shape[1]:
        return None
    pos = probs[:, :codes.shape[1]] @ codes.T                               # [N, T]
    return 100.0 * ((pos > 0.5).float() == codes[:, y].T).float().mean(0)
