"""Benchmarks (`make bench`): fast vs naive evaluation, DDIM vs DDPM sampling, and the pipeline's own cost,
measured side by side in one run on the default pipeline's artifacts -> metrics/bench.json.

Not tests: nothing here asserts a speed. It does assert that the fast evaluation gives exactly the same
per-sample predictions as the naive one, since a speed-up that changes results is no speed-up.

The pipeline is run (`dvc repro -f`, then a no-op `dvc repro`) in a temporary copy of the repository,
which yields ``repro_s``, ``noop_repro_s`` and ``peak_rss_mb`` (the largest peak resident set that a stage
recorded in its timing file: every stage is one process, so this is the heaviest stage) and the artifacts that the
evaluation and sampling benchmarks load.

``scaling`` (`scaling`) times the parameter AE and the latent denoiser alone, sized as the
``mnist5k-resnet18`` preset sizes them, for D = 2,048 ... 1,048,576 generated values: seconds per training
step and peak memory (CUDA: max allocated; CPU: the process's peak resident set so far, which grows with D).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pdiff.analysis.evaluation import EvalOptions, evaluate_vectors, split_at_selection
from pdiff.core.stage import peak_rss_mb, read_timings, timing_folder
from pdiff.nets.selection import flatten, last_norm_params
from tools.measure import machine, timed
from tools.workcopy import ROOT, clone_head, copy_pipeline
from tools.workcopy import run as _run


# ----------------------------------------------------------------------------------------------- evaluation
def compare_evaluation(model: nn.Module, names: list[str], vectors: torch.Tensor, test: tuple, base: EvalOptions,
                       chunks=(1, None), repeats: int = 1) -> dict:
    """Naive (full model per vector) vs fast (cached prefix; each chunk setting) on the same vectors, on
    ``test`` = (x, y) with ``base``'s device and batch size. Raises AssertionError unless every fast variant
    gives exactly the naive per-sample predictions."""
    x, y = test
    device = base.device
    kw = dict(device=device, batch_size=base.batch_size)
    naive_opts = EvalOptions(cache_prefix=False, desc="naive", **kw)
    naive_s, naive = timed(lambda: evaluate_vectors(model, names, vectors, x, y, naive_opts), device, repeats)
    out = {"vectors": len(vectors), "test_examples": len(y), "naive_s": round(naive_s, 3), "fast": {}}
    for chunk in chunks:
        opts = EvalOptions(cache_prefix=True, chunk=chunk, desc=f"fast chunk={chunk}", **kw)
        fast_s, fast = timed(lambda opts=opts: evaluate_vectors(model, names, vectors, x, y, opts), device, repeats)
        assert torch.equal(fast, naive), f"fast evaluation (chunk={chunk}) changed per-sample correctness"
        out["fast"]["auto" if chunk is None else str(chunk)] = round(fast_s, 3)
    best = min(out["fast"], key=out["fast"].get)
    out.update(best_chunk=best, fast_s=out["fast"][best], speedup=round(naive_s / out["fast"][best], 2),
               identical_predictions=True, accuracies=(100.0 * naive.float().mean(1)).tolist())
    return out


@torch.no_grad()
def resnet18_ratio(num_vectors: int = 8, num_inputs: int = 256, batch_size: int = 128, device="cpu",
                   seed: int = 0) -> dict:
    """Naive vs fast evaluation of ``num_vectors`` perturbations of ResNet-18's last two BN layers on random
    CIFAR-size inputs (random weights and BN statistics; only the cost matters here)."""
    from pdiff.nets.models import build_model

    gen = torch.Generator().manual_seed(seed)
    model = build_model("resnet18", 3, 10, 32)  # the pipeline's own ResNet-18 (CIFAR stem at 32 px)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):  # non-trivial statistics so activations stay in a sane range
            mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=gen))
            mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=gen))
    model = model.to(device).eval()
    names = last_norm_params(model)
    base = flatten(model, names)
    vectors = base + 0.1 * base.abs().mean() * torch.randn(num_vectors, base.numel(), generator=gen)
    x = torch.randn(num_inputs, 3, 32, 32, generator=gen)
    y = torch.randint(10, (num_inputs,), generator=gen)
    prefix, suffix = split_at_selection(model, names)
    h = prefix(x[:batch_size].to(device))
    full_s, _ = timed(lambda: model(x[:batch_size].to(device)), device)
    suffix_s, _ = timed(lambda: suffix(h), device)
    res = compare_evaluation(model, names, vectors, (x, y), EvalOptions(device, batch_size), chunks=(1, None))
    res.pop("accuracies")
    return res | {"selection": sorted({n.rsplit(".", 1)[0] for n in names}),
                  # the first module run per vector (layer4.1.bn1: the block's conv1 and shortcut are in the prefix)
                  "suffix_starts_at": next(iter(dict(suffix.named_parameters()))).rsplit(".", 1)[0],
                  "suffix_share_of_forward": round(suffix_s / full_s, 4),
                  "speedup_limit_many_vectors": round(full_s / suffix_s, 2)}


# ------------------------------------------------------------------------------------------------- scaling
SCALING_DIMS = (2048, 16384, 131072, 1048576)
SCALING_LIMIT_GB = 24.0  # the budget: a D whose AE would need more is recorded as not fitting


def _peak_mb(device) -> float:
    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return peak_rss_mb()


def _step_time(module: nn.Module, loss_fn, device, steps: int) -> float:
    """Seconds per AdamW training step (forward, backward, update), after one warm-up step."""
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()

    step()
    s, _ = timed(lambda: [step() for _ in range(steps)], device)
    return s / steps


def _scale_one(dim: int, ae_cfg: dict, ldm_cfg: dict, batch_size: int, steps: int, device) -> dict:
    from pdiff.generative.autoencoder import ParamAE
    from pdiff.generative.denoiser import UNet1D
    from pdiff.generative.diffusion import linear_schedule

    diffusion = linear_schedule(1000)
    gen = torch.Generator().manual_seed(0)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    ae = ParamAE(dim, ae_cfg["channels"], ae_cfg["latent_channels"]).to(device)
    x = torch.randn(batch_size, dim, generator=gen).to(device)
    ae_s = _step_time(ae, lambda: nn.functional.mse_loss(ae(x, 0.001, 0.1), x), device, steps)
    ae_mb = _peak_mb(device)
    with torch.no_grad():
        z = ae.encode(x)
    den = UNet1D(z.shape[1], ldm_cfg["channels"], tuple(ldm_cfg["channel_mults"])).to(device)
    ldm_s = _step_time(den, lambda: diffusion.training_loss(den, z, gen), device, steps)
    return {"ae_s_per_step": round(ae_s, 4), "ldm_s_per_step": round(ldm_s, 4), "latent_shape": list(z.shape[1:]),
            "ae_peak_mb": ae_mb, "peak_mb": _peak_mb(device), "ae_params": sum(q.numel() for q in ae.parameters()),
            "ldm_params": sum(q.numel() for q in den.parameters())}


def scaling(dims=SCALING_DIMS, preset: str = "mnist5k-resnet18", batch_size: int = 64, steps: int = 3,
            device="cpu", memory_limit_gb: float | None = None) -> dict:
    """AE and LDM seconds per training step and peak memory for each D in ``dims``, with the AE and denoiser
    sizes of ``preset`` and minibatch ``batch_size``. A D whose estimated AE activations exceed
    ``memory_limit_gb`` is skipped, with the estimate (default: 24 GB, or half the machine's or the GPU's memory
    when that is less, so that a D that would not fit stops cleanly instead of swapping or being killed)."""
    from tools.presets import _nest, resolved

    cfg = _nest(resolved(preset))
    ae_cfg, ldm_cfg = cfg["conv_ae"]["train_ae"], cfg["conv_ae"]["train_ldm"]
    if memory_limit_gb is None:
        total = (torch.cuda.get_device_properties(0).total_memory if torch.device(device).type == "cuda"
                 else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        memory_limit_gb = min(SCALING_LIMIT_GB, total / 2 ** 31)
    out = {"preset": preset, "memory_limit_gb": round(memory_limit_gb, 1), "batch_size": batch_size,
           "steps_timed": steps, "ae_channels": ae_cfg["channels"],
           "latent_channels": ae_cfg["latent_channels"], "ldm_channels": ldm_cfg["channels"],
           "ldm_channel_mults": ldm_cfg["channel_mults"], "dims": {}}
    levels = ae_cfg["channels"]
    for dim in dims:
        # AE activations per example: stem and position embedding at full length, then each level's output;
        # x3 for the backward pass and the optimizer's temporaries
        per_example = dim * (2 * levels[0] + sum(c / 2 ** (i + 1) for i, c in enumerate(levels)))
        est_gb = 4 * batch_size * per_example * 3 / 2 ** 30
        if est_gb > memory_limit_gb:
            out["dims"][str(dim)] = {"skipped": f"estimated {est_gb:.1f} GB of AE activations > "
                                                f"{memory_limit_gb:.1f} GB"}
            continue
        row = _scale_one(dim, ae_cfg, ldm_cfg, batch_size, steps, device)
        out["dims"][str(dim)] = row
        print(f"bench: scaling D={dim}: AE {row['ae_s_per_step']} s/step, LDM {row['ldm_s_per_step']} s/step, "
              f"peak {row['peak_mb']} MB", flush=True)
    return out


def scaling_figure(result: dict, path: Path) -> None:
    """Log-log: AE and LDM seconds per training step (left) and peak memory (right) against D; the D values
    that were skipped as not fitting are marked on the x axis."""
    from pdiff.core.plots import plt, save_figure

    rows = {int(d): r for d, r in result["dims"].items()}
    ran = sorted(d for d, r in rows.items() if "skipped" not in r)
    skipped = sorted(d for d, r in rows.items() if "skipped" in r)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"wspace": 0.3})
    left.plot(ran, [rows[d]["ae_s_per_step"] for d in ran], "o-", label="AE")
    left.plot(ran, [rows[d]["ldm_s_per_step"] for d in ran], "s-", label="LDM")
    left.set_ylabel("seconds per training step")
    right.plot(ran, [rows[d]["ae_peak_mb"] / 1024 for d in ran], "o-", label="after AE steps")
    right.plot(ran, [rows[d]["peak_mb"] / 1024 for d in ran], "s-", label="after LDM steps")
    right.axhline(result.get("memory_limit_gb", SCALING_LIMIT_GB), color="0.5", ls=":", label="limit")
    right.set_ylabel("peak memory (GB)")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        for i, d in enumerate(skipped):
            ax.axvline(d, color="C3", ls="--", alpha=0.5, label="skipped: would not fit" if i == 0 else None)
        ax.set_xlabel("D (generated values)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"{result['preset']} AE/LDM widths, batch {result['batch_size']}", fontsize=10)
    save_figure(fig, path)


# ------------------------------------------------------------------------------------------------- sampling
def compare_sampling(workdir: Path, p, device, model, data, repeats: int = 1, sweep=(10, 25, 100)) -> dict:
    """DDPM (all conv_ae.train_ldm.timesteps steps) vs DDIM (conv_ae.generate.steps, eta=0) from the trained AE
    + LDM: time to sample N vectors and the test accuracy of the models they give (median, percentage points)."""
    from pdiff.core.runtime import seed_everything
    from pdiff.generative.ldm import SamplingConfig, load_latent_model, sample_vectors

    latent_model, meta = load_latent_model(workdir / "models/ae.pt", workdir / "models/ldm.pt")
    names = meta["names"]
    n, batch_size = p.generate.num_models, p.conv_ae.generate.batch_size

    def sample(sampler, steps):
        gen = seed_everything(p.seed, "generate")  # the generate stage's own stream
        return sample_vectors(latent_model, SamplingConfig(n, batch_size, sampler, steps), gen, device)

    def median_acc(vectors):
        correct = evaluate_vectors(model, names, vectors, data["test_x"], data["test_y"],
                                   EvalOptions(device, p.evaluate.batch_size, desc="accuracy"))
        acc = 100.0 * correct.float().mean(1)
        ok = torch.isfinite(vectors).all(1)
        return float(np.median(acc[ok].numpy())) if ok.any() else float("nan"), int((~ok).sum())

    ddpm_s, ddpm = timed(lambda: sample("ddpm", latent_model.diffusion.num_timesteps), device, repeats)
    ddim_s, ddim = timed(lambda: sample("ddim", p.conv_ae.generate.steps), device, repeats)
    ddpm_med, ddpm_failed = median_acc(ddpm)
    ddim_med, ddim_failed = median_acc(ddim)
    out = {"num_models": n, "ddpm_steps": latent_model.diffusion.num_timesteps, "ddim_steps": p.conv_ae.generate.steps,
           "ddpm_s": round(ddpm_s, 3), "ddim_s": round(ddim_s, 3), "sampling_speedup": round(ddpm_s / ddim_s, 2),
           "ddpm_acc_median": ddpm_med, "ddim_acc_median": ddim_med,
           "ddim_acc_median_delta": round(ddim_med - ddpm_med, 4),
           "ddpm_failed": ddpm_failed, "ddim_failed": ddim_failed, "ddim_steps_sweep": {}}
    for steps in sweep:
        s, vecs = timed(lambda steps=steps: sample("ddim", steps), device)
        med, failed = median_acc(vecs)
        out["ddim_steps_sweep"][str(steps)] = {"s": round(s, 3), "acc_median": med,
                                               "delta_vs_ddpm": round(med - ddpm_med, 4), "failed": failed}
    return out


# ------------------------------------------------------------------------------------------------- pipeline
def make_copy(dest: Path, source: str = "head") -> Path:
    """A git+DVC copy of the project: ``head`` clones the last commit (what is committed is what is
    measured); ``worktree`` copies the working tree's pipeline files (uncommitted edits included)."""
    if source == "head":
        clone_head(dest)
    else:
        copy_pipeline(dest)
    return dest


def run_pipeline(repo: Path) -> dict:
    """Full `dvc repro -f`, then a no-op `dvc repro`, in ``repo``; peak RSS of the processes they started.
    A failing stage is recorded (``repro_error``) rather than raised, so that the benchmarks that need only
    the earlier stages' artifacts still run; the times then cover the stages up to the failure."""
    started, start = time.time(), time.perf_counter()
    full = _run(["dvc", "repro", "-f"], repo, check=False)
    repro_s = time.perf_counter() - start
    # each stage's own peak, from its timing file (ru_maxrss of a child would include this process's own peak)
    peaks = read_timings(timing_folder(repo, exp=""), since=started, field="peak_rss_mb").values()
    start = time.perf_counter()
    noop = _run(["dvc", "repro"], repo, check=False)
    noop_s = time.perf_counter() - start
    out = {"repro_s": round(repro_s, 2), "noop_repro_s": round(noop_s, 3), "peak_rss_mb": max(peaks, default=None),
           "stages_run": [ln.split("'")[1] for ln in full.stdout.splitlines() if ln.startswith("Running stage '")]}
    for name, res in (("repro_error", full), ("noop_repro_error", noop)):
        if res.returncode != 0:
            out[name] = (res.stdout[-600:] + res.stderr[-600:]).strip()
            print(f"bench: WARNING {name}: {out[name][-400:]}", flush=True)
    return out


# ----------------------------------------------------------------------------------------------------- main
GOALS = {"eval_speedup": (">=", 10), "sampling_speedup": (">=", 15), "abs_ddim_acc_median_delta": ("<=", 0.5),
         "repro_s": ("<=", 180), "noop_repro_s": ("<=", 2), "peak_rss_mb": ("<=", 2048)}


def check_goals(res: dict) -> dict:
    vals = dict(res, abs_ddim_acc_median_delta=abs(res["ddim_acc_median_delta"]))
    return {k: {"goal": f"{op} {v}", "value": vals.get(k),
                "met": vals.get(k) is not None and (vals[k] >= v if op == ">=" else vals[k] <= v)}
            for k, (op, v) in GOALS.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="metrics/bench.json")
    ap.add_argument("--source", choices=("head", "worktree"), default="head",
                    help="what the temporary copy holds: the last commit (default) or the working tree")
    ap.add_argument("--artifacts", help="use an existing pipeline run in this folder instead of running one "
                    "(repro_s, noop_repro_s and peak_rss_mb are then left out)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument("--device", default=None, help="default: the params' device")
    ap.add_argument("--resnet-vectors", type=int, default=8)
    ap.add_argument("--resnet-inputs", type=int, default=256)
    ap.add_argument("--scaling-dims", default=",".join(map(str, SCALING_DIMS)),
                    help="comma-separated D values for the `scaling` entry ('' to leave it out)")
    ap.add_argument("--scaling-batch", type=int, default=64)
    ap.add_argument("--only-scaling", action="store_true",
                    help="the same as --only scaling")
    ap.add_argument("--scaling-figure", default="reports/bench/scaling.png")
    ap.add_argument("--only", default="", help="comma-separated entries to rerun (eval, sampling, resnet18_cifar, "
                    "scaling) and update in --out, each with its own machine record, keeping the other entries; "
                    "eval and sampling need --artifacts (a folder after `dvc repro`)")
    ap.add_argument("--tokens-dims", default="2048,16384,131072,1048576,resnet18",
                    help="D values of the tokens generator's `scaling.tokens` entry (tools/bench_tokens.py; "
                    "'resnet18' = a whole ResNet-18, '' to leave it out)")
    args = ap.parse_args(argv)

    from pdiff.core.config import load_params
    from pdiff.core.runtime import resolve_device, seed_everything, setup_torch
    from pdiff.data.prepare import load_prepared
    from pdiff.nets.models import load_base_model
    from tools.bench_tokens import add_tokens

    p = load_params(ROOT / "params.yaml")
    setup_torch(p.threads)  # the same thread count for every measurement (and for the pipeline's stages)
    seed_everything(p.seed)
    device = resolve_device(args.device or p.device)
    result = {"machine": machine(), "device": str(device), "threads": torch.get_num_threads()}
    dims = [int(d) for d in args.scaling_dims.split(",") if d.strip()]
    only = {e.strip() for e in args.only.split(",") if e.strip()} | ({"scaling"} if args.only_scaling else set())
    if only - {"eval", "sampling", "resnet18_cifar", "scaling"} or (only & {"eval", "sampling"} and not args.artifacts):
        raise SystemExit(f"bench: --only {args.only!r}: entries are eval, sampling, resnet18_cifar, scaling; eval "
                         "and sampling need --artifacts (a folder holding a finished `dvc repro`).")
    if only:  # the other entries (and their machine record) stay as the last full run left them
        return _rerun_entries(only, args, p, device, dims, result)

    tmp = None
    if args.artifacts:
        repo = Path(args.artifacts).resolve()
    else:
        tmp = Path(tempfile.mkdtemp(prefix="pdiff-bench-"))
        repo = make_copy(tmp / "repo", args.source)
        print(f"bench: dvc repro -f in {repo} ...", flush=True)
        result |= run_pipeline(repo)
        p = load_params(repo / "params.yaml")
        print(f"bench: repro {result['repro_s']} s, no-op {result['noop_repro_s']} s, "
              f"peak RSS {result['peak_rss_mb']} MB", flush=True)
    try:
        data = load_prepared(repo / "data/prepared")
        model = load_base_model(repo / "models/base.pt").to(device)
        result |= _eval_entry(repo, p, device, model, data)
        result |= _sampling_entry(repo, p, device, model, data)
        result |= _resnet_entry(args, p, device)
        if dims:
            result["scaling"] = add_tokens(scaling(dims, batch_size=args.scaling_batch, device=device),
                                           args.tokens_dims)
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if "repro_s" in result:
        result["goals"] = check_goals(result)
    return _write(result, Path(args.out), args.scaling_figure, result["machine"])


def _eval_entry(repo: Path, p, device, model, data) -> dict:
    """The `eval` entry and its flat keys: naive vs fast evaluation of the run's snapshots and generated vectors."""
    from pdiff.core.snapstore import load_vectors

    snaps = load_vectors(repo / "models/snapshots.pt", "collect")
    gen_vecs = load_vectors(repo / "models/generated.pt", "generate")
    ev = compare_evaluation(model, snaps["names"], torch.cat([snaps["params"], gen_vecs["params"]]),
                            (data["test_x"], data["test_y"]), EvalOptions(device, p.evaluate.batch_size))
    ev.pop("accuracies")
    print(f"bench: evaluation naive {ev['naive_s']} s, fast {ev['fast_s']} s -> x{ev['speedup']}", flush=True)
    return {"eval_naive_s": ev["naive_s"], "eval_fast_s": ev["fast_s"], "eval_speedup": ev["speedup"],
            "eval": ev | {"original": len(snaps["params"]), "generated": len(gen_vecs["params"])}}


def _sampling_entry(repo: Path, p, device, model, data) -> dict:
    """The `sampling` entry and its flat keys: DDPM vs DDIM on the run's LDM."""
    sm = compare_sampling(repo, p, device, model, data)
    print(f"bench: sampling DDPM {sm['ddpm_s']} s, DDIM({sm['ddim_steps']}) {sm['ddim_s']} s -> "
          f"x{sm['sampling_speedup']}, median accuracy delta {sm['ddim_acc_median_delta']}", flush=True)
    return {k: sm[k] for k in ("ddpm_s", "ddim_s", "sampling_speedup", "ddim_acc_median_delta")} | {"sampling": sm}


def _resnet_entry(args, p, device) -> dict:
    """The `resnet18_cifar` entry and its flat key."""
    rn = resnet18_ratio(args.resnet_vectors, args.resnet_inputs, device=device, seed=p.seed)
    print(f"bench: ResNet-18 (CIFAR size, random inputs) naive {rn['naive_s']} s, fast {rn['fast_s']} s -> "
          f"x{rn['speedup']}", flush=True)
    return {"resnet18_cifar_eval_speedup": rn["speedup"], "resnet18_cifar": rn}


def _rerun_entries(only: set[str], args, p, device, dims: list[int], result: dict) -> dict:
    """Rerun the ``only`` entries of `main` and update them (and their flat summary keys) in ``args.out``; each
    rerun entry records the machine it ran on, the others stay as the last run left them."""
    from pdiff.data.prepare import load_prepared
    from pdiff.nets.models import load_base_model

    out = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    mark = {"machine": result["machine"], "threads": result["threads"]}
    if only & {"eval", "sampling"}:
        repo = Path(args.artifacts).resolve()
        data = load_prepared(repo / "data/prepared")
        model = load_base_model(repo / "models/base.pt").to(device)
    if "eval" in only:
        new = _eval_entry(repo, p, device, model, data)
        out |= new | {"eval": new["eval"] | mark}
    if "sampling" in only:
        new = _sampling_entry(repo, p, device, model, data)
        out |= new | {"sampling": new["sampling"] | mark}
    if "resnet18_cifar" in only:
        new = _resnet_entry(args, p, device)
        out |= new | {"resnet18_cifar": new["resnet18_cifar"] | mark}
    if "scaling" in only:
        from tools.bench_tokens import add_tokens

        out["scaling"] = add_tokens(scaling(dims, batch_size=args.scaling_batch, device=device) | mark,
                                    args.tokens_dims)
    if "repro_s" in out:
        out["goals"] = check_goals(out)
    return _write(out, Path(args.out), args.scaling_figure if "scaling" in only else None, result["machine"])


def _write(result: dict, out: Path, figure: str | None, measured_on: dict) -> dict:
    """``result`` -> ``out`` atomically, and the scaling figure when the result has a scaling entry; the load
    average at the end goes into ``measured_on``, the machine record of what this run measured."""
    from pdiff.core.artifacts import save_json

    if hasattr(os, "getloadavg"):
        measured_on["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    save_json(result, out)
    print(f"bench: wrote {out}")
    if figure and result.get("scaling", {}).get("dims"):
        scaling_figure(result["scaling"], Path(figure))
        print(f"bench: wrote {figure}")
    return result


if __name__ == "__main__":
    main()
