"""An example generator of your own: `generator: "user.generators.lowrank:LowRank"` (docs/own-generator.md).

A low-rank Gaussian. Representation (train_ae): the snapshots' mean and their top principal directions (PCA).
Prior (train_ldm): one Gaussian per principal component, fitted to the snapshots' coefficients. A sample is the
mean plus the directions weighted by coefficients drawn from those Gaussians. Its decoder (coefficients <->
vectors) gives analyze its two decoder sets too.
"""
import torch

from pdiff.generative.protocol import Decoder, Fitted, Generator, Sampler


class PCADecoder(Decoder):
    def __init__(self, rep: dict):
        self.mean, self.basis = rep["mean"], rep["basis"]  # [D], [k, D] (orthonormal rows)

    def encode(self, x):
        return (x.float() - self.mean) @ self.basis.T

    def decode(self, z):
        return self.mean + z @ self.basis


class LowRankSampler(Sampler):
    def __init__(self, rep: dict, prior: dict):
        super().__init__(rep["names"], rep["shapes"])
        self.decoder, self.std = PCADecoder(rep), prior["std"]

    def sample(self, n, cond=None, *, rng):
        return self.decoder.decode(self.std * torch.randn(n, len(self.std), generator=rng))


class LowRank(Generator):
    description = "the snapshots' mean plus Gaussian coefficients on their top principal directions"

    def fit_representation(self, ctx):  # settings: params.yaml's user.generators."lowrank:LowRank"
        snaps = ctx.load_snapshots()
        x = snaps["params"].double()
        mean = x.mean(0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        k = max(1, min(int(ctx.settings["train_ae"]["rank"]), len(x) - 1))
        explained = (s ** 2).cumsum(0) / (s ** 2).sum()
        for i in range(k):
            ctx.tracker.log(i + 1, explained=float(explained[i]))
        return Fitted({"mean": mean.float(), "basis": vh[:k].float(), "names": snaps["names"],
                       "shapes": snaps["shapes"]}, "low-rank Gaussian: variance share of the first k directions")

    def fit_prior(self, ctx):
        z = PCADecoder(ctx.representation).encode(ctx.load_snapshots()["params"])
        ctx.tracker.log(1, coefficient_std=float(z.std(0).mean()))
        return Fitted({"std": z.std(0)}, "low-rank Gaussian: mean std of the coefficients")

    def load_sampler(self, representation, prior, ctx):
        return LowRankSampler(representation, prior)

    def load_decoder(self, representation):
        return PCADecoder(representation)
