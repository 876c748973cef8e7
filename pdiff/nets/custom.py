"""Your own architecture: ``model.arch: "module.path:function"``.

The module is imported from the repository root (``user/tiny_cnn.py`` is ``user.tiny_cnn``) and must live in
``user/``, the folder that dvc.yaml lists as a dependency of every stage that builds the model (train,
collect, evaluate, analyze): editing it reruns them. The function is called with keyword arguments
``in_channels``, ``num_classes`` and ``image_size`` (the prepared dataset's), plus ``width`` (``model.width``)
when its signature names a ``width`` parameter, and must return an ``nn.Module`` that maps images
[B, C, H, W] to logits [B, num_classes].

Any nn.Module works. An ``nn.Sequential`` (nested ones included) lets evaluation run the layers before the
first generated parameter once and reuse them for every candidate vector; other modules are evaluated with
full forward passes, with the same predictions.
"""
from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from pathlib import Path

from torch import nn

from pdiff import PdiffError

REPO_ROOT = Path(__file__).resolve().parents[2]
USER_DIR = "user"  # tracked by dvc.yaml for the model-building stages


class UntrackedCodeWarning(UserWarning):
    """The architecture's code lives outside the repository, so DVC cannot see it change."""


def is_custom(arch: str) -> bool:
    return ":" in arch


def _fail(arch: str, what: str) -> PdiffError:
    return PdiffError(f"params: `model.arch` = {arch!r}: {what}")


def _import(arch: str, module_name: str):
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(f"{missing}."):
            guess = Path(*module_name.split(".")).with_suffix(".py")
            raise _fail(arch, f"module `{module_name}` was not found. Modules are imported from the repository "
                        f"root, so this name means the file {guess}; put your model file in {USER_DIR}/ (e.g. "
                        f"{USER_DIR}/my_net.py is '{USER_DIR}.my_net:build').") from None
        raise _fail(arch, f"importing `{module_name}` failed because it imports `{missing}`, which cannot be "
                    f"found; install that package (and add it to requirements.txt) or fix the import.") from None


def _check_tracked(arch: str, module) -> None:
    file = getattr(module, "__file__", None)
    path = Path(file).resolve() if file else None
    installed = path is not None and bool({"site-packages", "dist-packages"} & set(path.parts))  # e.g. ./.venv
    if path is None or installed or not path.is_relative_to(REPO_ROOT):
        warnings.warn(f"`model.arch` = {arch!r} comes from {path or 'a module without a file'}, outside the "
                      "repository: DVC does not track it, so changing that code will not rerun any stage. Pin "
                      f"its version in requirements.txt, or copy the code into {USER_DIR}/.", UntrackedCodeWarning,
                      stacklevel=3)
        return
    rel = path.relative_to(REPO_ROOT)
    if not any(rel.is_relative_to(d) for d in (USER_DIR, "pdiff/nets")):  # code those stages depend on
        raise _fail(arch, f"{rel} is outside {USER_DIR}/, the folder dvc.yaml tracks for model code, so an edit "
                    f"to it would not rerun the stages that build the model; move the file into {USER_DIR}/.")


def build_custom(arch: str, in_channels: int, num_classes: int, image_size: int, width: int) -> nn.Module:
    module_name, _, function_name = arch.partition(":")
    module = _import(arch, module_name)
    _check_tracked(arch, module)
    if not hasattr(module, function_name):
        available = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                           and getattr(v, "__module__", None) == module.__name__)
        raise _fail(arch, f"module `{module_name}` ({getattr(module, '__file__', '?')}) has no attribute "
                    f"`{function_name}`; the functions and classes it defines are: {', '.join(available) or 'none'}.")
    function = getattr(module, function_name)
    if not callable(function):
        raise _fail(arch, f"`{module_name}.{function_name}` is a {type(function).__name__}, not a function or "
                    f"class; name one that builds the model, called as {function_name}(in_channels=..., "
                    "num_classes=..., image_size=...).")
    kwargs = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have no signature: just call
        signature = None
    if signature is not None:
        if "width" in signature.parameters:
            kwargs["width"] = width
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            raise _fail(arch, f"`{module_name}.{function_name}{signature}` cannot be called as "
                        f"{function_name}({', '.join(f'{k}=...' for k in kwargs)}) ({exc}); accept these keyword "
                        "arguments (width is optional).") from None
    model = function(**kwargs)
    if not isinstance(model, nn.Module):
        raise _fail(arch, f"`{module_name}.{function_name}(...)` returned a {type(model).__name__}, not a "
                    "torch.nn.Module; return the network itself.")
    return model
