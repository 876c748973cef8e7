"""How the benchmarks measure (`bench`, `bench_tokens`, `kernel_pins`): the record of the machine the numbers were
taken on, and the wall time of a call (CUDA work finished before the clock stops)."""
from __future__ import annotations

import os
import platform
import time

import torch


def machine() -> dict:
    """The machine the numbers were taken on."""
    from pdiff.core.kernels import cpu

    info = {
        "cpu": cpu()["cpu"], "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):
        info["load_avg_1m_at_start"] = round(os.getloadavg()[0], 2)
    return info


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device="cpu", repeats: int = 1):
    """(best wall time in seconds over ``repeats`` calls, last result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best, out
