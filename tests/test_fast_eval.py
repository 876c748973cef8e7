"""Batched evaluation (cached prefix + vmapped suffix) against the naive full-model path."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, split_at_selection
from pdiff.nets.models import SmallCNN
from pdiff.nets.selection import flatten, last_norm_params, select


class Block(nn.Module):
    """A residual block (not a Sequential): the split must stop in front of it, never inside."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def tiny_resnet(c: int = 6, classes: int = 5) -> nn.Sequential:
    """ResNet-like nested Sequential with torchvision-style names (layer2.1.bn1.weight)."""
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, c, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(c)), ("relu", nn.ReLU()),
        ("layer1", nn.Sequential(Block(c), Block(c))), ("layer2", nn.Sequential(Block(c), Block(c), Block(c))),
        ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1)), ("fc", nn.Linear(c, classes))]))
    for m in model.modules():  # strong convolutions, non-trivial running statistics
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _perturbed(model, names, m, scale=0.5):
    base = flatten(model, names)
    return base + scale * base.abs().mean() * torch.randn(m, base.numel())


def _check_identical(model, names, vectors, x, y, chunks=(1, 3, None)):
    before = flatten(model, names)
    naive = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=16, cache_prefix=False))
    for chunk in chunks:
        fast = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=16, chunk=chunk))
        assert torch.equal(fast, naive), chunk
    assert torch.equal(flatten(model, names), before)
    return naive


def test_nested_split_stops_just_before_the_block_holding_the_selection():
    model = tiny_resnet()
    prefix, suffix = split_at_selection(model, ["layer2.1.bn1.weight", "layer2.1.bn1.bias"])
    pre = {n for n, _ in prefix.named_parameters()}
    suf = [n for n, _ in suffix.named_parameters()]
    assert "layer2.0.conv2.weight" in pre and "layer1.1.bn2.bias" in pre
    assert suf[0] == "layer2.1.conv1.weight" and "layer2.1.bn1.weight" in suf and "fc.bias" in suf
    assert not pre & set(suf)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(suffix(prefix(x)), model(x))


def test_selection_at_the_input_falls_back_to_the_full_model():
    model = tiny_resnet()
    prefix, suffix = split_at_selection(model, ["conv1.weight", "layer2.1.bn1.weight"])
    assert isinstance(prefix, nn.Identity) and suffix is model
    # Inside the first Sequential child, but at its very first block: split in front of layer1.
    prefix, suffix = split_at_selection(model, ["layer1.0.bn1.weight"])
    assert list(dict(prefix.named_children())) == ["conv1", "bn1", "relu"]


def test_batched_equals_naive_on_small_cnn():
    torch.manual_seed(1)
    model = SmallCNN(1, 10, 8).eval()
    names = select(model, "auto")
    vectors = _perturbed(model, names, 7)
    vectors[2, 3] = float("nan")
    x, y = torch.randn(40, 1, 12, 12), torch.randint(10, (40,))
    naive = _check_identical(model, names, vectors, x, y)
    assert not naive[2].any()
    assert naive.float().mean(1)[[0, 1, 3, 4, 5, 6]].std() > 0  # the vectors really differ


@pytest.mark.parametrize("selection", [["layer2.1.bn1.*", "layer2.1.bn2.*"], "auto",
                                       ["layer1.1.conv2.weight", "layer2.2.bn2.*"]])
def test_batched_equals_naive_on_nested_resnet_like_model(selection):
    model = tiny_resnet()
    names = last_norm_params(model) if selection == "auto" else select(model, selection)
    torch.manual_seed(2)
    vectors = _perturbed(model, names, 5, scale=4.0)
    x = torch.randn(24, 3, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels = the base model's predictions: perturbations show up as errors
    naive = _check_identical(model, names, vectors, x, y, chunks=(1, 2, None))
    assert not naive.all(1).all()


def test_vmap_failure_falls_back_to_one_vector_at_a_time():
    class NoVmap(nn.Module):
        def forward(self, x):
            return torch.from_numpy(x.numpy().copy())  # .numpy() cannot be vmapped

    torch.manual_seed(3)
    model = nn.Sequential(OrderedDict([("fc1", nn.Linear(4, 6)), ("bn", nn.BatchNorm1d(6)), ("odd", NoVmap()),
                                       ("fc2", nn.Linear(6, 3))])).eval()
    names = ["bn.weight", "bn.bias"]
    vectors = _perturbed(model, names, 4, scale=3.0)
    x, y = torch.randn(30, 4), torch.randint(3, (30,))
    with pytest.warns(RuntimeWarning, match="vmap failed"):
        fast = evaluate_vectors(model, names, vectors, x, y, EvalOptions(chunk=4))
    assert torch.equal(fast, evaluate_vectors(model, names, vectors, x, y, EvalOptions(cache_prefix=False)))


@pytest.mark.parametrize("selection, in_prefix, first_in_suffix", [
    ("auto", "layer4.1.conv1.weight", "layer4.1.bn1.weight"),                # the paper's last two BN layers
    (["layer4.0.bn1.*"], "layer4.0.downsample.0.weight", "layer4.0.bn1.weight"),  # a block with a downsample
    (["layer4.1.conv1.weight", "layer4.1.bn2.*"], "layer4.0.bn2.weight", "layer4.1.conv1.weight"),  # conv1 selected
])
def test_torchvision_basic_block_splits_after_its_conv1(selection, in_prefix, first_in_suffix):
    """ResNet-18 (torchvision blocks): conv1 and the shortcut of the block holding the selection run once in
    the prefix, unless conv1 itself is selected; predictions stay exactly the naive ones."""
    from pdiff.nets.models import build_model

    torch.manual_seed(4)
    model = build_model("resnet18", 3, 10, 8).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    names = last_norm_params(model) if selection == "auto" else select(model, selection)
    prefix, suffix = split_at_selection(model, names)
    pre, suf = {n for n, _ in prefix.named_parameters()}, [n for n, _ in suffix.named_parameters()]
    assert in_prefix in pre and suf[0] == first_in_suffix and not pre & set(names)
    x = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(suffix(prefix(x)), model(x))
        y = model(x).argmax(1)
    vectors = _perturbed(model, names, 4, scale=2.0)
    _check_identical(model, names, vectors, x, y, chunks=(1, 3))
