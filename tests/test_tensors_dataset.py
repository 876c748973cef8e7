"""`data.name: tensors`: your own arrays in one .npz or .pt file (pdiff.data.tensors)."""
import os

import numpy as np
import pytest
import torch

from pdiff import PdiffError
from pdiff.core.config import from_dict
from pdiff.data.prepare import prepare, prepare_tensors, standardize


def _arrays(n_train=60, n_test=20, shape=(8, 8), dtype=np.uint8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    def images(n):
        return (rng.integers(0, 256, (n, *shape)) if dtype == np.uint8 else rng.normal(5, 3, (n, *shape))).astype(dtype)
    return {"train_x": images(n_train), "train_y": np.arange(n_train) % classes,
            "test_x": images(n_test), "test_y": np.arange(n_test) % classes}


def _npz(tmp_path, arrays, name="data.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_uint8_npz_holds_out_val_size_and_standardizes_on_load(tmp_path):
    path = _npz(tmp_path, _arrays())
    p = from_dict({"data": {"name": "tensors", "root": str(path), "val_size": 12}})
    data = prepare(p.data, torch.Generator().manual_seed(0))
    assert (len(data["train_x"]), len(data["val_x"]), len(data["test_x"])) == (48, 12, 20)
    assert data["train_x"].dtype == torch.uint8 and data["storage"] == "uint8"
    assert (data["num_classes"], data["in_channels"], data["image_size"]) == (3, 1, 8)
    assert data["augment"] == "none" and data["train_y"].dtype == torch.int64
    train = standardize(data["train_x"], data["mean"], data["std"])
    assert abs(train.mean().item()) < 1e-4 and abs(train.std().item() - 1) < 1e-2
    again = prepare(p.data, torch.Generator().manual_seed(0))  # seeded: same split
    assert torch.equal(again["val_y"], data["val_y"]) and torch.equal(again["val_x"], data["val_x"])


def test_float_pt_with_its_own_val_split_is_used_as_given(tmp_path):
    arrays = _arrays(shape=(3, 8, 8), dtype=np.float32)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    tensors["train_y"] = tensors["train_y"].double()  # whole-number floats are fine as labels
    tensors["val_x"], tensors["val_y"] = tensors["test_x"][:5].clone(), torch.tensor([0, 1, 2, 1, 0])
    path = tmp_path / "data.pt"
    torch.save(tensors, path)
    data = prepare_tensors(path, val_size=10_000, gen=torch.Generator())  # val_size unused when val is given
    assert (len(data["train_x"]), len(data["val_x"]), len(data["test_x"])) == (60, 5, 20)
    assert data["train_x"].dtype == torch.float32 and "storage" not in data
    assert data["in_channels"] == 3 and torch.equal(data["val_y"], torch.tensor([0, 1, 2, 1, 0]))
    per_channel = data["train_x"].transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(per_channel.std(1), torch.ones(3), atol=1e-2)


def _changed(**changes):
    arrays = _arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    return arrays


BAD = [
    (_changed(test_y=None), "test_y", "missing keys test_y"),
    (_changed(trian_x=np.zeros((2, 8, 8), np.uint8)), "trian_x", "unknown keys trian_x"),
    (_changed(val_x=np.zeros((4, 8, 8), np.uint8)), "val_x", "has val_x but not val_y"),
    (_changed(train_x=np.zeros((60, 64), np.uint8)), "train_x", "must be [N, H, W] or [N, C, H, W]"),
    (_changed(train_x=np.zeros((60, 8, 8, 3), np.uint8), test_x=np.zeros((20, 8, 8, 3), np.uint8)), "train_x",
     "channels-last"),
    (_changed(train_x=np.zeros((60, 8, 6), np.uint8)), "train_x", "must be square"),
    (_changed(test_x=np.zeros((20, 8, 8), np.int32)), "test_x", "must be uint8 (0..255) or float"),
    (_changed(test_x=np.full((20, 8, 8), np.nan, np.float32)), "test_x", "NaN"),
    (_changed(test_x=np.zeros((20, 8, 8), np.float32)), "test_x", "all as float"),
    (_changed(test_x=np.zeros((20, 2, 8, 8), np.uint8)), "test_x", "share channels and size"),
    (_changed(train_y=np.arange(60) % 3 + 0.5), "train_y", "non-integer labels"),
    (_changed(train_y=np.array(["a"] * 60)), "train_y", "labels integers"),
    (_changed(train_y=np.arange(60) % 3 == 0), "train_y", "labels must be integers"),
    (_changed(train_y=np.eye(3)[np.arange(60) % 3]), "train_y", "not one-hot"),
    (_changed(train_y=np.arange(59) % 3), "train_y", "59 labels for the 60 images"),
    (_changed(test_y=np.arange(20) % 3 - 1), "test_y", "negative labels"),
    (_changed(test_y=np.arange(20) % 5), "test_y", "holds label 4, but train_y's labels only go up to 2"),
    (_changed(train_y=np.zeros(60, np.int64)), "train_y", "single class"),
]


@pytest.mark.parametrize("arrays, key, fragment", BAD, ids=[b[2] for b in BAD])
def test_bad_contents_name_the_file_and_the_key(tmp_path, arrays, key, fragment):
    path = _npz(tmp_path, arrays)
    with pytest.raises(PdiffError) as exc:
        prepare_tensors(path, 10, torch.Generator())
    msg = str(exc.value)
    assert fragment in msg and str(path) in msg and key in msg and "\n" not in msg, msg


def test_bad_files_are_named_and_nothing_in_them_runs(tmp_path):
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    evil = tmp_path / "evil.pt"
    torch.save({"train_x": Payload()}, evil)
    objects = tmp_path / "objects.npz"
    np.savez(objects, **(_arrays() | {"train_y": np.array([{"label": 1}] * 60, dtype=object)}))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 truncated")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    (tmp_path / "folder").mkdir()
    cases = [(evil, "cannot be read safely"), (objects, "needs pickle"), (broken, "not a readable .npz"),
             (listed, "holds a list"), (tmp_path / "folder", "is a folder"), (tmp_path / "none.npz", "no such file"),
             (tmp_path / "data.csv", "unknown file type .csv")]
    (tmp_path / "data.csv").write_text("1,2\n")
    for path, fragment in cases:
        with pytest.raises(PdiffError) as exc:
            prepare_tensors(path, 10, torch.Generator())
        msg = str(exc.value)
        assert fragment in msg and str(path) in msg and "weights_only=False" not in msg, msg
    assert not marker.exists()


def test_val_size_too_large_is_named(tmp_path):
    with pytest.raises(PdiffError, match="data.val_size"):
        prepare_tensors(_npz(tmp_path, _arrays()), 60, torch.Generator())
