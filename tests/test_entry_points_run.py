"""Every entry point run to its real output at tiny size: each Makefile target and each tools/*.py with a main()
is started here as a user starts it (`make TARGET VAR=...` or `python -m tools.X ...`, no mocks, no --help) in a
temporary copy of the repository, and the files it writes are read back and checked.

The copies have tools/, presets/ and the Makefile added and committed, so that a tool's ``ROOT`` is the copy and
every file it writes by default lands there, never in the project:

- `tools_repo`: the shared tiny repository (conftest's ``tiny_repo``: TINY params, reproduced), for the tools
  that read a finished run's artifacts;
- `head_repo`: TINY params with ``threads: 1`` (HEAD_OVERRIDES), committed and not run, for the tools that clone HEAD
  and run the whole pipeline there (bench, soak, kernel_pins, paper_scale) or copy it (gpu_check). One torch
  thread per stage: on 2 cores shared with other work (load average about 3.5), TINY's train_ldm stage took
  50-86 s with 2 threads, which spin waiting for each other at every tiny operation, and 4.6 s with 1.

`make` runs with ``-o .venv/.installed``: the copies have no .venv of their own and the tests' Python (first on
PATH) is the environment.

Every test but the first is marked ``longrun`` (`make test-slow`; CI runs it after `make test`). The first,
`test_every_entry_point_is_run_here_or_exempt`, runs in `make test`: it fails when a Makefile target or a tool with
a main() is neither run by a test here (`@runs(...)`) nor in EXEMPT with its reason.
"""
from __future__ import annotations

import ast
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import ROOT, copy_repo, make_tiny_repo, png_size, run
from tools import workcopy

STAGES = ["prepare", "train", "collect", "train_ae", "train_ldm", "generate", "evaluate", "analyze"]
TOOL_FILES = ("tools", "presets", "Makefile")  # beside workcopy.COPY: what starting the tools and targets needs
HEAD_OVERRIDES = {"threads": 1}  # on top of TINY in `head_repo`

# Entry points no test here runs, each with the reason.
EXEMPT = {
    "make venv": "the set-up: every target's prerequisite, and the environment every test here runs in",
    "make repro": "the full-size pipeline (make test-slow's commands_in_order runs it in a fresh clone); the "
                  "tiny pipeline's `dvc repro` runs here inside bench, soak, kernel_pins and paper_scale",
    "make test": "the suite itself",
    "make test-slow": "runs this module",
    "make test-counts": "one whole pytest run (tools.test_counts), then tools.doc_numbers (run here)",
    "make clean-venv": "deletes the shared environment",
    "make browser": "installs a system package with apt-get",
    "make verify": "already a longrun test (tests/test_verify.py reruns the tiny pipeline through tools.verify)",
    "tools.verify": "make verify (above)",
    "tools.test_counts": "make test-counts (above)",
    "tools.commands_in_order": "make test-slow's second half: make repro, then make test, in a fresh clone",
}

RUNS: dict[str, list[str]] = {}  # entry point ("make bench", "tools.bench") -> the tests here that run it


def runs(*entries: str):
    """Declare the entry points a test runs (checked by `test_every_entry_point_is_run_here_or_exempt`)."""
    def mark(fn):
        for entry in entries:
            RUNS.setdefault(entry, []).append(fn.__name__)
        return fn
    return mark


def makefile_targets() -> set[str]:
    """Every target with a rule of its own in the Makefile (not .PHONY, not a file named by a variable)."""
    found = re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.M)
    return {f"make {t}" for t in found}


def tools_with_main() -> set[str]:
    """``tools.X`` for every tools/X.py that defines a module-level main()."""
    out = set()
    for path in (ROOT / "tools").glob("*.py"):
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            out.add(f"tools.{path.stem}")
    return out


# ------------------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def tools_repo(tiny_repo, tmp_path_factory) -> Path:
    """The reproduced tiny repository with tools/, presets/ and the Makefile committed (HEAD = the tiny pipeline)."""
    repo = copy_repo(tiny_repo, tmp_path_factory.mktemp("entry") / "repo")
    workcopy.copy_files(repo, TOOL_FILES)
    run("git add -A && git commit -qm 'tools, presets, Makefile'", repo)
    return repo


@pytest.fixture(scope="module")
def head_repo(tmp_path_factory) -> Path:
    """TINY params (+ HEAD_OVERRIDES), tools/, presets/ and the Makefile, committed, nothing run: HEAD is the tiny
    pipeline for the tools that clone it."""
    repo = make_tiny_repo(tmp_path_factory.mktemp("head") / "repo", HEAD_OVERRIDES)
    workcopy.copy_files(repo, TOOL_FILES)
    run("git add -A && git commit -qm 'tools, presets, Makefile'", repo)
    return repo


@pytest.fixture
def repo(tools_repo, tmp_path) -> Path:
    """A private copy of `tools_repo` for a test that changes it."""
    return copy_repo(tools_repo, tmp_path / "repo")


def tool(repo: Path, name: str, *args) -> str:
    """``python -m tools.<name> ARGS`` in ``repo``; its stdout."""
    return run([sys.executable, "-m", f"tools.{name}", *map(str, args)], repo).stdout


def make(repo: Path, target: str, **variables) -> str:
    """``make TARGET VAR=value ...`` in ``repo`` (the venv stamp taken as built); stdout and stderr."""
    res = run(["make", "-o", ".venv/.installed", target, *(f"{k}={v}" for k, v in variables.items())], repo)
    return res.stdout + res.stderr


def load(path: Path):
    return json.loads(Path(path).read_text())


def flat(overrides: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for k, v in overrides.items():
        out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def is_png(path: Path) -> bool:
    width, height = png_size(path)
    return width > 50 and height > 50


# --------------------------------------------------------------------------------------------- the listing
def test_every_entry_point_is_run_here_or_exempt():
    """A new Makefile target or tool with a main() fails here until a test below runs it (`@runs`) or EXEMPT
    names it with a reason; and neither list names what does not exist or names it twice."""
    entries = makefile_targets() | tools_with_main()
    assert {"make bench", "make soak", "make gpu-check", "tools.bench", "tools.presets"} <= entries
    missing = sorted(entries - set(RUNS) - set(EXEMPT))
    assert not missing, f"entry points with no run test in {Path(__file__).name} and no exemption: {missing}"
    assert not sorted((set(RUNS) | set(EXEMPT)) - entries), "RUNS / EXEMPT name entry points that do not exist"
    assert not sorted(set(RUNS) & set(EXEMPT)), "an entry point both run and exempt"


# ----------------------------------------------------------------------------------------------- the runs
@pytest.mark.longrun
@runs("make bench", "tools.bench")
def test_make_bench_runs_every_entry_at_tiny_size(head_repo, tmp_path):
    """`make bench` in the copy: `dvc repro -f` of its HEAD (the tiny pipeline) in a clone, fast vs naive
    evaluation, DDPM vs DDIM, ResNet-18's ratio, and the scaling entry at one tiny D with its tokens rows."""
    out = tmp_path / "bench.json"
    make(head_repo, "bench", BENCH_ARGS=f"--out {out} --scaling-figure {tmp_path / 'scaling.png'} "
         "--scaling-dims 512 --scaling-batch 2 --resnet-vectors 2 --resnet-inputs 8 --tokens-dims 2048")
    b = load(out)
    assert b["stages_run"] == STAGES and "repro_error" not in b and "noop_repro_error" not in b
    assert b["repro_s"] > 0 and b["noop_repro_s"] > 0 and b["peak_rss_mb"] > 0
    assert b["eval"]["identical_predictions"] and (b["eval"]["original"], b["eval"]["generated"]) == (10, 8)
    assert b["eval_speedup"] > 0 and b["eval"]["vectors"] == 18
    s = b["sampling"]
    assert (s["num_models"], s["ddpm_steps"], s["ddim_steps"]) == (8, 50, 50) and s["ddpm_s"] > 0
    assert set(s["ddim_steps_sweep"]) == {"10", "25", "100"}
    assert 0 <= s["ddpm_acc_median"] <= 100 and 0 <= s["ddim_acc_median"] <= 100
    assert b["resnet18_cifar"]["identical_predictions"] and b["resnet18_cifar"]["vectors"] == 2
    assert b["resnet18_cifar"]["suffix_starts_at"].startswith("layer4.1")
    row = b["scaling"]["dims"]["512"]
    assert row["ae_s_per_step"] > 0 and row["ldm_s_per_step"] > 0 and row["ae_params"] > 0
    tokens = b["scaling"]["tokens"]["2048"]
    assert tokens["dim"] == 2048 and tokens["tokens"] == 4 and tokens["s_per_step"] > 0
    assert tokens["s_per_step_none"] > 0 and tokens["mapped_file_mb"] > 0
    assert set(b["goals"]) == {"eval_speedup", "sampling_speedup", "abs_ddim_acc_median_delta", "repro_s",
                               "noop_repro_s", "peak_rss_mb"}
    assert all(isinstance(g["met"], bool) for g in b["goals"].values())
    assert b["machine"]["cpu"] and b["threads"] == HEAD_OVERRIDES["threads"]
    assert is_png(tmp_path / "scaling.png") and is_png(head_repo / "reports/bench/scaling_tokens.png")


@pytest.mark.longrun
@runs("tools.bench_tokens")
def test_bench_tokens_writes_the_scaling_tokens_rows(tmp_path):
    """`python -m tools.bench_tokens` at two tiny D, each sequence model in its own child process."""
    out = tmp_path / "bench.json"
    tool(ROOT, "bench_tokens", "--dims", "1024,2048", "--k", 2, "--steps", 1, "--width", 16, "--batch", 8,
         "--threads", 1, "--rounds", 2, "--out", out, "--figure", tmp_path / "tokens.png")
    sc = load(out)["scaling"]
    assert set(sc["tokens"]) == {"1024", "2048"}
    for d, row in sc["tokens"].items():
        assert row["dim"] == int(d) and row["k"] == 2 and row["s_per_step"] > 0
        assert row["s_per_step_none"] > 0 and row["s_per_step_layers"] > 0 and row["s_per_step_tensors"] > 0
        times = row["rounds_s_per_step"]  # two rounds over every (D, model); the row keeps the fastest
        assert set(times) == {"gru", "none", "layers", "tensors"} and all(len(v) == 2 for v in times.values())
        assert row["s_per_step"] == min(times["gru"]) and row["s_per_step_tensors"] == min(times["tensors"])
        assert row["peak_rss_mb"] > 0 and row["mapped_file_mb"] >= 0 and row["tensors"] == 4
    settings = sc["tokens_settings"]
    assert settings["settings"]["width"] == 16 and settings["s_per_step_max_over_min"] > 0
    assert settings["machine"]["cpu"] and is_png(tmp_path / "tokens.png")


@pytest.mark.longrun
@runs("make gpu-check", "tools.gpu_check")
def test_make_gpu_check_cpu_tiny_runs_every_stage_of_the_shortened_preset(head_repo, tmp_path):
    """`make gpu-check GPU_CHECK_ARGS="--cpu-tiny --out F"`: the check's own steps (synthetic CIFAR-100, the
    cifar100-resnet18 preset shortened, every stage, the tokens timing) on the CPU at tiny size."""
    from tools.gpu_check import TINY_CPU, TINY_IMAGES, TINY_TOKENS

    out = tmp_path / "gpu.json"
    make(head_repo, "gpu-check", GPU_CHECK_ARGS=f"--cpu-tiny --out {out}")
    g = load(out)
    assert g["device"] == "cpu" and g["preset"] == "cifar100-resnet18" and g["shortened"]["device"] == "cpu"
    assert all(g["shortened"][k] == v for k, v in TINY_CPU.items())
    assert list(g["stages"]) == STAGES and g["peak_gpu_mib"] is None
    assert all(s["seconds"] > 0 and s["stage_seconds"] > 0 for s in g["stages"].values())
    assert g["total_seconds"] > 0 and g["train_images_per_s"] > 0 and g["ae_steps_per_s"] > 0
    assert f"{TINY_IMAGES[0] - TINY_CPU['data.val_size']:,} training images" in g["data"]
    for m in ("original", "generated"):
        assert 0 <= g["accuracy"][m]["acc_min"] <= g["accuracy"][m]["acc_median"] <= g["accuracy"][m]["acc_max"] <= 100
    assert {"original", "generated", "average"} <= set(g["novelty"])
    t = g["tokens"]
    assert t["dim"] == TINY_TOKENS[0] and t["steps_per_s"] > 0 and t["steps_per_s_gru"] > 0 and t["seconds"] > 0
    assert not (head_repo / "metrics/gpu.json").exists()


@pytest.mark.longrun
@runs("make soak", "tools.soak")
def test_make_soak_one_round_recovers_byte_identical(head_repo, tmp_path):
    """`make soak ROUNDS=1`: a clean `dvc repro` of the tiny pipeline in a clone, one SIGKILL inside a stage,
    recovery; metrics/ byte-identical and `dvc status` clean."""
    out = tmp_path / "soak.json"
    make(head_repo, "soak", ROUNDS=1, SOAK_ARGS=f"--out {out}")
    s = load(out)
    assert s["ok"] and s["rounds_done"] == 1 and s["rounds_requested"] == 1
    assert s["commit"] == run(["git", "rev-parse", "HEAD"], head_repo).stdout.strip()
    assert s["clean"]["status_clean"] and s["clean"]["metrics_files"] > 0
    assert [st for _, st in s["clean"]["stage_starts_s"]] == STAGES
    (r,) = s["rounds"]
    assert r["aimed_at"]["stage"] in STAGES and r["killed"] and r["stage_at_kill"] in STAGES
    assert r["metrics_identical"] and r["status_clean"] and r["recovery_returncode"] == 0
    assert sum(s["kills_per_stage"].values()) == 1 and len(s["stages_not_hit"]) == len(STAGES) - 1


@pytest.mark.longrun
@runs("make plots", "make plots-diff", "tools.offline_plots")
def test_make_plots_and_plots_diff_write_offline_pages_and_pngs(tools_repo, tmp_path):
    """`make plots` and `make plots-diff REVS=HEAD` on the tiny pipeline's plots: DVC's page with nothing
    fetched from the network, one PNG per plot; in headless Chromium too when one is installed."""
    from tools import browser, offline_plots

    for target, folder, extra in (("plots", tmp_path / "show", {}),
                                  ("plots-diff", tmp_path / "diff", {"REVS": "HEAD"})):
        make(tools_repo, target, OUT=folder, **extra)
        manifest = load(folder / "plots.json")
        page = (folder / "index.html").read_text()
        assert not offline_plots.external_refs(page) and manifest["plots"]
        assert {"vega", "image"} <= {p["type"] for p in manifest["plots"]}
        for plot in manifest["plots"]:
            assert plot["png"] and re.search(rf'id\s*=\s*"{plot["div"]}"', page), plot
            assert all(is_png(folder / png) for png in plot["png"] if png.endswith(".png")), plot
        assert manifest["revisions"] == (["HEAD", "workspace"] if extra else ["workspace"])
    if browser.find_chromium():
        shot = tmp_path / "page.png"
        tool(tools_repo, "offline_plots", "show", "--out", tmp_path / "shown", "--screenshot", shot)
        assert is_png(shot)


@pytest.mark.longrun
@runs("make ablation", "make ablation-report", "tools.ablations")
def test_make_ablation_and_report_on_a_two_point_recipe(repo):
    """`make ablation NAME=decoded_form` (two queued experiments: per_position, the tiny params' own value, reuses
    every stage; global reruns analyze only), then `make ablation-report`: the table, figure, run summary, logs
    and offline plots page."""
    listed = tool(repo, "ablations", "list")
    assert {line.split()[0] for line in listed.splitlines()} >= {"k", "noise", "decoded_form", "seeds"}
    make(repo, "ablation", NAME="decoded_form")
    out = repo / "reports/ablations"
    summary = load(out / "decoded_form_run.json")
    assert summary["jobs"] >= 1 and set(summary["experiments"]) == {"decoded_form-1", "decoded_form-2"}
    exps = summary["experiments"]
    assert all(info["status"] == "Success" and sorted(info["ran"] + info["reused"]) == sorted(STAGES)
               for info in exps.values()), exps
    assert (exps["decoded_form-1"]["ran"], exps["decoded_form-2"]["ran"]) == ([], ["analyze"]), exps
    assert exps["decoded_form-2"]["stage_seconds"]["analyze"] > 0
    (out / "decoded_form.md").unlink()
    make(repo, "ablation-report", NAME="decoded_form")
    report = (out / "decoded_form.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| per_position") or line.startswith("| global")]
    assert len(rows) == 2 and "stages run" in report and "decoded_form_plots/index.html" in report
    assert is_png(out / "decoded_form.png") and (out / "decoded_form_logs/decoded_form-1.log").stat().st_size
    plots = load(out / "decoded_form_plots/plots.json")
    assert plots["revisions"] == ["decoded_form-1", "decoded_form-2"]


# Tiny sizes on top of a paper preset: the preset's architecture and widths, a few steps on the embedded digits.
PRESET_TINY = {"threads": 1, "data": {"name": "digits", "val_size": 200, "test_size": 300}, "train": {"epochs": 1},
               "collect": {"num_snapshots": 4, "batch_size": 64, "epochs": 1}, "conv_ae": {
                   "train_ae": {"steps": 4, "batch_size": 4},
                   "train_ldm": {"steps": 4, "batch_size": 4, "timesteps": 20}},
               "generate": {"num_models": 4},
               "baselines": {"average_k": 4, "decoded_num": 4}, "evaluate": {"batch_size": 300}}


@pytest.mark.longrun
@runs("tools.paper_scale")
def test_paper_scale_run_collect_and_report_one_tiny_seed(head_repo, tmp_path):
    """`python -m tools.paper_scale run` of the mnist5k-resnet18 preset (ResNet-18, D = 2,048) with tiny sizes
    set on top (--set), one seed in a clone of HEAD; then `report`, and `collect` of the same run."""
    out, work = tmp_path / "out", tmp_path / "work"
    sets = [a for k, v in flat(PRESET_TINY).items() for a in ("--set", f"{k}={v}")]
    tool(head_repo, "paper_scale", "run", "--preset", "mnist5k-resnet18", "--seeds", 3, "--out", out,
         "--work", work, *sets)
    res = load(out / "results.json")
    assert res["preset"] == "mnist5k-resnet18" and res["overrides"] == flat(PRESET_TINY)
    (e,) = res["seeds"]
    assert e["seed"] == 3 and e["dim"] == 2048 and e["test_size"] == 300
    assert (e["original"]["count"], e["generated"]["count"]) == (4, 4)
    assert set(e["stage_seconds"]) == set(STAGES) and e["wall_seconds"] > 0 and len(e["base"]["val_acc_per_epoch"]) == 1
    assert set(e["claim"]) == {"max", "median"} and {"average", "gaussian"} <= set(e["baselines"])
    assert "| 3 |" in (out / "results.md").read_text() and is_png(out / "results.png")
    (out / "results.md").unlink()
    tool(head_repo, "paper_scale", "report", "--out", out)
    assert "| 3 |" in (out / "results.md").read_text()
    again = tmp_path / "again"
    tool(head_repo, "paper_scale", "collect", work / "seed3", work / "seed3/repro.log", "--out", again,
         *sets)
    entry = load(again / "results.json")["seeds"][0]
    assert entry["original"] == e["original"] and entry["generated"] == e["generated"]


@pytest.mark.longrun
@runs("tools.presets", "make exp")
def test_presets_cli_and_make_exp_with_tiny_sizes_on_top(repo, tmp_path):
    """`python -m tools.presets list / show / apply / exp-args`, then `make exp PRESET=digits-mlp-whole` with
    tiny sizes after the preset's arguments (EXP_ARGS): the experiment runs the whole pipeline outside the
    workspace, and `dvc exp show` has its params and metrics."""
    from pdiff.core.config import load_params
    from tools.ablations import experiments_from_show, show_experiments
    from tools.presets import available, lookup, resolved

    assert tool(repo, "presets", "list").split() == available()
    assert yaml.safe_load(tool(repo, "presets", "show", "cifar100-resnet18"))["data"]["name"] == "cifar100"
    params = tmp_path / "other.yaml"
    params.write_text((repo / "params.yaml").read_text())
    tool(repo, "presets", "apply", "cifar100-resnet18", params)
    p = load_params(params)
    assert (p.data.name, p.model.arch, p.data.val_size) == ("cifar100", "resnet18", 5000)
    assert p.conv_ae.train_ae.steps == 30000
    args = shlex.split(tool(repo, "presets", "exp-args", "digits-mlp-whole"))
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert set(args[::2]) == {"-S"} and set(pairs) == set(resolved("digits-mlp-whole"))
    assert (pairs["model.arch"], pairs["collect.params"]) == ("mlp", "['*']")

    tiny = {**flat(PRESET_TINY), "collect.num_snapshots": 8, "train.epochs": 2}
    workspace = {f: (repo / f).read_bytes() for f in ("params.yaml", "metrics/evaluate.json", "dvc.lock")}
    make(repo, "exp", PRESET="digits-mlp-whole",
         EXP_ARGS=" ".join(f"-S {k}={v}" for k, v in tiny.items()) + " --name preset-tiny")
    assert all((repo / f).read_bytes() == b for f, b in workspace.items())  # --temp: the workspace untouched
    exp = experiments_from_show(show_experiments(repo))["preset-tiny"]
    assert (lookup(exp["params"], "model.arch"), lookup(exp["params"], "collect.params")) == ("mlp", ["*"])
    assert lookup(exp["params"], "collect.num_snapshots") == 8
    assert lookup(exp["params"], "conv_ae.train_ae.channels") == [16, 32, 64]
    ev = exp["metrics"]
    assert (ev["original"]["count"], ev["generated"]["count"]) == (8, 4)
    assert 0 <= ev["generated"]["acc_min"] <= ev["generated"]["acc_max"] <= 100


@pytest.mark.longrun
@runs("tools.export_tensors", "tools.export_weights")
def test_exported_tensors_and_weights_are_read_back_by_the_pipeline(repo, tmp_path):
    """export_tensors writes digits as a tensors file that `data.name: tensors` prepares; export_weights writes
    the base model as safetensors that `train.init` (with 0 epochs) loads back unchanged."""
    from safetensors.torch import load_file

    from pdiff.data.prepare import load_prepared
    from tools.presets import set_values

    npz = tmp_path / "mnist5k.npz"
    tool(repo, "export_tensors", "mnist5k", npz)
    with __import__("numpy").load(npz) as z:
        assert z["train_x"].shape == (4000, 1, 28, 28) and str(z["train_x"].dtype) == "uint8"
        assert z["test_y"].shape == (1000,) and set(z["test_y"].tolist()) == set(range(10))

    tool(repo, "export_weights", "models/base.pt", "weights/base.safetensors")
    state = load_file(repo / "weights/base.safetensors")
    before = torch.load(repo / "models/base.pt", weights_only=True)["state_dict"]
    assert set(state) == set(before) and all(torch.equal(state[k], before[k]) for k in state)
    path = repo / "params.yaml"
    path.write_text(set_values(path.read_text(), {"train.init": "weights/base.safetensors", "train.epochs": 0}))
    run(["dvc", "repro", "train"], repo)
    after = torch.load(repo / "models/base.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(after[k], before[k]) for k in before)

    tool(repo, "export_tensors", "digits", "data/raw/digits.pt", "--test-size", 300)
    path.write_text(set_values(path.read_text(), {"data.name": "tensors", "data.root": "data/raw/digits.pt"}))
    run(["dvc", "repro", "prepare"], repo)
    data = load_prepared(repo / "data/prepared")
    assert (len(data["train_y"]), len(data["val_y"]), len(data["test_y"])) == (1797 - 300 - 200, 200, 300)
    assert tuple(data["test_x"].shape[1:]) == (1, 8, 8)


@pytest.mark.longrun
@runs("make tasks-run", "tools.tasks_run", "tools.tasks_ablations")
def test_make_tasks_run_and_the_task_report(repo, tmp_path):
    """`make tasks-run` with tiny task settings runs the task stages one by one and writes results.json with their
    seconds; `python -m tools.tasks_ablations` gathers that folder into seen_tasks.json and its figure."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params |= {"task_pipeline": ["run"],
               "tasks": params.get("tasks", {}) | {"num_seen": 30, "num_val": 2, "snapshots": 2, "steps": 10,
                                                   "batch_size": 64},
               "tasks_eval": params.get("tasks_eval", {}) | {"num_models": 2, "val_guidance": [2.0]}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = tmp_path / "tasks"
    make(repo, "tasks-run", TASKS_ARGS=f"--out {out}")
    results = load(out / "results.json")
    assert set(results["stage_seconds"]) >= {"tasks_collect", "tasks_ae", "tasks_ldm", "tasks_evaluate"}
    assert results["summary"]["generated"] and len(results["per_task"]) == len(results["unseen_tasks"])
    tool(repo, "tasks_ablations", out)
    rows = load(out / "seen_tasks.json")
    assert [r["num_seen"] for r in rows] == [30] and is_png(out / "seen_tasks.png")


@pytest.mark.longrun
@runs("tools.collect_sweep")
def test_collect_sweep_scores_each_setting_on_validation(tools_repo, tmp_path):
    out = tmp_path / "sweep.json"
    tool(tools_repo, "collect_sweep", "--repo", tools_repo, "--every", 5, "--out", out, "sgd:0.01:0",
         "adamw:0.001:5e-4")
    res = load(out)
    assert 0 < res["base_val_acc"] <= 100 and [r["optimizer"] for r in res["rows"]] == ["sgd", "adamw"]
    for r in res["rows"]:
        assert r["scored"] == 2 and 0 <= r["val_min"] <= r["val_median"] <= r["val_max"] <= 100
        assert r["nn_l2_mean"] > 0 and r["first_to_last_l2"] > 0


@pytest.mark.longrun
@runs("tools.synthetic_cifar")
def test_synthetic_cifar_writes_files_the_cifar_readers_load(tmp_path):
    from pdiff.data.readers import DatasetWarning, load_real

    tool(ROOT, "synthetic_cifar", tmp_path, "--train-size", 52, "--test-size", 20)
    tool(ROOT, "synthetic_cifar", tmp_path, "--cifar100", "--train-size", 30, "--test-size", 10)
    for name, n_train, n_test, classes in (("cifar10", 52, 20, 10), ("cifar100", 30, 10, 100)):
        with pytest.warns(DatasetWarning, match="not the official"):
            raw = load_real(name, str(tmp_path))
        assert tuple(raw["train_x"].shape) == (n_train, 3, 32, 32) and len(raw["test_y"]) == n_test
        assert raw["num_classes"] == classes and int(raw["train_y"].max()) < classes
        assert raw["train_x"].dtype == torch.uint8 and raw["train_x"].float().std() > 10


@pytest.mark.longrun
@runs("tools.whole_network")
def test_whole_network_reports_each_normalization(tmp_path):
    text = tool(ROOT, "whole_network", "--normalize", "none", "per_param", "--width", 4, "--k", 8, "--ae-steps", 4,
                "--ldm-steps", 4, "--num-models", 4, "--timesteps", 20, "--threads", 1)
    res = json.loads(text)
    assert res["setting"]["D"] == 64 * 4 + 4 + 4 * 4 + 4 + 4 * 10 + 10  # the 64-4-4-10 MLP, every parameter
    assert res["setting"]["K"] == 8 and res["setting"]["timesteps"] == 20
    assert 0 < res["original"]["median"] <= 100
    for mode in ("none", "per_param"):
        r = res[mode]
        assert r["ae_recon_mse_normalized"] >= 0 and 0 <= r["generated"]["min"] <= r["generated"]["max"] <= 100
        assert r["gen_nearest_snapshot_l2_median"] >= 0 and r["seconds"] > 0


@pytest.mark.longrun
@runs("tools.kernel_pins")
def test_kernel_pins_records_every_setting_and_the_profile(head_repo, tmp_path):
    """`python -m tools.kernel_pins` in the copy: the tiny `train` stage once per kernel setting in a clone of
    HEAD; `kernels: portable` must give the bytes of its four pins. Then `--profile`, and `--pipeline` (the
    whole tiny pipeline with native, then portable kernels)."""
    from tools.kernel_pins import SETTINGS

    out = tmp_path / "pins.json"
    tool(head_repo, "kernel_pins", "--out", out)
    res = load(out)
    assert [r["name"] for r in res["settings"]] == [name for name, *_ in SETTINGS]
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["base_md5"]) and 0 < r["val_acc"] <= 100 for r in res["settings"])
    assert res["params_portable_is_the_pins"] and res["agrees_with"] == {} and res["portable_over_native_s"] > 0
    profile = tmp_path / "profile.json"
    tool(head_repo, "kernel_pins", "--profile", "--profile-steps", 2, "--out", profile)
    profiled = load(profile)
    rows = profiled["settings"]
    assert [r["kernels"] for r in rows] == ["native", "portable"]
    phases = ["base_train", "ae_train", "ldm_train", "ldm_sample"]  # every model the default fits, and sampling
    assert all(list(r["phases"]) == phases for r in rows)
    assert all(ph["seconds_per_step"] > 0 and len(ph["ops"]) == 8 for r in rows for ph in r["phases"].values())
    assert set(profiled["portable_over_native"]) == set(phases)
    cost = tmp_path / "cost.json"
    tool(head_repo, "kernel_pins", "--pipeline", "--out", cost)
    res = load(cost)
    for kernels in ("native", "portable"):
        r = res["runs"][kernels]
        assert r["seconds"] > 0 and set(r["stage_seconds"]) == set(STAGES) and list(r["outs"]) == STAGES
    assert res["portable_over_native"] > 0 and set(res["stage_ratio"]) == set(STAGES)


@pytest.mark.longrun
@runs("tools.op_trace")
def test_op_trace_hashes_every_operation_and_names_the_first_that_differs(head_repo, tmp_path):
    """`python -m tools.op_trace` in the copy: four phases of hashed operations, the same on a second run, and
    compared with a record from "another CPU" (this one with one convolution's hash altered) it names that
    operation and finds the other phases the same."""
    out = tmp_path / "op_trace_here.json"
    tool(head_repo, "op_trace", "--out", out)
    first = load(out)
    assert list(first["phases"]) == ["base_train", "ae_train", "ldm_train", "ldm_sample"]
    assert first["agrees_with"] == {} and first["cpu"] and first["threads"] == 1
    ops = first["phases"]["ae_train"]
    assert all(len(op.split()) == 2 for op in ops if not op.startswith(("empty", "new_empty", "resize")))
    other = json.loads(out.read_text())
    i = next(i for i, op in enumerate(ops) if op.startswith("convolution "))
    other["phases"]["ae_train"][i] = "convolution 00000000"
    (tmp_path / "op_trace_other.json").write_text(json.dumps(other))
    printed = tool(head_repo, "op_trace", "--out", out)
    second = load(out)
    assert second["phases"] == first["phases"]
    rows = second["agrees_with"]["op_trace_other.json"]
    assert rows["ae_train"] == {"same": False, "index": i, "op": "convolution", "other_op": "convolution"}
    assert all(rows[phase]["same"] for phase in ("base_train", "ldm_train", "ldm_sample"))
    assert f"ae_train: differs from operation #{i} (convolution here, convolution there)" in printed


@pytest.mark.longrun
@runs("tools.conv_rewrites")
def test_conv_rewrites_compares_each_convolution_pass_byte_for_byte(head_repo, tmp_path):
    """`python -m tools.conv_rewrites` in the copy: one row per convolution of the tiny model, each rewrite with a
    verdict per pass and its time beside the portable path's, the CPU and load recorded."""
    out = tmp_path / "conv_rewrites_here.json"
    printed = tool(head_repo, "conv_rewrites", "--out", out)
    rec = load(out)
    assert rec["cpu"] and rec["threads"] == 1 and rec["load_avg_1m_at_start"] >= 0
    assert [r["layer"] for r in rec["layers"]] == ["conv1", "conv2", "conv3"]
    for r in rec["layers"]:
        assert set(r["same_bytes"]) == {"unfold_gemm", "channels_last"}
        assert all(set(v) == {"forward", "grad_input", "grad_weight"} for v in r["same_bytes"].values())
        assert set(r["seconds"]) == {"portable", "unfold_gemm", "channels_last"} and min(r["seconds"].values()) > 0
        assert f"conv_rewrites: {r['layer']} {r['input']}: unfold_gemm " in printed


@pytest.mark.longrun
@runs("tools.tokens_compare")
def test_tokens_compare_scores_each_sequence_model_on_validation(tools_repo, tmp_path):
    out = tmp_path / "tokens.json"
    tool(tools_repo, "tokens_compare", "--steps", 3, "--token-size", 16, "--width", 8, "--batch", 8, "--num", 4,
         "--sequences", "none,gru", "--threads", 1, "--out", out)
    from pdiff.core.snapstore import load_vectors

    res = load(out)
    k, dim = load_vectors(tools_repo / "models/snapshots.pt", "collect")["params"].shape
    assert res["split"] == "validation" and (res["k"], res["dim"]) == (k, dim) == (10, 48)
    assert 0 < res["val_original"]["acc_median"] <= 100 and res["original_nn_l2_mean"] > 0
    assert [r["name"] for r in res["runs"]] == ["none", "gru"]
    for r in res["runs"]:
        assert r["val_generated"]["count"] + r["val_generated"]["failed"] == 4 and r["train_s"] >= 0
        assert r["settings"]["steps"] == 3 and r["final_loss"] > 0


@pytest.mark.longrun
@runs("tools.doc_numbers")
def test_doc_numbers_rewrites_the_pages(tmp_path):
    """The one page writer (numbers, tables, the parameter tables of tools.params_doc) in a copy of the pages and
    the files they read: what it writes is what is committed (the project's own checks), and a changed number in a
    metrics file reaches the page that quotes it."""
    copy = workcopy.copy_files(tmp_path / "copy", ("tools", "pdiff", "presets", "docs", "README.md",
                                                   "data/README.md", "metrics", "reports"))
    text = (copy / "docs/parameters.md").read_text()
    start = text.index("<!--@@ tools.params_doc:tables -->\n") + len("<!--@@ tools.params_doc:tables -->\n")
    (copy / "docs/parameters.md").write_text(text[:start] + text[text.index("<!--/@@-->"):])  # tables emptied

    tool(copy, "doc_numbers")
    pages = ["README.md", "data/README.md", *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
    assert all((copy / page).read_text() == (ROOT / page).read_text() for page in pages)
    tool(copy, "doc_numbers", "--check")
    evaluate = copy / "metrics/evaluate.json"
    numbers = load(evaluate)
    numbers["generated"]["acc_max"] = 12.5
    evaluate.write_text(json.dumps(numbers))
    tool(copy, "doc_numbers")

    def quoted(readme: Path) -> dict:
        return dict(re.findall(r"<!--@ metrics/evaluate.json (\S+) -->([^<]*)<!--/@-->", readme.read_text()))

    before, after = quoted(ROOT / "README.md"), quoted(copy / "README.md")
    assert after == before | {"generated.acc_max": "12.5"} != before
