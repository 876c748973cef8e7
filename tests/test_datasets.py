"""Real-dataset loaders on tiny fake datasets written in each dataset's real on-disk format, and the
`prepare` stage on them."""
import gzip
import os
import pickle
import struct
import subprocess
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pdiff import PdiffError
from pdiff.base.batches import crop_flip
from pdiff.data.prepare import load_prepared, prepare
from pdiff.data.readers import DatasetWarning, load_real

RNG = np.random.default_rng(0)


def write_cifar(root, name="cifar10", per_batch=4, test=6):
    """CIFAR python batches as the originals are: protocol-2 pickles of dicts with bytes keys."""
    folder, files, key = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], b"labels"),
                          "cifar100": ("cifar-100-python", ["train"], b"fine_labels")}[name]
    classes = 10 if name == "cifar10" else 100
    base = root / folder
    base.mkdir(parents=True)
    out = {}
    for split, names, n in (("train", files, per_batch), ("test", ["test_batch" if name == "cifar10" else "test"],
                                                         test)):
        xs, ys = [], []
        for f in names:
            x = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
            y = [int(v) for v in RNG.integers(0, classes, n)]
            with open(base / f, "wb") as fh:
                pickle.dump({b"batch_label": b"fake", key: y, b"data": x, b"filenames": [b"a.png"] * n}, fh,
                            protocol=2)
            xs.append(x)
            ys += y
        out[split] = (np.concatenate(xs).reshape(-1, 3, 32, 32), np.array(ys))
    return out


def write_idx(path, arr, gz):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_mnist(root, folder="MNIST"):
    base = root / folder / "raw"
    base.mkdir(parents=True)
    out = {}
    for prefix, split, n, gz in (("train", "train", 12, True), ("t10k", "test", 5, False)):
        x = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = RNG.integers(0, 10, n).astype(np.uint8)
        write_idx(base / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx(base / f"{prefix}-labels-idx1-ubyte", y, gz)
        out[split] = (x, y)
    return out


def test_cifar10_batches_load_exactly(tmp_path):
    want = write_cifar(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = load_real("cifar10", str(tmp_path))
    for split in ("train", "test"):
        assert got[f"{split}_x"].dtype == torch.uint8 and got[f"{split}_x"].shape == (len(want[split][0]), 3, 32, 32)
        assert np.array_equal(got[f"{split}_x"].numpy(), want[split][0])
        assert np.array_equal(got[f"{split}_y"].numpy(), want[split][1])
    # a subset (re-packed) copy is accepted with a warning, not refused by an md5 check
    assert any(issubclass(w.category, DatasetWarning) and "20 images" in str(w.message) for w in caught)


def test_cifar100_uses_fine_labels(tmp_path):
    want = write_cifar(tmp_path, "cifar100", per_batch=7, test=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        got = load_real("cifar100", str(tmp_path))
    assert np.array_equal(got["train_y"].numpy(), want["train"][1]) and got["train_x"].shape[0] == 7


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_cifar_pickle_with_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    write_cifar(tmp_path)
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": []}, fh, protocol=2)
    with pytest.raises(PdiffError) as exc:
        load_real("cifar10", str(tmp_path))
    assert "data_batch_3" in str(exc.value) and "refused global posix.system" in str(exc.value)
    assert not (tmp_path / "PWNED").exists()


def test_mnist_idx_gz_and_raw(tmp_path):
    want = write_mnist(tmp_path)
    got = load_real("mnist", str(tmp_path))
    assert got["train_x"].shape == (12, 1, 28, 28) and got["test_x"].shape == (5, 1, 28, 28)
    assert np.array_equal(got["train_x"][:, 0].numpy(), want["train"][0])
    assert np.array_equal(got["test_y"].numpy(), want["test"][1].astype(np.int64))


def test_mnist_truncated_file_is_named(tmp_path):
    write_mnist(tmp_path, "FashionMNIST")
    path = tmp_path / "FashionMNIST/raw/t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PdiffError, match="t10k-images-idx3-ubyte"):
        load_real("fashion_mnist", str(tmp_path))


def test_stl10_binaries_column_major(tmp_path):
    base = tmp_path / "stl10_binary"
    base.mkdir()
    want = {}
    for split, n in (("train", 3), ("test", 2)):
        x = RNG.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        y = RNG.integers(1, 11, n).astype(np.uint8)
        x.transpose(0, 1, 3, 2).tofile(base / f"{split}_X.bin")  # STL-10 stores each channel column-major
        y.tofile(base / f"{split}_y.bin")
        want[split] = (x, y)
    got = load_real("stl10", str(tmp_path))
    assert np.array_equal(got["train_x"].numpy(), want["train"][0])
    assert np.array_equal(got["test_y"].numpy(), want["test"][1].astype(np.int64) - 1)


def write_imagefolder(root, size=(40, 30)):
    from PIL import Image

    for split, n in (("train", 3), ("val", 2)):
        for cls, colour in (("cat", (250, 0, 0)), ("dog", (0, 0, 250))):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", size, colour).save(root / split / cls / f"{i}.png")


def test_imagefolder_resizes_and_labels_by_folder(tmp_path):
    write_imagefolder(tmp_path)
    got = load_real("imagefolder", str(tmp_path), image_size=16)
    assert got["train_x"].shape == (6, 3, 16, 16) and got["test_x"].shape == (4, 3, 16, 16)
    assert got["train_y"].tolist() == [0, 0, 0, 1, 1, 1]
    assert int(got["train_x"][0, 0].min()) > 200 and int(got["train_x"][-1, 2].min()) > 200  # red cats, blue dogs


@pytest.mark.parametrize("name, expected", [
    ("cifar10", "cifar-10-batches-py/data_batch_1"), ("cifar100", "cifar-100-python/train"),
    ("mnist", "MNIST/raw/train-images-idx3-ubyte"), ("fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte"),
    ("stl10", "stl10_binary/train_X.bin"), ("imagefolder", "train"),
])
def test_missing_files_name_dataset_path_and_fetch_command(tmp_path, name, expected):
    with pytest.raises(PdiffError) as exc:
        load_real(name, str(tmp_path / "raw"))
    msg = str(exc.value)
    assert repr(name) in msg and str(tmp_path / "raw" / expected) in msg
    assert ("download=True" in msg and "data.download" in msg) if name != "imagefolder" else "train/<class>" in msg


def test_crop_flip_returns_shifted_or_flipped_crops():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) + 1
    out = crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for b in range(2):
        crops = [padded[b, :, i:i + 8, j:j + 8] for i in range(3) for j in range(3)]
        assert any(torch.equal(out[b], c) or torch.equal(out[b], c.flip(-1)) for c in crops)
    outs = {tuple(crop_flip(x, torch.Generator().manual_seed(s))[0, 0, :, 0].tolist()) for s in range(20)}
    assert len(outs) > 3  # really random


def test_prepare_keeps_uint8_and_standardizes_on_load(tmp_path):
    write_cifar(tmp_path / "raw")
    cfg = SimpleNamespace(name="cifar10", root=str(tmp_path / "raw"), image_size=64, download=False, augment="auto",
                          val_size=5, test_size=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        data = prepare(cfg, torch.Generator().manual_seed(0))
    assert data["train_x"].dtype == torch.uint8 and len(data["train_x"]) == 15 and len(data["val_x"]) == 5
    assert len(data["test_x"]) == 6 and data["augment"] == "crop_flip" and len(data["mean"]) == 3
    (tmp_path / "prep").mkdir()
    torch.save(data, tmp_path / "prep" / "dataset.pt")
    loaded = load_prepared(tmp_path / "prep")
    x = loaded["train_x"]
    assert x.dtype == torch.float32 and x.shape == (15, 3, 32, 32)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


@pytest.mark.slow
def test_prepare_and_train_stages_on_fake_mnist(tmp_path):
    """The real stage scripts on a fake MNIST (idx files): prepare, then one epoch of train."""
    from pdiff.core.stage import stage_command
    from tests.conftest import make_tiny_repo

    repo = make_tiny_repo(tmp_path / "repo", {"data": {"name": "mnist", "root": str(tmp_path / "raw"), "val_size": 4},
                                              "train": {"epochs": 1, "batch_size": 4}})
    env = dict(os.environ, PYTHONPATH="")
    res = subprocess.run(stage_command("prepare", repo / "dvc.yaml"), cwd=repo, capture_output=True, text=True,
                         env=env)
    assert res.returncode == 1 and "MNIST/raw/train-images-idx3-ubyte" in res.stderr and "Traceback" not in res.stderr
    assert not (repo / "data/prepared/dataset.pt").exists()  # nothing half-written
    write_mnist(tmp_path / "raw")
    out = {}
    for stage in ("prepare", "train"):
        res = subprocess.run(stage_command(stage, repo / "dvc.yaml"), cwd=repo, capture_output=True, text=True,
                             env=env)
        assert res.returncode == 0, res.stderr[-2000:]
        out[stage] = res.stdout
    assert "mnist: 8 train / 4 val / 5 test, 10 classes" in out["prepare"]
    assert "test acc" in out["train"] and (repo / "models/base.pt").exists()
    data = load_prepared(repo / "data/prepared")
    assert data["name"] == "mnist" and data["augment"] == "none" and data["train_x"].shape == (8, 1, 28, 28)


def test_mnist_broken_gz_and_header_are_named(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST/raw/train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(PdiffError, match=r"train-images-idx3-ubyte\.gz is not a valid file"):
        load_real("mnist", str(tmp_path))
    write_mnist(tmp_path / "b")
    (tmp_path / "b/MNIST/raw/t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(PdiffError, match="t10k-labels-idx1-ubyte is not a valid file"):
        load_real("mnist", str(tmp_path / "b"))


def test_imagefolder_val_keeps_train_labels_and_bad_images_are_named(tmp_path):
    write_imagefolder(tmp_path)
    for f in (tmp_path / "val/cat").iterdir():
        f.unlink()
    (tmp_path / "val/cat").rmdir()  # val/ lacks a class: dog must still be label 1
    assert load_real("imagefolder", str(tmp_path), image_size=8)["test_y"].tolist() == [1, 1]
    (tmp_path / "train/cat/broken.png").write_bytes(b"not a png")
    with pytest.raises(PdiffError, match=r"cannot read image .*broken\.png: cannot identify image file; delete"):
        load_real("imagefolder", str(tmp_path), image_size=8)
