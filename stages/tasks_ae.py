"""Stage `tasks_ae@run` (dvc.yaml, with task_pipeline: [run]): the selected generator's representation
(`Generator.fit_representation`, params `generator` and `<generator>.train_ae`), one for all seen tasks'
snapshots -> models/tasks/ae.pt (the train_ae format of that generator: the conv AE's, untagged, or tagged with
the generator's name). A generator that is not conditional is refused here, before anything is fitted."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.config import load_params, validate_tasks
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.generative.protocol import Context, fit_step
from pdiff.generative.registry import require_conditional, resolve


def main() -> None:
    p = validate_tasks(load_params())
    paths = stage_paths("tasks_ae", "snapshots", "out", "plot")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "tasks_ae")
    generator = require_conditional(resolve(p.generator), "tasks_ae@run")
    ctx = Context(p, gen, snapshots=paths.snapshots, tracker=Tracker(None), snapshots_stage="tasks_collect@run")
    fit_step(generator.fit_representation, generator, ctx, paths.out, paths.plot, title_prefix="tasks: ")


if __name__ == "__main__":
    run_stage("tasks_ae", main)
