"""Your own data, model code and starting weights are DVC dependencies: replacing the tensors file reruns
`prepare` (and everything after it), editing user/models/ or replacing the file in weights/ reruns `train`, and
editing your generator in user/generators/ does not."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pdiff.nets.models import build_model
from tests.conftest import make_tiny_repo, run

OWN = {
    "data": {"name": "tensors", "root": "data/raw/mine.npz", "val_size": 20},
    "model": {"arch": "user.models.tiny_cnn:build", "width": 4},
    "train": {"epochs": 0, "init": "weights/init.safetensors"},
}


def _write_data(path, seed):
    rng = np.random.default_rng(seed)
    np.savez(path, train_x=rng.integers(0, 256, (90, 8, 8), dtype=np.uint8), train_y=np.arange(90) % 3,
             test_x=rng.integers(0, 256, (30, 8, 8), dtype=np.uint8), test_y=np.arange(30) % 3)


def _write_weights(path, seed):
    torch.manual_seed(seed)
    model = build_model("user.models.tiny_cnn:build", in_channels=1, num_classes=3, image_size=8, width=4)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def _changed(repo) -> dict:
    """Stages of dvc.yaml (not .dvc files) that `dvc status` reports for `train` and what it depends on."""
    status = json.loads(run(["dvc", "status", "train", "--with-deps", "--json"], repo).stdout or "{}")
    return {k: v for k, v in status.items() if not k.endswith(".dvc")}


@pytest.mark.slow
def test_replacing_user_data_model_code_or_weights_reruns_what_reads_them(tmp_path):
    repo = make_tiny_repo(tmp_path / "repo", OWN)
    data, weights = repo / "data/raw/mine.npz", repo / "weights/init.safetensors"
    code = repo / "user/models/tiny_cnn.py"
    _write_data(data, 0)
    _write_weights(weights, 0)
    run("dvc add -q data/raw/mine.npz && git add data/raw/mine.npz.dvc weights", repo)
    assert run(["git", "check-ignore", "-q", "data/raw/mine.npz"], repo, check=False).returncode == 0
    out = run(["dvc", "repro", "train"], repo).stdout
    assert "Running stage 'prepare'" in out and "Running stage 'train'" in out
    assert _changed(repo) == {}

    _write_data(data, 1)  # new data under the same name
    changed = _changed(repo)
    assert set(changed) == {"prepare"}
    assert {"changed deps": {"data/raw/mine.npz": "modified"}} in changed["prepare"]
    out = run(["dvc", "repro", "train"], repo).stdout
    assert "Running stage 'prepare'" in out and "Running stage 'train'" in out

    original = code.read_text()
    code.write_text(original + "\n# an edit to the model code\n")
    assert set(_changed(repo)) == {"train"}
    code.write_text(original)
    generator = repo / "user/generators/lowrank.py"
    generator.write_text(generator.read_text() + "\n# an edit to generator code: the base model stays\n")
    assert _changed(repo) == {}

    _write_weights(weights, 1)  # other starting weights
    changed = _changed(repo)
    assert set(changed) == {"train"} and "weights" in json.dumps(changed)
