"""Stage `collect`: keep training only the selected parameters and save K snapshots -> models/snapshots.pt
(one tensor [K, D] plus names, shapes and the steps they were taken at; with ``collect.storage: mmap`` a
memory-mapped store written row by row, see pdiff/core/snapstore.py)."""
import contextlib

import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.base import distributed
from pdiff.base.training import LoopContext, collect_snapshots
from pdiff.core.artifacts import numels, save_torch
from pdiff.core.config import load_params
from pdiff.core.plots import loss_curves
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.snapstore import VectorWriter
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.data.prepare import load_prepared
from pdiff.nets.models import load_base_model
from pdiff.nets.selection import select, shapes_of


def main() -> None:
    p = load_params()
    paths = stage_paths("collect", "data", "model", "out", "plots")
    distributed.maybe_relaunch(p.model.distributed, __file__)  # model.distributed = N >= 2: rerun under torchrun
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "collect")
    device = resolve_device(p.device)
    dist = distributed.init(device)  # under torchrun: DDP (gloo on CPU, NCCL on CUDA); else None
    device = dist.device if dist else device
    data = load_prepared(paths.data)
    model = load_base_model(paths.model).to(device)
    names = select(model, p.collect.params)
    shapes = shapes_of(model, names)
    total = sum(numels(shapes))
    print(f"generating {total} values: {', '.join(names)}")
    tracker = Tracker(None)
    with contextlib.ExitStack() as stack:
        def sink(steps):  # mmap: each snapshot goes to disk as it is taken (rank 0 only)
            return stack.enter_context(VectorWriter(paths.out, len(steps), names, shapes, steps)).append

        stream = p.collect.storage == "mmap" and distributed.is_main(dist)
        snaps, steps = collect_snapshots(model, data, names, p.collect,
                                         LoopContext(device, gen, tracker, p.precision, dist),
                                         sink=sink if stream else None)
    if not distributed.is_main(dist):  # only rank 0 writes
        return distributed.finish(dist)
    if not stream:
        save_torch({"params": snaps, "names": names, "shapes": shapes, "steps": steps}, paths.out)
    loss_curves(tracker.history, f"{paths.plots}/loss.png", "collection (selected parameters only)")
    distributed.finish(dist)


if __name__ == "__main__":
    run_stage("collect", main)
