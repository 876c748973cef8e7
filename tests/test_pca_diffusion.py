"""user/generators/pca_diffusion.py: the streamed PCA equals an SVD's, the DDPM prior on the coefficients learns
what a Gaussian on them cannot (two clusters), through the stages' own protocol calls, its coefficient noise widens
what it learned, and its committed settings are the whole-network validation choice (docs/whole-network.md)."""
import json

import torch
import yaml

from pdiff.core.artifacts import save_torch
from pdiff.core.config import from_dict
from pdiff.core.snapstore import load_vectors
from pdiff.core.tracking import Tracker
from pdiff.generative.protocol import Context, fit_step, read_artifact, write_samples
from pdiff.generative.registry import resolve
from tests.conftest import ROOT
from tools.paper_scale import PCA_VAL, pca_val_choice
from user.generators import pca_diffusion

NAME = "user.generators.pca_diffusion:PCADiffusion"


def test_the_chunked_gram_pca_is_the_svds(monkeypatch):
    """Directions (up to sign), coefficients and variance shares as torch.linalg.svd gives them, with the columns
    read in chunks of 7 (the last one shorter), so no chunk sees the whole row."""
    monkeypatch.setattr(pca_diffusion, "CHUNK_COLUMNS", 7)
    g = torch.Generator().manual_seed(0)
    x = 3.0 + torch.randn(10, 4, generator=g) * torch.tensor([4.0, 2.0, 1.0, 0.5]) @ torch.linalg.qr(
        torch.randn(30, 4, generator=g))[0].T
    mean, basis, coef, explained = pca_diffusion.principal_directions(x, 3)
    _, s, vh = torch.linalg.svd((x - x.mean(0)).double(), full_matrices=False)
    assert torch.allclose(mean, x.mean(0), atol=1e-5)
    signs = (basis.double() * vh[:3]).sum(1).sign()
    assert torch.allclose(basis.double() * signs[:, None], vh[:3], atol=1e-5)
    assert torch.allclose(coef.double() * signs, (x - x.mean(0)).double() @ vh[:3].T, atol=1e-4)
    assert torch.allclose(explained.double(), ((s ** 2).cumsum(0) / (s ** 2).sum())[:3], atol=1e-6)


def test_the_prior_learns_two_clusters_that_a_gaussian_on_the_same_coefficients_fills_in(tmp_path):
    """Snapshots at +-1 along one direction (plus a little spread along a second): the DDPM's samples keep the
    gap at 0, which the decoder's Gaussian (analyze's decoded_noise, the low-rank example) fills; the same rng gives
    the same file, every sample lies in the snapshots' span, and both artifacts carry the generator's name."""
    g = torch.Generator().manual_seed(1)
    d = torch.linalg.qr(torch.randn(40, 2, generator=g))[0].T  # two orthonormal directions in R^40
    side = torch.tensor([1.0, -1.0]).repeat(16)[:, None]
    x = 0.5 + side * d[0] + 0.1 * torch.randn(32, 1, generator=g) * d[1]
    save_torch({"params": x, "names": ["w"], "shapes": [[40]]}, tmp_path / "snapshots.pt")
    params = yaml.safe_load((ROOT / "params.yaml").read_text()) | {"generator": NAME}
    params["user"]["generators"]["pca_diffusion:PCADiffusion"]["train_ldm"].update(steps=1500, lr=0.01, noise=0.0)
    generator, p = resolve(NAME), from_dict(params)
    ctx = Context(p, torch.Generator().manual_seed(0), snapshots=str(tmp_path / "snapshots.pt"), tracker=Tracker(None))
    fit_step(generator.fit_representation, generator, ctx, tmp_path / "ae.pt", tmp_path / "ae.png")
    rep = read_artifact(tmp_path / "ae.pt", "train_ae", generator)
    ctx.representation = rep
    fit_step(generator.fit_prior, generator, ctx, tmp_path / "ldm.pt", tmp_path / "ldm.png")
    prior = read_artifact(tmp_path / "ldm.pt", "train_ldm", generator)
    assert rep["kind"] == prior["kind"] == NAME and rep["basis"].shape == (2, 40)  # rank 8, but 2 directions spread
    sampler = generator.load_sampler(rep, prior, Context(p, torch.Generator()))
    for name in ("a.pt", "b.pt"):
        write_samples(sampler, 200, tmp_path / name, torch.Generator().manual_seed(5))
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    samples = load_vectors(tmp_path / "a.pt", "generate")["params"]
    along = (samples - x.mean(0)) @ d[0]
    decoder = generator.load_decoder(rep)
    z = decoder.encode(x)
    gaussian = decoder.decode(z.mean(0) + z.std(0) * torch.randn(200, z.shape[1], generator=g))
    gaussian_along = (gaussian - x.mean(0)) @ d[0]
    assert (along.abs() < 0.5).float().mean() < 0.1 < 0.3 < (gaussian_along.abs() < 0.5).float().mean()
    assert 0.3 < (along > 0).float().mean() < 0.7  # both clusters, not one
    centred = samples - x.mean(0)
    assert (centred - centred @ d.T @ d).abs().max() < 1e-3


def test_noise_on_the_coefficients_widens_what_the_prior_learned_around_each_snapshot(tmp_path):
    """`train_ldm.noise`: the prior fitted on coefficients with Gaussian noise added to each batch learns the
    snapshots smoothed by that noise. Snapshots at +-1 along one direction: without noise the samples sit close to
    +-1 (copies); with noise 0.5 (in units of the coefficients' std) they spread around both points, and both
    clusters are still there."""
    g = torch.Generator().manual_seed(1)
    d = torch.linalg.qr(torch.randn(40, 1, generator=g))[0].T  # one unit direction in R^40
    x = 0.5 + torch.tensor([1.0, -1.0]).repeat(16)[:, None] * d[0]
    save_torch({"params": x, "names": ["w"], "shapes": [[40]]}, tmp_path / "snapshots.pt")
    spread = {}
    for noise in (0.0, 0.5):
        params = yaml.safe_load((ROOT / "params.yaml").read_text()) | {"generator": NAME}
        params["user"]["generators"]["pca_diffusion:PCADiffusion"]["train_ldm"].update(steps=800, lr=0.01,
                                                                                        noise=noise)
        generator, p = resolve(NAME), from_dict(params)
        ctx = Context(p, torch.Generator().manual_seed(0), snapshots=str(tmp_path / "snapshots.pt"),
                      tracker=Tracker(None))
        ctx.representation = generator.fit_representation(ctx).state
        prior = generator.fit_prior(ctx).state
        samples = generator.load_sampler(ctx.representation, prior, ctx).sample(400, rng=torch.Generator()
                                                                                 .manual_seed(5))
        along = (samples - x.mean(0)) @ d[0]
        assert 0.3 < (along > 0).float().mean() < 0.7  # both clusters, not one
        spread[noise] = float((along.abs() - 1).abs().median())
    assert spread[0.0] < 0.15 and spread[0.5] > 2 * spread[0.0], spread


def test_the_committed_settings_are_the_whole_network_validation_choice():
    """params.yaml's rank and noise for the example are what the rule of the committed validation sweep
    (reports/mnist5k-resnet18-whole/pca_diffusion_val.json, tools.paper_scale.pca_val_choice) picks; the rule
    turns down a candidate that is not diverse on validation, or whose validation median is over a point below the
    originals'."""
    record = json.loads((ROOT / PCA_VAL).read_text())
    chosen = pca_val_choice(record)
    group = yaml.safe_load((ROOT / "params.yaml").read_text())["user"]["generators"]["pca_diffusion:PCADiffusion"]
    assert (chosen["rank"], chosen["noise"]) == (group["train_ae"]["rank"], group["train_ldm"]["noise"])
    snaps = record["snapshots"]
    worse = dict(chosen, val_acc_median=snaps["val_acc_median"] - 1.05)
    alike = dict(chosen, val_disagreement=0.49 * snaps["val_disagreement"])
    assert pca_val_choice(dict(record, candidates=[worse, alike])) is None


def test_the_analyze_memory_record_is_the_committed_whole_network_run_and_within_the_target():
    """reports/mnist5k-resnet18-whole/analyze_memory.json (docs/whole-network.md) compares one analyze before and
    after it kept its sets in files: its after numbers are those of the committed PCA diffusion run, whose analyze
    is within 4 GB beyond the mapped snapshot file, where the before one was not."""
    rec = json.loads((ROOT / "reports/mnist5k-resnet18-whole/analyze_memory.json").read_text())
    run = json.loads((ROOT / "reports/mnist5k-resnet18-whole/pca_diffusion_noise/results.json").read_text())
    entry = next(e for e in run["seeds"] if e["seed"] == 0)
    assert rec["after"]["peak_rss_mb"] == entry["stage_peak_rss_mb"]["analyze"]
    assert rec["after"]["seconds"] == entry["stage_seconds"]["analyze"]
    assert rec["mapped_file_mb"] == entry["mapped_file_mb"] and rec["cpu"] == entry["kernels"]["cpu"]
    assert entry["commit"].startswith(rec["after"]["commit"])
    assert rec["after"]["beyond_mapped_file_mb"] < 4096 < rec["before"]["beyond_mapped_file_mb"]
    assert rec["peak_rss_after_over_before"] == round(rec["after"]["peak_rss_mb"] / rec["before"]["peak_rss_mb"], 3)
    assert rec["same_outputs"] and set(rec["outputs_md5"]) == {"metrics/novelty.json", "plots/analyze", "report.md"}
