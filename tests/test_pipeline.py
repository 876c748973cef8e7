"""End to end: the real `dvc repro` on tiny params in a temporary copy of the repository."""
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from pdiff.analysis.learned import VERDICTS
from pdiff.analysis.sets import NAMES
from tests.conftest import png_size, run

pytestmark = pytest.mark.slow  # every test here uses the session's one real `dvc repro` (tiny_repo in conftest)


# Each figure's size in inches (figsize) at save_figure's 120 dpi; `bbox_inches="tight"` trims or widens it a
# little, so a figure must come within 0.7-1.2 of it on each side (an empty figure shrinks to its title).
FIGURES = {"plots/evaluate/accuracy_hist.png": (6, 3.6), "plots/train/curves.png": (9, 3.2),
           "plots/collect/loss.png": (4.5, 3.2), "plots/train_ae/loss.png": (4.5, 3.2),
           "plots/train_ldm/loss.png": (4.5, 3.2), "plots/analyze/novelty_scatter.png": (11, 4),
           "plots/analyze/distributions.png": (14, 4), "plots/embedding/embedding.png": (11, 4.5)}


def test_repro_writes_metrics_and_figures(tiny_repo):
    metrics = json.loads((tiny_repo / "metrics/evaluate.json").read_text())
    orig, gen = metrics["original"], metrics["generated"]
    assert orig["count"] == 10 and gen["count"] == 8 and gen["failed"] == 0
    assert orig["acc_median"] > 30  # digits: a real classifier, far above chance (10 %)
    # the generated models are as good as the snapshots they were trained on (within 3 points of their median);
    # a generator that learned nothing gives models near chance
    assert gen["acc_median"] >= orig["acc_median"] - 3.0, (orig, gen)
    assert gen["acc_min"] >= orig["acc_min"] - 10.0, (orig, gen)
    for method, summary in metrics.items():  # the plotted quantiles are the accuracies the summary is made of
        if method == "val":
            continue
        rows = (tiny_repo / f"plots/evaluate/{method}.csv").read_text().splitlines()[1:]
        accs = [float(r.split(",")[1]) for r in rows]
        assert len(accs) == summary["count"] and accs == sorted(accs), method
        assert (accs[0], accs[-1]) == (summary["acc_min"], summary["acc_max"]), method
    for png, (w, h) in FIGURES.items():
        width, height = png_size(tiny_repo / png)
        assert 0.7 * w * 120 <= width <= 1.2 * w * 120 and 0.7 * h * 120 <= height <= 1.2 * h * 120, (png, width,
                                                                                                        height)
    assert (tiny_repo / "metrics/train_ldm/plots/metrics/loss.tsv").exists()


def _changed_stages(repo: Path) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}"))


def test_analyze_rows_agree_with_evaluate_and_report_is_written(tiny_repo):
    novelty = json.loads((tiny_repo / "metrics/novelty.json").read_text())
    evaluated = json.loads((tiny_repo / "metrics/evaluate.json").read_text())
    learned = novelty.pop("learned")  # the top-level entry after the sets' rows: what the generator learned
    assert list(novelty) == list(NAMES)  # every registered set, the decoder sets included (a conv AE)
    for method in ("original", "generated"):  # same split, base model and code path as `evaluate`
        assert {k: novelty[method][k] for k in evaluated[method]} == evaluated[method]
    for method, row in novelty.items():
        assert row["count"] == (10 if method in ("original", "reconstruction") else 8), method
        assert 0.0 <= row["max_similarity_mean"] <= 1.0 and row["nn_l2_mean"] > 0.0, method
        for key in ("acc_mean", "acc_max", "acc_median"):
            assert 0.0 <= row[key] <= 100.0
    for method, row in novelty.items():  # one CSV per set, the files dvc.yaml's plots read (tests/test_sets.py)
        assert len((tiny_repo / f"plots/analyze/{method}.csv").read_text().splitlines()) == 1 + row["count"], method
    assert (learned["num_snapshots"], learned["num_generated"]) == (10, 8) and learned["dim"] > 0
    assert (learned["pairs_snapshots"], learned["pairs_generated"]) == (45, 28)  # every pair of 10 and of 8
    assert learned["nn_l2_mean"] == pytest.approx(novelty["generated"]["nn_l2_mean"], abs=2e-6)
    assert learned["snapshot_nn_l2_mean"] == pytest.approx(novelty["original"]["nn_l2_mean"], abs=2e-6)
    assert 1 <= learned["distinct_nearest"] <= 8 and learned["verdict"] in VERDICTS
    assert 0.0 <= learned["disagreement_generated"] <= 1.0 and 0.0 <= learned["disagreement_snapshots"] <= 1.0
    stored = torch.load(tiny_repo / "models/correctness.pt", weights_only=True)["methods"]
    for method in ("original", "generated"):  # evaluate stores each model's predicted classes beside its correctness
        assert stored[method]["predicted"].shape == stored[method]["correct"].shape
        assert (stored[method]["predicted"] >= 0).all()
    report = (tiny_repo / "report.md").read_text()
    assert f"**What was learned: {learned['verdict']}**" in report
    cells = re.sub(r" +", " ", report)
    assert "| generated |" in cells and "| decoded_noise |" in cells and "| reconstruction |" in cells
    assert "plots/analyze/novelty_scatter.png" in report
    # the findings quote mean accuracies: the numbers read back, not the formatter repeated
    for method, pattern in (("generated", r"the generated models \(([0-9.]+)%"),
                            ("decoded_noise", r"\(`decoded_noise`, ([0-9.]+)%\)")):
        quoted = re.search(pattern, report)
        assert quoted and abs(float(quoted.group(1)) - novelty[method]["acc_mean"]) < 0.01, (method, quoted)


def test_keys_of_a_generator_not_selected_rerun_nothing(tiny_repo):
    """generator: conv_ae: train_ae, train_ldm and generate declare `conv_ae.<stage>`, so editing every key of the
    tokens group (and of your own generators' groups) reruns nothing; the tokens side is in tests/test_tokens.py."""
    text = (tiny_repo / "params.yaml").read_text()
    assert _changed_stages(tiny_repo) == set()
    try:
        params = yaml.safe_load(text)
        params["tokens"] = {"train_ae": {"size": 8}, "train_ldm": {"steps": 3, "sequence": "none"},
                            "generate": {"clip": 1.0, "sample_chunk": 64}}
        params["user"]["generators"]["lowrank:LowRank"]["train_ae"]["rank"] = 2
        (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert _changed_stages(tiny_repo) == set()
        params["conv_ae"]["generate"]["batch_size"] = 3  # its own group: generate only
        (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert _changed_stages(tiny_repo) == {"generate"}
    finally:
        (tiny_repo / "params.yaml").write_text(text)


def test_changing_a_baselines_param_reruns_only_analyze(tiny_repo):
    text = (tiny_repo / "params.yaml").read_text()
    assert _changed_stages(tiny_repo) == set()
    try:
        params = yaml.safe_load(text)
        params["baselines"]["noise_sigma"] = 0.2
        (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert _changed_stages(tiny_repo) == {"analyze"}
        dry = run(["dvc", "repro", "--dry"], tiny_repo).stdout
        assert "Running stage 'analyze'" in dry and dry.count("Running stage") == 1
    finally:
        (tiny_repo / "params.yaml").write_text(text)


def test_changing_ldm_lr_reruns_only_downstream(tiny_repo):
    assert _changed_stages(tiny_repo) == set()
    text = (tiny_repo / "params.yaml").read_text()
    params = yaml.safe_load(text)
    try:
        params["conv_ae"]["train_ldm"]["lr"] = 0.002
        (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert _changed_stages(tiny_repo) == {"train_ldm"}
        dry = run(["dvc", "repro", "--dry"], tiny_repo).stdout
        assert "Running stage 'train_ldm'" in dry
        for stage in ("prepare", "train", "collect", "train_ae"):
            assert f"Running stage '{stage}'" not in dry
        real = run(["dvc", "repro"], tiny_repo).stdout  # a real run, not only the plan
        for stage in ("train_ldm", "generate", "evaluate"):
            assert f"Running stage '{stage}'" in real
        for stage in ("prepare", "train", "collect", "train_ae"):
            assert f"Running stage '{stage}'" not in real
        params["conv_ae"]["train_ae"]["lr"] = 0.002
        (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert _changed_stages(tiny_repo) == {"train_ae"}
        dry = run(["dvc", "repro", "--dry"], tiny_repo).stdout
        assert "Running stage 'train_ae'" in dry
        for stage in ("prepare", "train", "collect"):
            assert f"Running stage '{stage}'" not in dry
    finally:  # leave the shared repo as the fixture made it, whatever order the tests run in
        (tiny_repo / "params.yaml").write_text(text)
        run(["dvc", "repro"], tiny_repo)  # restored from DVC's run cache


def test_repro_force_is_byte_identical(tiny_repo):
    """Same params on CPU -> byte-identical metrics files."""
    run(["dvc", "repro"], tiny_repo)  # back to the fixture's params (restored from DVC's run cache)
    files = sorted(p for p in (tiny_repo / "metrics").rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    run(["dvc", "repro", "-f"], tiny_repo)
    after = {p: p.read_bytes() for p in files}
    assert before == after
