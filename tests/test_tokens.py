"""The tokenized generator (pdiff/generative/tokens.py) and the memory-mapped vector store
(pdiff/core/snapstore.py), at tiny size."""
import json
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from pdiff.core.artifacts import ArtifactError
from pdiff.core.snapstore import VectorWriter, is_vector_store, load_vectors, open_vectors
from pdiff.core.tracking import Tracker
from pdiff.generative import tokens as tk
from pdiff.generative.diffusion import linear_schedule
from tests.conftest import run

SIZES = [100, 37, 300]  # 2 + 1 + 5 tokens of 64: three of them padded
SHAPES = [[10, 10], [37], [3, 100]]
NAMES = ["a.weight", "b.bias", "c.weight"]


def test_tokenizer_round_trip_and_padding_mask():
    lay = tk.TokenLayout(SIZES, 64)
    assert lay.num_tokens == 8 and lay.length.tolist() == [64, 36, 37, 64, 64, 64, 64, 44]
    assert lay.tensor.tolist() == [0, 0, 1, 2, 2, 2, 2, 2] and lay.index.tolist() == [0, 1, 0, 0, 1, 2, 3, 4]
    x = torch.randn(4, sum(SIZES))
    tok = lay.tokenize(x, pad=7.0)
    assert tok.shape == (4, 8, 64) and torch.equal(lay.detokenize(tok), x)
    assert (tok[:, ~lay.mask] == 7.0).all() and int(lay.mask.sum()) == sum(SIZES)
    assert torch.equal(tok[:, 1, :36], x[:, 64:100])  # the second token of tensor a is its tail
    k, t = np.array([3, 0]), np.array([7, 2])
    assert torch.equal(lay.gather(x.numpy(), k, t), tok[[3, 0], [7, 2]] * lay.mask[[7, 2]])


def test_padding_never_enters_the_loss():
    torch.manual_seed(0)
    lay = tk.TokenLayout(SIZES, 64)
    model = tk.TokenGenerator(lay, width=32, depth=2, sequence="gru")
    torch.nn.init.normal_(model.denoiser.out.weight, std=0.1)  # a non-trivial output everywhere
    diffusion = linear_schedule(50)
    t = torch.tensor([1, 2, 7, 0])
    x0 = torch.randn(4, 64) * lay.mask[t]
    junk = x0 + 5.0 * torch.randn(4, 64) * ~lay.mask[t]  # only padded positions changed
    clean = model.loss(diffusion, x0, t, torch.Generator().manual_seed(3))
    dirty = model.loss(diffusion, junk, t, torch.Generator().manual_seed(3))
    assert torch.equal(clean, dirty)
    real = model.loss(diffusion, x0 + 0.5 * lay.mask[t], t, torch.Generator().manual_seed(3))
    assert not torch.equal(clean, real)  # while a change to real values does change it


@pytest.mark.parametrize("normalize", ["per_param", "per_tensor", "global", "none"])
def test_streaming_normalizer_matches_the_conv_ae_one(normalize):
    from pdiff.generative.autoencoder import Normalizer

    x = torch.randn(9, sum(SIZES)) * torch.rand(sum(SIZES)) + torch.randn(sum(SIZES))
    mean, std = tk.fit_normalizer(x.numpy(), SIZES, normalize, block=4)
    ref = Normalizer(x.shape[1]).fit(x, normalize, SIZES)
    assert torch.allclose(mean, ref.mean, atol=1e-5) and torch.allclose(std, ref.std, rtol=1e-4, atol=1e-6)


def _trained(sequence: str, steps: int = 5, code: str = "none"):
    lay = tk.TokenLayout(SIZES, 64)
    rows = torch.randn(6, sum(SIZES)).numpy()
    data = tk.token_data(lay, rows, *tk.fit_normalizer(rows, SIZES, "per_tensor"))
    model = tk.TokenGenerator(lay, width=32, depth=1, sequence=sequence, code=code)
    diffusion = linear_schedule(20)
    cfg = SimpleNamespace(steps=steps, batch=16, lr=1e-3, weight_decay=0.0)
    loss = tk.train_tokens(model, diffusion, data, cfg, "cpu", torch.Generator().manual_seed(0), Tracker(None))
    assert np.isfinite(loss)
    return model, diffusion, data


@pytest.mark.parametrize("sequence,sampler,code", [("gru", "ddpm", "none"), ("attention", "ddim", "none"),
                                                   ("none", "ddpm", "none"), ("none", "ddim", "step")])
def test_chunked_sampling_equals_unchunked(sequence, sampler, code):
    model, diffusion, data = _trained(sequence, code=code)

    def sample(chunk):
        return torch.stack(list(tk.sample_vectors_tokens(model, diffusion, data, 20, chunk,
                                                         torch.Generator().manual_seed(1), sampler=sampler,
                                                         steps=5, progress=False)))

    whole, chunked = sample(10_000), sample(64)  # 160 token rows: one chunk vs three
    assert whole.shape == (20, sum(SIZES)) and torch.isfinite(whole).all()
    assert torch.allclose(whole, chunked, atol=1e-5)
    other = torch.stack(list(tk.sample_vectors_tokens(model, diffusion, data, 2, 64, torch.Generator().manual_seed(2),
                                                      sampler=sampler, steps=5, progress=False)))
    assert not torch.allclose(other, whole[:2])  # the seed matters


def test_vector_store_round_trip_and_transparent_loading(tmp_path):
    x = torch.randn(5, sum(SIZES))
    path = tmp_path / "snapshots.pt"
    with VectorWriter(path, 5, NAMES, SHAPES, steps=[1, 2, 3, 4, 5]) as w:
        for row in x:
            w.append(row)
    assert is_vector_store(path)
    store = open_vectors(path, "collect")
    assert isinstance(store.rows, np.memmap) and store.shape == (5, sum(SIZES)) and store.names == NAMES
    assert torch.equal(torch.from_numpy(np.array(store.rows[2, 100:137])), x[2, 100:137])
    obj = load_vectors(path, "collect")  # what the conv AE stages read: the same meaning as the torch file
    assert torch.equal(obj["params"], x) and obj["shapes"] == SHAPES and obj["steps"] == [1, 2, 3, 4, 5]
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:  # a standard safetensors file
        assert torch.equal(f.get_tensor("params"), x) and json.loads(f.metadata()["names"]) == NAMES
    rows, names, _ = tk.open_rows(str(path), "collect")
    assert isinstance(rows, np.memmap) and names == NAMES


def test_a_vector_store_loads_mapped_and_copy_on_write(tmp_path):
    """load_vectors maps the file (a whole network's snapshots are not copied into memory); writing to the
    tensor changes this process's pages, never the file."""
    x = torch.randn(3, sum(SIZES))
    path = tmp_path / "snapshots.pt"
    with VectorWriter(path, 3, NAMES, SHAPES) as w:
        w.append(x)
    before = path.read_bytes()
    params = load_vectors(path, "collect")["params"]
    assert torch.equal(params, x) and str(path.resolve()) in Path("/proc/self/maps").read_text()  # mapped
    params[1].zero_()
    assert path.read_bytes() == before and torch.equal(load_vectors(path, "collect")["params"], x)


def test_vector_store_refuses_incomplete_truncated_and_corrupt_files(tmp_path):
    path = tmp_path / "snapshots.pt"
    with pytest.raises(ArtifactError, match="3 of 5 rows"):
        with VectorWriter(path, 5, NAMES, SHAPES) as w:
            for _ in range(3):
                w.append(torch.zeros(sum(SIZES)))
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing left behind, not even the temp file
    with VectorWriter(path, 2, NAMES, SHAPES) as w:
        w.append(torch.zeros(2, sum(SIZES)))
    good = path.read_bytes()
    path.write_bytes(good[:-10])
    with pytest.raises(ArtifactError, match=r"truncated or corrupt.*dvc repro collect"):
        load_vectors(path, "collect")
    n = struct.unpack("<Q", good[:8])[0]
    path.write_bytes(good[:8] + good[8:8 + n].replace(b"pdiff-vectors", b"other-vector") + good[8 + n:])
    with pytest.raises(ArtifactError, match="not a pdiff vector store"):
        open_vectors(path, "collect")
    path.write_bytes(good[:8] + b"{not json" + good[17:])
    with pytest.raises(ArtifactError, match="cannot be read"):
        load_vectors(path, "collect")
    with pytest.raises(ArtifactError, match="missing"):
        open_vectors(tmp_path / "none.pt", "collect")


def test_generator_param_is_validated():
    from pdiff.core.config import ConfigError, from_dict

    assert from_dict({}).generator == "conv_ae" and from_dict({}).collect.storage == "torch"
    with pytest.raises(ConfigError, match="generator"):
        from_dict({"generator": "gan"})
    with pytest.raises(ConfigError, match="tokens.train_ldm.sequence"):
        from_dict({"tokens": {"train_ldm": {"sequence": "mamba"}}})


@pytest.mark.slow
@pytest.mark.longrun
def test_pipeline_with_the_tokens_generator_and_mmap_snapshots(tiny_copy):
    """generator: tokens + collect.storage: mmap through the real stages (the tiny repo's prepare and train
    reused): both vector files are memory-mapped stores, evaluate and analyze read them, and analyze leaves out
    the decoder sets, since raw tokens have no decoder."""
    repo = tiny_copy
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params |= {"generator": "tokens", "tokens": {"train_ae": {"size": 16},
                                                 "train_ldm": {"batch": 32, "width": 16, "depth": 1, "steps": 30,
                                                               "timesteps": 50},
                                                 "generate": {"sampler": "ddim", "steps": 5, "sample_chunk": 64}}}
    params["collect"]["storage"] = "mmap"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo).stdout
    assert "Running stage 'train'" not in out and "Running stage 'analyze'" in out
    assert is_vector_store(repo / "models/snapshots.pt") and is_vector_store(repo / "models/generated.pt")
    gen = load_vectors(repo / "models/generated.pt", "generate")
    snaps = load_vectors(repo / "models/snapshots.pt", "collect")
    assert gen["params"].shape == (8, snaps["params"].shape[1]) and gen["names"] == snaps["names"]
    ev = json.loads((repo / "metrics/evaluate.json").read_text())
    assert ev["generated"]["count"] == 8
    assert "tokens" in json.loads((repo / "metrics/train_ae/metrics.json").read_text())
    novelty = json.loads((repo / "metrics/novelty.json").read_text())
    assert {"generated", "gaussian"} <= set(novelty) and not {"decoded_noise", "reconstruction"} & set(novelty)
    assert novelty["learned"]["num_generated"] == 8  # measured on the memory-mapped vectors too
    # the stages declare the selected generator's group only: a conv_ae key changes nothing for tokens
    params["conv_ae"] |= {"train_ae": {"lr": 0.5}, "train_ldm": {"steps": 7}, "generate": {"sampler": "ddim"}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "up to date" in run(["dvc", "status"], repo).stdout
    params["tokens"]["generate"]["clip"] = 2.0  # and a tokens key reruns its own stage only
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run(["dvc", "status", "--json"], repo).stdout
    assert set(json.loads(status)) == {"generate"}


@pytest.mark.parametrize("kind", ["layers", "tensors"])
def test_tensor_sequences_read_one_row_per_tensor_so_a_step_costs_the_same_at_any_d(kind):
    """sequence: layers (a GRU) and tensors (one transformer layer) read one row per tensor (L = 3 here), whatever
    the number of tokens T (448), and the tokens in use get the prototypes the whole sequence gives them (only they
    run): a token's own plus its tensor's state, so tokens at the same index of different tensors differ through
    their tensor's state, not only their position embedding. With tensors, a tensor's state depends on the other
    tensors (attention over all L at once)."""
    from pdiff.core.config import from_dict

    assert from_dict({"tokens": {"train_ldm": {"sequence": kind}}}).tokens.train_ldm.sequence == kind
    lay = tk.TokenLayout([4096, 64, 3000], 16)
    torch.manual_seed(0)
    model = tk.TokenGenerator(lay, width=32, depth=1, sequence=kind)
    seen = []
    model.sequence.seq.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape)))
    full = model.prototypes()
    some = torch.tensor([0, 5, 256, 300, 447])
    torch.testing.assert_close(model.prototypes(some), full[some])
    assert lay.num_tokens == 448 and seen == [(1, 3, 32), (1, 3, 32)]
    rows = tk.tensor_embedding(lay.sizes, 32)
    state = model.sequence.tensor_states(rows)
    own = model.sequence.inp(tk.position_embedding(torch.from_numpy(lay.tensor), torch.from_numpy(lay.index), 32))
    torch.testing.assert_close(full, own + state[torch.from_numpy(lay.tensor)])
    assert state.abs().sum() > 0
    if kind == "layers":  # the GRU's output sequence, one step per tensor
        torch.testing.assert_close(state, model.sequence.seq(model.sequence.layer_inp(rows)[None])[0][0])
    else:  # the first tensor without the other two gets another state
        assert not torch.allclose(model.sequence.tensor_states(rows[:1])[0], state[0])


def _coherent_fraction(code: str) -> float:
    """Snapshots k < K/2 are +1 everywhere, the others -1. A generator fitted to them: the fraction of its
    samples whose 8 tokens all share one sign (a sample that mixes tokens of different snapshots does not)."""
    lay = tk.TokenLayout([16, 16], 4)
    rows = np.concatenate([np.ones((10, 32)), -np.ones((10, 32))]).astype(np.float32)
    data = tk.token_data(lay, rows, torch.zeros(32), torch.ones(32))
    model = tk.TokenGenerator(lay, width=32, depth=2, sequence="none", code=code)
    diffusion = linear_schedule(50, 1e-3, 0.3)
    cfg = SimpleNamespace(steps=400, batch=64, lr=3e-3, weight_decay=0.0)
    tk.train_tokens(model, diffusion, data, cfg, "cpu", torch.Generator().manual_seed(0), Tracker(None))
    vecs = torch.stack(list(tk.sample_vectors_tokens(model, diffusion, data, 40, 4096, torch.Generator().manual_seed(1),
                                                     progress=False, clip=2.0)))
    signs = torch.sign(vecs.reshape(40, 8, 4).mean(2))
    return float((signs == signs[:, :1]).all(1).float().mean())


def test_step_code_keeps_the_tokens_of_a_sample_together():
    """With code none the 8 tokens of a sample are drawn independently (all one sign: about 2 / 2^8 of samples);
    with code step they share their snapshot's position, so a sample is +1 or -1 as a whole."""
    assert _coherent_fraction("step") >= 0.8
    assert _coherent_fraction("none") <= 0.3


def test_clip_keeps_samples_of_an_untrained_denoiser_in_range():
    """An untrained denoiser (zero output) lets DDPM samples grow (by prod 1/sqrt(alpha_t), ~150x for both this
    short schedule and the default 1,000 steps); clip bounds every x0 estimate."""
    lay = tk.TokenLayout(SIZES, 64)
    model = tk.TokenGenerator(lay, width=16, depth=1, sequence="none")
    diffusion = linear_schedule(100, 1e-3, 0.2)

    def sample(clip):
        return torch.cat(list(tk.sample_tokens(model, diffusion, 16, 64, torch.Generator().manual_seed(0),
                                               progress=False, clip=clip)))

    assert sample(None).abs().max() > 20
    clipped = sample(2.0)
    assert clipped.abs().max() <= 2.0 + 1e-5 and clipped.std() > 0.1


def test_docs_tables_are_generated_blocks():
    """docs/tokens.md's tables are generated blocks of tools.doc_numbers, whose test checks their content."""
    from tests.conftest import ROOT

    text = (ROOT / "docs/tokens.md").read_text()
    for source in ("tools.bench_tokens:tables_block", "tools.bench_tokens:tuning_block"):
        assert f"<!--@@ {source} -->" in text
    assert "| 11,172,810 |" in text  # the whole ResNet-18 was measured


def test_tokens_defaults_are_the_validation_choice_and_agree_with_the_conv_ae():
    """docs/tokens.md: the tokens defaults are the tuning run with the lowest L2 to the snapshots (chosen on
    validation), and with them the test medians of both generators at the paper's D (same seed, same
    snapshots) are within 0.1 points."""
    from tests.conftest import ROOT

    folder = ROOT / "reports/mnist5k-resnet18"
    tuning = json.loads((folder / "tokens/tuning_val.json").read_text())
    assert tuning["split"] == "validation"
    best = min(tuning["runs"], key=lambda r: r["nn_l2_mean"])["settings"]
    group = yaml.safe_load((ROOT / "params.yaml").read_text())["tokens"]
    defaults = group["train_ae"] | group["train_ldm"] | {"clip": group["generate"]["clip"]}
    keys = ("width", "depth", "sequence", "code", "normalize", "lr", "steps", "batch", "clip")
    assert {k: best[k] for k in keys} == {k: defaults[k] for k in keys} and best["token_size"] == defaults["size"]
    tokens = json.loads((folder / "tokens/results.json").read_text())
    conv = json.loads((folder / "conv_ae/results.json").read_text())["seeds"][0]
    assert tokens["overrides"] == {"generator": "tokens", "collect.storage": "mmap"}  # the defaults, nothing else
    tok = tokens["seeds"][0]
    assert tok["generator"] == "tokens" and conv["generator"] == "conv_ae" and tok["seed"] == conv["seed"]
    assert tok["original"] == conv["original"]  # the same base model and snapshots
    assert abs(tok["generated"]["acc_median"] - conv["generated"]["acc_median"]) <= 0.1 + 1e-9


def test_tokens_compare_variants_override_the_base_settings_with_their_types():
    from tools.tokens_compare import variants

    base = dict(steps=400, token_size=16, batch=128, width=64, depth=3, normalize="per_param", clip=4.0, lr=1e-3,
                sequence="gru", code="none", sampler="ddpm", sequences="none,gru")
    runs = variants(SimpleNamespace(**base, variant=["code=step,width=512", "lr=3e-4"]))
    assert [name for name, _ in runs] == ["code=step,width=512", "lr=3e-4"]
    first, second = runs[0][1], runs[1][1]
    assert (first.code, first.width, first.steps, first.lr) == ("step", 512, 400, 1e-3) and type(first.width) is int
    assert (second.lr, second.code) == (3e-4, "none")
    assert [(n, a.sequence) for n, a in variants(SimpleNamespace(**base, variant=[]))] == [("none", "none"),
                                                                                          ("gru", "gru")]
    with pytest.raises(SystemExit, match="colour=red"):
        variants(SimpleNamespace(**base, variant=["colour=red"]))
