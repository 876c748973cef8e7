"""Which CPU kernel switches change the default base model, and what pinning them costs -> one JSON file.

torch picks CPU kernels by instruction set in three places: ATen's vectorized kernels (``ATEN_CPU_CAPABILITY``),
oneDNN (on unless ``torch.backends.mkldnn.enabled = False``; ``ONEDNN_MAX_CPU_ISA``) and MKL (``MKL_CBWR``,
``MKL_ENABLE_INSTRUCTIONS``). This runs the default pipeline's `train` stage (15 epochs) in a fresh clone of HEAD
once per setting below, and records the MD5 of models/base.pt, its validation accuracy and the stage's seconds.
Two settings that give the same MD5 gave the same bytes. "portable" pins all three to what every x86-64 CPU
runs (ATen's default kernels, oneDNN off, MKL's compatible code path); "portable, AVX2 caps" adds the caps that
make MKL and oneDNN act as on an AVX2-only CPU: if the pins hold, they change nothing. One CPU type can show
only that much; that two CPU types agree under the pins needs both side by side (docs/pipeline.md, Determinism).

    python -m tools.kernel_pins [--out reports/determinism/kernel_pins.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from pdiff.core.artifacts import save_json
from tools.bench import machine
from tools.workcopy import clone_head, run, subprocess_env

PORTABLE = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
AVX2_CAPS = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SETTINGS = [  # (name, environment, oneDNN on)
    ("native", {}, True),
    ("AVX2 caps", {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", **AVX2_CAPS}, True),
    ("portable", PORTABLE, False),
    ("portable, AVX2 caps", PORTABLE | AVX2_CAPS, False),
    ("portable but ATen avx2", PORTABLE | {"ATEN_CPU_CAPABILITY": "avx2"}, False),
]
STAGE = ("import runpy, sys, torch\nsys.path.insert(0, 'stages')\ntorch.backends.mkldnn.enabled = {onednn}\n"
         "sys.argv = ['stages/train.py']\nrunpy.run_path('stages/train.py', run_name='__main__')\n")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/determinism/kernel_pins.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pdiff-pins-") as tmp:
        repo = Path(tmp) / "repo"
        commit = clone_head(repo)
        run(["dvc", "repro", "prepare"], repo)
        rows = []
        for name, env, onednn in SETTINGS:
            t0 = time.perf_counter()
            run([sys.executable, "-c", STAGE.format(onednn=onednn)], repo, env=subprocess_env() | env)
            seconds = time.perf_counter() - t0
            md5 = hashlib.md5((repo / "models/base.pt").read_bytes()).hexdigest()
            val = json.loads((repo / "metrics/train/metrics.json").read_text())["val_acc"]
            rows.append({"name": name, "env": env, "onednn": onednn, "base_md5": md5, "val_acc": val,
                         "seconds": round(seconds, 1)})
            print(f"kernel_pins: {name}: base.pt {md5[:12]}, val acc {val}, {seconds:.1f} s", flush=True)
    native, portable = rows[0]["seconds"], rows[2]["seconds"]
    out = {"commit": commit, "machine": machine(), "stage": "train (default params)", "settings": rows,
           "portable_over_native_s": round(portable / native, 2),
           "portable_invariant_to_avx2_caps": rows[2]["base_md5"] == rows[3]["base_md5"]}
    save_json(out, args.out)
    return out


if __name__ == "__main__":
    main()
