"""Latent diffusion on principal coefficients: `generator: "user.generators.pca_diffusion:PCADiffusion"`.

p-diff's recipe with a linear autoencoder, so that it reaches a whole network (docs/whole-network.md).
Representation (train_ae): the snapshots' mean and top principal directions, from their K x K Gram matrix summed
over column chunks (no [K, D] float64 copy, so memory stays flat in D), and each snapshot's coefficients.
Prior (train_ldm): a DDPM (pdiff/generative/diffusion.py: 1,000 steps, linear betas 1e-4 -> 2e-2) whose denoiser,
a small MLP, predicts the noise added to the coefficients, each direction scaled to unit std. With `noise` > 0 each
training batch of coefficients gets Gaussian noise of that std first (p-diff's latent noise): the prior then learns
the snapshots smoothed by that noise, between copying them (0) and a wide Gaussian. A sample is the mean plus the
directions weighted by one sampled coefficient vector, so all D values of a sample move together.
Its decoder is the low-rank example's (user/generators/lowrank.py): analyze's `decoded_noise` set is then a
Gaussian on the same coefficients, which is what the diffusion prior has to beat.
"""
from types import SimpleNamespace

import torch
from torch import nn

from pdiff.generative.denoiser import timestep_embedding
from pdiff.generative.diffusion import linear_schedule
from pdiff.generative.ldm import train_denoiser
from pdiff.generative.protocol import Fitted, Sampler
from user.generators.lowrank import LowRank, PCADecoder

CHUNK_COLUMNS = 1 << 20  # snapshot columns read at once (K x 2^20 float64 values)
SCHEDULE = linear_schedule(1000)  # the DDPM of the prior: 1,000 steps, linear betas 1e-4 -> 2e-2


def principal_directions(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean [D], orthonormal directions [k, D], coefficients [K, k], variance share of the first 1..k directions)
    of the rows of ``x`` [K, D] (a memory map is read chunk by chunk): the eigenvectors U of the centred Gram
    matrix G = X_c X_c^T give the coefficients U S and the directions S^-1 U^T X_c, S^2 G's eigenvalues. Fewer
    than ``k`` where the snapshots spread along fewer directions (eigenvalues below 1e-10 of the largest)."""
    chunks = [slice(a, a + CHUNK_COLUMNS) for a in range(0, x.shape[1], CHUNK_COLUMNS)]
    gram, mean = torch.zeros(len(x), len(x), dtype=torch.float64), torch.empty(x.shape[1], dtype=torch.float64)
    for c in chunks:
        cols = x[:, c].double()
        mean[c] = cols.mean(0)
        cols -= mean[c]
        gram += cols @ cols.T
    eigval, u = torch.linalg.eigh(gram)  # ascending
    eigval, u = eigval.flip(0).clamp_min(0), u.flip(1)
    k = max(1, min(k, int((eigval > 1e-10 * eigval[0]).sum())))  # directions the snapshots actually spread along
    s = eigval[:k].sqrt().clamp_min(1e-30)
    basis = torch.empty(k, x.shape[1])
    for c in chunks:
        cols = x[:, c].double()
        basis[:, c] = ((u[:, :k].T @ (cols - mean[c])) / s[:, None]).float()
    return mean.float(), basis, (u[:, :k] * s).float(), (eigval.cumsum(0) / eigval.sum().clamp_min(1e-30))[:k].float()


class CoefficientDenoiser(nn.Module):
    """eps_theta(z_t, t) for coefficient vectors [B, k]: an MLP on z_t and a sinusoidal embedding of t."""

    def __init__(self, k: int, width: int, depth: int):
        super().__init__()
        self.width, layers, d = width, [], k + width
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.SiLU()]
            d = width
        self.net = nn.Sequential(*layers, nn.Linear(d, k))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, timestep_embedding(t, self.width)], 1))


class NoisyCoefficients:
    """The prior's DDPM trained on coefficients with Gaussian noise of std ``sigma`` added to each batch first."""

    def __init__(self, diffusion, sigma: float):
        self.diffusion, self.sigma = diffusion, sigma

    def training_loss(self, model, x0, gen=None):
        noisy = x0 + self.sigma * torch.randn(x0.shape, generator=gen).to(x0.device)
        return self.diffusion.training_loss(model, noisy, gen)


def _denoiser(prior: dict) -> CoefficientDenoiser:
    model = CoefficientDenoiser(**prior["config"])
    model.load_state_dict(prior["state_dict"])
    return model.eval()


class PCADiffusionSampler(Sampler):
    def __init__(self, rep: dict, prior: dict):
        super().__init__(rep["names"], rep["shapes"])
        self.decoder, self.std, self.denoiser = PCADecoder(rep), prior["std"], _denoiser(prior)

    def sample(self, n, cond=None, *, rng):
        z = SCHEDULE.p_sample_loop(self.denoiser, (n, len(self.std)), rng)
        return self.decoder.decode(z * self.std)


class PCADiffusion(LowRank):
    description = "a DDPM on the snapshots' coefficients along their top principal directions"

    def fit_representation(self, ctx):  # settings: params.yaml's user.generators."pca_diffusion:PCADiffusion"
        snaps = ctx.load_snapshots()
        k = max(1, min(int(ctx.settings["train_ae"]["rank"]), len(snaps["params"]) - 1))
        mean, basis, coefficients, explained = principal_directions(snaps["params"], k)
        for i, share in enumerate(explained.tolist()):
            ctx.tracker.log(i + 1, explained=share)
        return Fitted({"mean": mean, "basis": basis, "coefficients": coefficients, "names": snaps["names"],
                       "shapes": snaps["shapes"]}, "PCA diffusion: variance share of the first k directions")

    def fit_prior(self, ctx):
        s = ctx.settings["train_ldm"]
        z = ctx.representation["coefficients"]
        std = z.std(0).clamp_min(1e-12)
        config = {"k": z.shape[1], "width": int(s["width"]), "depth": int(s["depth"])}
        cfg = SimpleNamespace(steps=int(s["steps"]), batch_size=int(s["batch_size"]), lr=float(s["lr"]),
                              weight_decay=0.0)
        noise = float(s.get("noise", 0.0))
        diffusion = NoisyCoefficients(SCHEDULE, noise) if noise > 0 else SCHEDULE
        _, model = train_denoiser(CoefficientDenoiser(**config), diffusion, z / std, cfg, ctx.device, ctx.gen,
                                  ctx.tracker)
        return Fitted({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "config": config,
                       "std": std}, "PCA diffusion: denoising loss on the coefficients", log_y=True)

    def load_sampler(self, representation, prior, ctx):
        return PCADiffusionSampler(representation, prior)
