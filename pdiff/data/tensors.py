"""Your own data as arrays: ``data.name: tensors`` reads ``data.root`` as one ``.npz`` or ``.pt`` file.

The file holds ``train_x``, ``train_y``, ``test_x``, ``test_y`` and optionally ``val_x``, ``val_y`` (without
them, ``data.val_size`` seeded examples of train are held out for validation). Images are [N, H, W] (one
channel) or [N, C, H, W] with H == W, uint8 (0..255) or float; labels are integers 0..num_classes-1 (int
arrays, or floats that are whole numbers), with num_classes = the largest label + 1. A ``.pt`` file is read
with ``torch.load(weights_only=True)`` and an ``.npz`` with ``allow_pickle=False``: no code in the file ever
runs. Every problem is reported with the file and the key at fault.

`load_tensors` reads and checks the file; `pdiff.data.prepare.prepare_tensors` splits it and standardizes the
images per channel with the train split's mean and std. uint8 images stay uint8 on disk (standardized on load,
as the real datasets are); float images are stored standardized as float32.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from pdiff import PdiffError
from pdiff.core.artifacts import torch_load_safely, unsafe_load_reason

REQUIRED = ("train_x", "train_y", "test_x", "test_y")
OPTIONAL = ("val_x", "val_y")
SUFFIXES = (".npz", ".pt", ".pth")


def _fail(path, what: str) -> PdiffError:
    return PdiffError(f"dataset 'tensors': {path}: {what}")


def read_arrays(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's arrays as CPU tensors, keyed by name (no checks beyond readability)."""
    path = Path(path)
    if path.is_dir():
        raise _fail(path, "is a folder; `data.root` must name the .npz or .pt file itself when `data.name` is "
                    "tensors, e.g. data/raw/my_data.npz.")
    if not path.exists():
        raise _fail(path, "no such file; set `data.root` to your .npz or .pt file (see docs/own-model.md).")
    if path.suffix not in SUFFIXES:
        raise _fail(path, f"unknown file type {path.suffix or '(none)'}; use .npz (numpy.savez) or .pt "
                    "(torch.save of a dict of tensors).")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except ValueError as exc:  # object arrays need pickle, which stays off
            raise _fail(path, f"an array needs pickle to load ({str(exc).splitlines()[0]}); store plain numeric "
                        "arrays.") from None
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise _fail(path, f"not a readable .npz file ({str(exc).splitlines()[0][:200]}).") from None
        odd = {k: str(v.dtype) for k, v in arrays.items() if v.dtype.kind not in "biuf"}
        if odd:
            key, dtype = next(iter(odd.items()))
            raise _fail(path, f"key {key!r} has dtype {dtype}; images must be uint8 or float and labels integers.")
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    try:
        obj = torch_load_safely(path)
    except Exception as exc:  # corrupt, or a pickle that needs code to run: refused
        raise _fail(path, f"cannot be read safely ({unsafe_load_reason(exc)}); save a dict of tensors with "
                    "torch.save, or use .npz.") from None
    if not isinstance(obj, dict):
        raise _fail(path, f"holds a {type(obj).__name__}, not a dict of tensors keyed train_x, train_y, ...")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.ascontiguousarray(v))
        if not isinstance(v, torch.Tensor):
            raise _fail(path, f"key {k!r} holds a {type(v).__name__}, not a tensor.")
        out[str(k)] = v
    return out


def _check_keys(path, arrays: dict) -> None:
    missing = [k for k in REQUIRED if k not in arrays]
    unknown = sorted(k for k in arrays if k not in REQUIRED + OPTIONAL)
    if missing or unknown:
        found = ", ".join(sorted(arrays)) or "nothing"
        raise _fail(path, f"{'missing keys ' + ', '.join(missing) if missing else ''}"
                    f"{'; ' if missing and unknown else ''}{'unknown keys ' + ', '.join(unknown) if unknown else ''}"
                    f". Expected {', '.join(REQUIRED)} and optionally val_x, val_y; found {found}.")
    if ("val_x" in arrays) != ("val_y" in arrays):
        have, lack = ("val_x", "val_y") if "val_x" in arrays else ("val_y", "val_x")
        raise _fail(path, f"has {have} but not {lack}; give both, or neither (then `data.val_size` examples "
                    "of train are held out).")


def _images(path, key: str, x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise _fail(path, f"key {key!r} has dtype {x.dtype}; images must be uint8 (0..255) or float.")
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise _fail(path, f"key {key!r} has shape {tuple(x.shape)}; images must be [N, H, W] or [N, C, H, W].")
    n, c, h, w = x.shape
    if n == 0:
        raise _fail(path, f"key {key!r} holds no images.")
    if h != w:
        hint = (" It looks channels-last [N, H, W, C]; transpose it to [N, C, H, W] (numpy: x.transpose(0, 3, 1, 2))."
                if w in (1, 3, 4) and c not in (1, 3, 4) else " Crop or pad them to a square.")
        raise _fail(path, f"key {key!r} has images of {h}x{w} (shape {tuple(x.shape)}); they must be square, "
                    f"[N, C, H, W] with H == W.{hint}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise _fail(path, f"key {key!r} holds NaN or infinite values.")
    return x


def _labels(path, key: str, y: torch.Tensor, n: int, x_key: str) -> torch.Tensor:
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dim() != 1:
        raise _fail(path, f"key {key!r} has shape {tuple(y.shape)}; labels must be one integer per image, [N] "
                    "(not one-hot).")
    if y.dtype == torch.bool or y.is_complex() or not (y.is_floating_point() or y.dtype in (
            torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise _fail(path, f"key {key!r} has dtype {y.dtype}; labels must be integers.")
    if y.is_floating_point():
        if not torch.isfinite(y).all() or not torch.equal(y, y.round()):
            bad = y[~torch.isfinite(y) | (y != y.round())][:3].tolist()
            raise _fail(path, f"key {key!r} holds non-integer labels (e.g. {bad}); labels must be class indices "
                        "0..num_classes-1.")
    y = y.long()
    if len(y) != n:
        raise _fail(path, f"key {key!r} has {len(y)} labels for the {n} images of {x_key!r}.")
    if len(y) and int(y.min()) < 0:
        raise _fail(path, f"key {key!r} holds negative labels (smallest {int(y.min())}); labels must be class "
                    "indices 0..num_classes-1.")
    return y


def load_tensors(path: str | Path) -> dict:
    """The checked splits: uint8 or float32 images [N, C, H, W] and int64 labels, plus num_classes."""
    arrays = read_arrays(path)
    _check_keys(path, arrays)
    splits = ["train", "val", "test"] if "val_x" in arrays else ["train", "test"]
    out = {}
    for s in splits:
        x = _images(path, f"{s}_x", arrays[f"{s}_x"])
        out[f"{s}_x"], out[f"{s}_y"] = x, _labels(path, f"{s}_y", arrays[f"{s}_y"], len(x), f"{s}_x")
    ref = out["train_x"]
    for s in splits[1:]:
        x = out[f"{s}_x"]
        if x.shape[1:] != ref.shape[1:]:
            raise _fail(path, f"key '{s}_x' has images of shape {tuple(x.shape[1:])}, train_x of "
                        f"{tuple(ref.shape[1:])}; all splits must share channels and size.")
        if (x.dtype == torch.uint8) != (ref.dtype == torch.uint8):
            raise _fail(path, f"key '{s}_x' is {x.dtype} but train_x is {ref.dtype}; store all splits as uint8 or "
                        "all as float.")
    num_classes = int(out["train_y"].max()) + 1
    if num_classes < 2:
        raise _fail(path, "key 'train_y' holds a single class; a classifier needs at least two.")
    for s in splits[1:]:
        top = int(out[f"{s}_y"].max())
        if top >= num_classes:
            raise _fail(path, f"key '{s}_y' holds label {top}, but train_y's labels only go up to "
                        f"{num_classes - 1}; every class must appear in the training split.")
    return out | {"num_classes": num_classes}
