"""Starting weights (`train.init`, pdiff.nets.weights) and safe loading without torch's unsafe advice."""
import os

import pytest
import torch
from safetensors.torch import save_file

from pdiff import PdiffError
from pdiff.base.training import LoopContext, train_classifier
from pdiff.core.artifacts import ArtifactError, load_torch, save_torch
from pdiff.core.config import ConfigError, from_dict
from pdiff.core.tracking import Tracker
from pdiff.generative.ldm import load_latent_model
from pdiff.nets.models import build_model
from pdiff.nets.weights import check_init_path, load_init, read_state_dict

ARCH = dict(arch="small_cnn", in_channels=1, num_classes=10, image_size=8, width=4)


def _model(seed: int):
    torch.manual_seed(seed)
    return build_model(**ARCH)


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Payload:
    """A pickle that would run code when loaded: it must be refused, never executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@pytest.mark.parametrize("fmt", ["safetensors", "state_dict.pt", "checkpoint.pt", "ddp.pt"])
def test_state_dict_files_load_exactly(tmp_path, fmt):
    source = _model(1)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"init.{fmt.split('.')[-1]}"
    if fmt == "safetensors":
        save_file(state, str(path))
    elif fmt == "state_dict.pt":
        torch.save(state, path)
    elif fmt == "checkpoint.pt":  # e.g. a pdiff models/base.pt
        torch.save({"state_dict": state, "arch": ARCH, "val_acc": 90.0}, path)
    else:  # saved from a DistributedDataParallel wrapper
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    target = _model(2)
    assert not _same(source, target)
    load_init(target, path, "small_cnn")
    assert _same(source, target)


def test_missing_unexpected_and_mismatched_keys_are_named(tmp_path):
    state = dict(_model(1).state_dict())
    del state["bn3.weight"]
    state["extra.weight"] = torch.zeros(2)
    state["fc2.weight"] = torch.zeros(5, 16)
    path = tmp_path / "init.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(PdiffError) as exc:
        load_init(_model(2), path, "small_cnn")
    msg = str(exc.value)
    assert "train.init" in msg and str(path) in msg and "'small_cnn'" in msg and "\n" not in msg
    assert "1 missing keys (bn3.weight)" in msg and "1 unexpected keys (extra.weight)" in msg
    assert "1 shape mismatches (fc2.weight (5, 16) vs the model's (10, 16))" in msg


def test_unsafe_corrupt_and_non_state_dict_files_are_refused_in_our_own_words(tmp_path):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pt"
    torch.save({"w": Payload(str(marker))}, evil)
    good = tmp_path / "good.pt"
    torch.save(_model(1).state_dict(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    mixed = tmp_path / "mixed.pt"
    torch.save({"w": torch.zeros(2), "lr": 0.1}, mixed)
    for path, fragment in ((evil, "only arbitrary unpickling could build"), (truncated, "cannot be read safely"),
                           (garbage, "not a readable safetensors file"), (listed, "holds a list, not a state dict"),
                           (mixed, "entries ['lr'] are not tensors")):
        with pytest.raises(PdiffError) as exc:
            read_state_dict(path)
        msg = str(exc.value)
        assert fragment in msg and str(path) in msg and "train.init" in msg, msg
        assert "weights_only=False" not in msg and "weights_only` set to `False" not in msg, msg
    assert not marker.exists()


def test_init_must_lie_under_weights_and_exist(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.safetensors").write_bytes(b"x")
    assert check_init_path("weights/w.safetensors", tmp_path) == (tmp_path / "weights/w.safetensors").resolve()
    with pytest.raises(PdiffError, match=r"must lie under weights/"):
        check_init_path("models/base.pt", tmp_path)
    with pytest.raises(PdiffError, match=r"weights/nope.pt': no such file"):
        check_init_path("weights/nope.pt", tmp_path)


def test_epochs_zero_keeps_the_starting_weights_and_needs_them():
    with pytest.raises(ConfigError, match="train.init"):
        from_dict({"train": {"epochs": 0}})
    p = from_dict({"train": {"epochs": 0, "init": "weights/w.safetensors"}})
    model = _model(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(30, 1, 8, 8)
    data = {"train_x": x, "train_y": torch.randint(0, 10, (30,)), "val_x": x[:10], "val_y": torch.zeros(10).long()}
    result = train_classifier(model, data, p.train, LoopContext(torch.device("cpu"), torch.Generator(), Tracker(None)))
    assert result["steps"] == 0 and 0.0 <= result["val_acc"] <= 100.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_corrupt_artifact_error_does_not_pass_on_torchs_unsafe_advice(tmp_path):
    """A pipeline artifact that needs arbitrary unpickling (here a models/ae.pt) is refused without the advice to
    retry with weights_only=False."""
    ae = tmp_path / "ae.pt"
    torch.save({"state_dict": {}, "config": Payload(str(tmp_path / "code_ran"))}, ae)
    save_torch({"state_dict": {}}, tmp_path / "ldm.pt")
    with pytest.raises(ArtifactError) as exc:
        load_latent_model(str(ae), str(tmp_path / "ldm.pt"))
    msg = str(exc.value)
    assert "cannot be read safely" in msg and "dvc repro train_ae" in msg
    assert "weights_only" not in msg and "Re-running" not in msg and "trusted source" not in msg, msg
    assert not (tmp_path / "code_ran").exists()
    ae.write_bytes(b"\x80\x04garbage")  # corrupt bytes: torch's message is not passed on either
    with pytest.raises(ArtifactError) as exc:
        load_torch(ae, "train_ae")
    assert "weights_only" not in str(exc.value) and "cannot be read safely" in str(exc.value)
