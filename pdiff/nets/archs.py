"""The paper's architectures (ResNet-18/50, ConvNeXt-T, ViT-Tiny) and two small models for whole-network
generation (MLP, LeNet), all as (nested) ``nn.Sequential`` modules.

Every builder is a function named after its `model.arch` value with the signature ``(in_channels, num_classes,
image_size, width)``; ``width`` sizes the small models (MLP, and the small CNN in `pdiff.nets.models`) and the
fixed architectures ignore it. The names themselves are listed once, in `pdiff.core.config.BUILTIN_ARCHS`.

Being Sequential all the way down to the block that holds a generated parameter lets `pdiff.analysis.evaluation`
run the part of the network before it once and cache it. The big models are torchvision's own modules
(same blocks, same initialisation) re-assembled into a Sequential; parameter names are torchvision's, so
its state dicts load as they are:

- ResNet: ``conv1, bn1, relu, maxpool, layer1..layer4`` (Sequentials of BasicBlock / Bottleneck),
  ``avgpool, flatten, fc``. For images of at most 64 px the stem is CIFAR's (3x3 conv, stride 1, no
  max-pool; `maxpool` is an Identity). ResNet-18's last two norm layers are ``layer4.1.bn1`` and
  ``layer4.1.bn2`` -> 2,048 generated values; ResNet-50's ``layer4.2.bn2`` and ``layer4.2.bn3`` -> 5,120.
- ConvNeXt-T: ``features`` (stem + 4 stages of CNBlocks + 3 downsamplers), ``avgpool``, ``classifier``
  (LayerNorm2d, Flatten, Linear); last two norm layers ``features.7.2.block.2`` and ``classifier.0``
  -> 3,072 values. The stem stays torchvision's 4x4 patchify (32 px -> 8 px).
- ViT-Tiny (hidden 192, 12 layers, 3 heads, MLP 768; patch 4 for images up to 64 px, else 16): torchvision's
  VisionTransformer takes the class token and position embedding inside its own forward, which a Sequential
  cannot express, so its patch projection, class token and position embedding live in one block `embed`:
  ``embed.conv_proj``, ``embed.class_token``, ``embed.pos_embedding`` are torchvision's ``conv_proj``,
  ``class_token``, ``encoder.pos_embedding`` (see `VIT_TORCHVISION_NAMES`); everything else keeps its name
  (``encoder.layers.encoder_layer_11.ln_2``, ``encoder.ln``, ``heads.head``). Last two norm layers
  ``encoder.layers.encoder_layer_11.ln_2`` and ``encoder.ln`` -> 768 values.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

CIFAR_STEM_MAX = 64  # images up to this size get the CIFAR stem (ResNet) / patch 4 (ViT)


def _resnet(factory, in_channels: int, num_classes: int, image_size: int) -> nn.Sequential:
    m = factory(num_classes=num_classes)
    if image_size <= CIFAR_STEM_MAX:
        m.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        m.maxpool = nn.Identity()
    elif in_channels != 3:
        m.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(m.conv1.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(OrderedDict([
        ("conv1", m.conv1), ("bn1", m.bn1), ("relu", m.relu), ("maxpool", m.maxpool),
        ("layer1", m.layer1), ("layer2", m.layer2), ("layer3", m.layer3), ("layer4", m.layer4),
        ("avgpool", m.avgpool), ("flatten", nn.Flatten(1)), ("fc", m.fc),
    ]))


def resnet18(in_channels: int, num_classes: int, image_size: int, width: int = 0) -> nn.Sequential:
    from torchvision.models import resnet18 as tv
    return _resnet(tv, in_channels, num_classes, image_size)


def resnet50(in_channels: int, num_classes: int, image_size: int, width: int = 0) -> nn.Sequential:
    from torchvision.models import resnet50 as tv
    return _resnet(tv, in_channels, num_classes, image_size)


def convnext_tiny(in_channels: int, num_classes: int, image_size: int, width: int = 0) -> nn.Sequential:
    from torchvision.models import convnext_tiny as tv

    m = tv(num_classes=num_classes)
    if in_channels != 3:
        old = m.features[0][0]
        m.features[0][0] = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride)
    return nn.Sequential(OrderedDict([("features", m.features), ("avgpool", m.avgpool),
                                      ("classifier", m.classifier)]))


class ViTEmbed(nn.Module):
    """Patch projection, class token and position embedding of torchvision's VisionTransformer:
    images [B, C, H, W] -> tokens [B, 1 + (H/p)(W/p), hidden]."""

    def __init__(self, conv_proj: nn.Conv2d, class_token: nn.Parameter, pos_embedding: nn.Parameter):
        super().__init__()
        self.conv_proj, self.class_token, self.pos_embedding = conv_proj, class_token, pos_embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.class_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embedding


class ClassToken(nn.Module):
    """The class token's output: tokens [B, N, hidden] -> [B, hidden]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


VIT_TORCHVISION_NAMES = {"embed.conv_proj.": "conv_proj.", "embed.class_token": "class_token",
                         "embed.pos_embedding": "encoder.pos_embedding"}


def vit_tiny(in_channels: int, num_classes: int, image_size: int, width: int = 0) -> nn.Sequential:
    from torchvision.models.vision_transformer import VisionTransformer

    patch = 4 if image_size <= CIFAR_STEM_MAX else 16
    if image_size % patch:
        from pdiff import PdiffError
        raise PdiffError(f"vit_tiny: image size {image_size} is not a multiple of the patch size {patch}.")
    m = VisionTransformer(image_size=image_size, patch_size=patch, num_layers=12, num_heads=3, hidden_dim=192,
                          mlp_dim=768, num_classes=num_classes)
    if in_channels != 3:
        m.conv_proj = nn.Conv2d(in_channels, 192, patch, stride=patch)
    return nn.Sequential(OrderedDict([
        ("embed", ViTEmbed(m.conv_proj, m.class_token, m.encoder.pos_embedding)),
        ("encoder", nn.Sequential(OrderedDict([("layers", m.encoder.layers), ("ln", m.encoder.ln)]))),
        ("cls", ClassToken()), ("heads", m.heads),
    ]))


def mlp(in_channels: int, num_classes: int, image_size: int, width: int = 32) -> nn.Sequential:
    """Two hidden layers of ``width`` units, no norm layers: meant for whole-network generation
    (``collect.params: ['*']``); 8x8 digits with width 32 -> 3,466 values."""
    d = in_channels * image_size * image_size
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten(1)), ("fc1", nn.Linear(d, width)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(width, width)), ("relu2", nn.ReLU()), ("fc3", nn.Linear(width, num_classes)),
    ]))


def lenet(in_channels: int, num_classes: int, image_size: int, width: int = 0) -> nn.Sequential:
    """LeNet-5 (6 and 16 5x5 convolutions, 120-84 head) with padding so any size >= 8 px works."""
    pad = 2 if image_size >= 28 else 2 + (28 - image_size) // 2
    side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, 6, 5, padding=pad)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten(1)), ("fc1", nn.Linear(16 * side * side, 120)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)), ("relu4", nn.ReLU()), ("fc3", nn.Linear(84, num_classes)),
    ]))


# architectures that profit from channels_last memory format on CUDA (convolutional ones)
