"""`make gpu-check` (tools/gpu_check.py): stops at once without CUDA; its shortened preset is a valid run."""
import shutil
import subprocess
import sys
import time

from pdiff.core.config import load_params
from tests.conftest import ROOT


def test_without_cuda_it_stops_at_once_with_a_clear_message(tmp_path):
    out = tmp_path / "gpu.json"
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "tools.gpu_check", "--out", str(out)], cwd=ROOT, capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "no CUDA device" in res.stderr and "make gpu-check" in res.stderr and not res.stdout
    assert not out.exists()
    assert time.perf_counter() - start < 120  # no data written, no stage run (import torch only)


def test_shortened_params_point_at_the_data_root_and_cuda_and_keep_the_papers_k_and_n(tmp_path):
    from tools import gpu_check

    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    gpu_check.write_shortened_params(params, tmp_path / "raw")
    p = load_params(params)
    assert (p.data.name, p.model.arch, p.device, p.data.root) == ("cifar100", "resnet18", "cuda", str(tmp_path / "raw"))
    assert (p.train.epochs, p.conv_ae.train_ae.steps, p.conv_ae.train_ldm.steps) == (3, 3000, 3000)
    assert p.collect.num_snapshots == 200 and p.generate.num_models == 100  # the paper's K and N are kept
    stages = __import__("yaml").safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(gpu_check.STAGES) == {name for name, stage in stages.items() if "foreach" not in stage}  # default


def test_tokens_timing_runs_the_bench_children_on_the_given_device():
    """The tokenized generator's timing that gpu-check adds (on CUDA, a whole ResNet-18), here on the CPU at a
    small D: both sequence models timed in their own processes, steps/s the inverse of s/step."""
    from tools import gpu_check

    row = gpu_check.tokens_timing(device="cpu", dim=4096, steps=2)
    assert row["dim"] == 4096 and row["tokens"] == 4  # 4 tensors of 1,024 values, token size 1,024
    for suffix in ("", "_gru"):
        per_step, per_s = row[f"s_per_step{suffix}"], row[f"steps_per_s{suffix}"]
        assert per_step > 0 and abs(per_s * per_step - 1) < 0.02, row
    assert "peak_gpu_mib" not in row  # only the CUDA allocator has a peak to report
