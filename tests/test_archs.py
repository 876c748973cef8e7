"""The paper's architectures: they build, run, select the paper's default parameters, keep torchvision's
parameter names, and train with the GPU path's helpers (CUDA-only checks are skipped without a GPU)."""
import pytest
import torch

from pdiff.base.batches import BatchLoss, autocast, is_convnet, use_bf16
from pdiff.core.artifacts import numels
from pdiff.nets.archs import VIT_TORCHVISION_NAMES
from pdiff.nets.models import build_model
from pdiff.nets.selection import select, shapes_of

# arch, in_channels, image_size, expected 'auto' selection, its number of values
CASES = [
    ("resnet18", 3, 32, ["layer4.1.bn1.weight", "layer4.1.bn1.bias", "layer4.1.bn2.weight", "layer4.1.bn2.bias"],
     2048),
    ("resnet50", 3, 32, ["layer4.2.bn2.weight", "layer4.2.bn2.bias", "layer4.2.bn3.weight", "layer4.2.bn3.bias"],
     5120),
    ("convnext_tiny", 3, 32, ["features.7.2.block.2.weight", "features.7.2.block.2.bias", "classifier.0.weight",
                              "classifier.0.bias"], 3072),
    ("vit_tiny", 3, 32, ["encoder.layers.encoder_layer_11.ln_2.weight", "encoder.layers.encoder_layer_11.ln_2.bias",
                         "encoder.ln.weight", "encoder.ln.bias"], 768),
]


@pytest.fixture(scope="module")
def models():
    """Built on the meta device: the full module structure and forward pass, with no memory or init cost."""
    with torch.device("meta"):
        return {arch: build_model(arch, c, 100, s) for arch, c, s, _, _ in CASES}


@pytest.mark.parametrize("arch, in_ch, size, names, d", CASES)
def test_builds_runs_and_selects_last_two_norm_layers(models, arch, in_ch, size, names, d):
    model = models[arch].eval()
    assert isinstance(model, torch.nn.Sequential)
    with torch.no_grad():
        assert model(torch.randn(2, in_ch, size, size, device="meta")).shape == (2, 100)
    chosen = select(model, "auto")
    assert chosen == names and sum(numels(shapes_of(model, chosen))) == d


@pytest.mark.parametrize("arch, tv_name", [("resnet18", "resnet18"), ("resnet50", "resnet50"),
                                           ("convnext_tiny", "convnext_tiny"), ("vit_tiny", None)])
def test_parameter_names_are_torchvision_names(models, arch, tv_name):
    import torchvision.models as tvm
    from torchvision.models.vision_transformer import VisionTransformer

    with torch.device("meta"):
        tv = getattr(tvm, tv_name)(num_classes=100) if tv_name else VisionTransformer(
            image_size=32, patch_size=4, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768, num_classes=100)
    ours = {}
    for name, t in models[arch].state_dict().items():
        for old, new in VIT_TORCHVISION_NAMES.items():
            name = name.replace(old, new) if name.startswith(old) else name
        ours[name] = tuple(t.shape)
    theirs = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    assert set(ours) == set(theirs)
    differing = {k for k in ours if ours[k] != theirs[k]}
    assert differing <= {"conv1.weight", "conv_proj.weight"}  # only the CIFAR stem / patch size differ
    if arch == "resnet18":
        tv_cifar = dict(tv.state_dict())
        tv_cifar["conv1.weight"] = torch.zeros(64, 3, 3, 3, device="meta")
        models[arch].load_state_dict(tv_cifar)  # a torchvision state dict loads as it is


def test_resnet_stems_follow_image_size():
    small = build_model("resnet18", 1, 10, 28).eval()
    with torch.device("meta"):
        big = build_model("resnet18", 3, 10, 96)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1) and small.conv1.in_channels == 1
    assert isinstance(small.maxpool, torch.nn.Identity)
    with torch.no_grad():
        assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)  # a real forward pass
    assert big.conv1.kernel_size == (7, 7) and isinstance(big.maxpool, torch.nn.MaxPool2d)
    assert big(torch.randn(1, 3, 96, 96, device="meta")).shape == (1, 10)


@pytest.mark.parametrize("arch, size, n", [("mlp", 8, 1 * 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10),
                                            ("lenet", 8, None),
                                            ("lenet", 28, 61706)])
def test_small_whole_network_models(arch, size, n):
    model = build_model(arch, 1, 10, size, width=32)
    assert model(torch.randn(3, 1, size, size)).shape == (3, 10)
    everything = select(model, ["*"])
    assert everything == [k for k, _ in model.named_parameters()]
    if n is not None:
        assert sum(numels(shapes_of(model, everything))) == n


def test_batch_loss_augments_and_trains():
    model = build_model("small_cnn", 3, 4, 16, width=8)
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 4, (16,))
    plain = BatchLoss(model, x, y, torch.device("cpu"), torch.Generator().manual_seed(0), None, "auto")
    aug = BatchLoss(model, x, y, torch.device("cpu"), torch.Generator().manual_seed(0), "crop_flip", "auto")
    assert not aug.channels_last  # CPU: fp32, default memory format
    model.eval()
    with torch.no_grad():
        assert plain(torch.arange(16)).item() == plain(torch.arange(16)).item()
        assert aug(torch.arange(16)).item() != plain(torch.arange(16)).item()  # augmentation is applied
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(25):
        loss = aug(torch.arange(16))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])


def test_precision_rules_on_cpu():
    cpu = torch.device("cpu")
    assert not use_bf16(cpu, "auto") and not use_bf16(cpu, "fp32") and use_bf16(cpu, "bf16")
    with autocast(cpu, "bf16"):
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16
    assert is_convnet(build_model("small_cnn", 1, 10, 8)) and not is_convnet(build_model("vit_tiny", 3, 10, 8))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_channels_last_resnet18():
    dev = torch.device("cuda")
    model = build_model("resnet18", 3, 10, 32).to(dev)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    loss_fn = BatchLoss(model, x, y, dev, torch.Generator().manual_seed(0), "crop_flip", "auto")
    assert loss_fn.channels_last and loss_fn.x.is_cuda
    loss = loss_fn(torch.arange(64))
    assert torch.isfinite(loss) and loss.dtype == torch.float32  # cross-entropy autocasts to fp32
    loss.backward()
    assert model.conv1.weight.grad is not None
