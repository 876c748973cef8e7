"""Stage `generate`: sample N latents, decode them to N parameter vectors -> models/generated.pt. With
``generator: tokens``: sample N vectors token chunk by token chunk and stream them, one row at a time, to a
memory-mapped store at the same path (pdiff/core/snapstore.py)."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import save_torch
from pdiff.core.config import load_params
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.generative.ldm import load_latent_model, sample_vectors


def tokens(p, paths, gen, device) -> None:
    from pdiff.core.snapstore import VectorWriter
    from pdiff.generative import tokens as tk

    layout, mean, std, meta = tk.load_tokenizer(paths.ae)
    model, diffusion = tk.load_generator(paths.ldm)
    data = tk.token_data(layout, None, mean, std)
    g = p.generate
    clip = p.tokens.clip if p.tokens.clip > 0 and meta["normalize"] != "none" else None
    with VectorWriter(paths.out, g.num_models, meta["names"], meta["shapes"]) as out:
        for vec in tk.sample_vectors_tokens(model, diffusion, data, g.num_models, p.tokens.sample_chunk, gen,
                                            device, g.sampler, g.steps, clip=clip):
            out.append(vec)
    print(f"generated ({g.num_models}, {layout.dim}) with the tokens generator")


def main() -> None:
    p = load_params()
    paths = stage_paths("generate", "ae", "ldm", "out")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "generate")
    device = resolve_device(p.device)
    if p.generator == "tokens":
        return tokens(p, paths, gen, device)
    latent_model, meta = load_latent_model(paths.ae, paths.ldm)
    vectors = sample_vectors(latent_model, p.generate, gen, device)
    save_torch({"params": vectors, "names": meta["names"], "shapes": meta["shapes"]}, paths.out)
    print(f"generated {tuple(vectors.shape)}")


if __name__ == "__main__":
    run_stage("generate", main)
