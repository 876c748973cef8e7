"""Which operation gives other bytes on another CPU: a hash of every torch operation's output, in order, under
``kernels: portable`` -> reports/determinism/op_trace_<cpu>.json, compared with every other CPU's trace there.

`make verify` names the first *stage* whose outputs differ on a CPU; this names the first *operation*. A child
process (the portable pins set before torch loads, whatever params.yaml's `kernels`; its `threads`) runs a few
seeded steps of each model the default pipeline fits (`tools.model_steps`), with a dispatch mode that records
every ATen operation's name and the MD5 of its floating-point outputs' bytes (no hash where it only allocates):
``base_train``, ``ae_train`` and ``ldm_train`` build their model and take 2 steps; ``ldm_sample`` makes 3
denoiser calls from t = T - 1, then runs the AE's decoder.

A kernel that rounds differently on two CPUs shows at its first call, so a few steps suffice; each phase starts
from its own seed, so a difference in one phase does not carry into the next. Two traces agree on a phase when
every hash is the same; otherwise the output names the first operation that differs (its index and name), the
one whose kernel to pin or replace.

    python -m tools.op_trace [--out FILE]   # trace this CPU, then compare with every op_trace_*.json
"""
from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

from pdiff.core.artifacts import save_json
from pdiff.core.stage import run_script
from tools.doc_numbers import markdown_table
from tools.kernel_pins import FOLDER, portable_child, record_path
from tools.workcopy import ROOT

TRACE = """import hashlib
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from tools import model_steps as ms

UNSET = ("empty", "new_empty", "resize")

class Trace(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func.overloadpacket.__name__)
        if name.startswith(UNSET):  # memory not yet written: its bytes mean nothing
            self.ops.append(name)
            return out
        h = hashlib.md5()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                h.update(t.detach().contiguous().numpy().tobytes())
        self.ops.append(f"{name} {h.hexdigest()[:8]}")
        return out

LATENT = ms.latent_shape(p)  # once, outside the traced phases

def steps(step, n):
    for _ in range(n):
        step()
    return step

phases = {}
for seed, name in enumerate(ms.PHASES):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    with Trace() as tr:
        step = steps(ms.make(name, p, gen, LATENT), 3 if name == "ldm_sample" else 2)
        if name == "ldm_sample":
            step.decode()
    phases[name] = tr.ops
print(json.dumps({"torch": torch.__version__, "threads": p.threads, "phases": phases}))
"""


def first_difference(mine: list, other: list) -> dict:
    """Where two traces of one phase part: ``{"same": True}``, or the first differing operation's index and
    name on each side (a missing operation counts as a difference)."""
    for i in range(max(len(mine), len(other))):
        a = mine[i] if i < len(mine) else None
        b = other[i] if i < len(other) else None
        if a != b:
            return {"same": False, "index": i, "op": a.split()[0] if a else None,
                    "other_op": b.split()[0] if b else None}
    return {"same": True}


def compare(record: dict, others: dict[str, dict]) -> dict:
    """{other file name: {phase: `first_difference`}} for every other record with the same torch and threads."""
    out = {}
    for name, other in others.items():
        if (other.get("torch"), other.get("threads")) != (record["torch"], record["threads"]):
            out[name] = {"skipped": f"torch {other.get('torch')}, threads {other.get('threads')}"}
            continue
        out[name] = {phase: first_difference(ops, other.get("phases", {}).get(phase, []))
                     for phase, ops in record["phases"].items()}
    return out


def describe(phase: str, row: dict) -> str:
    if row.get("same"):
        return f"{phase}: same bytes"
    return f"{phase}: differs from operation #{row['index']} ({row['op']} here, {row['other_op']} there)"


def docs_traces(load) -> str:
    """Markdown for docs/pipeline.md (through tools.doc_numbers; ``load(path)``: a JSON file): one row per committed
    trace and how it compares with each other one, compared afresh (a trace's own `agrees_with` only knows the
    traces that existed when it was recorded)."""
    records = {p.stem.removeprefix("op_trace_"): load(p.relative_to(ROOT).as_posix())
               for p in sorted(FOLDER.glob("op_trace_*.json"))}
    rows = []
    for name, record in records.items():
        others = compare(record, {n: r for n, r in records.items() if n != name})
        same, parted = [], []
        for other, phases in others.items():
            if "skipped" in phases:
                continue
            firsts = [f"{phase} #{row['index']} ({row['op']})" for phase, row in phases.items() if not row["same"]]
            (parted.append(f"{other}: {', '.join(firsts)}") if firsts else same.append(f"`{other}`"))
        rows.append([f"`{name}`", record["cpu"], " ".join(record["isa"]), f"`{record['commit'][:7]}`",
                     f"{sum(len(ops) for ops in record['phases'].values()):,}", ", ".join(same) or "none",
                     "; ".join(parted) or "none"])
    first = next(iter(records.values()))
    only = sorted({op.split()[0] for op in first["phases"]["ae_train"]}
                  - {op.split()[0] for op in first["phases"]["base_train"]})
    table = markdown_table(["trace", "CPU", "extensions", "commit", "operations", "same bytes in every phase as",
                            "first operation that differs"], rows)
    only_ae = textwrap.fill("Operations `ae_train` runs and `base_train` does not: "
                            + ", ".join(f"`{op}`" for op in only) + ".", 116)
    return f"{table.rstrip()}\n\n{only_ae}\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="default: reports/determinism/op_trace_<cpu>.json")
    args = ap.parse_args(argv)
    out_path = record_path(args.out, "op_trace")
    record = {"what": "MD5 (first 8 hex digits) of every ATen operation's floating-point outputs, in order, for "
                      "a few seeded steps of each default model under kernels: portable (python -m tools.op_trace)",
              **portable_child(TRACE)}
    others = {p.name: json.loads(p.read_text()) for p in sorted(out_path.parent.glob("op_trace_*.json"))
              if p.resolve() != out_path.resolve()}
    record["agrees_with"] = compare(record, others)
    save_json(record, out_path)
    print(f"op_trace: {sum(len(ops) for ops in record['phases'].values())} operations in "
          f"{len(record['phases'])} phases -> {out_path}")
    for name, rows in record["agrees_with"].items():
        print(f"op_trace: against {name} ({others[name].get('cpu')}):")
        for phase, row in rows.items():
            print(f"  {describe(phase, row) if isinstance(row, dict) else f'{phase}: {row}'}")
    return record


if __name__ == "__main__":
    run_script(main)
