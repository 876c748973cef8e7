from types import SimpleNamespace

import pytest
import torch

from pdiff.core.tracking import Tracker
from pdiff.generative.denoiser import UNet1D
from pdiff.generative.diffusion import linear_schedule, schedule_settings
from pdiff.generative.fitting import EMA, ema_warmup_end
from pdiff.generative.ldm import train_denoiser


def test_schedule_matches_paper_defaults_and_its_equations():
    """linear_schedule's tables against the equations of its docstring, written out here step by step."""
    d = linear_schedule(1000)
    b = d.betas
    assert len(b) == 1000 and b.dtype == torch.float64
    assert abs(b[0].item() - 1e-4) < 1e-12 and abs(b[-1].item() - 2e-2) < 1e-12
    assert torch.allclose(b, 1e-4 + (2e-2 - 1e-4) * torch.arange(1000, dtype=torch.float64) / 999)
    abar, prod = [], 1.0
    for beta in b.tolist():
        prod *= 1 - beta
        abar.append(prod)
    abar = torch.tensor(abar, dtype=torch.float64)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    assert torch.allclose(d.alphas_cumprod, abar, rtol=1e-12) and torch.allclose(d.alphas_cumprod_prev, abar_prev)
    assert torch.allclose(d.posterior_variance, b * (1 - abar_prev) / (1 - abar))
    assert torch.allclose(d.posterior_mean_coef1, b * abar_prev.sqrt() / (1 - abar))
    assert torch.allclose(d.posterior_mean_coef2, (1 - abar_prev) * (1 - b).sqrt() / (1 - abar))
    assert d.posterior_variance[0] == 0  # t = 0: the last step adds no noise


def test_schedule_settings_round_trip_through_a_checkpoint_dict():
    from types import SimpleNamespace

    settings = schedule_settings(SimpleNamespace(timesteps=50, beta_start=1e-3, beta_end=0.3, lr=1.0))
    assert settings == {"timesteps": 50, "beta_start": 1e-3, "beta_end": 0.3}
    assert torch.equal(linear_schedule(**settings).betas, torch.linspace(1e-3, 0.3, 50, dtype=torch.float64))


def test_ddim_timesteps_are_evenly_spaced_from_the_last_to_zero_without_repeats():
    d = linear_schedule(1000)
    assert d.ddim_timesteps(5) == [999, 749, 500, 250, 0]
    assert linear_schedule(10).ddim_timesteps(50) == list(range(9, -1, -1))  # more steps than timesteps


def test_forward_process_closed_form_matches_iterating_the_chain():
    """q(x_t | x_0) in closed form has the same mean and variance as t single steps
    x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps."""
    d = linear_schedule(100, 1e-3, 5e-2)
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
    d = linear_schedule(1000)
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
    d = linear_schedule(1000)
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


def _hand_ema(start, steps, d_of_n):
    """The EMA written out: ``e = d(n) e + (1 - d(n)) w_n`` over weights w_n = start + n (one step per update)."""
    e = start.clone()
    for n in range(1, steps + 1):
        d = d_of_n(n)
        e = d * e + (1 - d) * (start + n)
    return e


def _run_ema(decay, steps, warmup):
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 1)
    start = lin.weight.detach().clone()
    ema = EMA(lin, decay=decay, warmup=warmup)
    for _ in range(steps):
        with torch.no_grad():
            lin.weight.add_(1.0)
        ema.update(lin)
    return start, ema.module().weight, lin.weight


def test_ema_without_warm_up_uses_the_configured_decay_from_the_first_update():
    for decay in (0.5, 0.9):
        start, avg, current = _run_ema(decay, 6, warmup=False)
        assert torch.allclose(avg, _hand_ema(start, 6, lambda n, d=decay: d))
        assert not torch.allclose(avg, current)  # it lags behind the current weights
    # a decay that is ignored (or capped) would make these two equal
    assert not torch.allclose(_run_ema(0.5, 6, False)[1], _run_ema(0.9, 6, False)[1])
    with pytest.raises(ValueError):
        EMA(torch.nn.Linear(3, 1), decay=1.0)


def test_ema_warm_up_follows_its_formula_and_reaches_the_configured_decay():
    """With the warm-up the decay in use is min(decay, (1 + n)/(10 + n)): 0.9 takes effect from update 80 on,
    so after 120 updates 0.9 and 0.95 (which takes effect only from 170) average differently, while after 60
    updates (both still capped) they are identical."""
    assert ema_warmup_end(0.9) == 80 and ema_warmup_end(0.95) == 170
    start, avg, _ = _run_ema(0.9, 120, warmup=True)
    assert torch.allclose(avg, _hand_ema(start, 120, lambda n: min(0.9, (1 + n) / (10 + n))))
    assert not torch.allclose(avg, _hand_ema(start, 120, lambda n: (1 + n) / (10 + n)))  # 0.9 counted from 80 on
    assert not torch.allclose(avg, _run_ema(0.95, 120, warmup=True)[1])
    assert torch.equal(_run_ema(0.9, 60, warmup=True)[1], _run_ema(0.95, 60, warmup=True)[1])


def test_ema_warm_up_thresholds_quoted_in_the_params_help_are_the_formulas():
    from pdiff.core.config import LDMConfig

    for decay in (0.5, 0.999, 0.9999):
        n = ema_warmup_end(decay)
        assert (1 + n) / (10 + n) >= decay > (1 + n - 1) / (10 + n - 1)
    help_text = LDMConfig.model_fields["ema_warmup"].description
    assert f"{ema_warmup_end(0.999):,} updates for 0.999" in help_text
    assert f"{ema_warmup_end(0.9999):,} for 0.9999" in help_text
    assert f"{(1 + 1500) / (10 + 1500):.3f} after 1,500 steps" in help_text


def _train_tiny_denoiser(**cfg):
    torch.manual_seed(0)
    net = UNet1D(2, base=4)
    z = torch.randn(6, 2, 8)
    d = linear_schedule(50, 1e-4, 2e-2)
    conf = SimpleNamespace(lr=1e-2, weight_decay=0.0, steps=30, batch_size=4, **cfg)
    loss, sampler = train_denoiser(net, d, z, conf, "cpu", torch.Generator().manual_seed(0), Tracker(None))
    return net, sampler, loss


def test_ema_off_by_default_samples_with_the_trained_weights_and_on_with_their_average():
    net, sampler, loss = _train_tiny_denoiser()
    assert sampler is net
    off_net, off_sampler, off_loss = _train_tiny_denoiser(ema_decay=0.0)
    assert off_sampler is off_net and off_loss == loss
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), off_net.state_dict().values(), strict=True))
    on_net, on_sampler, on_loss = _train_tiny_denoiser(ema_decay=0.9)
    assert on_loss == loss  # the average does not feed back into training
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), on_net.state_dict().values(), strict=True))
    differ = [not torch.equal(a, b) for a, b in zip(on_net.parameters(), on_sampler.parameters(), strict=True)]
    assert on_sampler is not on_net and any(differ)
    # ldm.ema_warmup reaches the EMA: without the warm-up 30 steps at decay 0.9 average differently
    _, cold_sampler, _ = _train_tiny_denoiser(ema_decay=0.9, ema_warmup=False)
    assert any(not torch.equal(a, b) for a, b in zip(on_sampler.parameters(), cold_sampler.parameters(), strict=True))
