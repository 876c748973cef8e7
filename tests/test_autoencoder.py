import pytest
import torch

from pdiff.generative.autoencoder import Normalizer, ParamAE


@pytest.mark.parametrize("dim", [192, 100, 7])
def test_shapes_round_trip(dim):
    ae = ParamAE(dim, [8, 16], latent_channels=3)
    x = torch.randn(5, dim)
    z = ae.encode(x)
    assert z.shape == (5, 3, ae.latent_len) == (5, *ae.latent_shape)
    assert ae.decode(z).shape == (5, dim)


def test_noise_augmentation_changes_output_only_when_on():
    ae = ParamAE(64, [8, 16], 2)
    x = torch.randn(4, 64)
    clean1, clean2 = ae(x), ae(x)
    assert torch.equal(clean1, clean2)
    noisy = ae(x, input_noise=0.0, latent_noise=0.1, gen=torch.Generator().manual_seed(1))
    assert not torch.allclose(noisy, clean1)
    noisy_in = ae(x, input_noise=0.001, latent_noise=0.0, gen=torch.Generator().manual_seed(1))
    assert not torch.equal(noisy_in, clean1)


@pytest.mark.parametrize("mode", ["per_param", "per_tensor", "global", "none"])
def test_normalizer_inverse(mode):
    x = torch.randn(20, 10) * torch.linspace(0.1, 3, 10) + 5
    norm = Normalizer(10).fit(x, mode, [4, 6])
    assert torch.allclose(norm.inverse(norm(x)), x, atol=1e-5)
    if mode == "per_param":
        z = norm(x)
        assert torch.allclose(z.mean(0), torch.zeros(10), atol=1e-5)
        assert torch.allclose(z.pow(2).mean(0), torch.ones(10), atol=1e-4)


def test_normalizer_single_snapshot_is_finite():
    x = torch.randn(1, 10)
    norm = Normalizer(10).fit(x, "per_param", [10])
    assert torch.isfinite(norm(x)).all()
    assert torch.allclose(norm.inverse(torch.zeros(1, 10)), x)
