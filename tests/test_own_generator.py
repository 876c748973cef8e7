"""Generators as plug-ins (pdiff/generative/protocol.py, registry.py): the built-ins by name and your own by
import path, fitted, sampled and judged the same way; the worked example user/generators/lowrank.py through the protocol
and through the tiny pipeline (docs/own-generator.md)."""
import json
import re
import subprocess

import pytest
import torch
import yaml

from pdiff import PdiffError
from pdiff.analysis.sets import NAMES
from pdiff.core.artifacts import ArtifactError, save_torch
from pdiff.core.config import BUILTIN_GENERATORS, GENERATOR_STAGES, ConfigError, Params, from_dict
from pdiff.core.snapstore import is_vector_store, load_vectors
from pdiff.core.stage import stage_command
from pdiff.core.tracking import Tracker
from pdiff.generative.protocol import (
    Context,
    Fitted,
    Generator,
    Sampler,
    fit_step,
    read_artifact,
    save_artifact,
    write_samples,
)
from pdiff.generative.registry import BUILTINS, resolve
from tests.conftest import ROOT, png_size, run, stage_env, user_package

EXAMPLE = "user.generators.lowrank:LowRank"


def test_the_registry_holds_the_schemas_names_and_your_own_by_import_path():
    assert tuple(BUILTINS) == BUILTIN_GENERATORS
    for name in BUILTIN_GENERATORS:  # each has its params group, one subgroup per stage that dvc.yaml declares
        assert set(Params.model_fields[name].annotation.model_fields) == set(GENERATOR_STAGES), name
    for name in BUILTIN_GENERATORS:
        generator = resolve(name)
        assert isinstance(generator, Generator) and generator.name == name and generator.conditional  # both
    own = resolve(EXAMPLE)
    assert isinstance(own, Generator) and type(own).__name__ == "LowRank" and own.name == EXAMPLE
    assert not own.conditional  # the task stages refuse it (tests/test_task_generators.py)
    group = {"train_ae": {"rank": 3}, "train_ldm": {}, "generate": {}}
    p = from_dict({"generator": EXAMPLE, "user": {"generators": {"lowrank:LowRank": group}}})
    assert p.generator == EXAMPLE and Context(p, torch.Generator()).settings == group
    assert EXAMPLE in own.report_note() and not resolve("conv_ae").report_note()


def test_your_generator_without_its_settings_group_is_refused_naming_what_to_add():
    """dvc.yaml's stages declare `${generator}.train_ae` etc., so the group must exist (DVC itself needs it)."""
    for user in ({}, {"generators": {"lowrank:LowRank": {"train_ae": {}, "generate": {}}}}):
        with pytest.raises(ConfigError) as exc:
            from_dict({"generator": EXAMPLE, "user": user})
        msg = str(exc.value)
        assert "\n" not in msg and f"`generator` = {EXAMPLE!r}" in msg and "train_ldm" in msg, msg
        assert 'user: {generators: {"lowrank:LowRank": {train_ae: {}, train_ldm: {}, generate: {}}}}' in msg, msg


def test_an_unknown_generator_is_refused_in_one_paragraph_naming_the_registered_ones_and_the_path_form():
    with pytest.raises(ConfigError) as exc:
        from_dict({"generator": "gan"})
    msg = str(exc.value)
    assert "\n" not in msg and "`generator` = 'gan'" in msg and "conv_ae, tokens" in msg
    assert "'user.generators.<file>:<Class>'" in msg and "docs/own-generator.md" in msg
    for bad in ("user/generators/lowrank.py:LowRank", "user.generators.lowrank:", ":LowRank",
                "user.generators.lowrank:LowRank()"):
        with pytest.raises(ConfigError, match="`generator`"):
            from_dict({"generator": bad})


USER_FILE = '''
from pdiff.generative.protocol import Generator


class NoPrior(Generator):
    def load_sampler(self, representation, prior, ctx):
        return None


class NotAGenerator:
    pass
'''


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    """A throwaway repository root whose user folder `<pkg>` holds USER_FILE as `<pkg>.generators.gens`."""
    yield from user_package(tmp_path, monkeypatch, {"gens.py": USER_FILE}, USER_FILE, "generators")


def _error(name: str) -> str:
    with pytest.raises(PdiffError) as exc:
        resolve(name)
    msg = str(exc.value)
    assert f"`generator` = {name!r}" in msg and "\n" not in msg, msg
    return msg


def test_a_bad_import_path_is_one_paragraph_that_says_what_to_fix(user_pkg):
    assert f"{user_pkg.replace('.', '/')}/missing.py" in _error(f"{user_pkg}.missing:Gen")
    assert "no attribute `Gen`" in _error(f"{user_pkg}.gens:Gen") and "NoPrior" in _error(f"{user_pkg}.gens:Gen")
    assert "the class NotAGenerator, not a subclass" in _error(f"{user_pkg}.gens:NotAGenerator")
    assert "fit_prior" in _error(f"{user_pkg}.gens:NoPrior")  # abstract: cannot be made
    assert "elsewhere.py is outside" in _error("elsewhere:NoPrior")  # DVC would not see an edit there


def test_an_artifact_records_its_generator_and_another_generators_file_is_refused(tmp_path):
    conv, tokens = resolve("conv_ae"), resolve("tokens")
    path = tmp_path / "ae.pt"
    save_artifact(Fitted({"mean": torch.zeros(3)}, "t"), tokens, path)
    assert torch.load(path, weights_only=True)["kind"] == "tokens"
    assert torch.equal(read_artifact(path, "train_ae", tokens)["mean"], torch.zeros(3))
    with pytest.raises(ArtifactError) as exc:
        read_artifact(path, "train_ae", conv)
    msg = str(exc.value)
    assert "`generator: tokens`" in msg and "`generator: conv_ae`" in msg and "`dvc repro train_ae`" in msg
    save_artifact(Fitted({"state_dict": {}}, "t"), conv, path)  # the conv AE's files stay untagged (same bytes)
    assert torch.load(path, weights_only=True) == {"state_dict": {}}
    assert read_artifact(path, "train_ldm", conv) == {"state_dict": {}}
    with pytest.raises(ArtifactError, match="`generator: conv_ae`.*dvc repro train_ldm"):
        read_artifact(path, "train_ldm", tokens)
    with pytest.raises(PdiffError, match="`kind` is the stage's own"):
        save_artifact(Fitted({"kind": "mine"}, "t"), tokens, path)


def _snapshots(path, k=12, d=30, rank=3):
    """K vectors on a ``rank``-dimensional affine subspace of R^d, as a snapshot file."""
    g = torch.Generator().manual_seed(0)
    x = 2.0 + torch.randn(k, rank, generator=g) @ torch.randn(rank, d, generator=g)
    save_torch({"params": x, "names": ["a.weight", "b.bias"], "shapes": [[5, 4], [10]]}, path)
    return x


def test_the_example_fits_samples_and_decodes_through_the_protocol(tmp_path):
    """user/generators/lowrank.py by the stages' own calls: the representation is the snapshots' mean and an orthonormal
    basis, samples lie in the snapshots' affine span (here 3-dimensional, so the extra directions get zero
    spread), the same rng gives the same file, and the decoder reconstructs the snapshots."""
    snaps = tmp_path / "snapshots.pt"
    x = _snapshots(snaps)
    repo_params = yaml.safe_load((ROOT / "params.yaml").read_text())  # it holds the example's group: rank 8
    generator, p = resolve(EXAMPLE), from_dict(repo_params | {"generator": EXAMPLE})
    ctx = Context(p, torch.Generator().manual_seed(0), snapshots=str(snaps), tracker=Tracker(None))
    fit_step(generator.fit_representation, generator, ctx, tmp_path / "ae.pt", tmp_path / "ae.png")
    rep = read_artifact(tmp_path / "ae.pt", "train_ae", generator)
    assert rep["kind"] == EXAMPLE and rep["basis"].shape == (8, 30) and png_size(tmp_path / "ae.png")[0] > 100
    assert torch.allclose(rep["basis"] @ rep["basis"].T, torch.eye(8), atol=1e-5)
    ctx = Context(p, torch.Generator().manual_seed(0), snapshots=str(snaps), representation=rep, tracker=Tracker(None))
    fit_step(generator.fit_prior, generator, ctx, tmp_path / "ldm.pt", tmp_path / "ldm.png")
    prior = read_artifact(tmp_path / "ldm.pt", "train_ldm", generator)
    sampler = generator.load_sampler(rep, prior, Context(p, torch.Generator()))
    for name in ("a.pt", "b.pt"):
        write_samples(sampler, 40, tmp_path / name, torch.Generator().manual_seed(5))
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    out = load_vectors(tmp_path / "a.pt", "generate")
    assert out["params"].shape == (40, 30) and out["names"] == ["a.weight", "b.bias"]
    centred = out["params"] - x.mean(0)
    span = torch.linalg.svd(x - x.mean(0), full_matrices=False)[2][:3]
    assert (centred - centred @ span.T @ span).abs().max() < 1e-3 < centred.std()  # spread only along the span
    decoder = generator.load_decoder(rep)
    assert torch.allclose(decoder.decode(decoder.encode(x)), x, atol=1e-4)


class _MeanOnly(Generator):
    """No representation (the protocol's default) and, as the prior, the snapshots' mean: every sample is it."""

    def fit_prior(self, ctx):
        x = ctx.load_snapshots()
        return Fitted({"mean": x["params"].mean(0), "names": x["names"], "shapes": x["shapes"]}, "mean")

    def load_sampler(self, representation, prior, ctx):
        return _Repeat(prior["names"], prior["shapes"], prior["mean"])


class _Repeat(Sampler):
    def __init__(self, names, shapes, vector):
        super().__init__(names, shapes)
        self.vector = vector

    def sample(self, n, cond=None, *, rng):
        return self.vector.expand(n, -1).clone()


def test_a_generator_without_a_representation_still_writes_both_files_and_curves(tmp_path):
    snaps = tmp_path / "snapshots.pt"
    x = _snapshots(snaps)
    generator, p = _MeanOnly(), from_dict({})
    generator.name = "user.mean:MeanOnly"
    for step, fit in (("ae", generator.fit_representation), ("ldm", generator.fit_prior)):
        rep = read_artifact(tmp_path / "ae.pt", "train_ae", generator) if step == "ldm" else None
        ctx = Context(p, torch.Generator(), snapshots=str(snaps), representation=rep,
                      tracker=Tracker(str(tmp_path / f"live_{step}")))
        fit_step(fit, generator, ctx, tmp_path / f"{step}.pt", tmp_path / f"{step}.png")
        metrics = json.loads((tmp_path / f"live_{step}/metrics.json").read_text())
        assert png_size(tmp_path / f"{step}.png")[0] > 100, step
    assert torch.load(tmp_path / "ae.pt", weights_only=True) == {"kind": "user.mean:MeanOnly"}
    assert metrics == {"step": 1, "saved_values": 30}  # the prior logged nothing: the values it saved
    prior = read_artifact(tmp_path / "ldm.pt", "train_ldm", generator)
    write_samples(generator.load_sampler({}, prior, Context(p, torch.Generator())), 3, tmp_path / "g.pt",
                  torch.Generator())
    assert torch.allclose(load_vectors(tmp_path / "g.pt", "generate")["params"], x.mean(0).expand(3, -1))


class _Counting(Sampler):
    """Row i is the vector full of i: a streaming sampler writes these rows in order."""
    streams = True

    def sample(self, n, cond=None, *, rng):
        return torch.arange(n, dtype=torch.float32)[:, None].expand(n, 3).clone()


def test_a_streaming_sampler_is_written_row_by_row_to_a_memory_mapped_store(tmp_path):
    write_samples(_Counting(["w"], [[3]]), 5, tmp_path / "g.pt", torch.Generator())
    assert is_vector_store(tmp_path / "g.pt")
    assert torch.equal(load_vectors(tmp_path / "g.pt", "generate")["params"][:, 0], torch.arange(5.0))


@pytest.mark.slow
@pytest.mark.longrun
def test_the_example_runs_through_the_tiny_pipeline_and_the_report_lists_it(tiny_copy):
    """`dvc exp run -S generator=user.generators.lowrank:LowRank` on the tiny repo: the generator's stages rerun
    (prepare, train and collect stay cached), its two files carry its name, every generated vector is the mean plus its
    basis (so it made them), analyze reports it beside every baseline and, since it has a decoder, the decoder
    sets; `dvc exp show` lists it beside the built-in run, and a conv AE run refuses its files."""
    repo = tiny_copy
    assert "kind" not in torch.load(repo / "models/ae.pt", weights_only=True)  # conv_ae: untagged
    out = run(["dvc", "exp", "run", "-S", f"generator={EXAMPLE}"], repo).stdout
    for stage in ("prepare", "train", "collect"):
        assert f"Running stage '{stage}'" not in out, stage
    for stage in ("train_ae", "train_ldm", "generate", "evaluate", "analyze"):
        assert f"Running stage '{stage}'" in out, stage
    rep = torch.load(repo / "models/ae.pt", weights_only=True)
    assert rep["kind"] == torch.load(repo / "models/ldm.pt", weights_only=True)["kind"] == EXAMPLE
    generated = load_vectors(repo / "models/generated.pt", "generate")["params"] - rep["mean"]
    assert (generated - generated @ rep["basis"].T @ rep["basis"]).abs().max() < 1e-4 < generated.abs().max()
    novelty = json.loads((repo / "metrics/novelty.json").read_text())
    assert list(novelty) == [*NAMES, "learned"]  # every baseline and both decoder sets, then what was learned
    assert novelty["generated"]["count"] == 8 and EXAMPLE in novelty["generated"]["note"]
    report = re.sub(r" +", " ", (repo / "report.md").read_text())
    assert f"- `generated`: sampled by generator `{EXAMPLE}`" in report
    assert "| generated |" in report and "| gaussian |" in report and "| decoded_noise |" in report
    shown = run(["dvc", "exp", "show", "--csv"], repo).stdout
    assert EXAMPLE in shown and "conv_ae" in shown  # the experiment beside the committed built-in run
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace(EXAMPLE, "conv_ae"))
    res = subprocess.run(stage_command("generate", repo / "dvc.yaml"), cwd=repo, capture_output=True, text=True,
                         env=stage_env())
    assert res.returncode == 1 and f"`generator: {EXAMPLE}`" in res.stderr and "dvc repro train_ae" in res.stderr


def test_the_walk_through_counts_are_the_files_own():
    """docs/own-generator.md's "files touched" numbers are the example's: its file (at most about 60 lines, as the
    protocol promises) and its settings group in params.yaml (the `user:` block)."""
    import re

    text = (ROOT / "docs/own-generator.md").read_text()
    file_lines, group_lines = (int(n) for n in re.search(
        r"`user/generators/lowrank\.py`, (\d+) lines, and its settings group in\s+`params\.yaml` \((\d+) lines\)",
        text).groups())
    assert file_lines == len((ROOT / "user/generators/lowrank.py").read_text().splitlines()) <= 60
    params = (ROOT / "params.yaml").read_text().split("\n\nuser:", 1)[1].split("\n\n", 1)[0]
    assert group_lines == len(("user:" + params).splitlines())
