"""The no-learning baselines of pdiff/analysis/baselines.py, each on its own: what every vector is made of."""
import pytest
import torch

from pdiff import PdiffError
from pdiff.analysis.baselines import (
    average_baseline,
    gaussian_baseline,
    interpolation_baseline,
    interpolation_pairs,
    noise_baseline,
    tensor_scales,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_average_of_identical_snapshots_is_the_snapshot():
    snap = torch.randn(1, 9)
    out = average_baseline(snap.repeat(5, 1), n=4, k=3, gen=_gen())
    assert out.shape == (4, 9) and torch.allclose(out, snap.expand(4, 9), atol=1e-6)


def test_average_takes_k_distinct_snapshots_and_caps_k_at_K():
    eye = torch.eye(6)  # snapshot i = e_i, so the mean shows which snapshots went in
    out = average_baseline(eye, n=20, k=3, gen=_gen())
    assert torch.allclose(out, (out > 0).float() / 3) and ((out > 0).sum(1) == 3).all()
    assert len({tuple(r.tolist()) for r in out}) > 1  # random choices differ between models
    full = average_baseline(eye, n=2, k=16, gen=_gen())
    assert torch.allclose(full, torch.full((2, 6), 1 / 6))


def test_gaussian_baseline_matches_per_parameter_mean_and_std():
    torch.manual_seed(0)
    mean, std = torch.tensor([0.0, 5.0, -2.0, 1.0]), torch.tensor([1.0, 0.1, 3.0, 0.0])
    snaps = mean + std * torch.randn(50, 4)
    out = gaussian_baseline(snaps, n=20000, gen=_gen())
    assert out.shape == (20000, 4)
    assert torch.allclose(out.mean(0), snaps.mean(0), atol=0.05)
    assert torch.allclose(out.std(0), snaps.std(0), rtol=0.03, atol=1e-6)
    assert torch.equal(out[:, 3], torch.full((20000,), 1.0))  # a constant parameter stays constant
    assert gaussian_baseline(snaps[:1], n=3, gen=_gen()) is None  # K = 1: not applicable


def test_noise_is_relative_to_each_tensors_scale():
    shapes = [[1000], [1000], [1]]
    snaps = torch.cat([torch.randn(3, 1000) * 10.0, 1.0 + torch.randn(3, 1000) * 0.01, torch.full((3, 1), -4.0)], 1)
    copies = noise_baseline(snaps, shapes, 5, 0.0, _gen())  # sigma 0: exact copies of snapshots
    assert all(any(torch.equal(c, s) for s in snaps) for c in copies)
    out = noise_baseline(snaps, shapes, 3000, 0.1, _gen())
    nearest = torch.cdist(out, snaps).argmin(1)
    delta = out - snaps[nearest]
    scales = tensor_scales(snaps[nearest], shapes)
    assert scales[0, 0] == pytest.approx(float(snaps[nearest[0], :1000].std(unbiased=False)), rel=1e-5)
    assert scales[0, -1] == 4.0  # a one-value tensor: its magnitude
    for lo, hi in ((0, 1000), (1000, 2000), (2000, 2001)):
        assert float((delta[:, lo:hi] / scales[:, lo:hi]).std()) == pytest.approx(0.1, rel=0.05)
    assert tensor_scales(torch.zeros(1, 3), [[3]]).tolist() == [[1.0, 1.0, 1.0]]


def _on_a_segment(v: torch.Tensor, snaps: torch.Tensor) -> tuple[int, int, float, float]:
    """(a, b, t, distance) of the segment s_a -> s_b (a != b) that passes nearest to ``v``, found by projecting
    ``v`` on every line through two snapshots (float64)."""
    best = None
    s, v = snaps.double(), v.double()
    for a in range(len(s)):
        for b in range(len(s)):
            if a == b:
                continue
            d = s[b] - s[a]
            t = float((v - s[a]) @ d / (d @ d))
            dist = float((v - (s[a] + t * d)).norm())
            if best is None or dist < best[3]:
                best = (a, b, t, dist)
    return best


def test_interpolation_samples_lie_on_a_segment_between_two_distinct_snapshots():
    snaps = torch.randn(5, 40, generator=_gen(1)) * torch.linspace(0.1, 3.0, 40)
    out = interpolation_baseline(snaps, 30, _gen())
    assert out.shape == (30, 40) and out.dtype == snaps.dtype
    scale = float(snaps.abs().max())
    for v in out:
        a, b, t, dist = _on_a_segment(v, snaps)
        assert dist < 1e-5 * scale and -1e-6 <= t <= 1 + 1e-6, (a, b, t, dist)
    # not the snapshots themselves, nor their mean: points strictly inside their segments
    assert torch.cdist(out, snaps).min() > 1e-3
    assert not torch.allclose(out, snaps.mean(0).expand_as(out), atol=1e-3)


def test_interpolation_pairs_are_distinct_cover_every_pair_and_spread_t_uniformly():
    a, b, t = interpolation_pairs(4, 6000, _gen())
    assert (a != b).all() and int(a.min()) == int(b.min()) == 0 and int(a.max()) == int(b.max()) == 3
    counts = torch.zeros(4, 4)
    counts.index_put_((a, b), torch.ones(6000), accumulate=True)
    off = counts[~torch.eye(4, dtype=torch.bool)]
    assert (off > 0.8 * 500).all() and (off < 1.2 * 500).all()  # each of the 12 ordered pairs ~ 1/12 of them
    assert float(t.min()) >= 0.0 and float(t.max()) < 1.0
    assert float(t.mean()) == pytest.approx(0.5, abs=0.02) and float(t.var()) == pytest.approx(1 / 12, abs=0.01)
    with pytest.raises(PdiffError, match="two distinct snapshots, got K = 1"):
        interpolation_pairs(1, 3, _gen())


def test_interpolation_is_fixed_by_its_generator_and_needs_two_snapshots():
    snaps = torch.randn(6, 10, generator=_gen(2))
    assert torch.equal(interpolation_baseline(snaps, 8, _gen(3)), interpolation_baseline(snaps, 8, _gen(3)))
    assert not torch.equal(interpolation_baseline(snaps, 8, _gen(3)), interpolation_baseline(snaps, 8, _gen(4)))
    assert interpolation_baseline(snaps[:1], 8, _gen()) is None  # K = 1: nothing to interpolate towards
    assert interpolation_baseline(snaps, 0, _gen()).shape == (0, 10)


def test_baselines_built_in_place_equal_their_whole_tensor_expressions_bit_for_bit():
    """The makers write in place (no [n, D] temporaries at a whole network's size); each value is still the one
    the plain expression gives, so the committed numbers do not move."""
    torch.manual_seed(3)
    shapes = [[4, 3], [5], [1], [6]]
    snaps = torch.randn(7, 24) * torch.linspace(0.01, 3.0, 24)
    snaps[:, 17] = 0.25  # a constant one-value tensor: scale from its rms
    before = snaps.clone()

    g = _gen(5)
    idx = torch.randint(7, (9,), generator=g)
    base = snaps[idx]
    expected = base + 0.3 * tensor_scales(base, shapes) * torch.randn(base.shape, generator=g)
    assert torch.equal(noise_baseline(snaps, shapes, 9, 0.3, _gen(5)), expected)

    g = _gen(6)
    expected = snaps.mean(0) + snaps.std(0, unbiased=True) * torch.randn((9, 24), generator=g)
    assert torch.equal(gaussian_baseline(snaps, 9, _gen(6)), expected)

    a, b, t = interpolation_pairs(7, 9, _gen(7))
    assert torch.equal(interpolation_baseline(snaps, 9, _gen(7)), torch.lerp(snaps[a], snaps[b], t.float()[:, None]))

    g = _gen(8)
    expected = torch.stack([snaps[torch.randperm(7, generator=g)[:3]].mean(0) for _ in range(9)])
    assert torch.equal(average_baseline(snaps, 9, 3, _gen(8)), expected)
    assert torch.equal(snaps, before)  # the in-place writes never reach the snapshots themselves
