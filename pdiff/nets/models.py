"""Architectures. Every model is an ``nn.Sequential`` of named blocks, so the part of the network
before the first generated parameter can be run once and cached (see `pdiff.analysis.evaluation`)."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from pdiff import PdiffError
from pdiff.core.config import BUILTIN_ARCHS
from pdiff.nets import archs
from pdiff.nets.custom import build_custom, is_custom


class SmallCNN(nn.Sequential):
    """Three conv+BN blocks and a BN'd MLP head. Its last two norm layers (``bn3``: the last convolution's
    BatchNorm2d, ``bn4``: the head's BatchNorm1d) are the paper's default selection, placed late, as in
    ResNet-18, so the network after them is a small share of the compute. width=16 gives 192 values."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        w = width
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, w, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(w)),
            ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(w, 2 * w, 3, padding=1, bias=False)), ("bn2", nn.BatchNorm2d(2 * w)),
            ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False)), ("bn3", nn.BatchNorm2d(2 * w)),
            ("relu3", nn.ReLU()), ("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(2 * w, 4 * w, bias=False)), ("bn4", nn.BatchNorm1d(4 * w)), ("relu4", nn.ReLU()),
            ("fc2", nn.Linear(4 * w, num_classes)),
        ]))


def small_cnn(in_channels: int, num_classes: int, image_size: int, width: int = 16) -> nn.Sequential:
    return SmallCNN(in_channels, num_classes, width)


# name -> builder(in_channels, num_classes, image_size, width): every name the params schema allows
# (`BUILTIN_ARCHS`, the one list) is the builder function of that name, here or in pdiff/nets/archs.py
ARCHS = {name: small_cnn if name == "small_cnn" else getattr(archs, name) for name in BUILTIN_ARCHS}


def build_model(arch: str, in_channels: int, num_classes: int, image_size: int, width: int = 16) -> nn.Module:
    """A built-in architecture by name, or your own as 'module.path:function' (see `pdiff.nets.custom`)."""
    if is_custom(arch):
        return build_custom(arch, in_channels, num_classes, image_size, width)
    if arch not in ARCHS:
        raise PdiffError(f"params: `model.arch` = {arch!r} is unknown; choose one of: {', '.join(ARCHS)}, or name "
                         "your own as 'module.path:function'.")
    return ARCHS[arch](in_channels, num_classes, image_size, width)


def load_base_model(path: str) -> nn.Module:
    """Rebuild the base model from its checkpoint (architecture recorded beside the weights), in eval mode.
    Its ``pdiff_arch`` attribute holds the `model.arch` value it was built from (named in error messages), and
    ``pdiff_classes`` the classes it was trained on when `train.classes` chose some (None: all of them)."""
    from pdiff.core.artifacts import ArtifactError, load_torch, rerun_hint

    ckpt = load_torch(path, "train", required=("state_dict", "arch"))
    model = build_model(**ckpt["arch"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ArtifactError(f"{path} (written by the `train` stage) does not fit architecture {ckpt['arch']}: "
                            f"{str(exc).splitlines()[0]}. {rerun_hint('train')}") from None
    model.pdiff_arch = ckpt["arch"]["arch"]
    model.pdiff_classes = ckpt.get("classes")  # `train.classes` when it was trained on some classes only, else None
    return model.eval()
