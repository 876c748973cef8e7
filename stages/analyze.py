"""Stage `analyze`: honest evaluation. Build the evaluated sets of the registry pdiff/analysis/sets.py (the
no-learning baselines and, where the generator has a decoder (the conv AE of models/ae.pt has, the tokens
generator has not; `Generator.load_decoder`), two sets without its prior: decoded Gaussian latents and the
snapshots' reconstructions), evaluate them on the test split exactly as `evaluate` does (the originals' and
generated models' per-sample results come from `evaluate`'s models/correctness.pt, not evaluated again), measure
how close each model is to the training snapshots (max error-set IoU, nearest-neighbour L2) and what the generator
learned (copies, the mean or something new: the top-level `learned` entry, pdiff/analysis/learned.py) ->
metrics/novelty.json, plots/analyze/ and report.md."""
import json
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401  (repo root on sys.path)

from pdiff.analysis.decoded import DecoderReference
from pdiff.analysis.evaluation import EvalOptions, load_evaluation
from pdiff.analysis.novelty import embed_2d, run_analysis, summary_table
from pdiff.analysis.report import write_outputs
from pdiff.core.artifacts import save_json
from pdiff.core.config import load_params
from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
from pdiff.core.snapstore import load_vectors
from pdiff.core.stage import run_stage, stage_paths
from pdiff.data.prepare import evaluation_subset, load_prepared
from pdiff.generative.protocol import read_artifact
from pdiff.generative.registry import resolve
from pdiff.nets.models import load_base_model


def main() -> None:
    p = load_params()
    paths = stage_paths("analyze", "data", "model", "snapshots", "ae", "generated", "correctness",
                        "evaluated", "metrics", "plots", "report", "embedding")
    setup_torch(p.threads, p.kernels)
    gen = seed_everything(p.seed, "analyze")
    device = resolve_device(p.device)
    generator = resolve(p.generator)
    data = evaluation_subset(load_prepared(paths.data), p.evaluate.max_examples)
    model = load_base_model(paths.model).to(device)
    snapshots = load_vectors(paths.snapshots, "collect")
    generated = load_vectors(paths.generated, "generate")
    known = (("original", snapshots), ("generated", generated))
    stored = {m: load_evaluation(m, obj["params"].float(), data["test_y"], paths.correctness) for m, obj in known}
    evaluated, predicted = ({m: s[i] for m, s in stored.items()} for i in (0, 1))
    own = generator.load_decoder(read_artifact(paths.ae, "train_ae", generator))  # None: no decoder sets
    decoder = None if own is None else DecoderReference(own.decode, own.encode(snapshots["params"]),
                                                        p.baselines.decoded_num, p.baselines.decoded_form)
    analysis = run_analysis(model, snapshots, generated, (data["test_x"], data["test_y"]), p.baselines, gen,
                            opts=EvalOptions(device, p.evaluate.batch_size), evaluated=evaluated, predicted=predicted,
                            decoder=decoder, sources=(paths.snapshots, paths.generated))
    summary = summary_table(analysis)
    if note := generator.report_note():  # which generator made `generated`, in novelty.json and report.md
        summary["generated"]["note"] = note
    save_json(summary | {"learned": analysis.learned}, paths.metrics)
    start = time.perf_counter()
    embedding = embed_2d(analysis, p.seed)
    analysis.timings["embedding_s"] = time.perf_counter() - start
    start = time.perf_counter()
    # plots/embedding/ is no DVC output: t-SNE's picture depends on the CPU (pdiff.analysis.report)
    write_outputs(analysis, summary, embedding, paths.plots, paths.report, paths.embedding)
    analysis.timings["figures_s"] = time.perf_counter() - start
    evaluated = json.loads(Path(paths.evaluated).read_text())
    for method in ("original", "generated"):
        if any(evaluated.get(method, {}).get(k) != summary[method].get(k) for k in ("count", "acc_mean", "acc_max")):
            print(f"warning: the `{method}` row differs from {paths.evaluated}", file=sys.stderr)
    for method, s in summary.items():
        print(f"{method:>14}: n={s['count']} acc mean {s['acc_mean']} max {s['acc_max']} median {s['acc_median']} "
              f"max-IoU {s['max_similarity_mean']} NN-L2 {s['nn_l2_mean']}")
    print("learned: " + ", ".join(f"{k} {v}" for k, v in analysis.learned.items()))
    print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in analysis.timings.items()))


if __name__ == "__main__":
    run_stage("analyze", main)
