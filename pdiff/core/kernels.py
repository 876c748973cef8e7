"""The CPU kernel setting, params key ``kernels``: ``portable`` (the same bytes on any x86-64 CPU) or ``native``.

torch picks CPU kernels by instruction set or cache size in four places, and the last bits they round
differently add up over SGD epochs into other models and other metrics on another CPU type (docs/pipeline.md,
Determinism):

- ATen's vectorized kernels, chosen once per process from ``ATEN_CPU_CAPABILITY`` (default: the best the CPU
  has; ``default`` is the plain code every x86-64 CPU runs);
- MKL's BLAS, whose code path ``MKL_CBWR`` fixes (``COMPATIBLE``: the one every x86-64 CPU runs);
- oneDNN's convolutions, which have no such switch: ``portable`` turns oneDNN off
  (``torch.backends.mkldnn.enabled = False``);
- NNPACK's convolutions (a batch of 16 or more), which split the sum over input channels into blocks sized by
  the CPU's L1 cache (NNPACK's ``input_channels_block_max``): CPUs with other caches add in another order
  once a layer has more input channels than one block holds. ``portable`` turns NNPACK off
  (``torch.backends.nnpack.set_flags(False)``), so every convolution runs as im2col + MKL GEMM.

``portable`` is the four pins together. The environment variables must be set before torch runs its first
operation, so `set_environment` is called by ``stages/_bootstrap.py`` before a stage imports torch; the oneDNN
and NNPACK switches and a check that the pins took hold are in `apply_torch`, called by ``setup_torch``. On a
CPU that is not x86-64 the pins do not exist: the run says so in one line and goes on with native kernels.

This module imports no torch at its top, so that ``_bootstrap`` can call it first.
"""
from __future__ import annotations

import os
import platform
import re
import sys

from pdiff import PdiffError

SETTINGS = ("portable", "native")
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
_X86_64 = {"x86_64", "amd64"}
_in_effect: str | None = None  # the setting this process runs with, once set_environment has run


def supported(machine: str | None = None) -> bool:
    """Whether the portable pins exist on this processor (x86-64 only)."""
    return (machine or platform.machine()).lower() in _X86_64


def _check(setting: str) -> None:
    if setting not in SETTINGS:
        raise PdiffError(f"params: `kernels` = {setting!r} is not a kernel setting; use one of "
                         f"{', '.join(SETTINGS)} (docs/parameters.md).")


def set_environment(setting: str) -> str:
    """Set the environment variables of ``setting`` for this process and its children; returns the setting in
    effect (``native`` where portable cannot apply). Call it before torch is imported."""
    global _in_effect
    _check(setting)
    if setting == "portable" and not supported():
        print(f"kernels: portable pins exist only on x86-64, this CPU is {platform.machine()}: running with "
              "native kernels (results may differ in the last bits from the committed ones)", file=sys.stderr)
        setting = "native"
    if setting == "portable":
        os.environ.update(PORTABLE_ENV)
    _in_effect = setting
    return setting


def apply_torch(setting: str) -> str:
    """The torch side of ``setting`` (oneDNN and NNPACK off for portable), after `set_environment`; returns the
    setting in effect. Refuses to go on when ATen already runs other kernels than portable needs (torch ran before the
    environment was set), since the bytes would then silently be native ones."""
    import torch

    effective = _in_effect if _in_effect is not None else set_environment(setting)
    if effective == "portable":
        torch.backends.mkldnn.enabled = False
        torch.backends.nnpack.set_flags(False)
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != "DEFAULT":
            raise PdiffError(f"kernels: portable needs ATen's default kernels, but this process already runs "
                             f"{capability}: torch ran before ATEN_CPU_CAPABILITY was set. Run the stage "
                             "through stages/<stage>.py (it sets the pins first) or set ATEN_CPU_CAPABILITY="
                             "default MKL_CBWR=COMPATIBLE in the environment.")
    return effective


def from_params_file(path: str = "params.yaml") -> str:
    """The ``kernels`` value of a params file (``portable`` when the key is absent or the file is missing);
    a light read with no schema, for ``_bootstrap`` before anything heavy is imported."""
    import yaml

    try:
        with open(path) as f:
            params = yaml.safe_load(f) or {}
    except FileNotFoundError:
        return "portable"
    return str(params.get("kernels", "portable")) if isinstance(params, dict) else "portable"


def with_setting(params_text: str, setting: str) -> str:
    """``params_text`` (params.yaml, comments kept) with its top-level ``kernels`` set to ``setting``."""
    _check(setting)
    new, n = re.subn(r"(?m)^kernels: *\S+", f"kernels: {setting}", params_text, count=1)
    return new if n else f"kernels: {setting}\n{params_text}"


def record() -> dict:
    """What a results or timing file records of the kernels: the setting in effect, the CPU and its
    instruction-set extensions that matter to torch's kernel choice."""
    return {"kernels": _in_effect, **cpu()}


def cpu() -> dict:
    """{"cpu": model name, "isa": the AVX / AMX extensions torch chooses kernels by, "arch": the processor}."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
    return {"cpu": fields.get("model name") or platform.processor(), "isa": [f for f in wanted if f in flags],
            "arch": platform.machine()}
