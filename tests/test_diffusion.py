from types import SimpleNamespace

import pytest
import torch

from pdiff.core.tracking import Tracker
from pdiff.generative.denoiser import UNet1D
from pdiff.generative.diffusion import GaussianDiffusion, linear_betas
from pdiff.generative.fitting import EMA
from pdiff.generative.ldm import train_denoiser


def test_schedule_matches_paper_defaults():
    b = linear_betas(1000, 1e-4, 2e-2)
    assert len(b) == 1000 and abs(b[0].item() - 1e-4) < 1e-12 and abs(b[-1].item() - 2e-2) < 1e-12
    d = GaussianDiffusion(b)
    assert torch.allclose(d.alphas_cumprod, torch.cumprod(1 - b, 0))


def test_forward_process_closed_form_matches_iterating_the_chain():
    """q(x_t | x_0) in closed form has the same mean and variance as t single steps
    x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps."""
    d = GaussianDiffusion(linear_betas(100, 1e-3, 5e-2))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 2.0)
    t = 60
    x = x0.clone()
    for s in range(t + 1):
        x = (1 - d.betas[s]).sqrt().float() * x + d.betas[s].sqrt().float() * torch.randn(x.shape, generator=gen)
    closed = d.q_sample(x0, torch.full((len(x0),), t), torch.randn(x0.shape, generator=gen))
    abar = d.alphas_cumprod[t].item()
    for sample in (x, closed):
        assert abs(sample.mean().item() - 2.0 * abar ** 0.5) < 0.03
        assert abs(sample.var().item() - (1 - abar)) < 0.03


def test_predict_x0_inverts_q_sample():
    d = GaussianDiffusion(linear_betas(1000))
    x0 = torch.randn(8, 4, 6)
    t = torch.randint(1000, (8,))
    noise = torch.randn_like(x0)
    assert torch.allclose(d.predict_x0(d.q_sample(x0, t, noise), t, noise), x0, atol=1e-3)


def _oracle(d, target):
    """The exact noise predictor when the data is the single point ``target``."""
    def model(xt, t):
        a = d.alphas_cumprod[t].float().reshape(-1, 1, 1)
        return (xt - a.sqrt() * target) / (1 - a).sqrt()
    return model


def test_ddpm_and_ddim_recover_a_point_mass_with_the_exact_denoiser():
    d = GaussianDiffusion(linear_betas(1000))
    target = torch.randn(1, 2, 5)
    gen = torch.Generator().manual_seed(0)
    x = d.p_sample_loop(_oracle(d, target), (3, 2, 5), gen=gen, progress=False)
    assert torch.allclose(x, target.expand(3, 2, 5), atol=1e-3)
    x = d.ddim_sample_loop(_oracle(d, target), (3, 2, 5), steps=20, gen=gen, progress=False)
    assert torch.allclose(x, target.expand(3, 2, 5), atol=1e-3)


def test_unet_shapes_any_length():
    net = UNet1D(4, base=16)
    for length in (24, 13):
        x = torch.randn(3, 4, length)
        assert net(x, torch.tensor([0, 500, 999])).shape == x.shape


def test_unet_with_the_official_rewrites_widths():
    net = UNet1D(2, base=8, mults=(1, 2, 4, 8))  # widths 8...64...8, four halvings of the length
    assert max(m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv1d)) == 64
    x = torch.randn(2, 2, 64)
    assert net(x, torch.tensor([1, 900])).shape == x.shape


def test_ema_is_the_exponential_average_of_the_weights():
    lin = torch.nn.Linear(3, 1)
    ema = EMA(lin, decay=0.5)
    expected = lin.weight.detach().clone()
    for n in range(1, 6):
        with torch.no_grad():
            lin.weight.add_(1.0)
        ema.update(lin)
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * lin.weight.detach()
    assert torch.allclose(ema.module().weight, expected)
    assert not torch.allclose(ema.module().weight, lin.weight)  # it lags behind the current weights
    with pytest.raises(ValueError):
        EMA(lin, decay=1.0)


def test_ema_warm_up_caps_the_decay_in_short_runs():
    """The decay in use is min(decay, (1 + n)/(10 + n)), so within 1,000 updates (< 8,989, where 0.999 would
    take effect) a nominal 0.999 and 0.9999 average identically, while 0.9 does not."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    emas = {d: EMA(lin, decay=d) for d in (0.9, 0.999, 0.9999)}
    for _ in range(1000):
        with torch.no_grad():
            lin.weight.add_(torch.randn_like(lin.weight))
        for ema in emas.values():
            ema.update(lin)
    assert torch.equal(emas[0.999].module().weight, emas[0.9999].module().weight)
    assert not torch.allclose(emas[0.9].module().weight, emas[0.999].module().weight)


def _train_tiny_denoiser(**cfg):
    torch.manual_seed(0)
    net = UNet1D(2, base=4)
    z = torch.randn(6, 2, 8)
    d = GaussianDiffusion(linear_betas(50, 1e-4, 2e-2))
    conf = SimpleNamespace(lr=1e-2, weight_decay=0.0, steps=30, batch_size=4, **cfg)
    loss, sampler = train_denoiser(net, d, z, conf, "cpu", torch.Generator().manual_seed(0), Tracker(None))
    return net, sampler, loss


def test_ema_off_by_default_samples_with_the_trained_weights_and_on_with_their_average():
    net, sampler, loss = _train_tiny_denoiser()
    assert sampler is net
    off_net, off_sampler, off_loss = _train_tiny_denoiser(ema_decay=0.0)
    assert off_sampler is off_net and off_loss == loss
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), off_net.state_dict().values()))
    on_net, on_sampler, on_loss = _train_tiny_denoiser(ema_decay=0.9)
    assert on_loss == loss  # the average does not feed back into training
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), on_net.state_dict().values()))
    differ = [not torch.equal(a, b) for a, b in zip(on_net.parameters(), on_sampler.parameters())]
    assert on_sampler is not on_net and any(differ)
