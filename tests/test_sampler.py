"""generate.sampler / generate.steps: schema, sample_vectors, and the `generate` stage's wiring."""
import os
import subprocess

import pytest
import torch
import yaml

from pdiff.core.artifacts import load_torch, save_torch
from pdiff.core.config import ConfigError, from_dict
from pdiff.core.runtime import seed_everything
from pdiff.core.stage import stage_command
from pdiff.generative.autoencoder import Normalizer, ParamAE
from pdiff.generative.denoiser import UNet1D
from pdiff.generative.diffusion import linear_schedule
from pdiff.generative.ldm import LatentModel, SamplingConfig, sample_vectors
from tests.conftest import ROOT


def test_schema_defaults_and_choices():
    p = from_dict({})
    assert (p.conv_ae.generate.sampler, p.conv_ae.generate.steps) == ("ddpm", 50)
    p = from_dict({"conv_ae": {"generate": {"sampler": "ddim", "steps": 20}}})
    assert (p.conv_ae.generate.sampler, p.conv_ae.generate.steps) == ("ddim", 20)
    with pytest.raises(ConfigError, match="conv_ae.generate.sampler"):
        from_dict({"conv_ae": {"generate": {"sampler": "euler"}}})
    with pytest.raises(ConfigError, match="tokens.generate.steps"):
        from_dict({"tokens": {"generate": {"steps": 0}}})
    for name in ("conv_ae", "tokens"):
        with pytest.raises(ConfigError, match=f"{name}.train_ldm.timesteps"):
            from_dict({name: {"generate": {"sampler": "ddim", "steps": 60}, "train_ldm": {"timesteps": 50}}})
        from_dict({name: {"generate": {"sampler": "ddpm", "steps": 60}, "train_ldm": {"timesteps": 50}}})  # ddpm


def _tiny_models(dim=12, timesteps=30):
    torch.manual_seed(0)
    ae = ParamAE(dim, channels=[4], latent_channels=2).eval()
    normalizer = Normalizer(dim).fit(torch.randn(8, dim), "global", [dim])
    denoiser = UNet1D(2, base=4).eval()
    return ae, normalizer, denoiser, linear_schedule(timesteps)


class Counting(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x, t):
        self.calls += 1
        return self.net(x, t)


@pytest.mark.parametrize("sampler, steps, calls", [("ddpm", 7, 30), ("ddim", 7, 7), ("ddim", 30, 30)])
def test_sample_vectors_runs_the_chosen_sampler(sampler, steps, calls):
    ae, normalizer, denoiser, diffusion = _tiny_models()
    counting = Counting(denoiser)
    out = sample_vectors(LatentModel(ae, normalizer, counting, diffusion), SamplingConfig(5, 5, sampler, steps),
                         torch.Generator().manual_seed(0), "cpu")
    assert out.shape == (5, 12) and torch.isfinite(out).all()
    assert counting.calls == calls


@pytest.mark.slow
def test_generate_stage_reads_sampler_and_steps(tmp_path):
    """The stage script, run on tiny AE/LDM checkpoints, samples with DDIM and the configured steps (the same
    vectors as calling sample_vectors with the stage's seed stream), or with DDPM over all timesteps."""
    ae, normalizer, denoiser, diffusion = _tiny_models()
    (tmp_path / "models").mkdir()
    save_torch({"state_dict": ae.state_dict(), "config": dict(dim=12, channels=[4], latent_channels=2),
                "normalizer": normalizer.state_dict(), "names": ["w"], "shapes": [[12]]}, tmp_path / "models/ae.pt")
    save_torch({"state_dict": denoiser.state_dict(), "config": dict(in_channels=2, base=4),
                "schedule": dict(timesteps=30, beta_start=1e-4, beta_end=2e-2), "latent_mean": 0.0,
                "latent_std": 1.0}, tmp_path / "models/ldm.pt")
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run(**generate):
        params = {"conv_ae": {"train_ldm": {"timesteps": 30}, "generate": dict(batch_size=4, **generate)},
                  "generate": {"num_models": 4}}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        argv = stage_command("generate", ROOT / "dvc.yaml")
        res = subprocess.run([argv[0], str(ROOT / argv[1]), *argv[2:]], cwd=tmp_path, env=env, capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stderr, load_torch(tmp_path / "models/generated.pt", "generate")["params"]

    log, ddim = run(sampler="ddim", steps=6)
    assert "ddim" in log and "6/6" in log and "ddpm" not in log
    expected = sample_vectors(LatentModel(ae, normalizer, denoiser, diffusion), SamplingConfig(4, 4, "ddim", 6),
                              seed_everything(0, "generate"), "cpu")
    assert torch.allclose(ddim, expected, atol=1e-5)
    log, ddpm = run(sampler="ddpm")
    assert "ddpm" in log and "30/30" in log and not torch.allclose(ddim, ddpm)
