"""Stage `tasks_evaluate@run` (dvc.yaml, with task_pipeline: [run]): generate models for the validation and unseen
task codes with the selected generator's sampler (params `generator`, `<generator>.generate`; `Sampler.sample` with
the codes as ``cond`` and the guidance scale) and score them, with the trained models and the no-training
baselines, on each task's own labels -> metrics/tasks/results.json, plots/tasks/ (per-task CSV and figure)."""
import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.core.artifacts import load_torch, save_json, save_text
from pdiff.core.config import load_params, validate_tasks
from pdiff.core.runtime import seed_everything, setup_torch
from pdiff.core.stage import run_stage, stage_paths
from pdiff.data.prepare import load_prepared
from pdiff.generative.protocol import Context, read_artifact
from pdiff.generative.registry import require_conditional, resolve
from pdiff.nets.models import load_base_model
from pdiff.tasks.codes import code_str
from pdiff.tasks.evaluation import (
    TaskGenerator,
    choose_code_regression,
    evaluate_codes,
    per_task_csv,
    per_task_figure,
    seen_fit_rows,
    seen_latents,
    seen_sample,
    summarize_rows,
    summarize_seen,
)
from pdiff.tasks.heads import cached_features, composed_head_accuracy, head_spec


def main() -> None:
    p = validate_tasks(load_params())
    paths = stage_paths("tasks_evaluate", "data", "model", "snapshots", "ae", "ldm", "metrics", "per_task", "figure")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "tasks_evaluate")
    generator = require_conditional(resolve(p.generator), "tasks_evaluate@run")
    data = load_prepared(paths.data)
    model = load_base_model(paths.model)
    snaps = load_torch(paths.snapshots, "tasks_collect",
                       required=("seen", "val", "unseen", "seen_codes", "val_codes", "unseen_codes", "train_norm"))
    spec = head_spec(model, snaps["train_norm"])
    representation = read_artifact(paths.ae, "tasks_ae@run", generator)
    g = TaskGenerator(generator.load_sampler(representation, read_artifact(paths.ldm, "tasks_ldm@run", generator),
                                             Context(p, gen)), generator.load_decoder(representation))
    z_seen = seen_latents(g, snaps["params"])
    e = p.tasks_eval
    val_split = cached_features(model, data["val_x"]), data["val_y"]
    test_split = cached_features(model, data["test_x"]), data["test_y"]
    regression, ridge_val = choose_code_regression(snaps["seen_codes"], snaps["seen"], e.ridge_strengths,
                                                   snaps["val_codes"], *val_split, spec)
    print(f"code regression: ridge strength {regression.strength} (validation tasks: {ridge_val})")
    common = dict(seen_codes=snaps["seen_codes"], seen_snaps=snaps["seen"], z_seen=z_seen, regression=regression,
                  num_models=e.num_models, gen=gen)
    val = {}
    for w in e.val_guidance:  # choices are made here, on validation tasks and the validation split
        feats, y = val_split
        rows = evaluate_codes(g, spec, snaps["val_codes"], snaps["val"], feats=feats, y=y,
                              composed=composed_head_accuracy(model, data["val_x"], y, snaps["val_codes"]),
                              guidance=w, **common)
        val[str(w)] = summarize_rows(rows)[0]
        print(f"validation tasks, guidance {w}: generated {val[str(w)]['generated']}, trained "
              f"{val[str(w)]['trained']}")
    feats, y = test_split
    rows = evaluate_codes(g, spec, snaps["unseen_codes"], snaps["unseen"], feats=feats, y=y,
                          composed=composed_head_accuracy(model, data["test_x"], y, snaps["unseen_codes"]),
                          guidance=e.guidance, **common)
    stats, pairs = summarize_rows(rows)
    # Seen-task fit last, so it draws nothing the unseen-task evaluation above would see.
    picked = seen_sample(len(snaps["seen_codes"]), e.seen_tasks, p.seed)
    seen = seen_fit_rows(g, spec, snaps["seen_codes"][picked], snaps["seen"][picked], regression,
                         {"val": val_split, "test": test_split}, e.num_models, e.guidance, gen)
    results = {"dataset": p.data.name, "arch": p.model.arch, "num_seen": len(snaps["seen_codes"]),
               "snapshots_per_task": snaps["seen"].shape[1], "generated_values": spec.dim,
               "generated_per_task": e.num_models, "guidance": e.guidance,
               "unseen_tasks": [code_str(c) for c in snaps["unseen_codes"]],
               "val_tasks": [code_str(c) for c in snaps["val_codes"]],
               "summary": stats, "paired": pairs, "val": val,
               "seen_fit": summarize_seen(seen["test"]), "val_seen_fit": summarize_seen(seen["val"]),
               "code_regression": {"strength": regression.strength, "val_by_strength": ridge_val},
               "per_task": rows, "seen_per_task": seen["test"]}
    save_json(results, paths.metrics)
    save_text(per_task_csv(rows), paths.per_task)
    per_task_figure(rows, paths.figure,
                    f"{len(rows)} unseen tasks, generator fitted on {len(snaps['seen_codes'])} seen tasks",
                    seen["test"])
    for method, s in stats.items():
        print(f"{method:>18}: {s}")
    for name, s in results["seen_fit"].items():
        print(f"seen fit {name:>18}: {s}")


if __name__ == "__main__":
    run_stage("tasks_evaluate", main)
