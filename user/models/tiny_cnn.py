"""An example of your own architecture for p-diff: `model.arch: "user.models.tiny_cnn:build"`.

Any function (or nn.Module class) in a file under user/models/ works. pdiff calls it with the prepared dataset's
``in_channels``, ``num_classes`` and ``image_size`` (and ``width`` = `model.width`, because this signature
names it) and trains what it returns. Being an ``nn.Sequential`` of named blocks is optional; it lets
evaluation run the layers before the first generated parameter once per test batch instead of once per
generated model. The last two normalization layers (``norm3``, ``norm4``: 128 values at width 16) are what
`collect.params: auto` generates.
"""
from collections import OrderedDict

from torch import nn


def build(in_channels: int, num_classes: int, image_size: int, width: int = 16) -> nn.Module:
    """Three 3x3 convolutions with GroupNorm (max-pooling after the first two), global average pooling and a
    LayerNorm'd linear head."""
    w = width
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, w, 3, padding=1, bias=False)), ("norm1", nn.GroupNorm(4, w)),
        ("act1", nn.GELU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(w, 2 * w, 3, padding=1, bias=False)), ("norm2", nn.GroupNorm(4, 2 * w)),
        ("act2", nn.GELU()), ("pool2", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False)), ("norm3", nn.GroupNorm(4, 2 * w)),
        ("act3", nn.GELU()), ("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1)),
        ("norm4", nn.LayerNorm(2 * w)), ("head", nn.Linear(2 * w, num_classes)),
    ]))
