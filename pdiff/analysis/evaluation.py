"""Accuracy of many parameter vectors on one base model, plus summary statistics."""
from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pdiff import PdiffError
from pdiff.core.artifacts import ArtifactError, load_torch, numels, rerun_hint, save_torch
from pdiff.nets.selection import flatten, load_vector


def _is_plain_sequential(module: nn.Module) -> bool:
    """An nn.Sequential (or subclass) whose forward is Sequential's own: children run one after another."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


class BasicBlockHead(nn.Module):
    """The part of a ResNet BasicBlock in front of its ``bn1``: ``conv1(x)`` and the shortcut
    (``downsample(x)`` or ``x``), stacked into one tensor [N, 2, C, H, W] for `BasicBlockTail`."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.conv1, self.downsample = block.conv1, block.downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.downsample(x) if self.downsample is not None else x
        return torch.stack([shortcut, self.conv1(x)], dim=1)


class BasicBlockTail(nn.Module):
    """The rest of the BasicBlock: ``relu(bn2(conv2(relu(bn1(c)))) + shortcut)``, the block's own computation
    from `BasicBlockHead`'s output. Keeps the block's ``bn1`` / ``conv2`` / ``bn2`` names."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.bn1, self.relu, self.conv2, self.bn2 = block.bn1, block.relu, block.conv2, block.bn2

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        shortcut, c = (t.contiguous() for t in h.unbind(1))  # contiguous: the same kernels as the whole block
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(c)))) + shortcut)


def _splittable_basic_block(block: nn.Module, names: list[str], path: str) -> bool:
    """A torchvision-style BasicBlock (conv1 bn1 relu conv2 bn2 [downsample]) whose conv1 and shortcut hold no
    selected parameter: its conv1 and shortcut can run once, in the prefix."""
    parts = ("conv1", "bn1", "relu", "conv2", "bn2", "downsample")
    if type(block).__name__ != "BasicBlock" or not all(hasattr(block, a) for a in parts):
        return False
    if {n for n, _ in block.named_children()} - set(parts):
        return False
    return not any(n.startswith((f"{path}conv1.", f"{path}downsample.")) for n in names)


def _split(module: nn.Module, names: list[str], path: str = ""):
    """(prefix children, suffix children) of a plain Sequential, recursing into the first child that holds a
    selected parameter when that child is itself a plain Sequential (and splitting a ResNet BasicBlock after
    its conv1 when that is where the selection starts); None when nothing can go in front."""
    if not _is_plain_sequential(module):
        return None
    children = list(module.named_children())
    for i, (name, child) in enumerate(children):
        if not any(n.startswith(f"{path}{name}.") for n in names):
            continue
        inner = _split(child, names, f"{path}{name}.")
        if inner is None and _splittable_basic_block(child, names, f"{path}{name}."):
            pre = children[:i] + [(name, BasicBlockHead(child))]
            suf = [(name, BasicBlockTail(child))] + children[i + 1:]
        elif inner is None:
            pre, suf = children[:i], children[i:]
        else:
            pre = children[:i] + [(name, nn.Sequential(OrderedDict(inner[0])))]
            suf = [(name, nn.Sequential(OrderedDict(inner[1])))] + children[i + 1:]
        return (pre, suf) if pre else None
    return None


def split_at_selection(model: nn.Module, names: list[str]) -> tuple[nn.Module, nn.Module]:
    """(prefix, suffix) with ``suffix(prefix(x)) == model(x)`` and no selected parameter in the prefix, so the
    prefix's output is the same for every candidate vector and can be computed once.

    Works on (nested) plain ``nn.Sequential`` models: it recurses into the first child holding a selected
    parameter while that child is a plain Sequential, so a ResNet whose ``layer4`` is a Sequential of blocks
    and whose selection starts at ``layer4.1.bn1.weight`` splits inside block ``layer4.1``: a torchvision
    BasicBlock whose conv1 and shortcut hold no selected parameter becomes `BasicBlockHead` (conv1 and the
    shortcut, in the prefix) and `BasicBlockTail` (the rest, in the suffix), which halves the suffix's
    convolutions for the last-two-BN selection of ResNet-18; other blocks split just before. The suffix
    keeps the model's parameter names (``layer4.1.bn1.weight`` is still called that in the suffix). The
    modules are shared with ``model``, not copied. When the selection starts at the input (or the model is
    not a plain Sequential) the result is (Identity, model)."""
    parts = _split(model, list(names))
    if parts is None:
        return nn.Identity(), model
    return nn.Sequential(OrderedDict(parts[0])), nn.Sequential(OrderedDict(parts[1]))


def stack_vectors(vectors: torch.Tensor, names: list[str], shapes: list[list[int]]) -> dict[str, torch.Tensor]:
    """[G, D] vectors -> {name: [G, *shape]}, the batched form of `unflatten`."""
    sizes = numels(shapes)
    chunks = torch.split(vectors, sizes, dim=1)
    return {n: c.reshape(len(vectors), *s) for n, c, s in zip(names, chunks, shapes, strict=True)}


def auto_chunk(features: int, budget: int = 2 ** 24) -> int:
    """Candidate vectors per vmapped call so that one activation of the suffix holds about ``budget`` values
    (64 MB in float32) for ``features`` values per test batch."""
    return int(max(1, min(64, budget // max(features, 1))))


@dataclass
class EvalOptions:
    """How `evaluate_vectors` runs (see its docstring); the defaults are the stages' own."""
    device: str | torch.device = "cpu"
    batch_size: int = 1000     # test examples per forward pass
    cache_prefix: bool = True  # run the layers before the first generated parameter once
    chunk: int | None = 1      # vectors per vmapped call on the suffix (None: sized by `auto_chunk`)
    desc: str = "evaluate"     # progress-bar label


def evaluate_vectors(model: nn.Module, names: list[str], vectors: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                     opts: EvalOptions | None = None) -> torch.Tensor:
    """Per-sample correctness [M, n] (bool) of each of the M vectors loaded into ``model``: `predict_vectors`
    compared with the labels ``y`` (a non-finite vector's row is all False)."""
    return predict_vectors(model, names, vectors, x, opts) == y.cpu()


@torch.no_grad()
def predict_vectors(model: nn.Module, names: list[str], vectors: torch.Tensor, x: torch.Tensor,
                    opts: EvalOptions | None = None) -> torch.Tensor:
    """The predicted class [M, n] (int64) of each of the M vectors loaded into ``model``, for every input of ``x``.

    ``cache_prefix=False`` is the naive path (the paper's): load each vector and run the full model on the
    whole test set. With ``cache_prefix`` the layers before the first generated parameter run once per test
    batch (`split_at_selection`) and only the suffix runs per vector; identical predictions, far less
    compute when the generated layers are late. ``chunk`` > 1 (or None: sized by `auto_chunk` to keep
    activations near 64 MB) evaluates that many vectors in one call on the suffix
    (``torch.func.functional_call`` under ``torch.vmap`` over the stacked vectors; an op without a vmap rule
    falls back to the loop with a warning); ``chunk=1`` (the default) loads one vector at a time into the
    model, which was faster on the 2-core CPU for the default model (`eval` in metrics/bench.json) and, once the
    ResNet-18 block is split after ``conv1``, no slower than vmapped chunks there (docs/paper-scale.md).
    Non-finite vectors are not run; their rows are all -1 (no class; see `summarize`'s ``failed``). The model's
    own values of ``names`` are restored afterwards."""
    o = opts or EvalOptions()
    device, batch_size, cache_prefix, chunk, desc = (torch.device(o.device), o.batch_size, o.cache_prefix, o.chunk,
                                                     o.desc)
    model.eval()
    prefix, suffix = split_at_selection(model, names) if cache_prefix else (nn.Identity(), model)
    predicted = torch.full((len(vectors), len(x)), -1, dtype=torch.long)
    ok = finite_rows(vectors)
    inputs = [prefix(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    if chunk is None:
        chunk = auto_chunk(inputs[0][0].numel() * len(inputs[0])) if inputs else 1
    if cache_prefix and chunk > 1 and len(inputs):
        try:
            rows = ok.nonzero().flatten()
            with tqdm(total=len(vectors), desc=desc, unit="model", mininterval=1.0) as bar:
                for idx, preds in _vmapped_predictions(suffix, names, vectors, rows, inputs, chunk):
                    predicted[idx] = preds
                    bar.update(len(idx))
                bar.update(len(vectors) - bar.n)
            return predicted
        except (RuntimeError, NotImplementedError) as exc:  # an op without a vmap rule: one vector at a time
            warnings.warn(f"evaluate_vectors: vmap failed ({str(exc).splitlines()[0]}); evaluating one vector "
                          "at a time instead.", RuntimeWarning, stacklevel=2)
    original = flatten(model, names)
    try:
        for i, vec in enumerate(tqdm(vectors, desc=desc, unit="model", mininterval=1.0)):
            if not ok[i]:
                continue
            load_vector(model, names, vec)
            predicted[i] = torch.cat([suffix(h).argmax(1).cpu() for h in inputs])
    finally:
        load_vector(model, names, original)
    return predicted


def _vmapped_predictions(suffix, names, vectors, rows, inputs, chunk):
    """Yield (row indices, predictions [len(idx), n]) for ``rows`` of ``vectors``, ``chunk`` vectors per call of
    the suffix under ``torch.vmap`` (the suffix keeps the model's parameter names)."""
    params = dict(suffix.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise PdiffError(f"evaluate_vectors: selected parameters {missing[:3]} are not in the model's suffix.")
    shapes = [list(params[n].shape) for n in names]
    dtype, device = params[names[0]].dtype, params[names[0]].device
    call = torch.func.vmap(lambda p, h: torch.func.functional_call(suffix, p, (h,)), in_dims=(0, None))
    for idx in rows.split(chunk):
        batched = stack_vectors(vectors[idx].to(device, dtype), names, shapes)
        yield idx, torch.cat([call(batched, h).argmax(-1).cpu() for h in inputs], dim=1)


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


FINITE_CHUNK_VALUES = 1 << 24  # values `finite_rows` checks at once (64 MB of float32)


def finite_rows(vectors: torch.Tensor, chunk_values: int = FINITE_CHUNK_VALUES) -> torch.Tensor:
    """[M] True where every value of the row of ``vectors`` [M, D] is finite. Checked ``chunk_values`` values at a
    time: `torch.isfinite` of a float tensor makes an ``abs()`` copy and three masks of it, 1.7 times the vectors'
    own size at once, which at a whole network's [M, D] is gigabytes."""
    step = max(1, chunk_values // max(len(vectors), 1))
    ok = torch.ones(len(vectors), dtype=torch.bool, device=vectors.device)
    for a in range(0, vectors.shape[1], step):
        ok &= torch.isfinite(vectors[:, a:a + step]).all(dim=1)
    return ok


def rows_where(vectors: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The rows of ``vectors`` where ``keep`` is True: ``vectors`` itself when that is all of them (no copy of a
    whole network's [M, D]), else the selected copy."""
    return vectors if bool(keep.all()) else vectors[keep]


# --------------------------------------------------------------------------------------------------- evaluate once
STACK_VALUES = 1 << 28  # predict_sets stacks the sets into one tensor up to this many values (1 GB of float32)


def predict_sets(model: nn.Module, names: list[str], sets: dict[str, torch.Tensor], x: torch.Tensor,
                 opts: EvalOptions | None = None) -> dict[str, torch.Tensor]:
    """`predict_vectors` on several sets of vectors in one call: {name: predicted classes [M_name, n]}.

    The sets are stacked into one [sum M, D] tensor, so the prefix of the model (`split_at_selection`) runs
    once per test batch for all of them instead of once per set; each row is evaluated on its own, so the
    result for every set is exactly what a separate call would give. Beyond `STACK_VALUES` values in all (a
    whole network's vectors), the sets run one by one instead, without the stacked copy."""
    if not sets:
        return {}
    if sum(v.numel() for v in sets.values()) > STACK_VALUES:  # a stacked copy would cost more than the prefix
        return {name: predict_vectors(model, names, v.float(), x, opts) for name, v in sets.items()}
    stacked = torch.cat([v.float() for v in sets.values()]) if len(sets) > 1 else next(iter(sets.values()))
    predicted = predict_vectors(model, names, stacked, x, opts)
    return dict(zip(sets, torch.split(predicted, [len(v) for v in sets.values()]), strict=True))


def evaluate_sets(model: nn.Module, names: list[str], sets: dict[str, torch.Tensor], x: torch.Tensor,
                  y: torch.Tensor, opts: EvalOptions | None = None) -> dict[str, torch.Tensor]:
    """`evaluate_vectors` on several sets in one call (`predict_sets`): {name: correctness [M_name, n]}."""
    return {name: p == y.cpu() for name, p in predict_sets(model, names, sets, x, opts).items()}


def digest(t: torch.Tensor) -> str:
    """Short SHA-256 of a tensor's shape, dtype and values: ties a stored result to the exact inputs."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}|".encode())
    h.update(t.view(torch.uint8).numpy().reshape(-1) if t.numel() else b"")  # the buffer itself, not a copy
    return h.hexdigest()[:20]


def _compact(predicted: torch.Tensor) -> torch.Tensor:
    """Predicted classes in the smallest integer type that holds them (int16 up to 32,767 classes)."""
    small = predicted.numel() == 0 or int(predicted.max()) < 2 ** 15
    return predicted.to(torch.int16 if small else torch.int32).cpu()


def save_correctness(results: dict[str, tuple[torch.Tensor, torch.Tensor]], labels: torch.Tensor,
                     path: str, predicted: dict[str, torch.Tensor] | None = None) -> None:
    """Write the per-sample test correctness of every evaluated method atomically, for `analyze` to reuse.

    ``results`` maps a method to (all its vectors [M, D] as read from disk, correctness [M_finite, n] of the
    finite ones); ``predicted`` maps a method to the predicted classes [M_finite, n] of the same rows. The file
    stores, per method, the correctness as a bool tensor, the predicted classes (``predicted``, int16 or int32)
    and a digest of the vectors, plus a digest of the labels, so `load_correctness` and `load_evaluation` can
    refuse results that belong to other inputs."""
    predicted = predicted or {}
    save_torch({"labels": digest(labels), "test_size": len(labels),
                "methods": {m: {"correct": c.to(torch.bool).cpu(), "vectors": digest(v.float())}
                            | ({"predicted": _compact(predicted[m])} if m in predicted else {})
                            for m, (v, c) in results.items()}}, path)


def _stored(method: str, vectors: torch.Tensor, labels: torch.Tensor, path: str, keys: tuple[str, ...]
            ) -> tuple[torch.Tensor, ...]:
    """The stored tensors ``keys`` (``correct``, ``predicted``) of ``method``, checked against the vectors and
    labels they must belong to and for one row per finite vector by one column per label."""
    obj = load_torch(path, "evaluate", required=("labels", "test_size", "methods"))
    entry = obj["methods"].get(method) if isinstance(obj["methods"], dict) else None
    rerun = rerun_hint("evaluate", "to evaluate the current vectors")
    if entry is None:
        raise ArtifactError(f"{path} has no results for `{method}`. {rerun}")
    if obj["labels"] != digest(labels) or obj["test_size"] != len(labels):
        raise ArtifactError(f"{path} was computed on another test split ({obj['test_size']} examples). {rerun}")
    if entry["vectors"] != digest(vectors.float()):
        raise ArtifactError(f"{path}: the `{method}` results belong to other vectors than the current ones. {rerun}")
    out = []
    for key in keys:
        if key not in entry:
            raise ArtifactError(f"{path} holds no `{key}` results for `{method}` (written by an older `evaluate`). "
                                f"{rerun}")
        value = entry[key]
        right_type = value.dtype == torch.bool if key == "correct" else not value.is_floating_point()
        if not right_type or tuple(value.shape) != (int(finite_rows(vectors).sum()), len(labels)):
            raise ArtifactError(f"{path}: the `{method}` results have shape {tuple(value.shape)}, not one row per "
                                f"finite vector by {len(labels)} test examples. {rerun}")
        out.append(value)
    return tuple(out)


def load_correctness(method: str, vectors: torch.Tensor, labels: torch.Tensor, path: str) -> torch.Tensor:
    """The stored correctness [M_finite, n] of ``method``, checked against the vectors and labels it must
    belong to; a clear error (rerun `evaluate`) when the file is missing, stale or from other data."""
    return _stored(method, vectors, labels, path, ("correct",))[0]


def load_evaluation(method: str, vectors: torch.Tensor, labels: torch.Tensor, path: str
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(correctness [M_finite, n], predicted classes [M_finite, n] as int64) of ``method``, read and checked once
    as `load_correctness` checks."""
    correct, predicted = _stored(method, vectors, labels, path, ("correct", "predicted"))
    return correct, predicted.long()
