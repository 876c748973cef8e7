"""The CPU kernel setting (pdiff/core/kernels.py): portable pins set before torch runs, refused when too late,
native elsewhere than x86-64, recorded in every stage timing."""
import json
import subprocess
import sys

import pytest
import torch

from pdiff import PdiffError
from pdiff.core import kernels
from tests.conftest import ROOT

PROBE = ("import sys; sys.path.insert(0, {stages!r}); import _bootstrap, torch, json\n"
         "from pdiff.core.kernels import apply_torch\n"
         "print(json.dumps([apply_torch('native'), torch.backends.cpu.get_cpu_capability(),\n"
         "                  torch.backends.mkldnn.enabled, torch._C._get_nnpack_enabled()]))\n")


@pytest.mark.parametrize("setting", ["portable", "native"])
def test_bootstrap_applies_the_params_file_setting_before_torch_runs(tmp_path, setting):
    (tmp_path / "params.yaml").write_text(f"seed: 0\nkernels: {setting}\n")
    out = subprocess.run([sys.executable, "-c", PROBE.format(stages=str(ROOT / "stages"))], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    effective, capability, onednn, nnpack = json.loads(out)
    if not kernels.supported():
        assert effective == "native"
    elif setting == "portable":
        assert (effective, capability, onednn, nnpack) == ("portable", "DEFAULT", False, False)
    else:
        assert effective == "native" and onednn is True and nnpack is True


def test_portable_is_refused_once_torch_runs_other_kernels(monkeypatch):
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this CPU runs ATen's default kernels natively: nothing to refuse")
    monkeypatch.setattr(kernels, "_in_effect", "portable")
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", True)
    with pytest.raises(PdiffError, match="ATEN_CPU_CAPABILITY"):
        kernels.apply_torch("portable")


def test_portable_falls_back_to_native_off_x86_64_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(kernels.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(kernels, "_in_effect", None)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert kernels.set_environment("portable") == "native"
    assert "ATEN_CPU_CAPABILITY" not in kernels.os.environ
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "aarch64" in err and "native" in err


def test_an_unknown_setting_names_the_key(monkeypatch):
    monkeypatch.setattr(kernels, "_in_effect", None)
    with pytest.raises(PdiffError, match="`kernels` = 'fast'"):
        kernels.set_environment("fast")


def test_the_params_file_is_read_without_the_schema(tmp_path):
    (tmp_path / "p.yaml").write_text("kernels: native\n")
    assert kernels.from_params_file(str(tmp_path / "p.yaml")) == "native"
    assert kernels.from_params_file(str(tmp_path / "missing.yaml")) == "portable"


def test_stage_timings_record_the_setting_and_the_cpu(tmp_path, monkeypatch):
    from pdiff.core.stage import write_timing

    monkeypatch.setattr(kernels, "_in_effect", "native")
    write_timing("train", 1.5, tmp_path)
    entry = json.loads((tmp_path / "train.json").read_text())
    assert entry["kernels"] == "native" and entry["cpu"] and entry["arch"]
    assert isinstance(entry["isa"], list)


def test_results_files_read_the_setting_from_the_stage_timings(tmp_path, monkeypatch):
    """paper_scale and tasks_run record {"kernels", "cpu", "isa"} from the timings their stages wrote."""
    from pdiff.core.stage import read_kernels, write_timing

    monkeypatch.setattr(kernels, "_in_effect", "portable")
    write_timing("train", 1.0, tmp_path)
    write_timing("collect", 1.0, tmp_path)
    got = read_kernels(tmp_path)
    assert got["kernels"] == "portable" and got["cpu"] == kernels.cpu()["cpu"]
    monkeypatch.setattr(kernels, "_in_effect", "native")
    write_timing("evaluate", 1.0, tmp_path)
    assert read_kernels(tmp_path)["kernels"] == ["portable", "native"]
    assert read_kernels(tmp_path / "none") == {}


def test_with_setting_rewrites_only_the_top_level_key():
    text = "seed: 0\nkernels: portable  # a comment\ntokens:\n  kernels_like: 1\n"
    assert kernels.with_setting(text, "native") == "seed: 0\nkernels: native  # a comment\ntokens:\n  kernels_like: 1\n"
    assert kernels.with_setting("seed: 0\n", "native") == "kernels: native\nseed: 0\n"
    with pytest.raises(PdiffError, match="`kernels`"):
        kernels.with_setting(text, "fast")
