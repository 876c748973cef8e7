# Two commands do all the set-up on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: repro test bench venv clean-venv

venv: $(STAMP)

# (Re)create the environment whenever requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

# `make repro PRESET=cifar10-resnet18` first writes presets/<PRESET>.yaml into params.yaml (comments kept).
# A preset named *-tasks sets `task_pipeline: [run]`, which adds the task-conditioned pipeline's stages to dvc.yaml
# (docs/tasks.md), and runs only them and what they need (prepare, train): `dvc repro tasks_evaluate@run`.
TASKS_TARGET := tasks_evaluate@run
PRESET_TARGET = $(if $(filter %-tasks,$(PRESET)),$(TASKS_TARGET))
repro: $(STAMP)
	$(if $(PRESET),python -m tools.presets apply $(PRESET))
	dvc repro $(PRESET_TARGET)

# The task pipeline stage by stage, timed -> reports/mnist5k-tasks/results.json (TASKS_ARGS=--force: from scratch).
.PHONY: tasks-run
tasks-run: $(STAMP)
	python -m tools.tasks_run $(TASKS_ARGS)

# `make exp PRESET=name`: the preset as a DVC experiment (`dvc exp run --temp -S key=value ...`), params.yaml and
# the workspace's outputs untouched (`--temp`: run in a temporary copy; `dvc exp show` lists it, `dvc exp apply` takes
# it); a *-tasks preset runs tasks_evaluate@run, as `make repro` does. EXP_ARGS="--queue" queues it instead;
# EXP_ARGS="-S key=value" after the preset's values overrides them.
.PHONY: exp
exp: $(STAMP)
	args="$$(python -m tools.presets exp-args $(PRESET))" && eval dvc exp run --temp $$args $(EXP_ARGS) $(PRESET_TARGET)

# `make test` installs no system package: without a Chromium the browser test skips, naming `make browser`.
test: $(STAMP)
	ruff check .
	python -m pytest -q tests

# Check a published result on this machine: rerun the committed default from scratch in a temporary clone and
# compare every output's MD5 with dvc.lock; prints the first stage that differs and how this CPU and kernel
# setting compare with reports/determinism/default.json (tools/verify.py, docs/pipeline.md). VERIFY_ARGS="--keep DIR".
.PHONY: verify
verify: $(STAMP)
	python -m tools.verify $(VERIFY_ARGS)

# End-to-end checks too slow for `make test`; .ci/run runs them after it: the tests marked `longrun` (pyproject.toml
# leaves them out of `make test`), then the README's two commands in order on a CPU whose bytes differ from the
# committed ones (tools/commands_in_order.py: make repro, then make test).
.PHONY: test-slow
test-slow: $(STAMP)
	python -m pytest -q -m longrun tests
	python -m tools.commands_in_order

# Benchmarks (not tests): a default `dvc repro -f` in a temporary clone of the last commit, then fast vs
# naive evaluation and DDIM vs DDPM sampling on its artifacts, and AE/LDM s/step and peak memory for
# D = 2,048 ... 1,048,576 (`scaling`; BENCH_ARGS="--scaling-dims 2048,8192" for fewer, BENCH_ARGS=--only-scaling
# for that entry alone) -> metrics/bench.json and reports/bench/scaling.png. The entry includes the tokens
# generator up to a whole ResNet-18 (`scaling.tokens`, tools/bench_tokens.py, docs/tokens.md; --tokens-dims '' skips).
bench: $(STAMP)
	python -m tools.bench $(BENCH_ARGS)

# One full pytest run recorded in metrics/tests.json (passed, skipped, seconds, tests collected), then the numbers
# README.md and docs/ quote from metrics/*.json refreshed (tools.doc_numbers; tests/test_doc_numbers.py checks them).
.PHONY: test-counts
test-counts: $(STAMP)
	python -m tools.test_counts
	python -m tools.doc_numbers

# Kill-anywhere soak (not part of `make test`; takes ROUNDS x about a pipeline run): SIGKILL `dvc repro` at random
# moments in a temporary clone of HEAD, rerun it, check metrics/ byte-identical -> reports/soak/soak.json.
ROUNDS ?= 20
.PHONY: soak
soak: $(STAMP)
	python -m tools.soak --rounds $(ROUNDS) $(SOAK_ARGS)

clean-venv:
	rm -rf $(VENV)

# The paper's ablations as queued DVC experiments (see docs/ablations.md): `make ablation NAME=noise JOBS=2`.
# `dvc repro` first fills the cache with the baseline, so grid points reuse its unchanged stages.
.PHONY: ablation ablation-report
NAME ?= noise
# Without JOBS the runner uses CPU cores / params.yaml `threads` workers, at least 1. On 2 cores one worker is
# faster than two (docs/ablations.md: noise recipe 7.6 vs 9.6 min).
JOBS ?=
ablation: $(STAMP)
	dvc repro
	python -m tools.ablations run $(NAME) $(if $(JOBS),--jobs $(JOBS))

ablation-report: $(STAMP)
	python -m tools.ablations report $(NAME)

# DVC's own plots, offline: `make plots` (`dvc plots show`, the workspace) -> reports/plots/, and
# `make plots-diff REVS="noise-none noise-both"` (`dvc plots diff`, commits or experiment names; one rev is compared
# with the workspace) -> reports/plots_diff/<rev>_vs_<rev>/. Each folder: index.html (DVC's page with Vega inlined,
# opens with no network), png/ (one PNG per plot from DVC's Vega-Lite specs), plots.json. TARGETS="..." picks
# plots, OUT=dir moves the folder.
.PHONY: plots plots-diff
PLOTS_ARGS = $(if $(TARGETS),--targets $(TARGETS)) $(if $(OUT),--out $(OUT))
plots: $(STAMP)
	python -m tools.offline_plots show $(PLOTS_ARGS)

plots-diff: $(STAMP)
	python -m tools.offline_plots diff $(REVS) $(PLOTS_ARGS)

# Headless Chromium for the test that opens the offline plots page: Debian's `chromium`, installed with apt-get
# (as root, else through sudo) only when none of tools/browser.py's NAMES is on PATH. Not a dep of `make test`;
# .ci/run runs it before `make test`.
.PHONY: browser
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  command -v google-chrome >/dev/null 2>&1 || command -v google-chrome-stable >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q \
	    --no-install-recommends chromium; }

# The cifar100-resnet18 preset, shortened, on synthetic CIFAR-100 files on one CUDA GPU -> metrics/gpu.json
# (per-stage seconds and peak GPU memory, images/s, AE/LDM steps/s, accuracies); stops at once without CUDA.
# GPU_CHECK_ARGS="--cpu-tiny --out FILE": the same steps on the CPU at tiny size, any machine (make test-slow runs it).
.PHONY: gpu-check
gpu-check: $(STAMP)
	python -m tools.gpu_check $(GPU_CHECK_ARGS)
