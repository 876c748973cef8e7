"""Starting weights for the base model: ``train.init``, a state dict file under ``weights/``.

The file is read without running any code: ``.safetensors`` through safetensors, anything else through
``torch.load(weights_only=True)``. A plain state dict, or a checkpoint that holds one under ``state_dict``
(as models/base.pt does), is accepted; a ``module.`` prefix on every key (a DistributedDataParallel
checkpoint) is dropped. Loading is strict: every missing key, unexpected key and shape mismatch is named.
``weights/`` is a dependency of the `train` stage in dvc.yaml, so replacing the file reruns train and
everything after it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pdiff import PdiffError
from pdiff.core.artifacts import torch_load_safely, unsafe_load_reason

INIT_DIR = "weights"  # tracked by dvc.yaml as a dependency of `train`
SHOWN = 8  # names listed per kind of mismatch


def _fail(path, what: str) -> PdiffError:
    return PdiffError(f"params: `train.init` = '{path}': {what}")


def check_init_path(path: str | Path, root: str | Path = ".") -> Path:
    """The file, which must exist and lie under weights/ (what DVC tracks for `train`)."""
    path = Path(path)
    full = (Path(root) / path).resolve()
    if not full.is_relative_to((Path(root) / INIT_DIR).resolve()):
        raise _fail(path, f"starting weights must lie under {INIT_DIR}/, the folder dvc.yaml tracks as a "
                    f"dependency of `train` (elsewhere a changed file would not rerun it); copy the file there, "
                    f"or `dvc add` it there when it is large.")
    if not full.is_file():
        raise _fail(path, "no such file. Put your state dict there (.safetensors, or a torch file saved with "
                    "torch.save(model.state_dict(), path)).")
    return full


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Name -> tensor from a .safetensors file or a weights-only torch file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise _fail(path, f"not a readable safetensors file ({str(exc).splitlines()[0][:200]}).") from None
    else:
        try:
            state = torch_load_safely(path)
        except Exception as exc:  # corrupt, or a pickle that needs code to run: refused, never retried
            raise _fail(path, f"cannot be read safely ({unsafe_load_reason(exc)}). Starting weights are read "
                        "without running code: save them with safetensors.torch.save_file(model.state_dict(), "
                        "path) or torch.save(model.state_dict(), path).") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise _fail(path, f"holds a {type(state).__name__}{' (empty)' if not state else ''}, not a state dict "
                    "(parameter name -> tensor).")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise _fail(path, f"entries {not_tensors[:SHOWN]} are not tensors; a state dict maps parameter and "
                    "buffer names to tensors.")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def load_init(model: nn.Module, path: str | Path, arch: str = "") -> None:
    """Load the starting weights into ``model`` in place, refusing any key or shape that does not match."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs the model's {tuple(v.shape)}" for k, v in own.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_listed(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_listed(unexpected)})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches ({_listed(mismatched)})")
        raise _fail(path, f"does not fit `model.arch` = {arch!r}: {'; '.join(parts)}. The file must hold this "
                    f"architecture's state dict, key for key (the model has {len(own)} entries, the file "
                    f"{len(state)}); rename or drop entries in the file, or change `model.arch`.")
    model.load_state_dict(state)
