"""Task-conditioned generation at tiny size: task codes, batched per-task heads, and a code-conditioned
denoiser that must use its condition (the same check fails when the code is ignored or shuffled); the task
stages of dvc.yaml (present only with `task_pipeline: [run]`), their plot, and a default run that never meets
them."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pdiff import PdiffError
from pdiff.core.tracking import Tracker
from pdiff.generative.conditional import CodeConditionedUNet, sample_latents, train_conditional
from pdiff.generative.diffusion import linear_schedule
from pdiff.tasks.codes import all_codes, binary_labels, code_str, hamming, split_codes
from pdiff.tasks.heads import (
    HeadTraining,
    accuracy,
    cached_features,
    composed_head_accuracy,
    head_spec,
    train_task_heads,
)


def test_codes_cover_every_nontrivial_task_and_split_disjointly():
    codes = all_codes(10)
    assert codes.shape == (1022, 10) and len({code_str(c) for c in codes}) == 1022
    assert codes.sum(1).min() >= 1 and codes.sum(1).max() <= 9
    a = split_codes(10, 50, 20, 20, torch.Generator().manual_seed(0))
    b = split_codes(10, 982, 20, 20, torch.Generator().manual_seed(0))
    assert torch.equal(a["unseen"], b["unseen"]) and torch.equal(a["val"], b["val"])  # same test tasks for any num_seen
    assert torch.equal(a["seen"], b["seen"][:50])
    names = [{code_str(c) for c in b[k]} for k in ("seen", "val", "unseen")]
    assert sum(map(len, names)) == 1022 and not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert hamming(b["unseen"], b["seen"]).min(1).values.max() >= 1
    with pytest.raises(PdiffError, match="num_seen"):
        split_codes(10, 990, 20, 20, torch.Generator())
    assert binary_labels(torch.tensor([0, 2, 1]), torch.tensor([[1., 0, 1]])).tolist() == [[1., 1., 0.]]


def _tiny_model(classes: int = 4, f: int = 6) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(5, f, bias=False), nn.BatchNorm1d(f), nn.ReLU(),
                          nn.Linear(f, classes))
    model[2].running_mean.uniform_(-0.5, 0.5)
    model[2].running_var.uniform_(0.5, 2.0)
    return model.eval()


def _blobs(classes: int = 4, n: int = 400):
    g = torch.Generator().manual_seed(1)
    centers = 3 * torch.randn(classes, 5, generator=g)
    y = torch.arange(n) % classes
    return centers[y] + 0.3 * torch.randn(n, 5, generator=g), y


def test_cached_features_reproduce_the_model_and_batched_heads_equal_one_at_a_time():
    model, (x, y) = _tiny_model(), _blobs()
    spec = head_spec(model, train_norm=True)
    feats = cached_features(model, x)
    norm, head = model[2], model[4]
    base = torch.cat([norm.weight, norm.bias, head.weight[0], head.bias[:1]]).detach()
    from pdiff.tasks.heads import logits
    assert torch.allclose(logits(base[None], feats, spec)[0], model(x)[:, 0], atol=1e-5)

    codes = all_codes(4)[:5]
    cfg = HeadTraining(steps=150, lr=0.05, batch_size=64, snapshots=3)
    together = train_task_heads(codes, feats, y, spec, cfg, torch.Generator().manual_seed(3))
    assert together.shape == (5, 3, spec.dim)
    alone = train_task_heads(codes[2:3], feats, y, spec, cfg, torch.Generator().manual_seed(3))
    assert torch.allclose(together[2], alone[0], atol=1e-5)  # tasks do not leak into each other
    acc = accuracy(together[:, -1], feats, binary_labels(y, codes), spec)
    assert acc.mean() > 90  # separable blobs, 6 random ReLU features: the tasks are learned
    swapped = accuracy(together[:, -1].flip(0), feats, binary_labels(y, codes), spec)
    assert swapped.mean() < acc.mean() - 20  # a head scored on another task's labels does badly


def test_composed_head_scores_codes_and_refuses_missing_classes():
    model, (x, y) = _tiny_model(), _blobs()
    codes = all_codes(4)
    acc = composed_head_accuracy(model, x, y, codes)
    assert acc.shape == (14,) and (acc >= 0).all() and (acc <= 100).all()
    assert composed_head_accuracy(model, x, y, all_codes(5)) is None  # 4 outputs, 5-class codes
    with pytest.raises(PdiffError, match="BatchNorm1d"):
        head_spec(nn.Sequential(nn.Linear(5, 3)), True)


def test_train_classes_keeps_those_images_and_the_composed_head_then_has_no_answer():
    """`train.classes` (the hard task setting): train and val keep only images of those classes (labels and
    order unchanged), test stays whole, an out-of-range class is named; a base model trained on some digits
    gives no composed-head baseline for codes over all of them."""
    from pdiff.base.training import keep_classes

    ys = torch.arange(30) % 10
    data = {"num_classes": 10, **{f"{s}_x": ys[:, None].float() + 0.5 for s in ("train", "val", "test")},
            **{f"{s}_y": ys.clone() for s in ("train", "val", "test")}}
    kept = keep_classes(data, [4, 0])
    for split in ("train", "val"):
        assert kept[f"{split}_y"].tolist() == [0, 4] * 3
        assert torch.equal(kept[f"{split}_x"][:, 0], kept[f"{split}_y"].float() + 0.5)
    assert torch.equal(kept["test_y"], ys) and keep_classes(data, []) is data
    with pytest.raises(PdiffError, match=r"train.classes.*class 10"):
        keep_classes(data, [3, 10])
    head, codes = nn.Linear(1, 10), all_codes(10)[:5]
    assert composed_head_accuracy(head, data["test_x"], ys, codes).shape == (5,)
    head.pdiff_classes = [0, 1, 2, 3, 4]
    assert composed_head_accuracy(head, data["test_x"], ys, codes) is None
    head.pdiff_classes = list(range(10))
    assert composed_head_accuracy(head, data["test_x"], ys, codes).shape == (5,)


def _conditional_error(mode: str, seed: int = 0, cond: str = "add") -> tuple[float, float]:
    """Train a tiny code-conditioned denoiser on latents that are a fixed linear function of a 4-bit code (10 seen
    codes), sample 16 latents for each of 4 unseen codes; -> (mean squared error of the samples' mean to the
    true latent, the true latents' variance). ``mode``: 'real', 'shuffled' (codes permuted during training) or
    'ignored' (cond none); ``cond``: how a used code enters (add, concat)."""
    torch.set_num_threads(1)  # a tiny network: one thread is faster, and far faster on a loaded CPU
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    codes = all_codes(4)                                    # 14 codes
    proj = torch.randn(4, 2 * 8, generator=g)
    target = lambda c: ((2 * c - 1) @ proj).reshape(-1, 2, 8) / 2  # noqa: E731
    seen, unseen = codes[:10], codes[10:]
    z = target(seen).repeat(8, 1, 1)
    train_codes = seen.repeat(8, 1)
    if mode == "shuffled":
        train_codes = train_codes[torch.randperm(len(train_codes), generator=g)]
    net = CodeConditionedUNet(2, 16, (1,), 4, cond="none" if mode == "ignored" else cond)
    diffusion = linear_schedule(100, 1e-4, 0.05)
    cfg = SimpleNamespace(steps=300, lr=3e-3, weight_decay=0.0, batch_size=64)
    train_conditional(net, diffusion, z, train_codes, cfg, 0.0, "cpu", g, Tracker(None))
    samples = sample_latents(net, diffusion, unseen.repeat_interleave(16, 0), (2, 8), 1.0, "ddim", 20, g, "cpu")
    err = (samples.reshape(4, 16, 2, 8).mean(1) - target(unseen)).pow(2).mean().item()
    return err, target(codes).var(0).mean().item()


@pytest.mark.parametrize("cond", ["add", "concat"])
def test_conditional_denoiser_uses_the_code_on_unseen_codes(cond):
    err, var = _conditional_error("real", cond=cond)
    assert err < 0.75 * var, (err, var)  # a quarter of the variance across codes explained, at least


@pytest.mark.parametrize("mode,cond", [("shuffled", "add"), ("shuffled", "concat"), ("ignored", "none")])
def test_the_same_check_fails_when_the_code_is_shuffled_or_ignored(mode, cond):
    err, var = _conditional_error(mode, cond=cond)
    assert not err < 0.75 * var, (err, var)


def _one_hot_tasks(classes: int = 4):
    """A task setting where the right head is linear in the code: features are the one-hot class, the head alone is
    generated (D = classes + 1) and the vector [2c - 1, 0] answers every task perfectly."""
    from pdiff.tasks.heads import TaskHeadSpec

    spec = TaskHeadSpec(["head.weight", "head.bias"], [[1, classes], [1]], classes, False, nn.Identity(),
                        torch.ones(classes), torch.zeros(classes))
    y = torch.arange(classes).repeat(5)
    return spec, torch.eye(classes)[y], y, lambda c: torch.cat([2 * c - 1, torch.zeros(len(c), 1)], 1)


def test_code_regression_recovers_a_linear_map_and_its_strength_is_chosen_on_validation_tasks():
    """The ridge baseline from code bits to vectors reproduces an exactly linear map with a weak penalty; a strong
    one shrinks it to the seen tasks' mean vector, which answers no task; the validation tasks pick the weak one."""
    from pdiff.tasks.evaluation import CodeRegression, choose_code_regression, per_task_accuracy

    spec, feats, y, perfect = _one_hot_tasks()
    codes = all_codes(4)
    seen, val = codes[:10], codes[10:]
    snaps = perfect(seen)[:, None].repeat(1, 3, 1) + 0.01 * torch.randn(10, 3, 5, generator=torch.Generator())
    weak = CodeRegression.fit(seen, snaps.mean(1), 1e-6)
    assert torch.allclose(weak(val), perfect(val), atol=0.05)
    assert per_task_accuracy(weak(val)[:, None], val, feats, y, spec).min() == 100.0
    strong = CodeRegression.fit(seen, snaps.mean(1), 1e9)
    assert torch.allclose(strong(val), snaps.mean((0, 1)).expand(4, -1), atol=1e-4)
    best, scores = choose_code_regression(seen, snaps, [1e9, 1e-6], val, feats, y, spec)
    assert best.strength == 1e-6 and scores["1e-06"] == 100.0 > scores["1000000000.0"], scores


def test_seen_fit_scores_every_seen_set_on_each_split():
    """`seen_fit_rows` scores the generated models, the tasks' own snapshots, the AE's reconstructions, the code
    regression and the majority label on every sampled seen task and split; `summarize_seen` gives results.json's
    `seen_fit` (task counts, below-majority share). An untrained generator is far below the snapshots there; a
    generator without a decoder has no reconstruction set (null)."""
    from pdiff.generative.autoencoder import Normalizer, ParamAE
    from pdiff.generative.builtins import AEDecoder
    from pdiff.generative.protocol import Sampler
    from pdiff.tasks.evaluation import (
        SEEN_SETS,
        CodeRegression,
        TaskGenerator,
        seen_fit_rows,
        seen_sample,
        summarize_seen,
    )

    torch.manual_seed(0)
    spec, feats, y, perfect = _one_hot_tasks()
    codes = all_codes(4)
    picked = seen_sample(len(codes), 6, seed=0)
    assert len(picked) == 6 and torch.equal(picked, seen_sample(len(codes), 6, seed=0))
    assert not torch.equal(picked, seen_sample(len(codes), 6, seed=1))
    snaps = perfect(codes[picked])[:, None].repeat(1, 2, 1)
    ae = ParamAE(5, [4], 2).eval()
    net, diffusion = CodeConditionedUNet(2, 8, (1,), 4), linear_schedule(10, 1e-4, 0.05)

    class Untrained(Sampler):  # an untrained code-conditioned latent model, decoded by the AE
        def sample(self, n, cond=None, *, rng, guidance=1.0):
            z = sample_latents(net, diffusion, cond, ae.latent_shape, guidance, "ddim", 4, rng, "cpu")
            return ae.decode(z).detach()

    g = TaskGenerator(Untrained(["w"], [[5]]), AEDecoder(ae, Normalizer(5)))
    regression = CodeRegression.fit(codes[picked], snaps.mean(1), 1e-6)
    splits = {"val": (feats, y), "test": (feats[:8], y[:8])}
    rows = seen_fit_rows(g, spec, codes[picked], snaps, regression, splits, num_models=3, guidance=2.0,
                         gen=torch.Generator().manual_seed(0))
    assert set(rows) == {"val", "test"} and all(len(r) == 6 for r in rows.values())
    for r in rows["val"]:
        assert list(r) == ["code", *(s.name for s in SEEN_SETS)]
        assert r["trained"] == 100.0 and r["code_regression"] == 100.0
        assert r["majority"] == 100.0 * max(torch.tensor([int(b) for b in r["code"]])[y].float().mean().item(),
                                            1 - torch.tensor([int(b) for b in r["code"]])[y].float().mean().item())
    fit = summarize_seen(rows["val"])
    assert fit["tasks"] == 6 and all(fit[s.name]["tasks"] == 6 for s in SEEN_SETS)
    assert fit["generated"]["acc_mean"] < fit["trained"]["acc_mean"] == 100.0
    share = sum(r["generated"] < r["majority"] for r in rows["val"]) / 6
    assert fit["below_majority_share"] == round(share, 4)
    no_decoder = seen_fit_rows(TaskGenerator(g.sampler), spec, codes[picked], snaps, regression, splits,
                               num_models=3, guidance=2.0, gen=torch.Generator().manual_seed(0))
    assert all(r["reconstruction"] is None for r in no_decoder["val"])
    fit = summarize_seen(no_decoder["val"])
    assert fit["reconstruction"] is None and fit["trained"]["acc_mean"] == 100.0


def _task_stages() -> dict:
    """The task stages of dvc.yaml: name -> the stage each generates (its `do`), all `foreach` over
    task_pipeline."""
    import yaml

    from tests.conftest import ROOT

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    tasks = {name: stage for name, stage in stages.items() if name.startswith("tasks_")}
    assert all(stage.get("foreach") == "${task_pipeline}" for stage in tasks.values()), tasks
    assert all("foreach" not in stage for name, stage in stages.items() if name not in tasks)
    return {name: stage["do"] for name, stage in tasks.items()}


def test_task_stages_run_from_the_root_with_exact_code_deps():
    """The task stages of dvc.yaml (`foreach` over task_pipeline) run from the root (no wdir), list exactly the
    pdiff folders each script imports, and keep the conditioning params out of every stage before tasks_ldm."""
    from tests.conftest import ROOT
    from tests.test_dvc_deps import code_deps

    stages = _task_stages()
    assert list(stages) == ["tasks_collect", "tasks_ae", "tasks_ldm", "tasks_evaluate"]
    for name, stage in stages.items():
        assert "wdir" not in stage and stage["cmd"].startswith(f"python stages/{name}.py --"), name
        listed = {d for d in stage["deps"] if isinstance(d, str) and d.startswith("pdiff/")}
        assert listed == code_deps(ROOT / f"stages/{name}.py"), name
    reads = {name: set(stage["params"]) for name, stage in stages.items()}
    assert "tasks_ldm" in reads["tasks_ldm"] and not {"tasks_ldm", "tasks_eval"} & (reads["tasks_collect"]
                                                                                     | reads["tasks_ae"])
    # git-tracked metrics (cache: false, not ignored): `dvc exp run ... tasks_evaluate@run` commits them into each
    # experiment, which is where `dvc exp show`, and so the task recipes' report, reads them
    (metrics,) = stages["tasks_evaluate"]["metrics"]
    assert metrics == {"metrics/tasks/results.json": {"cache": False}}
    import subprocess

    ignored = subprocess.run(["git", "check-ignore", "-q", "metrics/tasks/results.json"], cwd=ROOT)
    assert ignored.returncode == 1, "metrics/tasks/results.json is git-ignored: experiments would not carry it"
    for out in ("models/tasks/snapshots.pt", "plots/tasks/per_task.csv", "plots/tasks/unseen.png"):
        assert subprocess.run(["git", "check-ignore", "-q", out], cwd=ROOT).returncode == 0, out


def test_task_plot_draws_one_series_per_task_set():
    """The per-task plot of tasks_evaluate (a stage plot: one y column) draws every method of
    pdiff.tasks.evaluation.TASK_SETS through its template's fold, in its order: a method added there and not in
    the template fails here."""
    import json

    from pdiff.tasks.evaluation import METHODS
    from tests.conftest import ROOT

    plots = _task_stages()["tasks_evaluate"]["plots"]
    (csv,) = [p["plots/tasks/per_task.csv"] for p in plots if isinstance(p, dict) and "plots/tasks/per_task.csv" in p]
    assert "cache" not in csv and csv["x"] == "task" and csv["y"] in METHODS  # cached: a clone checks it out
    assert "plots/tasks/unseen.png" in plots
    template = json.loads((ROOT / f".dvc/plots/{csv['template']}.json").read_text())
    (fold,) = [t["fold"] for t in template["transform"] if "fold" in t]
    assert fold == list(METHODS) and template["encoding"]["color"]["sort"] == list(METHODS)


@pytest.mark.parametrize("run", ["mnist5k-tasks", "mnist5k-hard-tasks"])
def test_dvc_draws_the_per_task_plot_of_a_committed_run(run, tmp_path):
    """`dvc plots show` of the per-task CSV that tasks_evaluate writes, with the stage's definition from dvc.yaml
    and the project's template folder, on a committed run's rows: Vega draws one series per method that has
    scores (composed_head has none with the backbone of mnist5k-hard-tasks), named in the legend."""
    import json
    import shutil

    import vl_convert
    import yaml

    from pdiff.tasks.evaluation import METHODS, per_task_csv
    from tests.conftest import ROOT
    from tests.conftest import run as run_cmd
    from tools import offline_plots

    run_cmd("git init -q && dvc init -q", tmp_path)
    shutil.copytree(ROOT / ".dvc/plots", tmp_path / ".dvc/plots")
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["tasks_evaluate"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"tasks_evaluate": stage}}, sort_keys=False))
    (tmp_path / "params.yaml").write_text("task_pipeline: [run]\ngenerator: conv_ae\n")
    rows = json.loads((ROOT / f"reports/{run}/results.json").read_text())["per_task"]
    (tmp_path / "plots/tasks").mkdir(parents=True)
    (tmp_path / "plots/tasks/per_task.csv").write_text(per_task_csv(rows))
    res = run_cmd(["dvc", "plots", "show", "--json", "plots/tasks/per_task.csv"], tmp_path)
    answer = json.loads(res.stdout)
    assert "errors" not in answer, answer["errors"]
    spec = answer["data"]["plots/tasks/per_task.csv"][0]["content"]
    svg = vl_convert.vegalite_to_svg(spec, vl_version=offline_plots.vl_version([spec]))
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    drawn = [m for m in METHODS if m in texts]
    assert drawn == [m for m in METHODS if all(r[m] is not None for r in rows)], drawn
    assert "composed_head" in drawn or run == "mnist5k-hard-tasks"
    (csv,) = [p["plots/tasks/per_task.csv"] for p in stage["do"]["plots"] if isinstance(p, dict)]
    assert spec["title"]["text"] == csv["title"] and spec["encoding"]["y"]["title"] == csv["y_label"]


@pytest.mark.parametrize("run", ["mnist5k-tasks", "mnist5k-hard-tasks"])
def test_summary_csv_and_figure_follow_the_task_sets(run, tmp_path, monkeypatch):
    """summarize_rows recomputes a committed run's summary and paired comparisons from its per-task rows, in the
    order of TASK_SETS; per_task.csv and the per-task figure have one column / one series per method (and the
    majority label's chance level)."""
    import json

    import pdiff.core.plots as plots
    from pdiff.tasks.evaluation import MAJORITY, METHODS, per_task_csv, per_task_figure, summarize_rows
    from tests.conftest import ROOT

    results = json.loads((ROOT / f"reports/{run}/results.json").read_text())
    stats, pairs = summarize_rows(results["per_task"])
    assert stats == results["summary"] and list(stats) == [*METHODS, MAJORITY.name]
    assert pairs == results["paired"] and list(pairs) == [m for m in METHODS if m != "generated"]
    lines = per_task_csv(results["per_task"]).splitlines()
    assert lines[0] == ",".join(["task", "code", *METHODS, MAJORITY.name])
    assert len(lines) == 1 + len(results["per_task"])
    drawn = []
    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: (drawn.append(
        [line.get_label() for line in fig.axes[0].get_lines()]), real(fig, path)))
    per_task_figure(results["per_task"], tmp_path / "unseen.png", run)
    expected = [m for m in (*METHODS, MAJORITY.name) if all(r[m] is not None for r in results["per_task"])]
    assert drawn == [expected] and "generated" in expected and "no_task_info" in expected


@pytest.mark.parametrize("run", ["mnist5k-tasks", "mnist5k-hard-tasks"])
def test_docs_summary_table_matches_the_committed_results(run):
    """docs/tasks.md shows reports/<run>/results.json in a generated block (tools.tasks_ablations; the docs test
    checks every block against its files): every method's mean / median / min (n/a where the method does not
    apply: the composed head of a base model trained on some digits) and the paired comparison, to two decimals;
    the run holds the seen-task fit on at least 50 seen tasks and the code regression, seen and unseen."""
    import json

    from tests.conftest import ROOT
    from tools.tasks_ablations import summary_table

    results = json.loads((ROOT / f"reports/{run}/results.json").read_text())
    assert len(results["unseen_tasks"]) >= 20 and len(results["per_task"]) == len(results["unseen_tasks"])
    for key in ("generated", "trained", "nearest_task", "code_regression", "all_tasks_average", "wrong_code"):
        assert set(results["summary"][key]) == {"acc_mean", "acc_median", "acc_min"}, key
    fit = results["seen_fit"]
    assert fit["tasks"] >= 50 and 0 <= fit["below_majority_share"] <= 1
    for key in ("generated", "trained", "reconstruction", "majority", "code_regression"):
        assert fit[key]["tasks"] == fit["tasks"] and 0 < fit[key]["acc_mean"] <= 100, key
    assert {"wins", "losses", "mean_diff"} <= set(results["paired"]["code_regression"])
    table = summary_table(results)
    for method, s in results["summary"].items():
        cells = (f"| {method} | {s['acc_mean']:.2f} | {s['acc_median']:.2f} | {s['acc_min']:.2f} |" if s else
                 f"| {method} | n/a | n/a | n/a |")
        assert cells in table, cells
    for method, p in results["paired"].items():
        if p is not None:
            assert f"{p['wins']} / {p['ties']} / {p['losses']}, {p['mean_diff']:+.2f} |" in table, method
    name = "easy" if run == "mnist5k-tasks" else "hard"
    doc = (ROOT / "docs/tasks.md").read_text()
    assert f"<!--@@ tools.tasks_ablations:docs_summary_{name} -->\n{table}<!--/@@-->" in doc


def test_seen_tasks_table_gathers_runs_on_the_same_unseen_tasks(tmp_path):
    import json

    from pdiff.tasks.evaluation import METHODS
    from tools.tasks_ablations import gather

    def write(folder, n, unseen):
        folder.mkdir(parents=True, exist_ok=True)
        summary = {m: {"acc_mean": float(n), "acc_median": 0.0, "acc_min": 0.0} for m in METHODS}
        (folder / "results.json").write_text(json.dumps({"num_seen": n, "unseen_tasks": unseen, "summary": summary,
                                                         "paired": {"nearest_task": {"wins": 3}}}))

    write(tmp_path, 982, ["01", "10"])
    write(tmp_path / "seen-10", 10, ["01", "10"])
    rows = gather(tmp_path)
    assert [r["num_seen"] for r in rows] == [10, 982] and rows[0]["generated"] == 10.0
    write(tmp_path / "seen-50", 50, ["11", "10"])
    with pytest.raises(PdiffError, match="different unseen tasks"):
        gather(tmp_path)


def test_task_recipes_queue_the_task_pipeline_with_the_preset_and_report_each_point():
    """A task recipe queues `dvc exp run ... tasks_evaluate@run` with its preset's values on every point (so
    `task_pipeline=[run]` too, which makes the task stages exist in the experiment); the report
    rows come from each finished experiment's metrics/tasks/results.json, in point order, only for experiments
    whose params carry the point's value."""
    from pdiff.tasks.evaluation import METHODS
    from tools import ablations, tasks_ablations
    from tools.presets import _nest, resolved

    recipe = ablations.get_recipe("task_cond")
    (cmd,) = ablations.queue_commands(recipe)
    assert cmd[-1] == "tasks_evaluate@run" and "tasks_ldm.cond=choice(add,concat,none)" in cmd
    assert "task_pipeline=[run]" in cmd
    assert "train.classes=[0,1,2,3,4]" in cmd and resolved("mnist5k-hard-tasks")["train.classes"] == [0, 1, 2, 3, 4]
    assert [p.overrides["tasks.num_seen"] for p in ablations.get_recipe("seen_tasks").points] == [10, 50, 200, 982]

    def rev(name, cond, mean, seed=0):
        # as `dvc exp show` hands a metrics file over: lists (the task codes) and nulls (composed_head) dropped
        summary = {m: {"acc_mean": mean, "acc_median": mean, "acc_min": mean} for m in METHODS
                   if m != "composed_head"}
        metrics = {"num_seen": 982, "summary": summary, "paired": {"nearest_task": {"wins": 1}}}
        params = _nest(resolved("mnist5k-hard-tasks") | {"tasks_ldm.cond": cond, "seed": seed})  # as queued
        return {"name": name, "data": {"metrics": {tasks_ablations.TASKS_METRICS: {"data": metrics}},
                                       "params": {"params.yaml": {"data": params}}}}

    show = [{"experiments": [{"revs": [rev("task_cond-3", "none", 50.0)]}, {"revs": [rev("task_cond-1", "add", 80.0)]},
                             {"revs": [rev("task_cond-2", "add", 70.0)]}]}]  # -2 does not carry its point's value
    def rows_of(show):
        return tasks_ablations.experiment_rows(recipe, ablations.finished_points(recipe, show,
                                                                                 tasks_ablations.TASKS_METRICS))

    rows = rows_of(show)
    assert [(r["point"], r["generated"], r["composed_head"]) for r in rows] == [("add", 80.0, None),
                                                                                ("none", 50.0, None)]
    show[0]["experiments"][0]["revs"] = [rev("task_cond-3", "none", 50.0, seed=1)]  # other unseen tasks
    with pytest.raises(PdiffError, match="different unseen tasks"):
        rows_of(show)


@pytest.mark.slow
def test_task_recipe_stops_before_queuing_when_the_default_outputs_are_not_cached(tiny_copy, tmp_path):
    """`dvc exp run tasks_evaluate@run` saves every output of dvc.lock at its end and fails there when one is
    missing from the cache (a clone where the default pipeline never ran): the runner says so before queuing."""
    import shutil

    from tools import ablations

    assert ablations.uncached_outputs(tiny_copy) == []
    shutil.rmtree(tiny_copy / ".dvc" / "cache")
    missing = ablations.uncached_outputs(tiny_copy)
    assert "evaluate: plots/evaluate" in missing and "train: models/base.pt" in missing
    with pytest.raises(PdiffError, match=r"Run `dvc repro`.*first"):
        ablations.run_recipe(ablations.get_recipe("task_cond"), 1, tiny_copy, tmp_path / "out")
    assert ablations.queue_status(tiny_copy) == {}  # nothing was queued


def test_docs_seen_tasks_table_matches_the_committed_table():
    import json

    from tests.conftest import ROOT

    rows = json.loads((ROOT / "reports/mnist5k-tasks/seen_tasks.json").read_text())
    doc = (ROOT / "docs/tasks.md").read_text()
    assert len(rows) >= 3
    for r in rows:
        assert f"| {r['num_seen']} | {r['generated']:.2f} | {r['trained']:.2f} | {r['nearest_task']:.2f} |" in doc


@pytest.mark.parametrize("name", ["docs_task_cond_table", "docs_seen_tasks_hard_table"])
def test_the_task_recipe_tables_name_each_point_not_its_position(name):
    """The docs/tasks.md tables of the hard preset's recipes read a row by its point: with the report's rows in
    reverse order they are the same, and a point missing from the report is an error, not another row's numbers."""
    import json

    from tests.conftest import ROOT
    from tools import tasks_ablations

    def load(path, reorder=lambda rows: rows):
        return reorder(json.loads((ROOT / path).read_text()))

    build = getattr(tasks_ablations, name)
    table = build(load)
    assert table.startswith("| ") and table.endswith(" |\n") and table.count("\n") >= 5
    assert build(lambda path: load(path, lambda rows: rows[::-1])) == table
    with pytest.raises(PdiffError, match="matches 0 rows"):
        build(lambda path: load(path, lambda rows: rows[1:]))


def test_docs_condition_dropout_rows_match_their_results():
    import json

    from tests.conftest import ROOT

    doc = (ROOT / "docs/tasks.md").read_text()
    off = json.loads((ROOT / "reports/mnist5k-tasks/cond-dropout-0/results.json").read_text())["val"]["1.0"]
    on = json.loads((ROOT / "reports/mnist5k-tasks/seen-50/results.json").read_text())["val"]
    assert f"| 0 | 1.0 | {off['generated']['acc_mean']:.2f} |" in doc
    for w in ("1.0", "2.0"):
        assert f"| 0.1 | {w} | {on[w]['generated']['acc_mean']:.2f} |" in doc


# ------------------------------------------------------------------------------------------------ the pipeline
DEFAULT_STAGES = ["prepare", "train", "collect", "train_ae", "train_ldm", "generate", "evaluate", "analyze"]
TASK_STAGES = ["tasks_collect@run", "tasks_ae@run", "tasks_ldm@run", "tasks_evaluate@run"]


def _pipeline_files() -> list[str]:
    """Every DVC pipeline file of the working tree (tracked or new, not ignored), relative to the root."""
    from tests.conftest import ROOT, run

    listed = run(["git", "ls-files", "-co", "--exclude-standard", "--", "dvc.yaml", "*/dvc.yaml"], ROOT).stdout
    return sorted(p for p in listed.split() if (ROOT / p).exists())


def _load_errors(repo) -> list:
    """What `dvc plots show` and `dvc metrics show` could not load in ``repo`` (their JSON's "errors" and
    "error" entries, at any depth), with DVC's warning lines: [] when everything loaded."""
    import json

    from tests.conftest import run

    found = []

    def walk(node):
        if isinstance(node, dict):
            found.extend(v for k, v in node.items() if k in ("error", "errors") and v)
            for k, v in node.items():
                if k not in ("error", "errors"):
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for what in ("plots", "metrics"):
        res = run(["dvc", what, "show", "--json"], repo)
        walk(json.loads(res.stdout))
        found += [line for line in res.stderr.splitlines() if line.strip()]
    return found


def _stage_names(repo) -> list[str]:
    from tests.conftest import run

    return run(["dvc", "stage", "list", "--name-only"], repo).stdout.split()


def test_task_stages_exist_only_with_task_pipeline_run_and_need_only_prepare_and_train(tmp_path):
    """dvc.yaml holds the task stages as `foreach` stages over params.yaml's `task_pipeline`: none by default
    ([]), four with [run]; `dvc repro tasks_evaluate@run` (what `make repro PRESET=*-tasks` runs) needs them and
    prepare and train, none of the default pipeline's later stages."""
    import yaml

    from tests.conftest import make_tiny_repo, run

    repo = make_tiny_repo(tmp_path / "repo")
    assert _stage_names(repo) == DEFAULT_STAGES
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(params | {"task_pipeline": ["run"]}, sort_keys=False))
    assert _stage_names(repo) == DEFAULT_STAGES + TASK_STAGES
    dag = run(["dvc", "dag", "--dot", "tasks_evaluate@run"], repo).stdout  # the target and every stage it needs
    assert set(re.findall(r'^"([^"]+)";$', dag, re.M)) == {"prepare", "train", *TASK_STAGES}


def test_tasks_run_names_the_task_stages_and_stops_without_them(tmp_path, monkeypatch):
    """`tools.tasks_run` runs prepare, train and the four generated task stages, keyed without `@run` in its
    results (`--from tasks_collect`); with `task_pipeline: []` it stops before running anything, saying how to
    get the stages."""
    from tools import tasks_run

    assert tasks_run.STAGES == ["prepare", "train", *TASK_STAGES] and tasks_run.TARGET == "tasks_evaluate@run"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("task_pipeline: []\n")
    monkeypatch.setattr(tasks_run, "run_dvc", lambda *a, **k: pytest.fail("ran dvc"))
    with pytest.raises(PdiffError, match=r"task_pipeline: \[\]`.*tools.presets apply mnist5k-tasks"):
        tasks_run.run(tmp_path / "out", force=False, first="tasks_collect")
    with pytest.raises(PdiffError, match="--from 'tasks_collect@run': not a stage"):
        tasks_run.run(tmp_path / "out", force=False, first="tasks_collect@run")


@pytest.mark.slow
def test_a_default_run_leaves_plots_show_and_checkout_of_a_second_clone_clean(tiny_copy, tmp_path):
    """Issue 31: in a repository where the default pipeline ran (`make repro`), with every pipeline file of this
    one, `dvc plots show` and `dvc metrics show` load everything without an error, and `dvc checkout` in a
    second clone that shares the DVC cache exits 0 and restores the outputs. (A task pipeline in a second
    dvc.yaml, whose outputs a default run never makes, failed all three.)"""
    import shutil

    from tests.conftest import ROOT, run

    for rel in _pipeline_files():
        (tiny_copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tiny_copy / rel)
    run("git add -A && git commit -qm 'every pipeline file' --allow-empty", tiny_copy)
    assert _stage_names(tiny_copy) == DEFAULT_STAGES
    assert _load_errors(tiny_copy) == []
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_copy), str(clone)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(tiny_copy / ".dvc" / "cache")], clone)
    res = run(["dvc", "checkout"], clone, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (clone / "models/generated.pt").read_bytes() == (tiny_copy / "models/generated.pt").read_bytes()


@pytest.mark.longrun
def test_the_task_stages_run_lock_and_check_out_like_any_stage(tiny_copy, tmp_path):
    """With `task_pipeline: [run]` on a repository where the default pipeline ran, `dvc repro tasks_evaluate@run`
    (tiny task settings) runs the four task stages alone (prepare and train come from the cache), locks them in
    dvc.lock, their plots and metrics load (with the seen-task fit), and a second clone sharing the cache checks
    everything out."""
    import json

    import yaml

    from tests.conftest import merge, run

    params = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    params = merge(params, {"task_pipeline": ["run"],
                            "tasks": {"num_seen": 30, "num_val": 2, "snapshots": 2, "steps": 10, "batch_size": 64},
                            "tasks_eval": {"num_models": 2, "val_guidance": [2.0]}})
    (tiny_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro", "tasks_evaluate@run"], tiny_copy).stdout
    assert re.findall(r"Running stage '([^']+)'", out) == TASK_STAGES
    assert run(["dvc", "status", "--json"], tiny_copy).stdout.strip() in ("", "{}")
    assert list(yaml.safe_load((tiny_copy / "dvc.lock").read_text())["stages"]) == DEFAULT_STAGES + TASK_STAGES
    assert _load_errors(tiny_copy) == []
    results = json.loads((tiny_copy / "metrics/tasks/results.json").read_text())
    assert results["seen_fit"]["tasks"] == 30 and results["summary"]["code_regression"]["acc_mean"] > 0
    assert {"generated", "trained", "reconstruction", "code_regression", "majority"} <= set(results["seen_fit"])
    run("git add -A && git commit -qm 'task stages'", tiny_copy)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_copy), str(clone)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(tiny_copy / ".dvc" / "cache")], clone)
    run(["dvc", "checkout"], clone)
    for out in ("models/tasks/ldm.pt", "plots/tasks/unseen.png", "plots/tasks/per_task.csv"):
        assert (clone / out).read_bytes() == (tiny_copy / out).read_bytes(), out
    assert _load_errors(clone) == []
