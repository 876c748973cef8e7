"""A memory-mapped store for [K, D] parameter vectors too large to hold in memory (``collect.storage: mmap``).

The file is a plain safetensors file (any safetensors reader opens it): an 8-byte little-endian header length,
a JSON header, then one float32 tensor ``params`` [K, D] in row-major order. The header's ``__metadata__``
holds ``format`` = ``pdiff-vectors`` and the selection's ``names``, ``shapes`` and ``steps`` as JSON strings,
so the artifact keeps the meaning of the torch one: one [K, D] array plus names and shapes. `load_vectors`
reads a vector file of either form (the torch one checked as `pdiff.core.artifacts` checks every artifact).

`VectorWriter` streams rows to a temporary file beside the target (plain writes, nothing mapped, so the
writer's memory is one row) and renames it into place only when all K rows are in. `open_vectors` checks the
header and the file's size before mapping it read-only; readers take rows or token slices from the map
(``store.rows[k, a:b]``), so only the pages they touch are read.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import torch

from pdiff.core.artifacts import ArtifactError, atomic_path, load_torch, numels

FORMAT = "pdiff-vectors"
_ALIGN = 8


def is_vector_store(path: str | Path) -> bool:
    """True when ``path`` starts like a safetensors file (a torch zip starts with ``PK``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 2 ** 31


def _header(k: int, d: int, names: list[str], shapes: list[list[int]], steps: list[int] | None) -> bytes:
    meta = {"format": FORMAT, "names": json.dumps(list(names)), "shapes": json.dumps([list(s) for s in shapes]),
            "steps": json.dumps(list(steps) if steps is not None else [])}
    head = {"__metadata__": meta, "params": {"dtype": "F32", "shape": [k, d], "data_offsets": [0, 4 * k * d]}}
    raw = json.dumps(head, separators=(",", ":")).encode()
    raw += b" " * ((-(8 + len(raw))) % _ALIGN)  # data starts 8-byte aligned (spaces are valid JSON padding)
    return struct.pack("<Q", len(raw)) + raw


class VectorWriter:
    """Write K rows of D float32 values one at a time; ``with VectorWriter(...) as w: w.append(row)``.
    The target appears (atomically) only when the block exits normally with exactly K rows written."""

    def __init__(self, path: str | Path, num_rows: int, names: list[str], shapes: list[list[int]],
                 steps: list[int] | None = None):
        self.path, self.num_rows = Path(path), int(num_rows)
        self.names, self.shapes, self.steps = list(names), [list(s) for s in shapes], steps
        self.dim = sum(numels(self.shapes))
        self.written = 0
        self._ctx = self._file = None

    def __enter__(self) -> VectorWriter:
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._file = open(tmp, "wb")
        self._file.write(_header(self.num_rows, self.dim, self.names, self.shapes, self.steps))
        return self

    def append(self, row: torch.Tensor | np.ndarray) -> None:
        arr = np.ascontiguousarray(row.detach().cpu().numpy() if isinstance(row, torch.Tensor) else row,
                                   dtype=np.float32).reshape(-1, self.dim)
        if self.written + len(arr) > self.num_rows:
            raise ArtifactError(f"{self.path}: more than the {self.num_rows} rows announced were written.")
        self._file.write(arr.tobytes())
        self.written += len(arr)

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._file.close()
        if exc_type is None and self.written != self.num_rows:
            exc = ArtifactError(f"{self.path}: {self.written} of {self.num_rows} rows were written; the file is "
                                "not kept.")
            self._ctx.__exit__(type(exc), exc, None)
            raise exc
        return bool(self._ctx.__exit__(exc_type, exc, tb))


class VectorStore:
    """A read-only map of a `VectorWriter` file: ``rows`` (numpy memmap [K, D] float32), ``names``,
    ``shapes``, ``steps``; ``tensor()`` is all of it as one torch tensor, mapped, not copied."""

    def __init__(self, path: Path, rows: np.ndarray, names: list[str], shapes: list[list[int]], steps: list[int]):
        self.path, self.rows, self.names, self.shapes, self.steps = path, rows, names, shapes, steps

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.rows.shape)

    def __len__(self) -> int:
        return self.rows.shape[0]

    def tensor(self) -> torch.Tensor:
        """[K, D] float32 over a copy-on-write map of the file: pages are read when touched and shared with the page
        cache (a whole network's snapshots are not copied into memory); writing to the tensor changes this
        process's pages only, never the file."""
        if self.rows.size == 0:
            return torch.from_numpy(np.array(self.rows))
        rows = np.memmap(self.path, dtype=np.float32, mode="c", offset=self.rows.offset, shape=self.rows.shape)
        return torch.from_numpy(rows)


def open_vectors(path: str | Path, produced_by: str) -> VectorStore:
    """Map a vector store read-only after checking its header and size; a clear `ArtifactError` naming the file
    and the stage that writes it when it is missing, truncated, corrupt or not a pdiff vector store."""
    path = Path(path)
    rerun = f"Run `dvc repro {produced_by}` to (re)create it."
    bad = f"{path} (written by the `{produced_by}` stage)"
    if not path.exists():
        raise ArtifactError(f"{path} is missing; it is written by the `{produced_by}` stage. {rerun}")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(size, 2 ** 31):
                raise ValueError(f"header length {n} exceeds the file's {size} bytes")
            head = json.loads(f.read(n))
        meta, entry = head["__metadata__"], head["params"]
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r} is not {FORMAT!r}")
        names, shapes, steps = (json.loads(meta[k]) for k in ("names", "shapes", "steps"))
        k, d = (int(v) for v in entry["shape"])
        begin, end = (int(v) for v in entry["data_offsets"])
        if entry["dtype"] != "F32" or begin != 0 or end != 4 * k * d:
            raise ValueError(f"tensor `params` is {entry['dtype']} {entry['shape']} at {entry['data_offsets']}")
    except Exception as exc:  # any parse failure is the same user-facing error
        raise ArtifactError(f"{bad} cannot be read: it is truncated, corrupt or not a pdiff vector store "
                            f"({type(exc).__name__}: {str(exc)[:160]}). {rerun}") from None
    expected = 8 + n + 4 * k * d
    if size != expected:
        raise ArtifactError(f"{bad} is truncated or corrupt: {size} bytes where a [{k}, {d}] float32 store needs "
                            f"{expected}. {rerun}")
    if len(names) != len(shapes) or sum(numels(shapes)) != d:
        raise ArtifactError(f"{bad}: {len(names)} names / {len(shapes)} shapes do not cover the {d} values of "
                            f"each row. {rerun}")
    rows = np.memmap(path, dtype=np.float32, mode="r", offset=8 + n, shape=(k, d)) if k * d else \
        np.zeros((k, d), np.float32)
    return VectorStore(path, rows, names, [list(s) for s in shapes], steps)


def load_vectors(path: str | Path, produced_by: str) -> dict:
    """Load a parameter-vector file of either form: ``params`` [M, D] float, ``names`` and ``shapes`` of the
    selection. A torch file is checked (`load_torch`, then the shapes); a memory-mapped store (``collect.storage:
    mmap``) is read into memory."""
    if is_vector_store(path):
        store = open_vectors(path, produced_by)
        return {"params": store.tensor(), "names": store.names, "shapes": store.shapes, "steps": store.steps}
    obj = load_torch(path, produced_by, required=("params", "names", "shapes"))
    params, names, shapes = obj["params"], obj["names"], obj["shapes"]
    if not isinstance(params, torch.Tensor) or params.dim() != 2 or not params.is_floating_point():
        shape = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
        raise ArtifactError(f"{path} (written by `{produced_by}`): `params` must be a float tensor [M, D], got "
                            f"{shape}.")
    d = sum(int(torch.Size(s).numel()) for s in shapes)
    if len(names) != len(shapes) or d != params.shape[1]:
        raise ArtifactError(f"{path} (written by `{produced_by}`): {len(names)} names / {len(shapes)} shapes "
                            f"covering {d} values do not match params of shape {tuple(params.shape)}.")
    return obj


def file_mb(path: str | Path) -> float:
    return round(os.path.getsize(path) / 2 ** 20, 1)
