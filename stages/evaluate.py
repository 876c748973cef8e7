"""Stage `evaluate`: load every original snapshot and every generated vector into the base model and
measure accuracy -> metrics/evaluate.json (test split; validation split under "val") and plots/evaluate/."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, finite_rows, summarize
from pdiff.core.artifacts import load_vectors, save_json, save_text
from pdiff.core.config import load_params
from pdiff.core.plots import accuracy_histogram
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.stage import run_stage
from pdiff.data.prepare import load_prepared
from pdiff.nets.models import load_base_model
from pdiff.nets.selection import check_compatible, check_same_selection


def main() -> None:
    p = load_params()
    setup_torch(p.threads)
    seed_everything(p.seed, "evaluate")
    device = resolve_device(p.device)
    data = load_prepared()
    model = load_base_model("models/base.pt").to(device)
    methods = {"original": load_vectors("models/snapshots.pt", "collect"),
               "generated": load_vectors("models/generated.pt", "generate")}
    check_same_selection(methods["original"], methods["generated"], "models/generated.pt")
    metrics, val, test_acc = {}, {}, {}
    for method, obj in methods.items():
        check_compatible(model, obj["names"], obj["shapes"], f"models/{method} vectors")
        ok = finite_rows(obj["params"])
        vecs = obj["params"][ok]
        for split, out in (("test", metrics), ("val", val)):
            correct = evaluate_vectors(model, obj["names"], vecs, data[f"{split}_x"], data[f"{split}_y"],
                                       EvalOptions(device, p.evaluate.batch_size, desc=f"{method}/{split}"))
            acc = 100.0 * correct.float().mean(1)
            out[method] = summarize(acc, failed=int((~ok).sum()))
            if split == "test":
                test_acc[method] = [round(a, 4) for a in acc.tolist()]
    metrics["val"] = val
    save_json(metrics, "metrics/evaluate.json")
    for method, accs in test_acc.items():
        n = len(accs)
        rows = [f"{i / max(n - 1, 1):.4f},{a}" for i, a in enumerate(sorted(accs))]
        save_text("quantile,accuracy\n" + "\n".join(rows) + "\n", f"plots/evaluate/{method}.csv")
    accuracy_histogram(test_acc, "plots/evaluate/accuracy_hist.png", "test accuracy: original vs generated")
    for method in methods:
        m = metrics[method]
        print(f"{method:>9}: n={m['count']} failed={m['failed']} mean {m['acc_mean']} median {m['acc_median']} "
              f"max {m['acc_max']} min {m['acc_min']} std {m['acc_std']}")


if __name__ == "__main__":
    run_stage("evaluate", main)
