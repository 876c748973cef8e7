"""Your own architecture: ``model.arch: "module.path:function"``.

The module is imported from the repository root (``user/models/tiny_cnn.py`` is ``user.models.tiny_cnn``) and
must live in ``user/models/``, the folder that dvc.yaml lists as a dependency of every stage that builds the
model (train, collect, evaluate, analyze, ...): editing it reruns them. The function is called with keyword arguments
``in_channels``, ``num_classes`` and ``image_size`` (the prepared dataset's), plus ``width`` (``model.width``)
when its signature names a ``width`` parameter, and must return an ``nn.Module`` that maps images
[B, C, H, W] to logits [B, num_classes].

Any nn.Module works. An ``nn.Sequential`` (nested ones included) lets evaluation run the layers before the
first generated parameter once and reuse them for every candidate vector; other modules are evaluated with
full forward passes, with the same predictions.
"""
from __future__ import annotations

import inspect

from torch import nn

from pdiff import PdiffError
from pdiff.core.plugins import USER_DIR, Plugin, UntrackedCodeWarning, import_object, is_import_path

__all__ = ["USER_DIR", "UntrackedCodeWarning", "build_custom", "is_custom"]

# the import itself (where the file may live, one-paragraph errors) is pdiff.core.plugins, shared with generators
ARCH = Plugin(key="model.arch", what="model", example=("my_net", "build"), stages="the stages that build the model",
              package="pdiff/nets", subdir="models")


def is_custom(arch: str) -> bool:
    return is_import_path(arch)


def _fail(arch: str, what: str) -> PdiffError:
    return PdiffError(f"params: `model.arch` = {arch!r}: {what}")


def build_custom(arch: str, in_channels: int, num_classes: int, image_size: int, width: int) -> nn.Module:
    module_name, _, function_name = arch.partition(":")
    function = import_object(ARCH, arch)
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
