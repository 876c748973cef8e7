"""tools/paper_scale.py: one seed's entry from a finished run's artifacts, the claim check, the results file and
its report. The full runs are documented measurements (docs/paper-scale.md), not tests."""
import json

import pytest
import torch
import yaml

from pdiff import PdiffError
from pdiff.analysis.sets import of_kind
from pdiff.core.artifacts import save_json, save_torch
from pdiff.core.stage import timing_folder, write_timing
from tests.conftest import ROOT, png_size
from tools import paper_scale


def summary(median, best, count):
    return {"count": count, "failed": 0, "acc_mean": median, "acc_median": median, "acc_max": best,
            "acc_min": median - 1, "acc_std": 0.1}


def fake_run(repo, seed=3, gen_median=95.0, gen_max=96.0, decoder=False, learned=None):
    """The artifacts `collect` reads, as a finished preset run leaves them (``decoder``: with analyze's
    decoded-noise and reconstruction sets; ``learned``: analyze's top-level ``learned`` entry)."""
    (repo / "params.yaml").write_text(f"seed: {seed}\nthreads: 2\n")
    evaluate = {"original": summary(95.0, 95.5, 4), "generated": summary(gen_median, gen_max, 3),
                "val": {"original": summary(94.0, 94.5, 4), "generated": summary(94.1, 94.4, 3)}}
    save_json(evaluate, repo / "metrics/evaluate.json")
    nov = {m: dict(summary(90.0, 91.0, 3), max_similarity_mean=0.5, nn_l2_mean=0.01)
           for m in ("original", "generated", *(s.name for s in of_kind("baseline")))}
    if decoder:
        nov |= {"decoded_noise": dict(summary(96.5, 97.0, 5), max_similarity_mean=0.4, nn_l2_mean=0.02),
                "reconstruction": dict(summary(95.25, 95.5, 4), max_similarity_mean=0.9, nn_l2_mean=0.001)}
    save_json(nov | ({"learned": learned} if learned else {}), repo / "metrics/novelty.json")
    save_torch({"params": torch.zeros(4, 6), "names": ["a", "b"], "shapes": [[2], [4]]}, repo / "models/snapshots.pt")
    correct = torch.ones(4, 10, dtype=torch.bool)
    correct[0, :3] = False   # 3 errors
    correct[1, :1] = False   # 1 error
    save_torch({"labels": "x", "test_size": 10, "methods": {"original": {"correct": correct, "vectors": "y"}}},
               repo / "models/correctness.pt")
    tsv = repo / "metrics/train/plots/metrics/val_acc.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\tval_acc\n1\t50.0\n2\t90.5\n")
    for stage, seconds in (("train", 120.5), ("evaluate", 60.0)):  # what run_stage writes
        write_timing(stage, seconds, timing_folder(repo, exp=""), peak_mb=seconds * 10)


LOG = ["21:00:00 Running stage 'train':", "21:00:01 stage `train` done in 99.0 s",
       "21:05:00 stage `evaluate` done in 1.0 s", "21:10:30 Updating lock file 'dvc.lock'"]


def test_collect_reads_one_finished_run(tmp_path):
    fake_run(tmp_path)
    e = paper_scale.collect(tmp_path, LOG)
    assert e["seed"] == 3 and e["dim"] == 6 and e["test_size"] == 10
    assert e["original"]["acc_max"] == 95.5 and e["generated"]["count"] == 3 and "failed" not in e["original"]
    assert e["val"]["generated"]["acc_median"] == 94.1
    assert e["baselines"]["average"] == {"acc_median": 90.0, "max_similarity_mean": 0.5}
    assert e["original_test_errors"] == {"mean": 1.0, "min": 0, "max": 3}
    assert e["base"]["val_acc_per_epoch"] == [50.0, 90.5]
    assert e["stage_seconds"] == {"train": 120.5, "evaluate": 60.0}  # the timing files, not the log's text
    assert e["stage_peak_rss_mb"] == {"train": 1205.0, "evaluate": 600.0} and "mapped_file_mb" not in e
    assert e["wall_seconds"] == 630.0
    assert e["claim"] == {"max": True, "median": True}


@pytest.mark.parametrize("gen_median, gen_max, expected", [(95.0, 95.5, (True, True)), (94.95, 96.0, (True, False)),
                                                           (95.2, 95.45, (False, True))])
def test_claim_needs_both_the_max_and_the_median(tmp_path, gen_median, gen_max, expected):
    fake_run(tmp_path, gen_median=gen_median, gen_max=gen_max)
    e = paper_scale.collect(tmp_path, LOG)
    assert (e["claim"]["max"], e["claim"]["median"]) == expected


def test_results_file_keeps_one_entry_per_seed_and_refuses_another_preset(tmp_path):
    fake_run(tmp_path)
    e3 = paper_scale.collect(tmp_path, LOG)
    e1 = dict(e3, seed=1)
    res = paper_scale.add_entry({"preset": None, "seeds": []}, "p", e3)
    res = paper_scale.add_entry(res, "p", e1)
    res = paper_scale.add_entry(res, "p", dict(e3, wall_seconds=1.0))
    assert [e["seed"] for e in res["seeds"]] == [1, 3] and res["seeds"][1]["wall_seconds"] == 1.0
    with pytest.raises(PdiffError, match="holds preset 'p'"):
        paper_scale.add_entry(res, "other", e1)


def test_report_has_a_row_per_seed_a_summary_row_and_a_figure(tmp_path, monkeypatch):
    import pdiff.core.plots as plots

    drawn = []
    real = plots.save_figure

    def capture(fig, path):  # the bars' heights, per legend label, as drawn
        ax = fig.axes[0]
        drawn.append({c.get_label(): [b.get_height() for b in c] for c in ax.containers})
        return real(fig, path)

    monkeypatch.setattr(plots, "save_figure", capture)
    fake_run(tmp_path)
    e = paper_scale.collect(tmp_path, LOG)
    other = dict(e, seed=4, claim={"max": False, "median": True}, generated=dict(e["generated"], acc_median=96.5))
    res = {"preset": "p", "seeds": [e, other]}
    save_json(res, tmp_path / "out/results.json")
    md = paper_scale.write_report(json.loads((tmp_path / "out/results.json").read_text()), tmp_path / "out")
    text = md.read_text()
    assert "| 3 | 95 | 95.5 | 95 | 96 |" in text and "| 4 |" in text
    assert "| mean ± std | 95.00 ± 0.00 |" in text and "| 1/2 | 2/2 |" in text
    assert "| seed | train | evaluate | sum of stages | dvc repro wall |" in text
    assert "| 3 | 120 | 60 | 180 | 630 |" in text
    assert "| seed | train | evaluate | mapped snapshot file |" in text and "| 3 | 1,205 | 600 | — |" in text
    (bars,) = drawn
    assert bars["original median"] == [95.0, 95.0] and bars["generated median"] == [95.0, 96.5]
    assert bars["average median"] == [90.0, 90.0]  # the baselines' medians from novelty.json
    width, height = png_size(tmp_path / "out/results.png")
    assert width > height > 300  # 120 dpi, at least 4.5 x 3.8 inches, legend beside the axes


def test_run_refuses_a_results_file_of_another_preset_before_running_anything(tmp_path, monkeypatch):
    save_json({"preset": "p", "seeds": []}, tmp_path / "out/results.json")
    monkeypatch.setattr(paper_scale, "run_seed", lambda *a, **k: pytest.fail("a seed ran"))
    with pytest.raises(PdiffError, match="holds preset 'p', not 'other'"):
        paper_scale.run("other", [0], tmp_path / "out", tmp_path / "work")


def test_decoder_sets_are_collected_and_shown_and_older_runs_read_pending(tmp_path):
    fake_run(tmp_path, decoder=True)
    e = paper_scale.collect(tmp_path, LOG)
    assert e["decoder"]["decoded_noise"]["acc_median"] == 96.5 and e["decoder"]["decoded_noise"]["count"] == 5
    assert e["decoder"]["reconstruction"]["nn_l2_mean"] == 0.001
    old = {k: v for k, v in dict(e, seed=4).items() if k != "decoder"}  # a run made before analyze had them
    text = paper_scale.table({"preset": "p", "seeds": [e, old]})
    rows = {r.split("|")[1].strip(): r for r in text.splitlines()[2:]}
    assert rows["3"].endswith("| 96.5 | 97 | 95.25 | 95.5 | yes | yes |")  # decoded-noise, reconstruction
    assert rows["4"].endswith("| pending | pending | pending | pending | yes | yes |")
    assert "| 1/2 seeds | 1/2 seeds | 1/2 seeds | 1/2 seeds |" in rows["mean ± std"]
    both = paper_scale.table({"preset": "p", "seeds": [e, dict(e, seed=4)]})
    assert "| 96.50 ± 0.00 | 97.00 ± 0.00 | 95.25 ± 0.00 | 95.50 ± 0.00 |" in both
    paper_scale.figure({"preset": "p", "seeds": [e, old]}, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


LEARNED = {"dim": 6, "num_snapshots": 4, "num_generated": 3, "nn_l2_mean": 0.5, "snapshot_nn_l2_mean": 0.25,
           "mean_l2_mean": 0.125, "snapshot_mean_l2_mean": 1.0, "distinct_nearest": 1, "disagreement_generated": 0.0,
           "disagreement_snapshots": 0.0125, "diverse": False, "verdict": "mean"}


def test_the_learned_entry_is_carried_into_results_and_shown_and_older_runs_read_not_rerun(tmp_path):
    fake_run(tmp_path, learned=LEARNED)
    e = paper_scale.collect(tmp_path, LOG)
    assert e["learned"] == LEARNED  # at the top level of the seed's entry, as analyze wrote it
    old = {k: v for k, v in dict(e, seed=4).items() if k != "learned"}  # a run made before analyze wrote it
    save_json({"preset": "p", "seeds": [e, old]}, tmp_path / "out/results.json")
    text = paper_scale.write_report(json.loads((tmp_path / "out/results.json").read_text()), tmp_path / "out")
    text = text.read_text()
    assert "| 3 | 6 | 0.5 / 0.25 | 0.125 / 1 | 1 of 3 | 0.00 % / 1.25 % | no | **mean** |" in text
    assert "| 4 | 6 | — | — | — | — | — | not rerun |" in text
    (tmp_path / "older").mkdir()
    fake_run(tmp_path / "older")  # novelty.json without `learned`: no key in the entry
    assert "learned" not in paper_scale.collect(tmp_path / "older", LOG)


def test_the_docs_learned_table_reads_each_run_by_its_seed_and_marks_missing_runs():
    files = {"metrics/novelty.json": {"generated": {}, "learned": dict(LEARNED, dim=192, verdict="new")},
             paper_scale.HEADLINE_RERUN: {"seeds": [{"seed": 1, "dim": 2048, "learned": LEARNED},
                                                    {"seed": 0, "dim": 2048}]},
             paper_scale.BLOCK_RESULTS: {"seeds": [{"seed": 0, "dim": 4720640, "learned": dict(LEARNED, dim=4720640)}]}}

    def load(path):
        if path not in files:
            raise FileNotFoundError(path)
        return files[path]

    rows = {r.split(" | ")[0].lstrip("| "): r for r in paper_scale.docs_learned_table(load).splitlines()[2:]}
    assert len(rows) == len(paper_scale.LEARNED_ROWS)
    assert rows["default (`small_cnn`), conv AE"].startswith("| default (`small_cnn`), conv AE | 192 | 0.5 / 0.25 |")
    assert rows["default (`small_cnn`), conv AE"].endswith("| **new** |")
    # no file yet:
    assert rows["default (`small_cnn`), tokens (seed 0)"].endswith("| 192 | — | — | — | — | — | not rerun |")
    assert rows["`mnist5k-resnet18`, conv AE (seed 0)"].endswith("| 2,048 | — | — | — | — | — | not rerun |")
    assert rows["`mnist5k-resnet18-block`, tokens (seed 0)"].endswith("| **mean** |")
    assert "4,720,640" in rows["`mnist5k-resnet18-block`, tokens (seed 0)"]


def _seed0(path):
    return next(e for e in json.loads((ROOT / path).read_text())["seeds"] if e["seed"] == 0)


def test_the_headline_rerun_gives_the_headline_seeds_numbers():
    """The seed-0 rerun that fills the learned table's mnist5k-resnet18 conv AE row (a later commit, another CPU)
    scored every set as the committed headline's seed 0 did: its `learned` entry describes those models."""
    rerun, headline = _seed0(paper_scale.HEADLINE_RERUN), _seed0(paper_scale.HEADLINE)
    for key in ("dim", "test_size", "original", "generated", "val", "novelty", "decoder", "original_test_errors",
                "base"):
        assert rerun[key] == headline[key], key
    assert {k: rerun["baselines"][k] for k in headline["baselines"]} == headline["baselines"]  # + interpolation, newer
    assert rerun["learned"]["num_generated"] == headline["generated"]["count"]
    assert rerun["commit"] != headline["commit"]


def test_the_tokens_row_comes_from_the_headline_rerun_s_base_model_and_snapshots():
    """The learned table's mnist5k-resnet18 tokens row: the tokens generator on the same base model and snapshots
    as the conv AE row (the originals score alike, convergence epoch by epoch too), so the two rows compare two
    generators on one training set."""
    tokens, conv = _seed0(paper_scale.TOKENS_RERUN), _seed0(paper_scale.HEADLINE_RERUN)
    for key in ("dim", "test_size", "original", "original_test_errors", "base"):
        assert tokens[key] == conv[key], key
    assert tokens["novelty"]["original"] == conv["novelty"]["original"]
    assert tokens["val"]["original"] == conv["val"]["original"]
    assert tokens["generator"] != conv["generator"] and tokens["learned"]["num_generated"] == 100


def test_overrides_are_parsed_set_on_top_of_the_preset_and_keep_one_setting_per_file(tmp_path, monkeypatch):
    from tools import workcopy

    assert paper_scale.parse_overrides(["generator=tokens", "tokens.train_ldm.steps=500", "train.classes=[0, 1]"]) == {
        "generator": "tokens", "tokens.train_ldm.steps": 500, "train.classes": [0, 1]}
    with pytest.raises(PdiffError, match="expected KEY=VALUE"):
        paper_scale.parse_overrides(["generator"])

    seen = {}

    def fake_clone(work):  # the real params.yaml in the clone; no git, no dvc
        work.mkdir(parents=True)
        (work / "params.yaml").write_text((repo_root() / "params.yaml").read_text())
        return "c" * 40

    def fake_timed_run(cmd, cwd):
        seen["params"] = (cwd / "params.yaml").read_text()
        return {"returncode": 0, "lines": []}

    monkeypatch.setattr(workcopy, "clone_head", fake_clone)
    monkeypatch.setattr(workcopy, "timed_run", fake_timed_run)
    monkeypatch.setattr(paper_scale, "collect", lambda repo, lines, wall=None: {"seed": 5})
    over = {"generator": "tokens", "collect.storage": "mmap"}
    paper_scale.run_seed("mnist5k-resnet18", 5, tmp_path / "w", log=lambda *a: None, overrides=over)
    import yaml

    params = yaml.safe_load(seen["params"])
    assert (params["generator"], params["collect"]["storage"], params["seed"]) == ("tokens", "mmap", 5)
    assert params["model"]["arch"] == "resnet18"  # the preset is applied underneath
    with pytest.raises(PdiffError, match="no line for `tokens.nope`"):
        paper_scale.run_seed("mnist5k-resnet18", 5, tmp_path / "w2", log=lambda *a: None, overrides={"tokens.nope": 1})

    (tmp_path / "r").mkdir()
    fake_run(tmp_path / "r")
    e = paper_scale.collect(tmp_path / "r", LOG)
    res = paper_scale.add_entry({"preset": None, "seeds": []}, "p", e, over)
    assert res["overrides"] == over and paper_scale.setting(res) == "p (generator=tokens, collect.storage=mmap)"
    with pytest.raises(PdiffError, match="holds runs with overrides"):
        paper_scale.add_entry(res, "p", e)  # the plain preset into the tokens file
    assert "overrides" not in paper_scale.add_entry({"preset": None, "seeds": []}, "p", e)


def repo_root():
    from tests.conftest import ROOT

    return ROOT


def test_tokens_runs_show_no_decoder_columns_as_not_applicable(tmp_path):
    fake_run(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 3\nthreads: 2\ngenerator: tokens\n")
    e = paper_scale.collect(tmp_path, LOG)
    assert e["generator"] == "tokens" and e["decoder"] == {}
    text = paper_scale.table({"preset": "p", "seeds": [e, dict(e, seed=4)]})
    rows = {r.split("|")[1].strip(): r for r in text.splitlines()[2:]}
    assert rows["3"].endswith("| n/a | n/a | n/a | n/a | yes | yes |")
    assert rows["mean ± std"].endswith("| n/a | n/a | n/a | n/a | 2/2 | 2/2 |")
    old = {k: v for k, v in e.items() if k not in ("generator", "decoder")}  # a conv AE run before the decoder sets
    assert "| pending | pending | pending |" in paper_scale.table({"preset": "p", "seeds": [old]})


def test_every_baseline_of_the_registry_is_collected_and_one_an_older_run_lacks_reads_pending(tmp_path, monkeypatch):
    """A baseline added to the analyze stage after a run was made is absent from that run's novelty.json: its
    column reads "pending" for that seed, the mean row says how many seeds have it, and the figure draws a bar
    only for the sets some seed has."""
    import pdiff.core.plots as plots

    drawn = []
    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: (drawn.append(
        [c.get_label() for c in fig.axes[0].containers]), real(fig, path)))
    baselines = list(of_kind("baseline"))
    fake_run(tmp_path)
    e = paper_scale.collect(tmp_path, LOG)
    assert list(e["baselines"]) == [s.name for s in baselines]
    newest = baselines[-1].name
    old = dict(e, seed=4, baselines={k: v for k, v in e["baselines"].items() if k != newest})
    text = paper_scale.table({"preset": "p", "seeds": [e, old]})
    head = [c.strip() for c in text.splitlines()[0].split("|")]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")] for r in text.splitlines()[2:]}
    column = head.index(f"{baselines[-1].label} median")
    assert (rows["3"][column], rows["4"][column], rows["mean ± std"][column]) == ("90", "pending", "1/2 seeds")
    paper_scale.figure({"preset": "p", "seeds": [old]}, tmp_path / "f.png")
    assert drawn[-1] == ["original median", "generated median", *(f"{s.label} median" for s in baselines[:-1])]


def test_write_params_applies_the_preset_but_leaves_the_default_as_committed(tmp_path):
    """`--preset default` runs the committed params.yaml (with --set values and the seed on top); a named preset
    is applied first; a wrong --set value is refused before any stage runs."""
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    paper_scale.write_params(path, "default", 5, {"generator": "tokens"})
    written = yaml.safe_load(path.read_text())
    assert written == committed | {"seed": 5, "generator": "tokens"}
    path.write_text((ROOT / "params.yaml").read_text())
    paper_scale.write_params(path, "digits-mlp-whole", 0)
    assert yaml.safe_load(path.read_text())["data"]["name"] == "digits"
    with pytest.raises(PdiffError, match="generate.num_models"):
        paper_scale.write_params(path, "default", 0, {"generate.num_models": "many"})
