"""Presets: every paper setting is a valid, runnable params set; `apply` edits params.yaml in place and
`exp-args` feeds `dvc exp run -S`."""
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from pdiff.core.artifacts import numels
from pdiff.core.config import load_params
from pdiff.generative.registry import resolve
from pdiff.nets.models import build_model
from pdiff.nets.selection import select, shapes_of
from tests.conftest import ROOT
from tools.presets import PRESETS_DIR, apply, available, exp_args, lookup, resolved

REQUIRED = {"cifar10-resnet18", "cifar100-resnet18", "mnist-resnet18", "cifar100-vit-tiny", "mnist5k-resnet18"}
# official train split size, classes, channels, image size of each real dataset
SHAPES = {"cifar10": (50000, 10, 3, 32), "cifar100": (50000, 100, 3, 32), "mnist": (60000, 10, 1, 28),
          "stl10": (5000, 10, 3, 96), "digits": (1797, 10, 1, 8), "mnist5k": (5000, 10, 1, 28)}


def test_required_presets_exist():
    assert REQUIRED <= set(available())


@pytest.mark.parametrize("name", available())
def test_preset_is_a_runnable_paper_setting(tmp_path, name):
    params_path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params_path)
    apply(name, params_path)
    p = load_params(params_path)
    n_train, classes, channels, size = SHAPES[p.data.name]
    # K snapshots fit into the collection steps the preset gives
    embedded = p.data.name in ("digits", "mnist5k")
    n_train -= p.data.val_size + (p.data.test_size if embedded else 0)  # embedded: split here
    steps = p.collect.epochs * math.ceil(n_train / p.collect.batch_size)
    assert p.collect.num_snapshots <= steps
    with torch.device("meta"):
        model = build_model(p.model.arch, channels, classes, size, p.model.width)
    d = sum(numels(shapes_of(model, select(model, p.collect.params))))
    # the paper's last two norm layers, or all of ResNet-18's layer4.1 (block) or of ResNet-18 (whole), beyond the
    # conv AE's reach
    expected = {"resnet18": 2048, "vit_tiny": 768, "mlp": 682, "small_cnn": 192}[p.model.arch]
    assert d == {"mnist5k-resnet18-block": 4_720_640, "mnist5k-resnet18-whole": 11_172_810}.get(name, expected)
    resolve(p.generator)  # a registered generator
    if p.collect.storage == "torch":
        assert d // 2 ** len(p.conv_ae.train_ae.channels) >= 1  # the conv AE can fold D that many times
    else:  # memory-mapped snapshots are for D the in-memory path cannot hold (the block preset, tokens generator)
        assert d >= 1_000_000


def test_apply_keeps_comments_and_switching_resets_other_presets_keys(tmp_path):
    params_path = tmp_path / "params.yaml"
    original = (ROOT / "params.yaml").read_text()
    params_path.write_text(original.replace("seed: 0 ", "seed: 7 "))
    apply("cifar100-vit-tiny", params_path)
    text = params_path.read_text()
    assert "  arch: vit_tiny" in text and "# small_cnn | mlp | lenet" in text  # comment kept on the same line
    assert load_params(params_path).train.optimizer == "adamw"
    apply("mnist-resnet18", params_path)
    p = load_params(params_path)
    assert (p.data.name, p.model.arch, p.train.optimizer, p.train.weight_decay) == ("mnist", "resnet18", "sgd", 5e-4)
    assert p.seed == 7  # keys no preset touches keep the user's value
    assert len(params_path.read_text().splitlines()) == len(original.splitlines())


@pytest.mark.slow
def test_exp_args_queue_a_dvc_experiment_with_the_preset(tiny_copy):
    """`dvc exp run --queue` with the preset's -S arguments in a tiny copy: the queued experiment carries
    exactly the preset's values (nothing runs)."""
    from tests.conftest import run

    repo = tiny_copy
    name = "cifar100-vit-tiny"
    res = run(["dvc", "exp", "run", "--queue", "-n", "preset", *exp_args(name)], repo)
    assert "Queued experiment" in res.stdout + res.stderr
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)

    def all_params(x):
        if isinstance(x, dict):
            if "params" in x and isinstance(x["params"], dict) and "params.yaml" in x["params"]:
                yield x["params"]["params.yaml"]["data"]
            for v in x.values():
                yield from all_params(v)
        elif isinstance(x, list):
            for v in x:
                yield from all_params(v)

    matches = [p for p in all_params(shown) if p["model"]["arch"] == "vit_tiny"]
    assert matches, "queued experiment not found"
    for key, value in resolved(name).items():  # every dotted key of the preset, at any depth
        assert lookup(matches[0], key) == value, key
    run(["dvc", "queue", "remove", "--all"], repo, check=False)


def test_cli_show_and_unknown_preset():
    out = subprocess.run([sys.executable, "-m", "tools.presets", "show", "cifar10-resnet18"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0 and yaml.safe_load(out.stdout)["model"]["arch"] == "resnet18"
    bad = subprocess.run([sys.executable, "-m", "tools.presets", "exp-args", "cifar1000"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "cifar10-resnet18" in bad.stderr and not bad.stdout
    assert PRESETS_DIR == ROOT / "presets"


def test_set_values_edits_in_place_and_refuses_keys_params_yaml_lacks():
    from pdiff import PdiffError
    from tools.presets import set_values

    text = "seed: 0  # the seed\nae:               # group comment\n  channels: [16, 32]  # widths\n  lr: 0.001\n"
    out = set_values(text, {"seed": 3, "ae.channels": [64, 128, 256], "ae.lr": 0.01})  # any nested text
    assert out.splitlines() == ["seed: 3  # the seed", "ae:               # group comment",
                                "  channels: [64, 128, 256] # widths", "  lr: 0.01"]
    for key in ("ae.nope", "ldm.lr", "seed.x"):
        with pytest.raises(PdiffError, match=key.split(".")[0]):
            set_values(text, {key: 1})


def test_mnist5k_resnet18_preset_plumbing_at_tiny_size(tmp_path):
    """The preset's own sizes end to end on a few examples: ResNet-18 on 28x28 digits selects D = 2,048, the AE
    folds it to a latent of 2 x 64 = 128 values, the 4-level UNet with EMA trains on those latents, generated
    vectors decode to D values and are evaluated (fast path == naive path) on the preset's ResNet-18."""
    from types import SimpleNamespace

    from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors
    from pdiff.core.tracking import Tracker
    from pdiff.generative.autoencoder import Normalizer, ParamAE
    from pdiff.generative.denoiser import UNet1D
    from pdiff.generative.diffusion import linear_schedule
    from pdiff.generative.ldm import LatentModel, SamplingConfig, sample_vectors, train_denoiser
    from pdiff.nets.selection import flatten

    params_path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params_path)
    apply("mnist5k-resnet18", params_path)
    p = load_params(params_path)
    assert (p.data.name, p.data.test_size, p.model.arch, p.collect.num_snapshots) == ("mnist5k", 2000, "resnet18", 200)
    torch.manual_seed(0)
    model = build_model(p.model.arch, 1, 10, 28, p.model.width).eval()
    names = select(model, p.collect.params)
    assert names[0].startswith("layer4.1.bn1")
    base = flatten(model, names)
    snaps = base + 0.01 * torch.randn(8, base.numel())
    assert snaps.shape[1] == 2048
    normalizer = Normalizer(2048).fit(snaps, p.conv_ae.train_ae.normalize, numels(shapes_of(model, names)))
    ae = ParamAE(2048, p.conv_ae.train_ae.channels, p.conv_ae.train_ae.latent_channels).eval()
    assert ae.latent_shape == (2, 64)  # 128 latent values, as the official rewrite's latent
    z = ae.encode(normalizer(snaps)).detach()
    denoiser = UNet1D(z.shape[1], p.conv_ae.train_ldm.channels, tuple(p.conv_ae.train_ldm.channel_mults))
    diffusion = linear_schedule(20, p.conv_ae.train_ldm.beta_start, p.conv_ae.train_ldm.beta_end)
    ldm = p.conv_ae.train_ldm
    cfg = SimpleNamespace(lr=ldm.lr, weight_decay=0.0, steps=2, batch_size=4, ema_decay=ldm.ema_decay,
                          ema_warmup=ldm.ema_warmup)
    _, sampler = train_denoiser(denoiser, diffusion, z, cfg, "cpu", torch.Generator().manual_seed(0), Tracker(None))
    assert sampler is not denoiser  # the preset samples with the EMA weights
    vectors = sample_vectors(LatentModel(ae, normalizer, sampler, diffusion),
                             SamplingConfig(num_models=3, batch_size=3), torch.Generator().manual_seed(0), "cpu")
    assert vectors.shape == (3, 2048) and torch.isfinite(vectors).all()
    x, y = torch.randn(6, 1, 28, 28), torch.randint(10, (6,))
    fast = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=p.evaluate.batch_size))
    naive = evaluate_vectors(model, names, vectors, x, y, EvalOptions(batch_size=3, cache_prefix=False))
    assert torch.equal(fast, naive)
