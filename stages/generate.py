"""Stage `generate`: N new parameter vectors from the generator's two artifacts -> models/generated.pt (params
`generator`, pdiff/generative/protocol.py): DDPM or DDIM latents decoded by the AE (conv_ae), or vectors sampled
token chunk by token chunk and streamed, one row at a time, to a memory-mapped store (tokens,
pdiff/core/snapstore.py), or your own generator's samples."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import numels
from pdiff.core.config import load_params
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.generative.protocol import Context, read_artifact, write_samples
from pdiff.generative.registry import resolve


def main() -> None:
    p = load_params()
    paths = stage_paths("generate", "ae", "ldm", "out")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "generate")
    generator = resolve(p.generator)
    sampler = generator.load_sampler(read_artifact(paths.ae, "train_ae", generator),
                                     read_artifact(paths.ldm, "train_ldm", generator), Context(p, gen))
    write_samples(sampler, p.generate.num_models, paths.out, gen)
    print(f"generated ({p.generate.num_models}, {sum(numels(sampler.shapes))}) with generator {generator.name}")


if __name__ == "__main__":
    run_stage("generate", main)
