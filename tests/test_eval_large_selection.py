"""Prefix caching when the generated parameters cover whole blocks or the whole network (tokens generator
scale): the split must fall back (in front of the block; no prefix at all) and predictions must stay exactly
the naive path's."""
import pytest
import torch
from torch import nn

from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, split_at_selection
from pdiff.nets.selection import flatten, select


def _mini_resnet(c: int = 4):
    """ResNet-18's structure at tiny width: torchvision BasicBlocks (one with a downsample) in a nested
    Sequential with torchvision's names, as `pdiff.nets.models` builds ResNet-18."""
    from collections import OrderedDict

    from torchvision.models.resnet import BasicBlock

    torch.manual_seed(5)
    down = nn.Sequential(nn.Conv2d(c, 2 * c, 1, stride=2, bias=False), nn.BatchNorm2d(2 * c))
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, c, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(c)), ("relu", nn.ReLU()),
        ("layer3", nn.Sequential(BasicBlock(c, c), BasicBlock(c, c))),
        ("layer4", nn.Sequential(BasicBlock(c, 2 * c, 2, down), BasicBlock(2 * c, 2 * c))),
        ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1)), ("fc", nn.Linear(2 * c, 10))]))
    for m in model.modules():  # strong convolutions, a strong head, non-trivial BN statistics
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=2.0)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("selection, prefix_ends", [
    (["layer4.1.*"], "layer4.0.downsample.1.bias"),  # a whole block: split before it, its conv1 not cached
    (["layer4.*", "fc.*"], "layer3.1.bn2.bias"),  # whole stages and the head
    (["*"], None),                                 # the whole network: nothing can be cached
])
def test_whole_block_and_whole_network_selections_match_the_naive_path(selection, prefix_ends):
    model = _mini_resnet()
    names = select(model, selection)
    prefix, suffix = split_at_selection(model, names)
    pre = [n for n, _ in prefix.named_parameters()]
    assert (pre[-1] if pre else None) == prefix_ends and not set(pre) & set(names)
    if prefix_ends is None:
        assert isinstance(prefix, nn.Identity) and suffix is model
    base = flatten(model, names)
    torch.manual_seed(6)
    vectors = base + 3.0 * base.abs().mean() * torch.randn(3, base.numel())
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    naive = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=4, cache_prefix=False))
    for chunk in (1, 2):
        assert torch.equal(evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=4, chunk=chunk)),
                           naive)
    assert torch.equal(flatten(model, names), base)  # the model's own values are restored
    assert not naive.all()  # the perturbations really change predictions
