"""Atomic writes and safe, checked loading of every artifact the pipeline passes between stages.

Every file is written to a temporary name beside its target and renamed into place, so a killed
stage never leaves a truncated artifact. Every torch file is read with ``weights_only=True``: a
file that needs arbitrary unpickling is refused, its code never runs.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from pdiff import PdiffError


class ArtifactError(PdiffError):
    pass


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path in the target's folder; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def _torch_save(obj, tmp: Path) -> None:
    # Through a file object, torch names the records inside the zip "archive/..." instead of after the
    # (random) temp file's name, so equal contents give equal bytes and DVC sees an unchanged output.
    with open(tmp, "wb") as f:
        torch.save(obj, f)


def save_torch(obj, path: str | Path) -> Path:
    return write_atomic(path, lambda tmp: _torch_save(obj, tmp))


def save_json(obj, path: str | Path) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n"))


def save_text(text: str, path: str | Path) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def torch_load_safely(path: str | Path):
    """``torch.load(path, weights_only=True)`` on the CPU, without torch's warnings about pickle protocols."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def unsafe_load_reason(exc: BaseException) -> str:
    """Why a weights-only load failed, in a few words of our own.

    torch's message for a file that needs more than tensors and plain values opens with advice to retry with
    safety switched off; that advice must never reach a user (the file may run arbitrary code when
    unpickled), so only the diagnostic line (the refused global or opcode) is kept. Other errors keep their
    first sentence."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    if text.startswith("Weights only load failed"):
        lines = [ln.strip() for ln in text.splitlines()[1:] if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith(("Trying to load unsupported", "Unsupported"))), "")
        detail = detail.replace("Trying to load unsupported", "unsupported").rstrip(".")
        reason = "it holds objects that only arbitrary unpickling could build" + (f": {detail}" if detail else "")
    else:
        reason = text.splitlines()[0].split(". ")[0].rstrip(".")
        if len(reason) < 24:  # e.g. a bare KeyError '101' from a file that is not a zip archive at all
            reason = f"{type(exc).__name__}: {reason}"
    reason = re.sub(r"[^.]*weights_only[^.]*\.?", "", reason).strip() or type(exc).__name__
    return reason[:200]


def rerun_hint(stage: str = "", what: str = "to (re)create it") -> str:
    """The one sentence that tells a user how to rebuild what ``stage`` writes (the whole pipeline: no stage)."""
    return f"Run `dvc repro{' ' + stage if stage else ''}` {what}."


def load_torch(path: str | Path, produced_by: str, required: tuple[str, ...] = ()) -> dict:
    """Load a dict of tensors and plain values with ``weights_only=True``; clear errors otherwise."""
    path = Path(path)
    rerun = rerun_hint(produced_by)
    if not path.exists():
        raise ArtifactError(f"{path} is missing; it is written by the `{produced_by}` stage. {rerun}")
    try:
        obj = torch_load_safely(path)
    except Exception as exc:  # corrupt, truncated, or a pickle that needs code to run
        raise ArtifactError(f"{path} (written by the `{produced_by}` stage) cannot be read safely: it is "
                            f"truncated, corrupt or not a pdiff artifact ({unsafe_load_reason(exc)}). "
                            f"{rerun}") from None
    if not isinstance(obj, dict):
        raise ArtifactError(f"{path} (written by the `{produced_by}` stage) holds a {type(obj).__name__}, not "
                            f"the expected mapping. {rerun}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ArtifactError(f"{path} (written by the `{produced_by}` stage) lacks the entries {missing}. {rerun}")
    return obj


def numels(shapes: list[list[int]]) -> list[int]:
    """Number of values of each tensor shape (the split of a flat [D] vector file into its named tensors)."""
    return [int(torch.Size(s).numel()) for s in shapes]
