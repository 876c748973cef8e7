"""The registry of evaluated sets (pdiff/analysis/sets.py): the one list every consumer reads, dvc.yaml's plots
included, and the random streams that keep each set's draws independent of the sets added after it."""
import dataclasses

import pytest
import torch
import yaml
from matplotlib.colors import is_color_like, to_rgba

from pdiff import PdiffError
from pdiff.analysis import sets
from pdiff.analysis.baselines import average_baseline, gaussian_baseline, noise_baseline
from pdiff.analysis.decoded import DecoderReference, decoded_noise, reconstructions
from pdiff.core.config import BaselinesConfig
from tests.conftest import ROOT

PARAMS = BaselinesConfig(noise_sigma=0.05, average_k=3)


def _inputs(k=6, n=5, with_decoder=True):
    snaps = torch.randn(k, 12, generator=torch.Generator().manual_seed(1))
    weight = torch.randn(12, 6, generator=torch.Generator().manual_seed(2))
    decoder = DecoderReference(lambda z: z.flatten(1) @ weight.T, torch.randn(k, 2, 3), num=4, form="per_position")
    return sets.SetInputs(snaps, [[4], [8]], n, PARAMS, decoder if with_decoder else None)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_dvc_yaml_plots_every_set_of_the_registry_in_its_order():
    """Each analyze plot in dvc.yaml that draws one series per set (plots/analyze/<set>.csv) lists exactly the
    registry's sets, in its order: a set added to the registry and not to dvc.yaml (or left there after its
    removal) fails here, not silently in `dvc plots show`."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    per_set = {}
    for plot in plots:
        if not isinstance(plot, dict):
            continue
        (name, spec), = plot.items()
        files = [f for f in (spec.get("y") or {}) if f.startswith("plots/analyze/")]
        if files:
            per_set[name] = [f.removeprefix("plots/analyze/").removesuffix(".csv") for f in files]
    assert set(per_set) == {"novelty_scatter", "novelty_accuracy_quantiles"}, per_set
    for name, listed in per_set.items():
        assert listed == list(sets.NAMES), f"dvc.yaml plot `{name}` lists {listed}, the registry {list(sets.NAMES)}"


def test_every_set_has_a_distinct_name_label_and_colour_and_a_known_kind():
    assert len({s.label for s in sets.SETS}) == len(sets.SETS)
    assert all(is_color_like(s.color) for s in sets.SETS)
    assert len({to_rgba(s.color) for s in sets.SETS}) == len(sets.SETS)
    assert [s.name for s in sets.of_kind("reference")] == ["original", "generated"]
    assert sets.NAMES[:2] == ("original", "generated")  # novelty.json and report.md start with them
    assert {s.kind for s in sets.SETS} == set(sets.KINDS)
    for s in sets.SETS:  # every set report.md describes has its phrase
        assert s.describe is not None and s.describe({"decoded_form": "global"}), s.name
        assert (s.make is None) == (s.kind == "reference"), s.name


def test_a_bad_entry_is_refused_naming_the_set():
    with pytest.raises(PdiffError, match=r"set `bogus`: kind 'extra', need 'gpu', no make function"):
        sets.EvaluatedSet("bogus", "bogus", "tab:gray", "extra", ("gpu",))
    with pytest.raises(PdiffError, match="no kind of evaluated set is called 'baselines'"):
        sets.of_kind("baselines")


def test_make_sets_makes_what_the_inputs_allow_with_the_registered_functions():
    inputs = _inputs()
    made = sets.make_sets(inputs, _gen())
    assert list(made) == [s.name for s in sets.SETS if s.kind != "reference"]
    assert torch.equal(made["reconstruction"], reconstructions(inputs.decoder.decode, inputs.decoder.latents))
    for name, vectors in made.items():
        assert vectors.shape[1] == 12, name
        assert len(vectors) == {"decoded_noise": 4, "reconstruction": 6}.get(name, 5), name
    without = sets.make_sets(_inputs(with_decoder=False), _gen())
    assert list(without) == [s.name for s in sets.of_kind("baseline")]  # no decoder: no decoder sets
    wrong = dataclasses.replace(inputs, decoder=DecoderReference(lambda z: z.flatten(1), torch.randn(6, 2, 3)))
    with pytest.raises(PdiffError, match="`decoded_noise` has vectors of width 6.*12 values.*models/ae.pt"):
        sets.make_sets(wrong, _gen())


def test_shared_stream_sets_draw_as_before_the_registry_and_later_sets_do_not_touch_the_stream(monkeypatch):
    """The analyze stage drew noise, average, gaussian and then decoded_noise from one generator, in that order.
    The registry keeps exactly those draws (the committed metrics stay valid), and a set that draws from its own
    stream, wherever it stands in the registry, leaves them unchanged."""
    inputs = _inputs()
    gen = _gen(7)
    expected = {"noise": noise_baseline(inputs.snapshots, inputs.shapes, 5, PARAMS.noise_sigma, gen),
                "average": average_baseline(inputs.snapshots, 5, PARAMS.average_k, gen),
                "gaussian": gaussian_baseline(inputs.snapshots, 5, gen),
                "decoded_noise": decoded_noise(inputs.decoder.decode, inputs.decoder.latents, 4, "per_position",
                                               gen)}
    made = sets.make_sets(inputs, _gen(7))
    for name, vectors in expected.items():
        assert torch.equal(made[name], vectors), name

    greedy = sets.EvaluatedSet("greedy", "greedy", "black", "baseline", ("snapshots",),
                               make=lambda i, g: torch.randn(1000, 12, generator=g))
    monkeypatch.setattr(sets, "SETS", (*sets.SETS[:3], greedy, *sets.SETS[3:]))
    again = sets.make_sets(inputs, _gen(7))
    assert "greedy" in again
    for name, vectors in made.items():
        assert torch.equal(again[name], vectors), name


def test_own_streams_are_fixed_by_the_seed_and_differ_between_sets():
    gen = _gen(3)
    state = gen.get_state()
    a, b = sets.own_stream(gen, "x"), sets.own_stream(gen, "x")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert torch.equal(gen.get_state(), state)  # the shared stream is neither drawn from nor reseeded
    assert not torch.equal(torch.rand(4, generator=sets.own_stream(gen, "y")),
                           torch.rand(4, generator=sets.own_stream(gen, "x")))
    assert not torch.equal(torch.rand(4, generator=sets.own_stream(_gen(4), "x")),
                           torch.rand(4, generator=sets.own_stream(gen, "x")))
