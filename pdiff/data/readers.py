"""Real image datasets, read from ``data.root`` in each dataset's standard on-disk layout.

Layouts (the ones torchvision's downloaders write, so `data.download: true` fills them):

- ``mnist`` / ``fashion_mnist``: ``<root>/MNIST/raw`` / ``<root>/FashionMNIST/raw`` with the four idx files
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``), each raw or gzipped (``.gz``);
- ``cifar10``: ``<root>/cifar-10-batches-py/data_batch_1..5`` and ``test_batch`` (python pickles);
- ``cifar100``: ``<root>/cifar-100-python/train`` and ``test`` (python pickles, fine labels);
- ``stl10``: ``<root>/stl10_binary/{train,test}_{X,y}.bin`` (raw uint8, labels 1..10);
- ``imagefolder``: ``<root>/train/<class>/<image>`` and ``<root>/val/<class>/<image>`` (ImageNet style; any
  format PIL opens), resized (shorter side) and centre-cropped to ``data.image_size``.

Every loader returns the official train and test splits as uint8 tensors [N, C, H, W] and int64 labels.
torchvision does the reading where it accepts what we accept: its idx readers for MNIST / Fashion-MNIST (a
``.gz`` is unzipped to a temporary file first; the `MNIST` dataset class itself wants unzipped files and does
not say which file is bad), its `ImageFolder` (class folders, image loading) with `Resize` + `CenterCrop` for
imagefolder, and its downloaders for `data.download`. Two readers stay our own (docs/libraries.md):
CIFAR, because torchvision unpickles the batches with plain `pickle`, which can run code; here they go through
`SafeUnpickler`, which builds only plain containers, strings/bytes, numbers and numpy arrays and refuses
anything else; and STL-10, because torchvision's `STL10` md5-checks the files and refuses subset or re-packed
copies. Files are not md5-checked, so re-packed or subset copies are accepted (CIFAR warns when a split's
size is not the official one). Missing and corrupt files raise our own one-paragraph errors naming the path.
"""
from __future__ import annotations

import gzip
import importlib
import pickle
import shutil
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from pdiff import PdiffError


class DatasetWarning(UserWarning):
    """A dataset file is usable but not the official one (e.g. a re-packed or subset CIFAR batch)."""


# --------------------------------------------------------------------------------------------- errors

_FETCH = {
    "mnist": ("torchvision.datasets.MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion_mnist": ("torchvision.datasets.FashionMNIST",
                      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    "cifar10": ("torchvision.datasets.CIFAR10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("torchvision.datasets.CIFAR100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    "stl10": ("torchvision.datasets.STL10", "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"),
}


def missing_error(name: str, path: Path, root: str) -> PdiffError:
    """The error for a missing file: dataset, exact path, and how to fetch it."""
    if name == "imagefolder":
        how = (f"put the images there as `{root}/train/<class>/<image>` and `{root}/val/<class>/<image>` "
               f"(e.g. ImageNet's train/ and val/ folders, val sorted into class folders)")
    else:
        cls, url = _FETCH[name]
        extra = ", split='train'" if name == "stl10" else ""
        how = (f"set `data.download: true`, or run `python -c \"import torchvision; {cls}('{root}'{extra}, "
               f"download=True)\"`, or fetch {url} and unpack it under {root}")
    return PdiffError(f"dataset {name!r}: {path} is missing; {how}.")


def _need(name: str, path: Path, root: str) -> Path:
    if not path.exists():
        raise missing_error(name, path, root)
    return path


def _corrupt(name: str, path: Path, why: str) -> PdiffError:
    return PdiffError(f"dataset {name!r}: {path} is not a valid file ({why}); delete it and fetch it again.")


# --------------------------------------------------------------------------------------------- CIFAR

def _numpy_attr(module: str, name: str):
    # numpy 2 moved numpy.core to numpy._core; pickles written by either name the old or new module
    mod = module.replace("numpy.core", "numpy._core") if module.startswith("numpy.core") else module
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError):
        return getattr(importlib.import_module(module), name)


class SafeUnpickler(pickle.Unpickler):
    """Unpickles only plain containers, str/bytes, numbers and numpy arrays (of non-object dtype).

    Built-in containers and scalars need no global lookup; the only globals a pickled ndarray needs are the
    ones listed here (``_codecs.encode`` rebuilds bytes that Python 3 wrote with protocol 2). Any other
    global (a class, a function such as ``os.system``) is refused before anything runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("builtins", "bytearray"), ("__builtin__", "bytearray"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if module == "_codecs":
            import codecs
            return codecs.encode
        if name == "bytearray":
            return bytearray
        return _numpy_attr(module, name)


def safe_unpickle(path: Path, name: str):
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error, IndexError) as exc:
        raise _corrupt(name, path, f"not a plain-data pickle: {exc}") from None
    return obj


def _key(d: dict, *names: str):
    for n in names:
        for k in (n, n.encode()):
            if k in d:
                return d[k]
    return None


def _cifar_batch(path: Path, name: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    obj = safe_unpickle(path, name)
    if not isinstance(obj, dict):
        raise _corrupt(name, path, f"expected a dict, found {type(obj).__name__}")
    data, labels = _key(obj, "data"), _key(obj, label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise _corrupt(name, path, f"'data' must be a uint8 array [N, 3072], found {type(data).__name__} {shape}")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(data),):
        raise _corrupt(name, path, f"{len(labels)} '{label_key}' for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar(name: str, root: str, folder: str, train_files: list[str], test_files: list[str], label_key: str,
           n_train: int, n_test: int) -> dict:
    base = Path(root) / folder
    out = {}
    for split, files, official in (("train", train_files, n_train), ("test", test_files, n_test)):
        parts = [_cifar_batch(_need(name, base / f, root), name, label_key) for f in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        if len(x) != official:
            warnings.warn(f"dataset {name!r}: {split} split of {base} has {len(x)} images, not the official "
                          f"{official:,} (a re-packed or subset copy); using it as it is.",
                          DatasetWarning, stacklevel=2)
        out[f"{split}_x"], out[f"{split}_y"] = x, y
    return out


def load_cifar10(root: str) -> dict:
    return _cifar("cifar10", root, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                  "labels", 50000, 10000)


def load_cifar100(root: str) -> dict:
    return _cifar("cifar100", root, "cifar-100-python", ["train"], ["test"], "fine_labels", 50000, 10000)


# --------------------------------------------------------------------------------------------- MNIST idx

def read_idx(path: Path, name: str, images: bool) -> np.ndarray:
    """An idx file (raw or gzipped) read by torchvision's MNIST readers (``read_image_file`` /
    ``read_label_file``), which take only unzipped files: a ``.gz`` is unzipped into a temporary folder first.
    Any failure names the file."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    reader = read_image_file if images else read_label_file
    try:
        if path.suffix != ".gz":
            return reader(str(path)).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / path.stem
            with gzip.open(path, "rb") as src, open(raw, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return reader(str(raw)).numpy()
    except (OSError, EOFError, AssertionError, RuntimeError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise _corrupt(name, path, f"{type(exc).__name__}: {exc}" if str(exc) else "bad idx header") from None


def _idx_file(name: str, base: Path, stem: str, root: str) -> Path:
    for candidate in (base / stem, base / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise missing_error(name, base / stem, root)


def _mnist_like(name: str, root: str, folder: str) -> dict:
    base = Path(root) / folder / "raw"
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_idx_file(name, base, f"{prefix}-images-idx3-ubyte", root), name, images=True)
        y = read_idx(_idx_file(name, base, f"{prefix}-labels-idx1-ubyte", root), name, images=False)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise _corrupt(name, base, f"{split} images {x.shape} and labels {y.shape} do not match")
        out[f"{split}_x"], out[f"{split}_y"] = x[:, None], y.astype(np.int64)
    return out


def load_mnist(root: str) -> dict:
    return _mnist_like("mnist", root, "MNIST")


def load_fashion_mnist(root: str) -> dict:
    return _mnist_like("fashion_mnist", root, "FashionMNIST")


# --------------------------------------------------------------------------------------------- STL-10

def load_stl10(root: str) -> dict:
    """The labelled train (5,000) and test (8,000) splits; images are stored column-major, labels 1..10."""
    base = Path(root) / "stl10_binary"
    out = {}
    for split in ("train", "test"):
        xp, yp = _need("stl10", base / f"{split}_X.bin", root), _need("stl10", base / f"{split}_y.bin", root)
        x = np.fromfile(xp, dtype=np.uint8)
        y = np.fromfile(yp, dtype=np.uint8).astype(np.int64) - 1
        if x.size % (3 * 96 * 96) or x.size // (3 * 96 * 96) != len(y):
            raise _corrupt("stl10", xp, f"{x.size} bytes do not hold {len(y)} images of 3x96x96")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise _corrupt("stl10", yp, "labels must lie in 1..10")
        out[f"{split}_x"] = x.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
        out[f"{split}_y"] = y
    return out


# --------------------------------------------------------------------------------------------- image folder

def _image_folder(folder: Path, classes: list[str], image_size: int):
    """torchvision's ImageFolder over ``folder`` with the given classes (the ones of ``train/``, so ``val/``
    gets the same label numbers even when it lacks a class), images resized (shorter side, bilinear) and
    centre-cropped to ``image_size``, as uint8 [3, S, S] tensors."""
    from torchvision import datasets, transforms

    class FixedClasses(datasets.ImageFolder):
        def find_classes(self, directory):
            return classes, {c: i for i, c in enumerate(classes)}

    to_uint8 = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                                   transforms.PILToTensor()])
    return FixedClasses(str(folder), transform=to_uint8, allow_empty=True)


def load_imagefolder(root: str, image_size: int) -> dict:
    """``train/`` and ``val/`` folders of class folders; classes are the sorted folder names of ``train/``.
    ``val/`` is the reported (test) split, as ImageNet's val set is; our own validation split is carved out
    of ``train/`` by `pdiff.data.prepare`."""
    from torchvision.datasets.folder import find_classes
    from tqdm import tqdm

    base = Path(root)
    train_dir = _need("imagefolder", base / "train", root)
    val_dir = _need("imagefolder", base / "val", root)
    try:
        classes, _ = find_classes(str(train_dir))
    except FileNotFoundError:
        raise PdiffError(f"dataset 'imagefolder': {train_dir} has no class folders; expected "
                         f"{train_dir}/<class>/<image>.") from None
    out = {}
    for split, folder in (("train", train_dir), ("test", val_dir)):
        dataset = _image_folder(folder, classes, image_size)
        if not dataset.samples:
            raise PdiffError(f"dataset 'imagefolder': no images under {folder}/<class>/ for the classes of "
                             f"{train_dir} ({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}).")
        images = []
        for i in tqdm(range(len(dataset)), desc=f"imagefolder/{split}", unit="img", mininterval=1.0):
            try:
                images.append(dataset[i][0].numpy())
            except OSError as exc:
                why = str(exc).split(" <")[0]  # PIL appends the file object's repr
                raise PdiffError(f"dataset 'imagefolder': cannot read image {dataset.samples[i][0]}: {why}; "
                                 "delete or replace it.") from None
        out[f"{split}_x"], out[f"{split}_y"] = np.stack(images), np.asarray(dataset.targets, dtype=np.int64)
    return out | {"num_classes": len(classes)}


# --------------------------------------------------------------------------------------------- registry

def download(name: str, root: str) -> None:
    """Fetch ``name`` into ``root`` with torchvision's downloader (same layout the loaders read)."""
    import torchvision.datasets as tvd

    Path(root).mkdir(parents=True, exist_ok=True)
    try:
        if name == "stl10":
            tvd.STL10(root, split="train", download=True)
        else:
            getattr(tvd, {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10",
                          "cifar100": "CIFAR100"}[name])(root, train=True, download=True)
            if name in ("mnist", "fashion_mnist"):
                getattr(tvd, "MNIST" if name == "mnist" else "FashionMNIST")(root, train=False, download=True)
    except Exception as exc:  # network down, disk full, checksum mismatch
        raise PdiffError(f"dataset {name!r}: download into {root} failed ({str(exc).splitlines()[0][:200]}). "
                         f"Fetch {_FETCH[name][1]} by hand and unpack it under {root}.") from None


# name -> (loader(root, image_size), default augmentation, official train/test sizes for the docs)
REAL_DATASETS = {
    "mnist": (lambda root, size: load_mnist(root), "none"),
    "fashion_mnist": (lambda root, size: load_fashion_mnist(root), "none"),
    "cifar10": (lambda root, size: load_cifar10(root), "crop_flip"),
    "cifar100": (lambda root, size: load_cifar100(root), "crop_flip"),
    "stl10": (lambda root, size: load_stl10(root), "crop_flip"),
    "imagefolder": (load_imagefolder, "crop_flip"),
}


def load_real(name: str, root: str, image_size: int = 64, fetch: bool = False) -> dict:
    """Official splits of a real dataset as torch uint8 images and int64 labels, and its number of classes."""
    if fetch and name != "imagefolder":
        download(name, root)
    raw = REAL_DATASETS[name][0](root, image_size)
    classes = raw.pop("num_classes", 100 if name == "cifar100" else 10)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in raw.items()} | {"num_classes": classes}


__all__ = ["REAL_DATASETS", "SafeUnpickler", "load_real", "read_idx"]
