"""The evaluated sets: one registry of every set of parameter vectors the `analyze` stage evaluates and measures.

Each set is one `EvaluatedSet` in `SETS`: its name (the key in metrics/novelty.json and the CSV
plots/analyze/<name>.csv), the label the paper-scale and ablation tables and figures give it, its colour in every
figure, its kind, what it needs, and, for the sets `analyze` builds itself, the function that makes it. In
`SETS` order:

- reference sets, read from the pipeline's files: ``original`` (the K training snapshots) and ``generated``
  (the generator's output);
- baselines (`pdiff.analysis.baselines`), built from the snapshots alone;
- decoder sets (`pdiff.analysis.decoded`), built with a trained decoder but no diffusion model: only where the
  generator has a decoder (the conv AE; the tokens generator has none).

The analyze stage, report.md and its figures, `tools.paper_scale` and the ablation reports all read this
registry; dvc.yaml's analyze plots list the same names (tests/test_sets.py checks it). Adding a set is one entry
here, the function that makes it, its two lines in dvc.yaml and its test (docs/architecture.md, "Where to add
things").

Random draws: the sets with ``stream="shared"`` draw, in `SETS` order, from the one generator the analyze stage
seeds (as they did before this registry existed); every other set draws from its own generator, derived from
that generator's seed and the set's name (`pdiff.analysis.baselines.own_stream`), so adding a set leaves the
draws, and the numbers, of every other set unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from pdiff import PdiffError
from pdiff.analysis.baselines import (
    average_baseline,
    gaussian_baseline,
    interpolation_baseline,
    noise_baseline,
    own_stream,
)
from pdiff.analysis.decoded import DecoderReference, decoded_noise, reconstructions
from pdiff.core.config import BaselinesConfig

KINDS = ("reference", "baseline", "decoder")
NEEDS = ("snapshots", "generated", "decoder")
STREAMS = ("shared", "own")


@dataclass(frozen=True)
class SetInputs:
    """What the sets are made from: the K finite training snapshots [K, D] and their tensors' ``shapes``, ``n``
    (how many models each baseline has: as many as were generated), the `baselines` params (``noise_sigma``,
    ``average_k``, ...) and, where the generator has one, the trained ``decoder`` with the snapshots' latents."""
    snapshots: torch.Tensor
    shapes: list[list[int]]
    n: int
    baselines: BaselinesConfig
    decoder: DecoderReference | None = None

    def has(self, need: str) -> bool:
        return need != "decoder" or self.decoder is not None


Maker = Callable[[SetInputs, torch.Generator], torch.Tensor | None]


@dataclass(frozen=True)
class EvaluatedSet:
    """One evaluated set. ``make(inputs, gen)`` returns its vectors [M, D], or None where it does not apply
    (then metrics/novelty.json marks it not applicable, with ``not_applicable`` as the note); reference sets
    have no ``make``. ``describe(settings)`` is the phrase report.md gives the set (``settings``: the analysis
    settings, `pdiff.analysis.novelty.Analysis.settings`)."""
    name: str
    label: str
    color: str
    kind: str
    needs: tuple[str, ...]
    make: Maker | None = None
    describe: Callable[[dict], str] | None = None
    not_applicable: str = ""
    stream: str = "own"

    def __post_init__(self):
        bad = []
        if self.kind not in KINDS:
            bad.append(f"kind {self.kind!r}")
        bad += [f"need {n!r}" for n in self.needs if n not in NEEDS]
        if self.stream not in STREAMS:
            bad.append(f"stream {self.stream!r}")
        if self.kind != "reference" and self.make is None:
            bad.append("no make function")
        if bad:
            raise PdiffError(f"evaluated set `{self.name}`: {', '.join(bad)} (kinds: {', '.join(KINDS)}; needs: "
                             f"{', '.join(NEEDS)}; streams: {', '.join(STREAMS)}).")


def _decoded_noise_text(s: dict) -> str:
    form = ("a mean and std per latent value" if s.get("decoded_form") == "per_position"
            else "one mean and std over all latent values")
    return (f"{s.get('decoded_num')} latents of shape {tuple(s.get('latent_shape', ()))} drawn from a Gaussian "
            f"fitted to the snapshots' AE latents, {form}, decoded by the trained AE")


SETS: tuple[EvaluatedSet, ...] = (
    EvaluatedSet("original", "original", "tab:blue", "reference", ("snapshots",),
                 describe=lambda s: "the training snapshots"),
    EvaluatedSet("generated", "generated", "tab:red", "reference", ("generated",),
                 describe=lambda s: "the generator's models"),
    EvaluatedSet("noise", "noise", "tab:green", "baseline", ("snapshots",),
                 make=lambda i, g: noise_baseline(i.snapshots, i.shapes, i.n, i.baselines.noise_sigma, g),
                 describe=lambda s: f"a random snapshot + noise of {s.get('noise_sigma')} x each tensor's std",
                 stream="shared"),
    EvaluatedSet("average", "average", "tab:purple", "baseline", ("snapshots",),
                 make=lambda i, g: average_baseline(i.snapshots, i.n, i.baselines.average_k, g),
                 describe=lambda s: f"mean of {s.get('average_k')} random snapshots", stream="shared"),
    EvaluatedSet("gaussian", "gaussian", "tab:orange", "baseline", ("snapshots",),
                 make=lambda i, g: gaussian_baseline(i.snapshots, i.n, g),
                 describe=lambda s: "per-parameter mean and std of the snapshots",
                 not_applicable="not applicable: needs K >= 2 snapshots", stream="shared"),
    EvaluatedSet("interpolation", "interpolation", "tab:pink", "baseline", ("snapshots",),
                 make=lambda i, g: interpolation_baseline(i.snapshots, i.n, g),
                 describe=lambda s: "a uniformly random point on the segment between two distinct random snapshots",
                 not_applicable="not applicable: needs K >= 2 snapshots"),
    EvaluatedSet("decoded_noise", "decoded-noise", "tab:brown", "decoder", ("decoder",),
                 make=lambda i, g: decoded_noise(i.decoder.decode, i.decoder.latents, i.decoder.num, i.decoder.form,
                                                 g),
                 describe=_decoded_noise_text, stream="shared"),
    EvaluatedSet("reconstruction", "reconstruction", "tab:cyan", "decoder", ("decoder",),
                 make=lambda i, g: reconstructions(i.decoder.decode, i.decoder.latents),
                 describe=lambda s: "the AE's decoding of the snapshots' own latents"),
)

BY_NAME: dict[str, EvaluatedSet] = {s.name: s for s in SETS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
if len(NAMES) != len(SETS):
    raise PdiffError(f"two evaluated sets share a name in pdiff/analysis/sets.py: {[s.name for s in SETS]}.")


def of_kind(kind: str) -> tuple[EvaluatedSet, ...]:
    """The sets of one kind (reference, baseline, decoder), in `SETS` order."""
    if kind not in KINDS:
        raise PdiffError(f"no kind of evaluated set is called {kind!r}; the kinds: {', '.join(KINDS)}.")
    return tuple(s for s in SETS if s.kind == kind)


def iter_sets(inputs: SetInputs, gen: torch.Generator) -> Iterator[tuple[str, torch.Tensor | None]]:
    """(name, vectors, or None where the set does not apply) for every set with a ``make`` function whose needs
    ``inputs`` meet, in `SETS` order, one set made at a time; shared-stream sets draw from ``gen``, the others from
    their own stream (`own_stream`). The decoder sets' width is checked against the snapshots'."""
    for s in SETS:
        if s.make is None or not all(inputs.has(need) for need in s.needs):
            continue
        vectors = s.make(inputs, gen if s.stream == "shared" else own_stream(gen, s.name))
        if vectors is not None and vectors.shape[1:] != inputs.snapshots.shape[1:]:
            hint = (" models/ae.pt must come from the same models/snapshots.pt (rerun `dvc repro`)."
                    if "decoder" in s.needs else "")
            raise PdiffError(f"the set `{s.name}` has vectors of width {vectors.shape[1]}, but the snapshots have "
                             f"{inputs.snapshots.shape[1]} values.{hint}")
        yield s.name, vectors


def make_sets(inputs: SetInputs, gen: torch.Generator) -> dict[str, torch.Tensor | None]:
    """`iter_sets` as one dict {name: vectors or None}, every set in memory at once."""
    return dict(iter_sets(inputs, gen))
