"""Stage `generate`: sample N latents, decode them to N parameter vectors -> models/generated.pt."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import save_torch
from pdiff.core.config import load_params
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.stage import run_stage
from pdiff.generative.ldm import load_latent_model, sample_vectors


def main() -> None:
    p = load_params()
    setup_torch(p.threads)
    gen = seed_everything(p.seed, "generate")
    device = resolve_device(p.device)
    latent_model, meta = load_latent_model("models/ae.pt", "models/ldm.pt")
    vectors = sample_vectors(latent_model, p.generate, gen, device)
    save_torch({"params": vectors, "names": meta["names"], "shapes": meta["shapes"]}, "models/generated.pt")
    print(f"generated {tuple(vectors.shape)}")


if __name__ == "__main__":
    run_stage("generate", main)
