"""An example of your own architecture for p-diff: `model.arch: "user.tiny_cnn:build"`.

Any function (or nn.Module class) in a file under user/ works. pdiff calls it with the prepared dataset's
``in_channels``, ``num_classes`` and ``image_size`` (and ``width`` = `model.width`, because this signature
names it) and trains what it returns. Being an ``nn.Sequential`` of named blocks is optional; it lets
evaluation run the layers before the first generated parameter once per test batch instead of once per
generated model. The last two normalization layers (``norm2``, ``norm3``) are what `collect.params: auto`
generates.
"""
from collections import OrderedDict

from torch import nn


def build(in_channels: int, num_classes: int, image_size: int, width: int = 16) -> nn.Module:
    """Two 3x3 convolutions with GroupNorm, global average pooling and a LayerNorm'd linear head."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, width, 3, padding=1, bias=False)),
        ("norm1", nn.GroupNorm(4, width)), ("act1", nn.GELU()),
        ("conv2", nn.Conv2d(width, 2 * width, 3, padding=1, stride=2, bias=False)),
        ("norm2", nn.GroupNorm(4, 2 * width)), ("act2", nn.GELU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1)),
        ("norm3", nn.LayerNorm(2 * width)), ("head", nn.Linear(2 * width, num_classes)),
    ]))
