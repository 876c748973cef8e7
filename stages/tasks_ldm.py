"""Stage `tasks_ldm@run` (dvc.yaml, with task_pipeline: [run]): the selected generator's prior fitted with each
snapshot's task code as its condition (`Generator.fit_prior` with ``ctx.condition``; params `generator`,
`<generator>.train_ldm` and `tasks_ldm`: how the code enters and its dropout) -> models/tasks/ldm.pt. For
conv_ae, the latent DDPM conditioned on the code (pdiff.generative.conditional)."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import load_torch
from pdiff.core.config import load_params, validate_tasks
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.generative.protocol import Condition, Context, fit_step, read_artifact
from pdiff.generative.registry import require_conditional, resolve


def main() -> None:
    p = validate_tasks(load_params())
    paths = stage_paths("tasks_ldm", "snapshots", "ae", "out", "plot")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "tasks_ldm")
    generator = require_conditional(resolve(p.generator), "tasks_ldm@run")
    codes = load_torch(paths.snapshots, "tasks_collect@run", required=("params", "codes"))["codes"]
    ctx = Context(p, gen, snapshots=paths.snapshots, representation=read_artifact(paths.ae, "tasks_ae@run", generator),
                  tracker=Tracker(None), condition=Condition(codes, p.tasks_ldm.cond, p.tasks_ldm.cond_dropout),
                  snapshots_stage="tasks_collect@run")
    fit_step(generator.fit_prior, generator, ctx, paths.out, paths.plot, title_prefix="tasks: ")


if __name__ == "__main__":
    run_stage("tasks_ldm", main)
