"""Which CPU kernel switches change the default base model, and what pinning them costs -> one JSON file per CPU.

torch picks CPU kernels by instruction set or cache size in four places: ATen's vectorized kernels
(``ATEN_CPU_CAPABILITY``), oneDNN (on unless ``torch.backends.mkldnn.enabled = False``; ``ONEDNN_MAX_CPU_ISA``),
MKL (``MKL_CBWR``, ``MKL_ENABLE_INSTRUCTIONS``) and NNPACK (``torch.backends.nnpack.set_flags``). This runs the
default pipeline's `train` stage (15 epochs) in a fresh clone of HEAD once per setting below, and records the
MD5 of models/base.pt, its validation accuracy and the stage's seconds. Two settings that give the same MD5 gave
the same bytes. The settings are the eight of the AMD EPYC (AVX2) reference record,
reports/determinism/kernel_pins_amd-epyc-avx2.json (NNPACK on, as there), plus the three pins with NNPACK off,
and ``kernels: portable`` set through params.yaml (pdiff/core/kernels.py), which must give the bytes of its four
pins. Each record names its CPU and instruction-set extensions; the output compares every setting's MD5 with
every other record in the folder, so
that which settings give the same bytes on two CPU types is read off one file (docs/pipeline.md, Determinism).

    python -m tools.kernel_pins [--out reports/determinism/kernel_pins_<cpu>.json]
    python -m tools.kernel_pins --pipeline   # the whole default, native then portable -> pipeline_cost_<cpu>.json
    python -m tools.kernel_pins --profile    # where a training step's time goes, per setting -> profile_<cpu>.json

``--pipeline`` runs the whole default `dvc repro` in a fresh clone with each setting, one after the other on
the same machine, and records each stage's seconds and output hashes: the cost of the pins, stage by stage.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from pdiff.core.artifacts import save_json
from pdiff.core.kernels import PORTABLE_ENV, cpu, with_setting
from pdiff.core.stage import stage_command
from tools.measure import machine
from tools.workcopy import ROOT, clone_head, run, subprocess_env

FOLDER = ROOT / "reports/determinism"
AVX2_CAPS = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
ATEN_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2"}
AVX2_CAPS_ALL = ATEN_AVX2 | {"MKL_CBWR": "AVX2"} | AVX2_CAPS  # an AVX2-only CPU, as far as the three switches go
SETTINGS = [  # (name as in the reference record, environment, oneDNN on, params.yaml `kernels`, NNPACK on)
    ("native (oneDNN on, no pins)", {}, True, "native", True),
    ("ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN on)",
     AVX2_CAPS_ALL, True, "native", True),
    ("oneDNN off, ATEN_CPU_CAPABILITY=default, MKL_CBWR=COMPATIBLE", PORTABLE_ENV, False, "native", True),
    ("oneDNN off, ATEN_CPU_CAPABILITY=default, MKL_CBWR=COMPATIBLE, MKL_ENABLE_INSTRUCTIONS=AVX2, "
     "ONEDNN_MAX_CPU_ISA=AVX2", PORTABLE_ENV | AVX2_CAPS, False, "native", True),
    ("oneDNN off, ATEN_CPU_CAPABILITY=avx2, MKL_CBWR=COMPATIBLE", PORTABLE_ENV | ATEN_AVX2, False, "native", True),
    ("oneDNN off, ATEN_CPU_CAPABILITY=avx2, MKL_CBWR=AVX2", ATEN_AVX2 | {"MKL_CBWR": "AVX2"}, False, "native",
     True),
    ("oneDNN off, ATEN_CPU_CAPABILITY=avx2 (no MKL pin)", ATEN_AVX2, False, "native", True),
    ("oneDNN off, ATEN_CPU_CAPABILITY=default (no MKL pin)", {"ATEN_CPU_CAPABILITY": "default"}, False, "native",
     True),
    ("oneDNN and NNPACK off, ATEN_CPU_CAPABILITY=default, MKL_CBWR=COMPATIBLE", PORTABLE_ENV, False, "native",
     False),
    ("kernels: portable (params.yaml)", {}, True, "portable", True),
]
PORTABLE = SETTINGS[2][0]  # the reference record's portable pins (NNPACK on)
PORTABLE_PINS = SETTINGS[-2][0]  # what `kernels: portable` sets: those three pins and NNPACK off
STAGE = ("import runpy, sys, torch\nsys.path.insert(0, 'stages')\ntorch.backends.mkldnn.enabled = {onednn}\n"
         "torch.backends.nnpack.set_flags({nnpack})\n"
         "sys.argv = {argv!r}\nrunpy.run_path('stages/train.py', run_name='__main__')\n")


def slug(info: dict) -> str:
    """A file-name part for a CPU: vendor and family words of its model name, then its widest vector ISA."""
    words = [w for w in re.sub(r"\(.*?\)", " ", info["cpu"]).lower().split() if w.isalpha()][:2]
    isa = "avx512" if "avx512f" in info["isa"] else "avx2" if "avx2" in info["isa"] else "sse"
    return "-".join(words + [isa] + (["amx"] if "amx_tile" in info["isa"] else []))


def record_path(out: Path | None, prefix: str) -> Path:
    """``out``, or this CPU's record of kind ``prefix`` under reports/determinism/ (``<prefix>_<cpu slug>.json``)."""
    return out or FOLDER / f"{prefix}_{slug(cpu())}.json"


PORTABLE_PREAMBLE = """import json
from pdiff.core.kernels import apply_torch, set_environment
assert set_environment("portable") == "portable", "the portable pins exist only on x86-64"  # before torch loads
import torch
from pdiff.core.config import load_params
p = load_params("params.yaml")
apply_torch("portable")
torch.set_num_threads(p.threads)
"""


def portable_child(code: str) -> dict:
    """Run ``code`` in a child Python (in ROOT) after `PORTABLE_PREAMBLE` (the portable pins set before torch
    loads; ``json``, ``torch`` and params.yaml as ``p``, with its `threads`); -> the commit, this CPU and the JSON
    object the child printed on its last line."""
    done = run([sys.executable, "-c", PORTABLE_PREAMBLE + code], ROOT, env=subprocess_env() | PORTABLE_ENV)
    return {"commit": run(["git", "rev-parse", "HEAD"], ROOT).stdout.strip(), **cpu(),
            **json.loads(done.stdout.strip().splitlines()[-1])}


def md5s(record: dict) -> dict[str, str]:
    """{setting name: base.pt MD5 (or its prefix)} of a record: this tool's format or the reference's."""
    if "settings" in record:
        return {row["name"]: row["base_md5"] for row in record["settings"]}
    return {name: value.split()[0] for name, value in record.get("train_stage_base_pt_md5", {}).items()}


def agreement(mine: dict[str, str], other: dict[str, str]) -> dict[str, bool]:
    """For each setting both records ran: whether the MD5s agree (a 12-digit prefix counts as the whole)."""
    return {name: md5.startswith(other[name]) or other[name].startswith(md5)
            for name, md5 in mine.items() if name in other}


PROFILE = """import json, sys, time
sys.path.insert(0, "stages")
import _bootstrap  # noqa: F401  (the kernel setting of params.yaml, before torch)
import torch
from torch.profiler import ProfilerActivity, profile
from pdiff.core.config import load_params
from pdiff.core.kernels import apply_torch
from tools import model_steps as ms
p = load_params("params.yaml")
apply_torch(p.kernels)
torch.set_num_threads(p.threads)
latent = ms.latent_shape(p)
phases = {{}}
for name in ms.PHASES:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    step = ms.make(name, p, gen, latent)
    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range({steps}):
            step()
        seconds = (time.perf_counter() - t0) / {steps}
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    phases[name] = {{"seconds_per_step": round(seconds, 5), "ops": [
        {{"name": e.key, "share": round(e.self_cpu_time_total / total, 3)}} for e in events[:8]]}}
print(json.dumps(phases))
"""


def profile_steps(out_path: Path, steps: int = 20) -> dict:
    """Where the time of each default model's step goes (`tools.model_steps`: a training step of the base model,
    the AE and the latent UNet, and one denoiser call of sampling) under native and portable kernels: the seconds
    per step, the portable / native ratio, and the 8 ops with the most self CPU time as shares of the step
    (torch.profiler)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pdiff-profile-") as tmp:
        repo = Path(tmp) / "repo"
        commit = clone_head(repo)
        params = (repo / "params.yaml").read_text()
        for kernels in ("native", "portable"):
            (repo / "params.yaml").write_text(with_setting(params, kernels))
            done = run([sys.executable, "-c", PROFILE.format(steps=steps)], repo)
            rows.append({"kernels": kernels, "phases": json.loads(done.stdout.strip().splitlines()[-1])})
            took = ", ".join(f"{n} {r['seconds_per_step']}" for n, r in rows[-1]["phases"].items())
            print(f"kernel_pins: profile, kernels {kernels}: s per step {took}", flush=True)
    native, portable = (r["phases"] for r in rows)
    ratio = {n: round(portable[n]["seconds_per_step"] / native[n]["seconds_per_step"], 2) for n in native}
    out = {"commit": commit, "machine": machine() | cpu(), "what": f"{steps} steps of each default model "
           "(tools.model_steps: base, AE and latent UNet training steps, denoiser calls of sampling), random inputs",
           "settings": rows, "portable_over_native": ratio}
    save_json(out, out_path)
    return out


def pipeline_cost(out_path: Path) -> dict:
    """The default pipeline from scratch with kernels native, then portable, in fresh clones of HEAD: stage
    seconds, output hashes (`tools.verify.stage_outputs`) and the portable / native ratio per stage."""
    import yaml

    from pdiff.core.stage import read_timings, timing_folder
    from tools.verify import stage_outputs

    runs = {}
    for kernels in ("native", "portable"):
        with tempfile.TemporaryDirectory(prefix="pdiff-cost-") as tmp:
            repo = Path(tmp) / "repo"
            commit = clone_head(repo)
            params = repo / "params.yaml"
            params.write_text(with_setting(params.read_text(), kernels))
            t0 = time.perf_counter()
            run(["dvc", "repro"], repo)
            seconds = time.perf_counter() - t0
            runs[kernels] = {"seconds": round(seconds, 1), "stage_seconds": read_timings(timing_folder(repo)),
                             "outs": stage_outputs(yaml.safe_load((repo / "dvc.lock").read_text()))}
            print(f"kernel_pins: default pipeline, kernels {kernels}: {seconds:.0f} s", flush=True)
    native, portable = runs["native"], runs["portable"]
    out = {"commit": commit, "machine": machine() | cpu(), "runs": runs,
           "portable_over_native": round(portable["seconds"] / native["seconds"], 2),
           "stage_ratio": {s: round(portable["stage_seconds"][s] / t, 2)
                           for s, t in native["stage_seconds"].items() if t and s in portable["stage_seconds"]}}
    save_json(out, out_path)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="default: reports/determinism/kernel_pins_<cpu>.json "
                    "(pipeline_cost_<cpu>.json, profile_<cpu>.json)")
    ap.add_argument("--pipeline", action="store_true", help="the whole default pipeline, native then portable")
    ap.add_argument("--profile", action="store_true", help="where a training step's time goes, per setting")
    ap.add_argument("--profile-steps", type=int, default=20, help="--profile: training steps profiled per setting "
                    "(default 20, after 5 warm-up steps)")
    args = ap.parse_args(argv)
    if args.profile:
        return profile_steps(record_path(args.out, "profile"), args.profile_steps)
    if args.pipeline:
        return pipeline_cost(record_path(args.out, "pipeline_cost"))
    out_path = args.out or FOLDER / f"kernel_pins_{slug(cpu())}.json"
    with tempfile.TemporaryDirectory(prefix="pdiff-pins-") as tmp:
        repo = Path(tmp) / "repo"
        commit = clone_head(repo)
        params = (repo / "params.yaml").read_text()
        run(["dvc", "repro", "prepare"], repo)
        rows = []
        for name, env, onednn, kernels, nnpack in SETTINGS:
            (repo / "params.yaml").write_text(with_setting(params, kernels))
            t0 = time.perf_counter()
            script = STAGE.format(onednn=onednn, nnpack=nnpack, argv=stage_command("train", repo / "dvc.yaml")[1:])
            run([sys.executable, "-c", script], repo, env=subprocess_env() | env)
            seconds = time.perf_counter() - t0
            md5 = hashlib.md5((repo / "models/base.pt").read_bytes()).hexdigest()
            val = json.loads((repo / "metrics/train/metrics.json").read_text())["val_acc"]
            rows.append({"name": name, "env": env, "onednn": onednn, "nnpack": nnpack, "kernels": kernels,
                         "base_md5": md5,
                         "val_acc": val, "seconds": round(seconds, 1)})
            print(f"kernel_pins: {name}: base.pt {md5[:12]}, val acc {val}, {seconds:.1f} s", flush=True)
    mine = {row["name"]: row["base_md5"] for row in rows}
    others = {p.name: md5s(json.loads(p.read_text())) for p in sorted(FOLDER.glob("kernel_pins_*.json"))
              if p.resolve() != out_path.resolve()}
    native, portable = rows[0]["seconds"], rows[2]["seconds"]
    out = {"commit": commit, "machine": machine() | cpu(), "stage": "train (default params)", "settings": rows,
           "portable_over_native_s": round(portable / native, 2),
           "portable_invariant_to_avx2_caps": mine[PORTABLE] == mine[SETTINGS[3][0]],
           "params_portable_is_the_pins": mine[PORTABLE_PINS] == mine[SETTINGS[-1][0]],
           "agrees_with": {name: agreement(mine, other) for name, other in others.items()}}
    save_json(out, out_path)
    return out


if __name__ == "__main__":
    main()


def docs_table(load) -> str:
    """Markdown: the base model's MD5 (first 8 hex digits) per setting and CPU record, the bytes that every
    record shares in bold; for docs/pipeline.md through tools.doc_numbers (``load(path)``: a JSON file)."""
    records = {p.stem.removeprefix("kernel_pins_"): md5s(load(p.relative_to(ROOT).as_posix()))
               for p in sorted(FOLDER.glob("kernel_pins_*.json"))}
    lines = ["| setting | " + " | ".join(f"`{cpu_name}`" for cpu_name in records) + " |",
             "|---|" + "---|" * len(records)]
    for name, *_ in SETTINGS:
        cells = [rec.get(name, "")[:8] for rec in records.values()]
        shared = len(records) > 1 and all(cells) and len(set(cells)) == 1
        lines.append(f"| {name} | " + " | ".join(f"**{c}**" if shared else (c or "not run") for c in cells) + " |")
    return "\n".join(lines) + "\n"
