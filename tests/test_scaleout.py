"""Scaling out and ablations through the real engines: DDP under torchrun (gloo, 2 CPU processes), the DVC
experiment queue with 2 workers (a 2-point ablation grid turned into a report), and a local DVC remote
shared by two clones. One tiny repository, reproduced once, serves the queue and remote tests."""
import json
import subprocess
import sys

import pytest
import torch

from pdiff.analysis.sets import of_kind
from tests.conftest import ROOT, copy_repo, png_size, run
from tools import ablations, offline_plots

TOL = 1e-5  # max |DDP - single-process| per weight; float32 all-reduce order gives ~1e-7


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_single_process(tmp_path):
    out = tmp_path / "weights.pt"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(ROOT / "tests/ddp_worker.py"), str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    w = torch.load(out, weights_only=True)
    for name, single in w["single"]["final"].items():
        ddp, half, init = w["ddp"]["final"][name], w["half_batch"]["final"][name], w["single"]["init"][name]
        assert (ddp - single).abs().max() < TOL, name
        # the test can fail: training moved the weights, and a different batch size lands elsewhere
        assert (single - init).abs().max() > 1000 * TOL, name
        assert (half - single).abs().max() > 1000 * TOL, name


def test_shard_and_loss_scale_cover_the_global_batch():
    from pdiff.base import distributed

    idx = torch.arange(45)
    ctxs = [distributed.Context(r, 2, r, "gloo", torch.device("cpu")) for r in range(2)]
    shards = [distributed.shard(idx, c) for c in ctxs]
    assert sorted(torch.cat(shards).tolist()) == idx.tolist()
    # sum over ranks of scale * local mean / world == global mean
    vals = torch.rand(45, dtype=torch.float64)
    total = sum(distributed.loss_scale(len(s), 45, c) * vals[s].mean() for s, c in zip(shards, ctxs, strict=True)) / 2
    assert torch.isclose(total, vals.mean())
    assert distributed.shard(idx, None) is idx and distributed.loss_scale(7, 9, None) == 1.0


@pytest.fixture(scope="module")
def tiny_committed(tiny_repo, tmp_path_factory):
    """This module's copy of the session's tiny repo (reproduced, dvc.lock and metrics committed): the
    baseline for queue and remote, which add remotes, experiments and reports to it."""
    return copy_repo(tiny_repo, tmp_path_factory.mktemp("scale") / "repo")


@pytest.mark.slow
def test_dvc_remote_push_then_pull_in_second_clone_is_up_to_date(tiny_committed, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], tiny_committed)
    run(["dvc", "push", "-q"], tiny_committed)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_committed), str(clone)], tmp_path)
    assert not (clone / "models/base.pt").exists()
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], clone)
    run(["dvc", "pull", "-q"], clone)
    status = run(["dvc", "status", "--json"], clone).stdout.strip()
    assert json.loads(status or "{}") == {}, status
    assert (clone / "models/generated.pt").read_bytes() == (tiny_committed / "models/generated.pt").read_bytes()
    dry = run(["dvc", "repro", "--dry"], clone).stdout
    assert "Running stage" not in dry, dry


@pytest.mark.slow
@pytest.mark.longrun
def test_two_point_grid_through_queue_with_two_workers(tiny_committed):
    # A param only `analyze` reads, so each experiment reruns one stage and reuses seven: the queue, the two
    # workers, the report and `dvc plots diff` are what is tested here, not the cost of the stages.
    recipe = ablations.Recipe("tiny", "noise baseline sigma (tiny)", "baselines.noise_sigma",
                              [ablations.Point("off", {"baselines.noise_sigma": 0.001}),
                               ablations.Point("strong", {"baselines.noise_sigma": 0.3})])
    out = tiny_committed / "reports/ablations"
    summary = ablations.run_recipe(recipe, 2, tiny_committed, out, poll=1.0, timeout=600)
    for name in ("tiny-off", "tiny-strong"):
        info = summary["experiments"][name]
        assert info["status"] == "Success"
        assert info["ran"] == ["analyze"]
        assert {"prepare", "train", "collect", "train_ae", "train_ldm", "generate", "evaluate"} <= set(info["reused"])
        # each stage the experiment ran wrote its own timing into the workspace, though it ran in a temp copy
        assert set(info["stage_seconds"]) == set(info["ran"]) and min(info["stage_seconds"].values()) > 0
    show = json.loads(run(["dvc", "exp", "show", "--json"], tiny_committed).stdout)
    finished = ablations.experiments_from_show(show)
    assert {"tiny-off", "tiny-strong"} <= set(finished)
    assert finished["tiny-strong"]["params"]["baselines"]["noise_sigma"] == 0.3
    # the point's value reached the stage: a stronger noise baseline lands further from the snapshots
    nl2 = {n: finished[n]["novelty"]["noise"]["nn_l2_mean"] for n in ("tiny-off", "tiny-strong")}
    assert nl2["tiny-strong"] > 10 * nl2["tiny-off"], nl2
    assert finished["tiny-off"]["metrics"]["generated"]["count"] == 8  # TINY's generate.num_models
    page = ablations.plots_page(recipe, show, out, tiny_committed)  # the report links its offline plots page
    report = ablations.write_report(recipe, show, out, summary, page)
    df = ablations.table(recipe, finished, summary)
    assert list(df["point"]) == ["off", "strong"] and list(df["baselines.noise_sigma"]) == [0.001, 0.3]
    assert df["generated max-IoU"].between(0, 1).all() and (df["original NN-L2"] >= 0).all()  # from analyze
    text = report.read_text()
    assert "| off " in text and "| strong " in text
    assert "[tiny_plots/index.html](tiny_plots/index.html)" in text
    assert json.loads((page / "plots.json").read_text())["revisions"] == ["tiny-off", "tiny-strong"]
    width, height = png_size(out / "tiny.png")
    assert width > 1.5 * height > 450  # accuracy and distance panels side by side
    # `dvc plots diff` between the two experiments: accuracy distributions and loss curves of both
    plots = json.loads(run(["dvc", "plots", "diff", "tiny-off", "tiny-strong", "--json"], tiny_committed).stdout)
    plots = plots["data"]
    for key in ("accuracy_quantiles", "metrics/train_ae/plots/metrics/loss.tsv"):
        assert set(plots[key][0]["revisions"]) == {"tiny-off", "tiny-strong"}, key
    assert {r for e in plots["plots/evaluate/accuracy_hist.png"] for r in e["revisions"]} == {"tiny-off",
                                                                                              "tiny-strong"}
    # ... and offline: the report's page holds DVC's page and one PNG per plot from its specs (the same
    # tools/offline_plots.render that `make plots-diff` calls: tests/test_offline_plots.py runs that script)
    manifest = json.loads((page / "plots.json").read_text())
    by_id = {p["id"]: p for p in manifest["plots"] if p["type"] == "vega"}
    for key in ("accuracy_quantiles", "metrics/train_ae/plots/metrics/loss.tsv"):
        assert set(by_id[key]["revisions"]) == {"tiny-off", "tiny-strong"}, key
        assert (page / by_id[key]["png"][0]).read_bytes()[:4] == b"\x89PNG", key
    hist = [p for p in manifest["plots"] if p["id"] == "plots/evaluate/accuracy_hist.png"]
    assert sorted(r for p in hist for r in p["revisions"]) == ["tiny-off", "tiny-strong"]
    assert all((page / p["png"][0]).is_file() for p in hist)
    assert offline_plots.external_refs((page / "index.html").read_text()) == []


def test_recipes_cover_the_paper_ablations():
    all_ = ablations.recipes()
    assert [p.overrides["collect.num_snapshots"] for p in all_["k"].points] == [1, 10, 50, 200, 500]
    assert all(p.overrides["collect.epochs"] >= 3 for p in all_["k"].points)  # 500 > 2 epochs of 219 steps
    assert len(all_["noise"].points) == 4 and len(all_["seeds"].points) == 5
    assert [p.label for p in all_["sampler"].points] == ["ddpm1000", "ddim100", "ddim50", "ddim20"]
    cmd = ablations.queue_command(all_["params"], all_["params"].points[1])
    assert cmd[-2:] == ["-S", "collect.params=['bn2.*']"]
    rev = {"rev": "abc", "name": "n", "data": {"metrics": {"metrics/evaluate.json": {"data": {"x": 1}}}}}
    show = [{"rev": "base", "experiments": [{"executor": {"state": "running"}, "revs": [rev]},
                                            {"executor": {"state": "success"}, "revs": [{**rev, "name": "m"}]}]}]
    assert set(ablations.experiments_from_show(show)) == {"m"}  # running ones are left out
    assert ablations.parse_log("Stage 'train' didn't change, skipping\nRunning stage 'train_ae':\n"
                               "stage `train_ae` done in 2.5 s") == {"ran": ["train_ae"], "reused": ["train"]}


def test_gpu_pool_gives_each_process_its_own_gpu(tmp_path):
    from pdiff.core import gpus

    try:
        env1 = {"PDIFF_GPUS": "0,1", "PDIFF_GPU_LOCK_DIR": str(tmp_path)}
        env2, env3 = dict(env1), dict(env1)
        assert gpus.pin_from_env(env1) == "0" and env1["CUDA_VISIBLE_DEVICES"] == "0"
        assert gpus.pin_from_env(env2) == "1" and env2["CUDA_VISIBLE_DEVICES"] == "1"
        with pytest.raises(Exception, match="no free GPU"):
            gpus.pin_from_env(env3, poll=0.01, timeout=0.05)  # both taken: waits, then gives up
        assert gpus.pin_from_env({**env1, "CUDA_VISIBLE_DEVICES": "3"}) is None  # user's choice wins
        assert gpus.pin_from_env({**env3, "WORLD_SIZE": "2"}) is None  # torchrun: DDP picks GPUs itself
        gpus.release_all()  # (a process exiting releases its locks the same way)
        assert gpus.pin_from_env(env3) == "0"
    finally:
        gpus.release_all()


def test_seeds_report_has_mean_std_row_and_paired_difference(tmp_path, monkeypatch):
    import pdiff.core.plots as plots

    drawn = []
    real = plots.save_figure

    def capture(fig, path):  # per panel: {line label: y values}, as drawn
        drawn.append([{ln.get_label(): list(ln.get_ydata()) for ln in ax.get_lines()} for ax in fig.axes])
        return real(fig, path)

    monkeypatch.setattr(plots, "save_figure", capture)
    recipe = ablations.Recipe("seeds", "Headline over seeds", "seed",
                              [ablations.Point(str(s), {"seed": s}) for s in range(2)])

    def exp(name, seed, orig, gen):
        def stats(m):
            return {"acc_median": m, "acc_max": m + 0.4, "acc_min": m - 0.5, "acc_std": 0.1, "failed": 0}
        metrics = {"metrics/evaluate.json": {"data": {"original": stats(orig), "generated": stats(gen)}},
                   "metrics/novelty.json": {"data": {"generated": {"max_similarity_mean": 0.99, "nn_l2_mean": 0.008},
                                                     "original": {"nn_l2_mean": 0.003}}}}
        return {"name": name, "rev": name, "data": {"metrics": metrics,
                                                     "params": {"params.yaml": {"data": {"seed": seed}}}}}

    done = [exp("seeds-0", 0, 97.0, 97.2), exp("seeds-1", 1, 98.0, 97.8)]
    show = [{"rev": "base", "experiments": [{"executor": {"state": "success"}, "revs": [e]} for e in done]}]
    text = ablations.write_report(recipe, show, tmp_path).read_text()
    assert "| mean ± std |" in text and "97.50 ± 0.71" in text  # original median over the two seeds
    assert "generated − original (points): median 0.00 ± 0.28, max 0.00 ± 0.28" in text
    assert "0.9900 ± 0.0000" in text  # IoU-sized values keep 4 decimals
    (accuracy, distance), = drawn
    assert accuracy["generated median"] == [97.2, 97.8] and accuracy["original median (reference)"] == [97.0, 98.0]
    assert distance["generated: L2 to nearest snapshot"] == [0.008, 0.008]
    width, height = png_size(tmp_path / "seeds.png")
    assert width > 1.5 * height > 450  # two panels side by side, 3.6 inches high at 120 dpi


def test_ae_steps_recipe_reports_decoded_noise_beside_generated_and_originals(tmp_path):
    key = "conv_ae.train_ae.steps"
    recipe = ablations.recipes({"conv_ae": {"train_ae": {"steps": 2000}}})["ae_steps"]
    assert [p.overrides[key] for p in recipe.points] == [2000, 10000, 30000] and recipe.sweep
    shorter = ablations.recipes({"conv_ae": {"train_ae": {"steps": 1000}}})["ae_steps"]
    assert [p.overrides[key] for p in shorter.points][:2] == [1000, 5000]

    newest = of_kind("baseline")[-1]

    def exp(name, steps, decoded):
        stats = {"acc_median": 97.5, "acc_max": 97.9, "acc_min": 97.0, "acc_std": 0.1, "failed": 0}
        novelty = {"generated": {"max_similarity_mean": 0.99, "nn_l2_mean": 0.008}, "original": {"nn_l2_mean": 0.003}}
        if steps == 2000:  # the newest baseline: only in the experiment run after analyze had it
            novelty[newest.name] = {"acc_median": 96.125}
        if decoded is not None:  # an experiment run before analyze had the decoder sets has none
            novelty |= {"decoded_noise": {"acc_median": decoded, "acc_max": decoded + 0.3, "acc_min": decoded - 9,
                                          "max_similarity_mean": 0.9, "nn_l2_mean": 0.05},
                        "reconstruction": {"acc_median": 97.4}}
        metrics = {"metrics/evaluate.json": {"data": {"original": stats, "generated": stats}},
                   "metrics/novelty.json": {"data": novelty}}
        return {"name": name, "rev": name, "data": {"metrics": metrics,
                                                     "params": {"params.yaml": {"data": {
                                                         "conv_ae": {"train_ae": {"steps": steps}}}}}}}

    done = [exp("ae_steps-1", 2000, 97.6), exp("ae_steps-2", 10000, 81.25), exp("ae_steps-3", 30000, None)]
    show = [{"rev": "base", "experiments": [{"executor": {"state": "success"}, "revs": [e]} for e in done]}]
    text = ablations.write_report(recipe, show, tmp_path).read_text()
    header = next(line for line in text.splitlines() if line.startswith("|") and " point " in line)
    head = [c.strip() for c in header.split("|")]
    for column in ("original median", "generated median", "decoded-noise median", "decoded-noise min",
                   "reconstruction median", "decoded-noise NN-L2", f"{newest.label} median"):
        assert column in head, column
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "81.25" in rows["10,000"] and "72.25" in rows["10,000"]  # decoded-noise median and min
    assert "n/a" in rows["30,000"]  # no decoder sets in that experiment: shown as missing, not dropped
    cells = {k: [c.strip() for c in row.split("|")] for k, row in rows.items()}
    newest_col = head.index(f"{newest.label} median")
    assert [cells[k][newest_col] for k in ("2,000", "10,000", "30,000")] == ["96.125", "n/a", "n/a"]
    assert (tmp_path / "ae_steps.png").read_bytes()[:4] == b"\x89PNG"


def test_run_dvc_finds_dvc_beside_python_and_puts_it_on_the_childs_path(monkeypatch):
    """Queue workers are started by dvc as plain `dvc ...`: without its folder on PATH they die at once and the
    queue waits forever (seen when pytest ran as `.venv/bin/python -m pytest` with no venv on PATH)."""
    from pathlib import Path

    from tools import dvc_runner as dvcrun

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    seen = {}
    monkeypatch.setattr(dvcrun.subprocess, "run", lambda cmd, **kw: seen.update(cmd=cmd, env=kw["env"]) or
                        subprocess.CompletedProcess(cmd, 0, "", ""))
    dvcrun.run_dvc(["queue", "start"], ".")
    folder = str(Path(seen["cmd"][0]).parent)
    assert Path(seen["cmd"][0]).name == "dvc" and seen["cmd"][1:] == ["queue", "start"]
    assert seen["env"]["PATH"].split(":")[0] == folder and "/usr/bin" in seen["env"]["PATH"]


def test_default_jobs_fit_the_cores(monkeypatch):
    for cores, threads, jobs in ((2, 2, 1), (16, 2, 8), (16, 4, 4), (1, 2, 1), (None, 2, 1)):
        monkeypatch.setattr(ablations.os, "cpu_count", lambda cores=cores: cores)
        assert ablations.default_jobs(threads) == jobs, (cores, threads)


def test_sweep_recipes_are_one_dvc_sweep_expanded_in_point_order():
    """seeds and K are queued with DVC's sweep syntax; DVC names the i-th expansion `<recipe>-i`, so the
    expansion order must be the points' order (checked with DVC's own expander)."""
    from dvc.utils.hydra import get_hydra_sweeps

    for name in ("seeds", "k"):
        recipe = ablations.recipes()[name]
        (cmd,) = ablations.queue_commands(recipe)
        assert cmd[:5] == ["exp", "run", "--queue", "--name", name] and "choice(" in cmd[6]
        sweeps = get_hydra_sweeps({"params.yaml": [a for a in cmd[5:] if a != "-S"]})
        assert len(sweeps) == len(recipe.points)
        for i, (point, sweep) in enumerate(zip(recipe.points, sweeps, strict=True)):
            assert ablations.exp_name(recipe, point) == f"{name}-{i + 1}"
            got = dict(o.split("=", 1) for o in sweep["params.yaml"])
            assert got == {k: str(v) for k, v in point.overrides.items()}
    noise = ablations.recipes()["noise"]  # two keys vary: one queued experiment per point, named by label
    assert len(ablations.queue_commands(noise)) == 4 and ablations.exp_name(noise, noise.points[0]) == "noise-none"
    with pytest.raises(ablations.PdiffError, match="not a plain sweep"):
        ablations.Recipe("bad", "t", "x", noise.points, sweep=True)


def test_sweep_reports_find_experiments_of_older_per_point_runs_by_their_params():
    recipe = ablations.recipes()["seeds"]
    # before seeds was a sweep, seed s ran as `seeds-s`: `seeds-1` is seed 1 there, seed 0 in a sweep
    finished = {f"seeds-{s}": {"params": {"seed": s}, "metrics": {}} for s in range(5)}
    assert [ablations.find_experiment(recipe, p, finished) for p in recipe.points] == \
        ["seeds-0", "seeds-1", "seeds-2", "seeds-3", "seeds-4"]
    finished = {f"seeds-{i + 1}": {"params": {"seed": i}, "metrics": {}} for i in range(4)}  # a sweep, one missing
    assert [ablations.find_experiment(recipe, p, finished) for p in recipe.points] == \
        ["seeds-1", "seeds-2", "seeds-3", "seeds-4", None]


@pytest.mark.slow
def test_queueing_a_sweep_shows_named_tasks_in_the_queue_api(tiny_copy):
    repo = tiny_copy
    recipe = ablations.Recipe("sw", "seeds", "seed", [ablations.Point(str(s), {"seed": s}) for s in (3, 4)],
                              sweep=True)
    for cmd in ablations.queue_commands(recipe):
        run(["dvc", *cmd], repo)
    try:
        status = ablations.queue_status(repo)
        assert sorted(status.values()) == [("sw-1", "Queued"), ("sw-2", "Queued")]
        show = ablations.show_experiments(repo)
        queued = {r["name"]: r["data"]["params"]["params.yaml"]["data"]["seed"]
                  for e in show for exp in e.get("experiments") or [] for r in exp["revs"]}
        assert queued == {"sw-1": 3, "sw-2": 4}
    finally:
        run(["dvc", "queue", "remove", "--all"], repo, check=False)
