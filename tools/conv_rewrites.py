"""Whether a faster convolution keeps the portable bytes: each convolution of the default base model, run by ATen's
portable path (oneDNN and NNPACK off: per-sample im2col + MKL GEMM, and per-sample GEMMs summed in sample order
for the weight gradient) and by two rewrites, compared byte for byte and timed side by side
-> reports/determinism/conv_rewrites_<cpu>.json.

The rewrites (a portable speed-up counts only if the bytes stay the same: docs/pipeline.md, Determinism):

- ``unfold_gemm``: `F.unfold` of the whole batch, then one GEMM per pass: the forward ``W @ cols``, the input
  gradient ``fold(W^T @ grad)``, the weight gradient ``grad @ cols^T`` summed over every sample in one product;
- ``channels_last``: the same `F.conv2d`, on channels-last tensors (ATen's other layout of the slow path).

A child process runs with the portable pins set before torch loads (whatever params.yaml's `kernels`; its
`threads`). Each layer gets seeded inputs of the shape it sees in a training step (`train.batch_size`); for each
path, the forward output, the input gradient and the weight gradient are compared with the portable path's, and
one forward + backward is timed (`tools.measure.timed`), the paths interleaved over ``ROUNDS`` rounds of
``REPEATS`` calls, each path keeping its fastest call.

    python -m tools.conv_rewrites [--out FILE]
"""
from __future__ import annotations

import argparse
import math
import os
from functools import partial
from pathlib import Path

from pdiff.core.artifacts import save_json
from pdiff.core.stage import run_script
from tools.doc_numbers import markdown_table
from tools.kernel_pins import FOLDER, portable_child, record_path
from tools.measure import timed
from tools.workcopy import ROOT

PASSES = ("forward", "grad_input", "grad_weight")
REWRITES = ("unfold_gemm", "channels_last")
ROUNDS, REPEATS = 3, 5

CHILD = """from tools.conv_rewrites import measure
print(json.dumps({"torch": torch.__version__, "threads": p.threads, "layers": measure(p)}))
"""


def portable_path(x, w, grad, padding: int, channels_last: bool = False):
    """(output, input gradient, weight gradient) of `F.conv2d` (stride 1), contiguous."""
    import torch
    import torch.nn.functional as F

    if channels_last:
        x, w, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, w, grad))
    x, w = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    out = F.conv2d(x, w, padding=padding)
    out.backward(grad)
    return out.detach().contiguous(), x.grad.contiguous(), w.grad.contiguous()


def unfold_gemm(x, w, grad, padding: int):
    """The same three tensors as `portable_path`, each from one GEMM over the whole batch."""
    import torch.nn.functional as F

    n, _, h, width = x.shape
    out_ch, _, k, _ = w.shape
    cols = F.unfold(x, k, padding=padding)  # [N, K, L]
    kk, length = cols.shape[1], cols.shape[2]
    flat = cols.transpose(0, 1).reshape(kk, n * length)  # [K, N*L]
    out = (w.reshape(out_ch, kk) @ flat).reshape(out_ch, n, length).transpose(0, 1)
    g = grad.reshape(n, out_ch, length).transpose(0, 1).reshape(out_ch, n * length)  # [Cout, N*L]
    grad_cols = (w.reshape(out_ch, kk).t() @ g).reshape(kk, n, length).transpose(0, 1)
    grad_x = F.fold(grad_cols, (h, width), k, padding=padding)
    grad_w = (g @ flat.t()).reshape(w.shape)
    return out.reshape(grad.shape).contiguous(), grad_x.contiguous(), grad_w.contiguous()


PATHS = {"portable": portable_path, "unfold_gemm": unfold_gemm,
         "channels_last": lambda x, w, g, pad: portable_path(x, w, g, pad, channels_last=True)}


def conv_inputs(p) -> list[dict]:
    """Each Conv2d of the default base model: its name, input shape in a training step, weight shape, padding."""
    import torch

    from pdiff.nets.models import build_model

    model = build_model(p.model.arch, 1, 10, 28, p.model.width)
    seen = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            if m.stride != (1, 1) or m.groups != 1 or m.dilation != (1, 1) or len(set(m.padding)) != 1:
                continue  # the rewrite covers plain stride-1 convolutions, the default's kind
            m.register_forward_hook(lambda mod, inp, out, name=name: seen.append(
                {"layer": name, "input": list(inp[0].shape), "weight": list(mod.weight.shape),
                 "padding": mod.padding[0]}))
    with torch.no_grad():
        model(torch.zeros(p.train.batch_size, 1, 28, 28))
    return seen


def measure(p) -> list[dict]:
    """For each layer of `conv_inputs`: per rewrite, whether each pass has the portable path's bytes, and each
    path's seconds for one forward + backward (its fastest call over ``ROUNDS`` interleaved rounds)."""
    import torch

    rows = []
    for i, layer in enumerate(conv_inputs(p)):
        gen = torch.Generator().manual_seed(i)
        x = torch.randn(layer["input"], generator=gen)
        w = torch.randn(layer["weight"], generator=gen) / math.prod(layer["weight"][1:]) ** 0.5  # fan-in scale
        side = [n + 2 * layer["padding"] - k + 1 for n, k in zip(layer["input"][2:], layer["weight"][2:], strict=True)]
        grad = torch.randn([layer["input"][0], layer["weight"][0], *side], generator=gen)
        ref = portable_path(x, w, grad, layer["padding"])
        same = {name: {ps: torch.equal(a, b) for ps, a, b in zip(PASSES, PATHS[name](x, w, grad, layer["padding"]),
                                                                  ref, strict=True)}
                for name in REWRITES}
        best = dict.fromkeys(PATHS, float("inf"))
        for _ in range(ROUNDS):
            for name, fn in PATHS.items():
                seconds, _ = timed(partial(fn, x, w, grad, layer["padding"]), repeats=REPEATS)
                best[name] = min(best[name], seconds)
        rows.append(layer | {"same_bytes": same, "seconds": {k: round(v, 5) for k, v in best.items()},
                             "over_portable": {k: round(best[k] / best["portable"], 3) for k in REWRITES}})
    return rows


def docs_table(load) -> str:
    """Markdown for docs/pipeline.md (through tools.doc_numbers): one row per layer and CPU record."""
    rows = []
    for path in sorted(FOLDER.glob("conv_rewrites_*.json")):
        rec = load(str(path.relative_to(ROOT)))
        for r in rec["layers"]:
            cells = [" / ".join("same" if r["same_bytes"][name][ps] else "**other**" for ps in PASSES)
                     for name in REWRITES]
            rows.append([rec["cpu"], f"`{r['layer']}` {'x'.join(map(str, r['input']))}", *cells,
                         *(f"x{r['over_portable'][name]:.2f}" for name in REWRITES)])
    return markdown_table(["CPU", "layer, input", "unfold + GEMM: forward / grad input / grad weight",
                           "channels-last: the same three", "unfold + GEMM time / portable",
                           "channels-last time / portable"], rows)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="default: reports/determinism/conv_rewrites_<cpu>.json")
    args = ap.parse_args(argv)
    out_path = record_path(args.out, "conv_rewrites")
    load = round(os.getloadavg()[0], 2)
    record = {"what": "the default base model's convolutions under kernels: portable against two rewrites: same "
                      "bytes per pass, and seconds for one forward + backward (python -m tools.conv_rewrites)",
              "load_avg_1m_at_start": load, **portable_child(CHILD)}
    save_json(record, out_path)
    for r in record["layers"]:
        print(f"conv_rewrites: {r['layer']} {r['input']}: " + "; ".join(
            f"{name} {'same' if all(r['same_bytes'][name].values()) else 'other bytes'} "
            f"({', '.join(ps for ps in PASSES if not r['same_bytes'][name][ps]) or 'every pass the same'}), "
            f"time x{r['over_portable'][name]}" for name in REWRITES))
    print(f"conv_rewrites: -> {out_path}")
    return record


if __name__ == "__main__":
    run_script(main)
