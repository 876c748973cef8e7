"""The generator protocol: what every parameter generator is to the pipeline, built-in or your own.

A generator turns the K training snapshots [K, D] into new parameter vectors [n, D]. Its two fitted steps are
the two stages the paper names, and two more stages use the result:

- `train_ae` calls `Generator.fit_representation`: what it learns about the vectors themselves (the conv AE
  and its normalizer, the tokens generator's tokenizer and normalizer, or nothing) -> models/ae.pt;
- `train_ldm` calls `Generator.fit_prior`: what it samples from (the latent DDPM, the token denoiser)
  -> models/ldm.pt;
- `generate` calls `Generator.load_sampler` with both files, then `Sampler.sample` (or `Sampler.rows`)
  -> models/generated.pt;
- `analyze` calls `Generator.load_decoder` with models/ae.pt: a `Decoder` where the generator has one, which
  the decoder-only sets (decoded_noise, reconstruction: pdiff/analysis/decoded.py) feed.

A fit step returns a `Fitted`: a dict of tensors and plain values (saved with torch.save, read back with
weights_only=True, so no code runs on loading) and the title of its loss figure. The stage writes the dict with
the generator's name under ``kind`` (`save_artifact`; the conv AE's files, untagged, are read as its own), and
reading a file written for another generator is refused with the stage to rerun (`read_artifact`). All
randomness comes from the stage's seeded ``ctx.gen`` and the ``rng`` handed to `Sampler.sample`, so the same
params give the same bytes.

Conditioning (the task pipeline, docs/tasks.md): a generator with ``conditional = True`` fits its prior with
one condition per snapshot row (``ctx.condition``: a `Condition`, the task code's bits) and its sampler honours
``cond`` (one condition per vector) and ``guidance`` (classifier-free guidance scale) in `Sampler.sample`. The task
stages (tasks_ae@run, tasks_ldm@run, tasks_evaluate@run) call the same `fit_representation`, `fit_prior`,
`load_sampler` and `load_decoder` as the default stages, and refuse a generator that is not conditional
(`pdiff.generative.registry.require_conditional`). Both built-ins are conditional; the default stages never
pass a condition.

The built-ins are in `pdiff.generative.builtins`, names are resolved by `pdiff.generative.registry`, and a
worked example of your own is user/generators/lowrank.py (docs/own-generator.md).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import torch

from pdiff import PdiffError
from pdiff.core.artifacts import ArtifactError, load_torch, rerun_hint, save_torch
from pdiff.core.tracking import Tracker

# The one generator whose files carry no ``kind``: the conv AE's files had none before generators were plug-ins,
# and a tag would change the bytes (and the dvc.lock hashes) of every committed conv_ae result. An untagged file
# is read as this generator's; every other generator's files are tagged.
UNTAGGED = "conv_ae"


@dataclass
class Condition:
    """What a conditional `Generator.fit_prior` fits with (the task stages' ``ctx.condition``): ``codes`` [K, bits],
    float 0/1, the condition of each row of the snapshot file (the task code of the task the snapshot was trained
    for); ``mode``, how the condition enters (params ``tasks_ldm.cond``: ``add``, ``concat`` or ``none`` = ignored,
    the unconditional ablation; a generator refuses a mode it does not have, naming the ones it has); ``dropout``,
    the probability that a training condition is replaced by "no condition" (params ``tasks_ldm.cond_dropout``), so
    the same prior also predicts unconditionally and sampling can use classifier-free guidance."""
    codes: torch.Tensor
    mode: str = "add"
    dropout: float = 0.0


@dataclass
class Context:
    """What a stage hands its generator: the validated params.yaml (``params``; your generator's own group is
    ``settings``, whose subgroups ``train_ae`` / ``train_ldm`` / ``generate`` are what each stage declares as its
    params, so read a stage's settings from its own subgroup and nothing else), the stage's seeded ``gen``, and
    for the fit steps the snapshot file (``snapshots``), a `Tracker` for curves (``tracker.log(step,
    name=value)``) and, in `fit_prior`, the loaded representation (``representation``). ``device`` is resolved
    from ``params.device`` on first use. ``condition``: None in the default stages; in the task stages'
    `fit_prior`, the per-row `Condition` a conditional generator fits with. ``snapshots_stage``: the stage that
    wrote ``snapshots`` (collect, or tasks_collect@run), for error messages."""
    params: object
    gen: torch.Generator
    snapshots: str | None = None
    representation: dict | None = None
    tracker: Tracker = field(default_factory=lambda: Tracker(None))
    condition: Condition | None = None
    snapshots_stage: str = "collect"

    @cached_property
    def device(self) -> torch.device:
        from pdiff.core.runtime import resolve_device

        return resolve_device(self.params.device)

    @cached_property
    def settings(self):
        """The selected generator's params group (``params.<generator>``): a typed section for a built-in, plain
        dicts for your own (``ctx.settings["train_ae"]["rank"]``)."""
        from pdiff.core.config import generator_settings

        return generator_settings(self.params, self.params.generator)

    def load_snapshots(self) -> dict:
        """The snapshot file read whole: ``params`` [K, D], ``names`` and ``shapes`` of the D values' tensors."""
        from pdiff.core.snapstore import load_vectors

        return load_vectors(self.snapshots, self.snapshots_stage)


@dataclass
class Fitted:
    """What a fit step returns: ``state``, the dict its stage saves (tensors and plain values; ``kind`` is the
    stage's), and the ``title`` (``log_y``: a log scale) of the figure of what it logged to ``ctx.tracker``."""
    state: dict
    title: str
    log_y: bool = False


class Decoder(ABC):
    """Latents <-> parameter vectors, without noise or gradients."""

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Parameter vectors [K, D] -> latents [K, ...]."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [B, ...] -> parameter vectors [B, D] (normalization undone)."""


class Sampler(ABC):
    """A fitted generator ready to sample vectors of the tensors ``names`` / ``shapes`` (the snapshots').
    ``streams``: `generate` writes `rows` one at a time to a memory-mapped store, so memory does not grow with
    n x D; otherwise it saves the one [n, D] tensor of `sample`."""
    streams = False

    def __init__(self, names: list[str], shapes: list[list[int]]):
        self.names, self.shapes = list(names), [list(s) for s in shapes]

    @abstractmethod
    def sample(self, n: int, cond=None, *, rng: torch.Generator, guidance: float = 1.0) -> torch.Tensor:
        """n new vectors [n, D] (float32, CPU) drawn with ``rng``. ``cond``: None (unconditional, the default
        stages), or for a conditional generator's prior fitted with a `Condition` one condition per vector,
        [n, bits] float 0/1 like `Condition.codes`; ``guidance`` w: classifier-free guidance, eps = eps_uncond +
        w (eps_cond - eps_uncond) (1: plain conditional sampling). An unconditional sampler never gets either."""

    def rows(self, n: int, cond=None, *, rng: torch.Generator, guidance: float = 1.0) -> Iterator[torch.Tensor]:
        """The same n vectors [D], one at a time (by default from one `sample` call)."""
        if cond is None and guidance == 1.0:
            yield from self.sample(n, rng=rng)  # an unconditional sampler's `sample` need not take guidance
        else:
            yield from self.sample(n, cond, rng=rng, guidance=guidance)


class Generator(ABC):
    """A parameter generator. ``name`` is its `generator` params value (an import-path generator's is its
    path); ``conditional``: True when `fit_prior` fits with ``ctx.condition`` (a `Condition`, one per snapshot
    row) whenever it is not None and its sampler's `Sampler.sample` honours ``cond`` and ``guidance`` (what the task
    stages need; `pdiff.generative.registry.require_conditional`); ``description``: a phrase on what it is, for
    the report."""
    name = ""
    conditional = False
    description = ""

    def fit_representation(self, ctx: Context) -> Fitted:
        """train_ae: fit the representation. By default there is none: the file holds only the name."""
        return Fitted({}, f"generator {self.name}: no representation")

    @abstractmethod
    def fit_prior(self, ctx: Context) -> Fitted:
        """train_ldm: fit what `sample` draws from (``ctx.representation``: train_ae's dict). tasks_ldm@run, for a
        conditional generator: the same, with ``ctx.condition`` set (the sampler of the result takes ``cond``)."""

    @abstractmethod
    def load_sampler(self, representation: dict, prior: dict, ctx: Context) -> Sampler:
        """generate: the `Sampler` of the two saved dicts (``ctx``: params, device)."""

    def load_decoder(self, representation: dict) -> Decoder | None:
        """analyze (and tasks_evaluate@run): the decoder of the saved representation, or None (then no decoder
        sets: decoded_noise and reconstruction; in the task evaluation no_task_info and the seen-fit
        reconstruction are null)."""
        return None

    def report_note(self) -> str:
        """The note metrics/novelty.json and report.md give the `generated` row (empty: none)."""
        return f"sampled by generator `{self.name}`" + (f": {self.description}" if self.description else "")


# ------------------------------------------------------------------------------------- what the stages do
def save_artifact(fitted: Fitted, generator: Generator, path: str) -> None:
    """Write ``fitted.state`` with the generator's name as ``kind`` (first key; none for `UNTAGGED`), atomically."""
    if fitted.state.get("kind", generator.name) != generator.name:
        raise PdiffError(f"generator `{generator.name}` returned a state with kind = {fitted.state['kind']!r}; "
                         "`kind` is the stage's own entry (the generator's name): use another key.")
    save_torch(fitted.state if generator.name == UNTAGGED else {"kind": generator.name} | fitted.state, path)


def read_artifact(path: str, stage: str, generator: Generator) -> dict:
    """The dict ``stage`` saved at ``path``; refused when it was written for another generator."""
    obj = load_torch(path, stage)
    kind = obj.get("kind", UNTAGGED)
    if kind != generator.name:
        raise ArtifactError(f"{path} was written by `{stage}` for `generator: {kind}`, but params say `generator: "
                            f"{generator.name}`. " + rerun_hint(stage, f"to refit it for `{generator.name}`"))
    return obj


def fit_step(fit: Callable[[Context], Fitted], generator: Generator, ctx: Context, out: str, figure: str,
             title_prefix: str = "") -> None:
    """train_ae (``fit`` = fit_representation) and train_ldm (fit_prior) for any generator, and the task stages'
    tasks_ae@run and tasks_ldm@run: fit, close the curves (a step that logged nothing logs the number of values it
    saved, so every stage has its curve files), save the tagged artifact, draw the figure (its title after
    ``title_prefix``)."""
    from pdiff.core.plots import loss_curves

    fitted = fit(ctx)
    if not ctx.tracker.history:
        ctx.tracker.log(1, saved_values=sum(v.numel() for v in fitted.state.values() if torch.is_tensor(v)))
    ctx.tracker.close()
    save_artifact(fitted, generator, out)
    loss_curves(ctx.tracker.history, figure, title_prefix + fitted.title, log_y=fitted.log_y)


def write_samples(sampler: Sampler, n: int, path: str, rng: torch.Generator) -> None:
    """generate: n unconditional vectors of ``sampler`` to ``path``: a torch vector file or, for a streaming
    sampler, a memory-mapped store written row by row (pdiff.core.snapstore)."""
    from pdiff.core.snapstore import VectorWriter

    if sampler.streams:
        with VectorWriter(path, n, sampler.names, sampler.shapes) as out:
            for row in sampler.rows(n, rng=rng):
                out.append(row)
    else:
        save_torch({"params": sampler.sample(n, rng=rng), "names": sampler.names, "shapes": sampler.shapes}, path)
