"""Stage `train`: train the base model (SGD or AdamW, `train.optimizer`) to convergence (from scratch, or from
the starting weights in `train.init`) -> models/base.pt."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.base import distributed
from pdiff.base.training import LoopContext, accuracy, keep_classes, train_classifier
from pdiff.core.artifacts import save_torch
from pdiff.core.config import load_params
from pdiff.core.plots import loss_curves
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.core.tracking import Tracker
from pdiff.data.prepare import load_prepared
from pdiff.nets.models import build_model
from pdiff.nets.weights import check_init_path, load_init


def main() -> None:
    p = load_params()
    paths = stage_paths("train", "data", "model", "live", "plots")
    distributed.maybe_relaunch(p.model.distributed, __file__)  # model.distributed = N >= 2: rerun under torchrun
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "train")
    device = resolve_device(p.device)
    dist = distributed.init(device)  # under torchrun: DDP (gloo on CPU, NCCL on CUDA); else None
    device = dist.device if dist else device
    data = keep_classes(load_prepared(paths.data), p.train.classes)
    arch = dict(arch=p.model.arch, in_channels=data["in_channels"], num_classes=data["num_classes"],
                image_size=data["image_size"], width=p.model.width)
    model = build_model(**arch)
    if p.train.init:
        load_init(model, check_init_path(p.train.init), p.model.arch)
        print(f"starting weights: {p.train.init}")
    model = model.to(device)
    tracker = Tracker(paths.live if distributed.is_main(dist) else None)
    print(f"{p.model.arch}: {sum(t.numel() for t in model.parameters()):,} parameters, precision {p.precision}")
    result = train_classifier(model, data, p.train, LoopContext(device, gen, tracker, p.precision, dist))
    tracker.close()
    test_acc = accuracy(model, data["test_x"], data["test_y"], device)
    if not distributed.is_main(dist):  # only rank 0 writes
        return distributed.finish(dist)
    subset = {"classes": sorted(set(p.train.classes))} if p.train.classes else {}  # trained on these only
    seen = f" (trained on classes {subset['classes']} only; test acc over all)" if subset else ""
    print(f"base model: val acc {result['val_acc']:.2f}%, test acc {test_acc:.2f}%{seen}")
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    save_torch({"state_dict": state, "arch": arch, "val_acc": result["val_acc"], "test_acc": test_acc, **subset},
               paths.model)
    loss_curves(tracker.history, f"{paths.plots}/curves.png", "base model training", xlabel="epoch")
    distributed.finish(dist)


if __name__ == "__main__":
    run_stage("train", main)
