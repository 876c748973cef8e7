"""Failure modes: bad params, corrupt and hostile files, a stage killed mid-write, NaN losses, shape
mismatches, and determinism."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pdiff import PdiffError
from pdiff.base.training import LoopContext, collect_snapshots
from pdiff.core.artifacts import ArtifactError, load_torch, save_torch
from pdiff.core.config import CollectConfig
from pdiff.core.snapstore import load_vectors
from pdiff.core.stage import stage_command
from pdiff.core.tracking import Tracker, check_finite
from pdiff.nets.models import SmallCNN
from pdiff.nets.selection import select
from tests.conftest import ROOT, copy_repo, run, stage_env


def stage(repo: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(stage_command(name, repo / "dvc.yaml"), cwd=repo, env=stage_env(), capture_output=True,
                          text=True)


def assert_clean_error(res: subprocess.CompletedProcess, *fragments: str) -> None:
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    error_lines = [line for line in res.stderr.splitlines() if line.startswith("error in stage")]
    assert len(error_lines) == 1, res.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], (fragment, error_lines[0])


@pytest.fixture(scope="module")
def repo(tiny_repo, tmp_path_factory):
    """This module's private copy of the session's reproduced tiny repo: its tests overwrite artifacts."""
    return copy_repo(tiny_repo, tmp_path_factory.mktemp("reliability") / "repo")


def _set_params(repo: Path, **groups) -> str:
    path = repo / "params.yaml"
    original = path.read_text()
    params = yaml.safe_load(original)
    for group, values in groups.items():
        if isinstance(values, dict):
            params[group].update(values)
        else:
            params[group] = values
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return original


@pytest.mark.slow
def test_bad_params_stop_the_stage_with_one_line(repo):
    """One case through the real stage script (a check that needs the data: more snapshots than optimizer
    steps); that check and the schema's are tested in-process (test_training.py, test_config.py)."""
    groups, fragments = {"collect": {"num_snapshots": 100000}}, ["collect.num_snapshots", "100000", "exceeds"]
    original = _set_params(repo, **groups)
    try:
        res = stage(repo, "collect")
    finally:
        (repo / "params.yaml").write_text(original)
    assert_clean_error(res, *fragments)


@pytest.mark.slow
def test_truncated_and_garbage_artifacts_name_file_and_producer(repo, tmp_path):
    snaps = repo / "models/snapshots.pt"
    good = snaps.read_bytes()
    try:
        snaps.write_bytes(good[: len(good) // 2])
        assert_clean_error(stage(repo, "train_ae"), "models/snapshots.pt", "`collect`")
        snaps.write_bytes(b"this is not a checkpoint at all")
        assert_clean_error(stage(repo, "train_ae"), "models/snapshots.pt", "`collect`")
    finally:
        snaps.write_bytes(good)
    with pytest.raises(ArtifactError, match="missing"):
        load_torch(tmp_path / "nope.pt", "train")


class Payload:
    """Unpickling this runs `touch <marker>`; a safe loader must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_malicious_pickle_is_refused_and_never_runs(repo, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"params": Payload(marker), "names": [], "shapes": []}, evil)
    with pytest.raises(ArtifactError, match="cannot be read safely"):
        load_vectors(evil, "collect")
    assert not marker.exists()
    snaps = repo / "models/snapshots.pt"
    good = snaps.read_bytes()
    try:
        shutil.copy(evil, snaps)
        assert_clean_error(stage(repo, "train_ae"), "models/snapshots.pt")
    finally:
        snaps.write_bytes(good)
    assert not marker.exists()


@pytest.mark.slow
def test_generated_vectors_with_wrong_length_are_refused_with_both_shapes(repo):
    snaps = torch.load(repo / "models/snapshots.pt", weights_only=True)
    d = snaps["params"].shape[1]
    save_torch({"params": torch.zeros(3, d - 2), "names": snaps["names"][:1], "shapes": [[d - 2]]},
               repo / "models/generated.pt")
    try:
        assert_clean_error(stage(repo, "evaluate"), "models/generated.pt", f"length {d - 2}", f"length {d}")
    finally:
        (repo / "models/generated.pt").unlink()


@pytest.mark.slow
def test_nan_generated_vectors_are_counted_as_failed(repo):
    snaps = torch.load(repo / "models/snapshots.pt", weights_only=True)
    params = snaps["params"][:4].clone()
    params[1, 3] = float("nan")
    params[2, 0] = float("inf")
    save_torch({"params": params, "names": snaps["names"], "shapes": snaps["shapes"]}, repo / "models/generated.pt")
    try:
        res = stage(repo, "evaluate")
        assert res.returncode == 0, res.stderr
        generated = json.loads((repo / "metrics/evaluate.json").read_text())["generated"]
        assert generated["count"] == 2 and generated["failed"] == 2
    finally:
        (repo / "models/generated.pt").unlink()


def test_nan_loss_stops_training_naming_step_and_value():
    with pytest.raises(PdiffError, match=r"nan at step 7"):
        check_finite(float("nan"), 7, "train_ae")
    model = SmallCNN(1, 10, 4)
    data = {"train_x": torch.randn(32, 1, 8, 8), "train_y": torch.randint(10, (32,))}
    data["train_x"][5] = float("nan")
    cfg = CollectConfig(num_snapshots=2, batch_size=32, epochs=2)
    with pytest.raises(PdiffError, match=r"collect: the loss became nan at step 1"):
        collect_snapshots(model, data, select(model, "auto"), cfg,
                          LoopContext("cpu", torch.Generator().manual_seed(0), Tracker(None)))


SLOW_SAVE = """
import runpy, sys, time, io, torch
real_save = torch.save
def slow_save(obj, f, *args, **kwargs):
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    data = buf.getvalue()
    for i in range(0, len(data), 4096):
        f.write(data[i:i + 4096]); f.flush(); time.sleep(0.01)
torch.save = slow_save
sys.argv = {argv!r}
sys.path.insert(0, "stages")
runpy.run_path("stages/prepare.py", run_name="__main__")
"""


@pytest.mark.slow
def test_sigkill_mid_write_leaves_no_truncated_artifact_and_repro_recovers(tiny_copy):
    repo = tiny_copy
    target = repo / "data/prepared/dataset.pt"
    target.unlink()  # as before a first run: the only file at the real name would be a complete one
    script = SLOW_SAVE.format(argv=stage_command("prepare", repo / "dvc.yaml")[1:])
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=repo, env=stage_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    partial = []
    while time.time() < deadline and not partial:
        partial = [p for p in (repo / "data/prepared").glob(".dataset.pt.*.tmp") if p.stat().st_size > 0]
        time.sleep(0.02)
    assert partial, "the stage never started writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()  # the only file at the real name would be a complete one
    run(["dvc", "repro", "prepare"], repo)
    data = torch.load(target, weights_only=True)
    assert data["train_x"].shape[0] > 0
    assert not list((repo / "data/prepared").glob("*.tmp"))


@pytest.mark.slow
def test_different_seed_gives_different_snapshots(repo, tmp_path):
    other = tmp_path / "seed1"
    shutil.copytree(repo, other)
    _set_params(other, seed=1)
    for name in ("prepare", "train", "collect"):
        assert stage(other, name).returncode == 0
    a = torch.load(repo / "models/snapshots.pt", weights_only=True)["params"]
    b = torch.load(other / "models/snapshots.pt", weights_only=True)["params"]
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_saving_equal_contents_twice_gives_identical_bytes(tmp_path):
    """Atomic saves go through random temp names; the bytes must not depend on them, or DVC would treat an
    unchanged output as changed and rerun everything downstream."""
    obj = {"params": torch.arange(12.0).reshape(3, 4), "names": ["a"], "shapes": [[4]]}
    save_torch(obj, tmp_path / "a.pt")
    save_torch(obj, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_stage_timing_is_written_as_json_under_the_run_or_the_experiment(tmp_path, monkeypatch):
    """run_stage writes each stage's seconds to a git-ignored JSON file (no tool parses log text); inside a DVC
    experiment (DVC_ROOT, DVC_EXP_NAME set by dvc) under exp/<name>/ of the workspace."""
    from pdiff.core.stage import TIMINGS_DIR, read_timings, run_stage, timing_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    run_stage("train", lambda: time.sleep(0.05))
    entry = json.loads((tmp_path / TIMINGS_DIR / "train.json").read_text())
    assert entry["stage"] == "train" and 0.05 <= entry["seconds"] < 5
    assert read_timings(timing_folder(tmp_path, exp=""), field="peak_rss_mb")["train"] > 10  # this process, MB
    workspace = tmp_path / "workspace"
    monkeypatch.setenv("DVC_ROOT", str(workspace))
    monkeypatch.setenv("DVC_EXP_NAME", "noise-off")
    run_stage("collect", lambda: None)
    assert set(read_timings(workspace / TIMINGS_DIR / "exp/noise-off")) == {"collect"}
    assert read_timings(timing_folder(tmp_path, exp=""), since=entry["finished_at"] + 1) == {}  # older runs' left out
    assert run(["git", "check-ignore", "-q", f"{TIMINGS_DIR}/train.json"], ROOT, check=False).returncode == 0


def test_a_child_records_its_own_peak_memory_not_its_parents():
    """Linux keeps ru_maxrss across fork and exec: a stage started by a larger process (dvc, a benchmark) would
    report that process's peak as its own. `peak_rss_mb` reads the process's own high-water mark instead."""
    import subprocess
    import sys

    import numpy as np

    from pdiff.core.stage import peak_rss_mb

    held = np.ones(64 * 2 ** 20)  # 512 MB written in this process
    mine = peak_rss_mb()
    code = "from pdiff.core.stage import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=ROOT).stdout)
    assert mine > 512 and held.sum() > 0
    assert 0 < child < 256, (child, mine)  # a bare Python with pdiff.core.stage: tens of MB
