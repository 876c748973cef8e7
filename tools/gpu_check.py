"""`make gpu-check`: the cifar100-resnet18 preset, shortened, end to end on one CUDA GPU -> metrics/gpu.json.

    python -m tools.gpu_check [--keep DIR] [--out metrics/gpu.json]
    python -m tools.gpu_check --cpu-tiny --out /tmp/gpu.json   # the same steps on the CPU at tiny size

Without CUDA (and without --cpu-tiny) it stops at once (exit 2) with a message saying so. With CUDA it writes a
synthetic CIFAR-100 of the real size in the official on-disk format (tools/synthetic_cifar.py) into a temporary
data root, copies the pipeline into a temporary folder, applies the `cifar100-resnet18` preset there with the
shortened settings in SHORTENED (the workspace's params.yaml is not touched), runs every stage in order, and
records per-stage seconds, the peak GPU memory seen by nvidia-smi during each stage, training images/s, AE and
LDM steps/s and the accuracies. Then it times the tokenized generator (docs/tokens.md) on a whole ResNet-18
(D = 11.2 M, token batch 256, TOKENS_STEPS steps, with and without its GRU): steps/s and the CUDA allocator's
peak memory. Sized to finish within 8 minutes on one H100. Accuracies on synthetic images say nothing about
CIFAR-100; the check is for speed, memory and that the pipeline runs on a GPU.

``--cpu-tiny`` runs the same functions on the CPU, with or without a GPU, at a size that takes a minute or two on
2 cores (TINY_CPU: a few hundred synthetic images, one epoch, a handful of AE/LDM steps; the tokens timing at a
small D; no nvidia-smi polling, so peak_gpu_mib is null), and writes its JSON only to the --out it is given. The
tests run it (tests/test_entry_points_run.py); its numbers time nothing of interest.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STAGES = ("prepare", "train", "collect", "train_ae", "train_ldm", "generate", "evaluate", "analyze")
# What the check changes in the preset so that the whole pipeline fits in 8 minutes on one H100.
SHORTENED = {"train.epochs": 3, "conv_ae.train_ae.steps": 3000, "conv_ae.train_ldm.steps": 3000, "threads": 8}
# --cpu-tiny: on top of SHORTENED, the same preset (ResNet-18, the AE and UNet widths) cut to a few minutes on the
# CPU; TINY_IMAGES synthetic train / test images, the tokens generator timed at TINY_TOKENS (D, steps).
TINY_CPU = {"device": "cpu", "threads": 1, "data.val_size": 100, "train.epochs": 1, "collect.num_snapshots": 4,
            "collect.batch_size": 50, "conv_ae.train_ae.steps": 4, "conv_ae.train_ae.batch_size": 4,
            "conv_ae.train_ldm.steps": 4, "conv_ae.train_ldm.batch_size": 4, "conv_ae.train_ldm.timesteps": 20,
            "generate.num_models": 4, "evaluate.batch_size": 100, "baselines.average_k": 4,
            "baselines.decoded_num": 4}
TINY_IMAGES = (300, 100)
TINY_TOKENS = (4096, 2)
NO_CUDA = ("gpu-check: no CUDA device is visible to PyTorch (torch.cuda.is_available() is False), so there is "
           "nothing to check here. Run `make gpu-check` on a machine with an NVIDIA GPU and a CUDA build of "
           "PyTorch; the CPU pipeline is checked by `make test`.")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class MemoryPeak:
    """Polls nvidia-smi's memory.used (MiB, all processes on GPU 0) every ``every`` seconds in a thread."""

    def __init__(self, every: float = 0.5):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-i", "0"], capture_output=True, text=True, timeout=5).stdout
                self.peak = max(self.peak, int(out.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def settings(tiny: bool = False) -> dict:
    """What the check sets on top of the preset: SHORTENED on CUDA; with ``tiny`` also TINY_CPU."""
    return {"device": "cuda", **SHORTENED, **(TINY_CPU if tiny else {})}


def write_shortened_params(params: Path, data_root: Path, tiny: bool = False) -> None:
    """Apply the cifar100-resnet18 preset to ``params`` and shorten it (SHORTENED), reading data from ``data_root``
    on CUDA (``tiny``: TINY_CPU on top, on the CPU)."""
    from pdiff.core.config import load_params
    from tools.presets import apply, set_values

    apply("cifar100-resnet18", params)
    params.write_text(set_values(params.read_text(), {"data.root": str(data_root), **settings(tiny)}))
    load_params(params)


def prepare_workdir(work: Path, data_root: Path, tiny: bool = False) -> None:
    """Copy the pipeline into ``work``, write the synthetic CIFAR-100 (``tiny``: TINY_IMAGES images) and apply
    the shortened preset there."""
    from tools.synthetic_cifar import write
    from tools.workcopy import copy_files

    copy_files(work)
    write(data_root, True, *(TINY_IMAGES if tiny else ()))
    write_shortened_params(work / "params.yaml", data_root, tiny)


def run_stages(work: Path, gpu: bool = True) -> dict:
    """Run every stage in ``work``; {stage: {"seconds", "peak_gpu_mib"}} (``gpu`` False: no nvidia-smi polling,
    peak_gpu_mib None). Stops at the first failing stage."""
    from contextlib import nullcontext

    from pdiff.core.stage import read_timings, stage_command, timing_folder
    from tools.workcopy import run

    stages = {}
    for stage in STAGES:
        with MemoryPeak() if gpu else nullcontext() as mem:
            start = time.perf_counter()
            res = run(stage_command(stage, work / "dvc.yaml"), work, check=False)
            seconds = time.perf_counter() - start
        own = read_timings(timing_folder(work, exp=""))  # the stage's own timer, written by run_stage
        peak = mem.peak if gpu else None
        stages[stage] = {"seconds": round(seconds, 1), "stage_seconds": own.get(stage), "peak_gpu_mib": peak}
        print(f"{stage}: {seconds:.1f} s" + (f", peak GPU memory {peak} MiB" if gpu else ""), flush=True)
        if res.returncode != 0:
            raise SystemExit(f"gpu-check: stage `{stage}` failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return stages


TOKENS_STEPS = 50  # timed training steps of the tokenized generator (after one warm-up step)


def tokens_timing(device: str = "cuda", dim="resnet18", steps: int = TOKENS_STEPS) -> dict:
    """The tokenized generator's training speed on ``device`` at D = ``dim`` ('resnet18': every parameter of a
    ResNet-18; `tools.bench_tokens.measure`, each sequence model in its own process): s/step and steps/s without
    a sequence model and with the GRU, and the CUDA allocator's peak memory on CUDA."""
    from tools.bench_tokens import measure

    row = measure(dim, steps=steps, threads=8 if device == "cuda" else 1, sequences=("none", "gru"), device=device)
    for suffix in ("", "_gru"):
        row[f"steps_per_s{suffix}"] = round(1.0 / row[f"s_per_step{suffix}"], 2)
    return row


def summarize_run(work: Path, stages: dict, tiny: bool = False) -> dict:
    """metrics/gpu.json's content from the finished run in ``work`` (``tiny``: a --cpu-tiny run)."""
    import torch

    from pdiff.core.config import load_params
    from pdiff.data.prepare import PREPARED_FILE

    p = load_params(work / "params.yaml")
    prepared = torch.load(work / "data/prepared" / PREPARED_FILE, map_location="cpu", weights_only=True)
    n_train = len(prepared["train_y"])

    def rate(count: float, stage: str) -> float | None:
        s = stages[stage]["stage_seconds"] or stages[stage]["seconds"]
        return round(count / s, 1) if s else None

    evaluate = json.loads((work / "metrics/evaluate.json").read_text())
    novelty = json.loads((work / "metrics/novelty.json").read_text())
    peaks = [s["peak_gpu_mib"] for s in stages.values() if s["peak_gpu_mib"] is not None]
    return {
        "device": torch.cuda.get_device_name(0) if p.device == "cuda" else p.device,
        "preset": "cifar100-resnet18", "shortened": SHORTENED | (TINY_CPU if tiny else {}),
        "data": "synthetic CIFAR-100 (official file format)" + (f", {n_train:,} training images" if tiny else ""),
        "stages": stages, "total_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        "peak_gpu_mib": max(peaks) if peaks else None,
        "train_images_per_s": rate(n_train * p.train.epochs, "train"),
        "ae_steps_per_s": rate(p.conv_ae.train_ae.steps, "train_ae"),
        "ldm_steps_per_s": rate(p.conv_ae.train_ldm.steps, "train_ldm"),
        "accuracy": {m: {k: evaluate[m][k] for k in ("acc_mean", "acc_median", "acc_max", "acc_min")}
                     for m in ("original", "generated")},
        "novelty": {m: {"acc_median": r["acc_median"], "max_similarity_mean": r["max_similarity_mean"]}
                    for m, r in novelty.items() if m != "learned"},
        "learned": novelty.get("learned"),
        "note": "stage seconds include Python start-up; rates use the stage's own timer (loading included)",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="the JSON written (default metrics/gpu.json; --cpu-tiny needs one)")
    ap.add_argument("--keep", default=None, help="run in this folder and keep it (default: a temporary one)")
    ap.add_argument("--cpu-tiny", action="store_true",
                    help="the same steps on the CPU at tiny size (TINY_CPU), with or without CUDA; writes only --out")
    args = ap.parse_args(argv)
    if args.cpu_tiny and not args.out:
        ap.error("--cpu-tiny writes only where --out says (its numbers are no GPU record): give --out FILE")
    if not args.cpu_tiny and not cuda_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    from pdiff.core.artifacts import save_json

    tiny = args.cpu_tiny
    out = args.out or str(ROOT / "metrics/gpu.json")
    with tempfile.TemporaryDirectory(prefix="pdiff-gpu-check-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp) / "work"
        work.mkdir(parents=True, exist_ok=True)
        prepare_workdir(work, Path(tmp) / "raw", tiny)
        stages = run_stages(work, gpu=not tiny)
        result = summarize_run(work, stages, tiny)
    start = time.perf_counter()
    dim, steps = TINY_TOKENS if tiny else ("resnet18", TOKENS_STEPS)
    result["tokens"] = tokens_timing("cpu" if tiny else "cuda", dim, steps)
    result["tokens"]["seconds"] = round(time.perf_counter() - start, 1)
    print(f"gpu-check: tokens generator at D = {result['tokens']['dim']:,}: {result['tokens']['steps_per_s']} "
          f"steps/s (no sequence model), {result['tokens']['steps_per_s_gru']} (gru); peak "
          f"{result['tokens'].get('peak_gpu_mib')} MiB")
    save_json(result, out)
    print(f"gpu-check: {result['total_seconds']} s in all, peak {result['peak_gpu_mib']} MiB -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
