"""Stage `tasks_collect@run` (dvc.yaml, with task_pipeline: [run]): split the class codes into seen / validation /
unseen tasks and train every task's head on cached features of the frozen base model -> models/tasks/snapshots.pt."""
import time

import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import save_torch
from pdiff.core.config import load_params, validate_tasks
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.data.prepare import load_prepared
from pdiff.nets.models import load_base_model
from pdiff.tasks.codes import split_codes
from pdiff.tasks.heads import HeadTraining, cached_features, head_spec, train_task_heads


def main() -> None:
    p = validate_tasks(load_params())
    paths = stage_paths("tasks_collect", "data", "model", "out")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "tasks_collect")
    data = load_prepared(paths.data)
    model = load_base_model(paths.model)  # CPU: the per-task work is one batched matmul per step
    spec = head_spec(model, p.tasks.train_norm)
    codes = split_codes(data["num_classes"], p.tasks.num_seen, p.tasks.num_val, p.tasks.num_unseen, gen)
    start = time.perf_counter()
    feats = cached_features(model, data["train_x"])
    cfg = HeadTraining(p.tasks.steps, p.tasks.lr, p.tasks.batch_size, p.tasks.snapshots)
    out = {}
    for split in ("seen", "val", "unseen"):
        out[split] = train_task_heads(codes[split], feats, data["train_y"], spec, cfg, gen, f"{split} tasks")
    seconds = time.perf_counter() - start
    seen = out["seen"]
    save_torch({"params": seen.reshape(-1, spec.dim), "codes": codes["seen"].repeat_interleave(p.tasks.snapshots, 0),
                "names": spec.names, "shapes": spec.shapes, "train_norm": spec.train_norm,
                "seen": seen, "val": out["val"], "unseen": out["unseen"], "seen_codes": codes["seen"],
                "val_codes": codes["val"], "unseen_codes": codes["unseen"]}, paths.out)
    total = sum(len(c) for c in codes.values())
    print(f"{total} tasks x {p.tasks.snapshots} snapshots of {spec.dim} values ({', '.join(spec.names)}) in "
          f"{seconds:.1f} s (features once: {tuple(feats.shape)})")


if __name__ == "__main__":
    run_stage("tasks_collect", main)
