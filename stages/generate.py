"""Stage `generate`: sample N latents, decode them to N parameter vectors -> models/generated.pt."""
import _bootstrap  # noqa: F401  (repo root on sys.path)
from pdiff.artifacts import save_torch
from pdiff.autoencoder import load_autoencoder
from pdiff.cli import run_stage
from pdiff.config import load_params
from pdiff.ldm import load_ldm, sample_vectors
from pdiff.utils import resolve_device, seed_everything, setup_torch


def main() -> None:
    p = load_params()
    setup_torch(p.threads)
    gen = seed_everything(p.seed, "generate")
    device = resolve_device(p.device)
    ae, normalizer, meta = load_autoencoder("models/ae.pt")
    denoiser, diffusion, ckpt = load_ldm("models/ldm.pt")
    vectors = sample_vectors(ae, normalizer, denoiser, diffusion, ckpt["latent_mean"], ckpt["latent_std"],
                             p.generate.num_models, p.generate.batch_size, gen, device,
                             sampler=p.generate.sampler, steps=p.generate.steps)
    save_torch({"params": vectors, "names": meta["names"], "shapes": meta["shapes"]}, "models/generated.pt")
    print(f"generated {tuple(vectors.shape)}")


if __name__ == "__main__":
    run_stage("generate", main)
