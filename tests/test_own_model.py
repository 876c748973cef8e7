"""Your own architecture by import path (`model.arch: "module.path:function"`, pdiff.nets.custom)."""
import sys
import textwrap
import uuid

import pytest
import torch
from torch import nn

from pdiff import PdiffError
from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, split_at_selection
from pdiff.core import plugins
from pdiff.core.artifacts import save_torch
from pdiff.core.config import BUILTIN_ARCHS, ConfigError, from_dict
from pdiff.nets import custom
from pdiff.nets.models import ARCHS, build_model, load_base_model
from pdiff.nets.selection import flatten, select
from tests.conftest import user_package

USER_FILE = textwrap.dedent('''
    import torch
    from torch import nn

    WIDTH = 8


    class Residual(nn.Module):
        """Not a Sequential: evaluation must fall back to full forward passes."""

        def __init__(self, in_channels, num_classes, image_size):
            super().__init__()
            self.stem = nn.Conv2d(in_channels, 8, 3, padding=1)
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.norm = nn.BatchNorm2d(8)
            self.head = nn.Linear(8, num_classes)
            self.head_norm = nn.LayerNorm(num_classes)

        def forward(self, x):
            h = torch.relu(self.stem(x))
            h = h + torch.relu(self.norm(self.conv(h)))
            return self.head_norm(self.head(h.mean((2, 3))))


    def build(in_channels, num_classes, image_size, width=4):
        return nn.Sequential(nn.Flatten(1), nn.Linear(in_channels * image_size ** 2, width), nn.ReLU(),
                             nn.Linear(width, num_classes))


    def positional_only(channels, classes):
        return nn.Linear(channels, classes)


    def not_a_module(in_channels, num_classes, image_size):
        return {"weight": torch.zeros(3)}
    ''')


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    """A throwaway repository root holding a user folder with USER_FILE as `<pkg>.models.nets`."""
    yield from user_package(tmp_path, monkeypatch, {"nets.py": USER_FILE,
                                                    "broken.py": "import package_that_is_not_installed_xyz\n"},
                            USER_FILE, "models")


def _arch_error(arch: str) -> str:
    with pytest.raises(PdiffError) as exc:
        build_model(arch, in_channels=1, num_classes=3, image_size=8)
    msg = str(exc.value)
    assert "model.arch" in msg and arch in msg and "\n" not in msg, msg
    return msg


def test_config_accepts_an_import_path_and_still_rejects_unknown_names():
    assert tuple(ARCHS) == BUILTIN_ARCHS  # the registry is built from the schema's one list of names
    for name in ("small_cnn", "mlp"):  # the builders take the one signature; width reaches the small models
        narrow, wide = (sum(p.numel() for p in ARCHS[name](1, 3, 8, w).parameters()) for w in (4, 8))
        assert narrow < wide, name
    assert from_dict({"model": {"arch": "user.models.tiny_cnn:build"}}).model.arch == "user.models.tiny_cnn:build"
    for bad in ("resnet9000", "user.models.tiny_cnn:", "user/models/tiny_cnn.py:build", ":build",
                "user.models.tiny_cnn:build()"):
        with pytest.raises(ConfigError, match="model.arch"):
            from_dict({"model": {"arch": bad}})


def test_the_example_user_model_builds_with_width_and_is_sequential():
    model = build_model("user.models.tiny_cnn:build", in_channels=1, num_classes=10, image_size=8, width=4)
    assert isinstance(model, nn.Sequential)
    assert model.conv1.out_channels == 4  # model.width reaches a function whose signature names `width`
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert select(model, "auto") == ["norm3.weight", "norm3.bias", "norm4.weight", "norm4.bias"]


def test_a_user_class_and_function_build(user_pkg):
    model = build_model(f"{user_pkg}.nets:Residual", in_channels=3, num_classes=5, image_size=8)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    mlp = build_model(f"{user_pkg}.nets:build", in_channels=1, num_classes=3, image_size=8, width=7)
    assert mlp[1].out_features == 7


def test_module_not_found(user_pkg):
    msg = _arch_error(f"{user_pkg}.missing_file:build")
    assert "was not found" in msg and f"{user_pkg.replace('.', '/')}/missing_file.py" in msg


def test_a_missing_dependency_of_the_module_is_named(user_pkg):
    msg = _arch_error(f"{user_pkg}.broken:build")
    assert "package_that_is_not_installed_xyz" in msg and "requirements.txt" in msg


def test_attribute_missing_lists_what_the_module_defines(user_pkg):
    msg = _arch_error(f"{user_pkg}.nets:biuld")
    assert "no attribute `biuld`" in msg and "build" in msg and "Residual" in msg


def test_not_callable(user_pkg):
    assert "is a int, not a function or class" in _arch_error(f"{user_pkg}.nets:WIDTH")


def test_wrong_signature(user_pkg):
    msg = _arch_error(f"{user_pkg}.nets:positional_only")
    assert "in_channels=..., num_classes=..., image_size=..." in msg and "(channels, classes)" in msg


def test_wrong_return_type(user_pkg):
    assert "returned a dict, not a torch.nn.Module" in _arch_error(f"{user_pkg}.nets:not_a_module")


def test_code_in_the_repository_outside_the_user_folder_is_refused(user_pkg):
    folder = user_pkg.replace(".", "/")
    msg = _arch_error("elsewhere:build")
    assert "elsewhere.py is outside" in msg and f"{folder}/" in msg
    # the generators' folder is not the models' one: dvc.yaml lists it for other stages
    pkg = user_pkg.split(".")[0]
    gens = plugins.REPO_ROOT / pkg / "generators"
    gens.mkdir()
    (gens / "net_here.py").write_text(USER_FILE)
    msg = _arch_error(f"{pkg}.generators.net_here:build")
    assert f"{pkg}/generators/net_here.py is outside {folder}/" in msg and "would not rerun" in msg


def test_code_outside_the_repository_builds_with_a_warning(tmp_path, monkeypatch):
    outside = tmp_path / "site"
    outside.mkdir()
    name = f"installed_{uuid.uuid4().hex[:8]}"
    (outside / f"{name}.py").write_text(USER_FILE)
    monkeypatch.syspath_prepend(str(outside))
    monkeypatch.setattr(plugins, "REPO_ROOT", tmp_path / "repo")
    with pytest.warns(custom.UntrackedCodeWarning, match="DVC does not track it"):
        model = build_model(f"{name}:build", in_channels=1, num_classes=3, image_size=8)
    assert isinstance(model, nn.Module)
    del sys.modules[name]


def test_patterns_that_match_nothing_name_the_arch_and_list_the_parameters(user_pkg, tmp_path):
    arch = dict(arch=f"{user_pkg}.nets:Residual", in_channels=1, num_classes=3, image_size=8, width=16)
    model = build_model(**arch)
    save_torch({"state_dict": model.state_dict(), "arch": arch}, tmp_path / "base.pt")
    base = load_base_model(str(tmp_path / "base.pt"))
    assert select(base, ["head.*"]) == ["head.weight", "head.bias"]
    with pytest.raises(PdiffError) as exc:
        select(base, ["head.*", "bn9.*"])
    msg = str(exc.value)
    assert "collect.params" in msg and "'bn9.*'" in msg and arch["arch"] in msg
    for name in ("stem.weight", "conv.bias", "norm.weight", "head_norm.bias"):  # every parameter is listed
        assert name in msg
    no_norms = build_model(f"{user_pkg}.nets:build", in_channels=1, num_classes=3, image_size=8)
    with pytest.raises(PdiffError, match=r"'auto' needs normalization layers.*1\.weight \(16, 64\)"):
        select(no_norms, "auto")


def _evaluations(model, names, n_vectors=6):
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 3, (40,))
    base = flatten(model, names)
    vectors = base + 0.5 * torch.randn(n_vectors, base.numel())
    full = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=16, cache_prefix=False))
    cached = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=16, cache_prefix=True))
    return full, cached


def test_a_non_sequential_user_model_falls_back_to_full_passes_with_the_same_predictions(user_pkg):
    model = build_model(f"{user_pkg}.nets:Residual", in_channels=1, num_classes=3, image_size=8).eval()
    names = select(model, "auto")
    assert names == ["norm.weight", "norm.bias", "head_norm.weight", "head_norm.bias"]
    prefix, suffix = split_at_selection(model, names)
    assert isinstance(prefix, nn.Identity) and suffix is model
    full, cached = _evaluations(model, names)
    assert torch.equal(full, cached) and full.any() and not full.all()


def test_a_sequential_user_model_gets_the_cached_prefix_with_the_same_predictions():
    model = build_model("user.models.tiny_cnn:build", in_channels=1, num_classes=3, image_size=8, width=8).eval()
    names = select(model, "auto")
    prefix, _ = split_at_selection(model, names)
    assert [n for n, _ in prefix.named_children()][-2:] == ["pool2", "conv3"]
    full, cached = _evaluations(model, names)
    assert torch.equal(full, cached) and full.any()
