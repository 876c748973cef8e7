"""Stage `evaluate`: load every original snapshot and every generated vector into the base model and
measure accuracy -> metrics/evaluate.json (test split; validation split under "val") and plots/evaluate/, and
the per-sample test correctness and predicted classes of every vector -> models/correctness.pt, which `analyze`
reuses instead of evaluating the same vectors again."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.analysis.evaluation import EvalOptions, finite_rows, predict_sets, rows_where, save_correctness, summarize
from pdiff.core.artifacts import save_json, save_text
from pdiff.core.config import load_params
from pdiff.core.plots import accuracy_histogram
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.snapstore import load_vectors
from pdiff.core.stage import run_stage, stage_paths
from pdiff.data.prepare import evaluation_subset, load_prepared
from pdiff.nets.models import load_base_model
from pdiff.nets.selection import check_compatible, check_same_selection


def main() -> None:
    p = load_params()
    paths = stage_paths("evaluate", "data", "model", "snapshots", "generated", "correctness", "metrics",
                        "plots")
    setup_torch(p.threads, p.kernels)
    seed_everything(p.seed, "evaluate")
    device = resolve_device(p.device)
    data = evaluation_subset(load_prepared(paths.data), p.evaluate.max_examples)
    model = load_base_model(paths.model).to(device)
    methods = {"original": load_vectors(paths.snapshots, "collect"),
               "generated": load_vectors(paths.generated, "generate")}
    check_same_selection(methods["original"], methods["generated"], paths.generated)
    finite = {}
    for method, obj in methods.items():
        check_compatible(model, obj["names"], obj["shapes"], f"the {method} vectors")
        finite[method] = finite_rows(obj["params"])
    names = methods["original"]["names"]
    metrics, val, test_acc, test_correct, test_predicted = {}, {}, {}, {}, {}
    for split, out in (("test", metrics), ("val", val)):
        # both methods in one call: the layers in front of the generated ones run once per split
        predicted = predict_sets(model, names, {m: rows_where(obj["params"], finite[m]) for m, obj in methods.items()},
                                 data[f"{split}_x"],
                                 EvalOptions(device, p.evaluate.batch_size, desc=f"original+generated/{split}"))
        for method, pred in predicted.items():
            corr = pred == data[f"{split}_y"].cpu()
            acc = 100.0 * corr.float().mean(1)
            out[method] = summarize(acc, failed=int((~finite[method]).sum()))
            if split == "test":
                test_acc[method] = [round(a, 4) for a in acc.tolist()]
                test_correct[method], test_predicted[method] = (methods[method]["params"], corr), pred
    save_correctness(test_correct, data["test_y"], paths.correctness, test_predicted)
    metrics["val"] = val
    save_json(metrics, paths.metrics)
    for method, accs in test_acc.items():
        n = len(accs)
        rows = [f"{i / max(n - 1, 1):.4f},{a}" for i, a in enumerate(sorted(accs))]
        save_text("quantile,accuracy\n" + "\n".join(rows) + "\n", f"{paths.plots}/{method}.csv")
    accuracy_histogram(test_acc, f"{paths.plots}/accuracy_hist.png", "test accuracy: original vs generated")
    for method in methods:
        m = metrics[method]
        print(f"{method:>9}: n={m['count']} failed={m['failed']} mean {m['acc_mean']} median {m['acc_median']} "
              f"max {m['acc_max']} min {m['acc_min']} std {m['acc_std']}")


if __name__ == "__main__":
    run_stage("evaluate", main)
