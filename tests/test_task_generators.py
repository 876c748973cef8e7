"""Conditioning on the generator protocol (pdiff/generative/protocol.py): the task stages fit and sample through
the registry with the task codes as the condition. The conv AE's conditional path equals the code the task stages
ran before (tensor for tensor), the tokens generator's task code steers its samples, a generator that is not
conditional is refused by name, and the task stages run at tiny size with `generator: tokens`."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
import yaml

from pdiff import PdiffError
from pdiff.core.artifacts import save_torch
from pdiff.core.config import from_dict
from pdiff.core.tracking import Tracker
from pdiff.generative.builtins import ConvAE, Tokens
from pdiff.generative.protocol import Condition, Context
from pdiff.generative.registry import BUILTINS, require_conditional, resolve
from tests.conftest import ROOT, make_tiny_repo, merge, run

TINY_AE = {"channels": [4, 8], "steps": 20, "batch_size": 8}
TINY_LDM = {"channels": 8, "steps": 20, "timesteps": 30, "batch_size": 8}


def _task_file(path, codes: torch.Tensor, d: int = 16, scale: float = 1.0) -> str:
    """A task snapshot file: row k is +scale where its code's first bit is 1, -scale otherwise, plus noise."""
    g = torch.Generator().manual_seed(0)
    sign = 2.0 * codes[:, :1] - 1.0
    params = scale * sign.expand(-1, d) + 0.05 * torch.randn(len(codes), d, generator=g)
    save_torch({"params": params, "names": ["w", "b"], "shapes": [[d - 4], [4]], "codes": codes}, path)
    return str(path)


def _codes(k: int, bits: int = 3) -> torch.Tensor:
    return torch.tensor([[(i >> b) & 1 for b in range(bits)] for i in range(k)], dtype=torch.float32)


def test_both_builtins_are_conditional_and_a_plain_generator_is_refused_by_name():
    assert all(cls.conditional for cls in BUILTINS.values())
    lowrank = resolve("user.generators.lowrank:LowRank")
    assert not lowrank.conditional
    with pytest.raises(PdiffError) as exc:
        require_conditional(lowrank, "tasks_ae@run")
    msg = str(exc.value)
    assert "`generator: user.generators.lowrank:LowRank`" in msg and "conditional = True" in msg and "`cond`" in msg
    assert "`conv_ae` and `tokens`" in msg and "\n" not in msg


def test_a_task_stage_refuses_a_generator_that_is_not_conditional(tmp_path):
    """The refusal comes from the stage itself, before anything is read or fitted."""
    repo = make_tiny_repo(tmp_path / "repo", {"generator": "user.generators.lowrank:LowRank", "task_pipeline": ["run"]})
    res = subprocess.run([sys.executable, "stages/tasks_ae.py", "--snapshots", "models/tasks/snapshots.pt",
                          "--out", "models/tasks/ae.pt", "--plot", "plots/tasks/ae_loss.png"], cwd=repo,
                         capture_output=True, text=True)
    assert res.returncode != 0
    assert "`tasks_ae@run` cannot use `generator: user.generators.lowrank:LowRank`: it is not conditional" in res.stderr
    assert "Traceback" not in res.stderr


def test_conv_ae_through_the_registry_equals_the_task_stages_before_it(tmp_path):
    """tasks_ae / tasks_ldm / tasks_evaluate before the protocol, written out here (fit_param_ae, then the
    code-conditioned UNet on standardized latents, sampled with sample_latents and decoded), against ConvAE's
    fit_representation, fit_prior with a Condition and sampler: every tensor equal, the same RNG draws."""
    from pdiff.generative.autoencoder import autoencoder_from_checkpoint, fit_param_ae
    from pdiff.generative.conditional import CodeConditionedUNet, sample_latents, train_conditional
    from pdiff.generative.diffusion import linear_schedule, schedule_settings
    from pdiff.tasks.evaluation import TaskGenerator, gaussian_latent_vectors, reconstruct, seen_latents

    codes = _codes(8).repeat(2, 1)
    path = _task_file(tmp_path / "snaps.pt", codes)
    p = from_dict({"conv_ae": {"train_ae": TINY_AE, "train_ldm": TINY_LDM,
                               "generate": {"sampler": "ddim", "steps": 5, "batch_size": 500}}})
    snaps = torch.load(path, weights_only=True)
    # before: the stages' own code
    torch.manual_seed(1)
    ae_old, ckpt = fit_param_ae(snaps, p.conv_ae.train_ae, "cpu", torch.Generator().manual_seed(2), Tracker(None))
    torch.manual_seed(3)
    ae, normalizer = autoencoder_from_checkpoint(ckpt)
    with torch.no_grad():
        z = ae.encode(normalizer(snaps["params"]))
    lm, ls = z.mean().item(), z.std().item()
    schedule = schedule_settings(p.conv_ae.train_ldm)
    config = dict(in_channels=z.shape[1], base=8, mults=(1, 2), code_bits=3, cond="add")
    net = CodeConditionedUNet(**config)
    train_conditional(net, linear_schedule(**schedule), (z - lm) / ls, codes, p.conv_ae.train_ldm, 0.2, "cpu",
                      torch.Generator().manual_seed(4), Tracker(None))
    old_prior = {"state_dict": net.state_dict(), "config": config, "schedule": schedule, "latent_mean": lm,
                 "latent_std": ls}
    # now: the protocol
    gen = ConvAE()
    torch.manual_seed(1)
    rep = gen.fit_representation(Context(p, torch.Generator().manual_seed(2), snapshots=path)).state
    torch.manual_seed(3)
    prior = gen.fit_prior(Context(p, torch.Generator().manual_seed(4), snapshots=path, representation=rep,
                                  condition=Condition(codes, "add", 0.2))).state
    assert rep.keys() == ckpt.keys() and prior.keys() == old_prior.keys()
    for old, new in ((ckpt, rep), (old_prior, prior)):
        for key in old:
            if isinstance(old[key], dict) and all(torch.is_tensor(v) for v in old[key].values()):
                assert all(torch.equal(old[key][k], new[key][k]) for k in old[key]), key
            elif torch.is_tensor(old[key]):
                assert torch.equal(old[key], new[key]), key
            else:
                assert old[key] == new[key], key
    # sampling, reconstruction and the no-information latents
    g = TaskGenerator(gen.load_sampler(rep, prior, Context(p, torch.Generator())), gen.load_decoder(rep))
    want = codes[:4].repeat_interleave(2, 0)
    new = g.sampler.sample(len(want), want, rng=torch.Generator().manual_seed(5), guidance=2.0)
    net.eval()
    zs = sample_latents(net, linear_schedule(**schedule), want, ae.latent_shape, 2.0, "ddim", 5,
                        torch.Generator().manual_seed(5), "cpu")
    with torch.no_grad():
        assert torch.equal(new, normalizer.inverse(ae.decode(zs * ls + lm)).float())
        assert torch.equal(reconstruct(g, snaps["params"]), normalizer.inverse(ae.decode(ae.encode(
            normalizer(snaps["params"])))).float())
        z_seen = (ae.encode(normalizer(snaps["params"])) - lm) / ls
        noise = torch.randn((3, *z_seen.shape[1:]), generator=torch.Generator().manual_seed(6))
        old_noinfo = normalizer.inverse(ae.decode((z_seen.mean(0) + z_seen.std(0) * noise) * ls + lm)).float()
    assert torch.equal(gaussian_latent_vectors(g, seen_latents(g, snaps["params"]), 3,
                                               torch.Generator().manual_seed(6)), old_noinfo)
    assert not torch.equal(new[:2], g.sampler.sample(2, 1 - want[:2], rng=torch.Generator().manual_seed(5),
                                                     guidance=2.0))


def _tokens_params(steps: int = 600):
    return from_dict({"generator": "tokens",
                      "tokens": {"train_ae": {"size": 4, "normalize": "global"},
                                 "train_ldm": {"batch": 64, "width": 32, "depth": 2, "sequence": "none",
                                               "timesteps": 50, "beta_end": 0.3, "lr": 0.003, "steps": steps},
                                 "generate": {"sampler": "ddim", "steps": 10, "clip": 2.0}}})


def _fit_tokens(tmp_path, p, condition: Condition | None):
    codes = _codes(8).repeat(3, 1)
    path = _task_file(tmp_path / "snaps.pt", codes)
    gen = Tokens()
    rep = gen.fit_representation(Context(p, torch.Generator().manual_seed(0), snapshots=path)).state
    prior = gen.fit_prior(Context(p, torch.Generator().manual_seed(1), snapshots=path, representation=rep,
                                  condition=condition if condition is None else Condition(codes, *condition))).state
    return gen.load_sampler(rep, prior, Context(p, torch.Generator())), prior


def test_tokens_task_code_steers_the_samples(tmp_path):
    """Snapshots are +1 where the task code's first bit is 1 and -1 otherwise: the tokens generator fitted with the
    codes as condition (dropout 0.1) gives +1 models for a code with that bit set and -1 models for one without,
    all tokens of a sample together, on codes never paired in the snapshots' order; guidance 2 too."""
    torch.set_num_threads(1)
    sampler, prior = _fit_tokens(tmp_path, _tokens_params(), ("add", 0.1))
    assert prior["config"]["code"] == "task" and prior["config"]["code_bits"] == 3
    pos, neg = torch.tensor([[1.0, 0, 1]]).expand(6, -1), torch.tensor([[0.0, 1, 1]]).expand(6, -1)
    for w in (1.0, 2.0):
        a = sampler.sample(6, pos, rng=torch.Generator().manual_seed(2), guidance=w)
        b = sampler.sample(6, neg, rng=torch.Generator().manual_seed(2), guidance=w)
        assert a.shape == (6, 16) and not torch.equal(a, b)
        assert (a.median(1).values > 0.5).all() and (b.median(1).values < -0.5).all(), (a, b)
    with pytest.raises(PdiffError, match="needs one code per vector"):
        sampler.sample(6, rng=torch.Generator())


def test_tokens_with_the_code_ignored_is_the_unconditional_generator(tmp_path):
    """tasks_ldm.cond: none fits the plain token denoiser (no code at all) whatever tokens.train_ldm.code says,
    and concat, a conv_ae mode, is refused naming the modes tokens has."""
    p = _tokens_params(steps=5)
    sampler, prior = _fit_tokens(tmp_path, p, ("none", 0.1))
    assert prior["config"]["code"] == "none" and "code_bits" not in prior["config"]
    cond = torch.ones(2, 3)
    assert torch.equal(sampler.sample(2, cond, rng=torch.Generator().manual_seed(0), guidance=2.0),
                       sampler.sample(2, rng=torch.Generator().manual_seed(0)))
    with pytest.raises(PdiffError, match=r"`tasks_ldm.cond` = 'concat' is not a mode of `generator: tokens`"):
        _fit_tokens(tmp_path, p, ("concat", 0.1))


TOKENS_TINY = {"train_ae": {"size": 16},
               "train_ldm": {"batch": 32, "width": 16, "depth": 1, "steps": 30, "timesteps": 50},
               "generate": {"sampler": "ddim", "steps": 5, "sample_chunk": 64}}


@pytest.mark.slow
@pytest.mark.longrun
def test_task_stages_run_with_the_tokens_generator(tmp_path):
    """`generator: tokens` with task_pipeline: [run] at tiny size: the four task stages run through the registry,
    results.json lists the generated models' accuracy on every unseen task (the decoder-only sets null: tokens
    have no decoder), the task artifacts are tagged `tokens`, and a conv_ae key leaves every task stage cached."""
    over = {"generator": "tokens", "task_pipeline": ["run"], "tokens": TOKENS_TINY,
            "tasks": {"num_seen": 30, "num_val": 2, "snapshots": 2, "steps": 10, "batch_size": 64},
            "tasks_eval": {"num_models": 2, "val_guidance": [2.0], "seen_tasks": 6}}
    repo = make_tiny_repo(tmp_path / "repo", over)
    out = run(["dvc", "repro", "tasks_evaluate@run"], repo).stdout
    assert re.findall(r"Running stage '(tasks_[^']+)'", out) == ["tasks_collect@run", "tasks_ae@run",
                                                                 "tasks_ldm@run", "tasks_evaluate@run"]
    results = json.loads((repo / "metrics/tasks/results.json").read_text())
    rows = results["per_task"]
    assert len(rows) == len(results["unseen_tasks"]) == 20
    assert all(0 <= r["generated"] <= 100 and r["no_task_info"] is None for r in rows)
    assert results["summary"]["generated"]["acc_mean"] > 0 and results["summary"]["no_task_info"] is None
    assert results["seen_fit"]["reconstruction"] is None and results["seen_fit"]["generated"]["tasks"] == 6
    for name in ("ae", "ldm"):
        assert torch.load(repo / f"models/tasks/{name}.pt", weights_only=True)["kind"] == "tokens"
    assert torch.load(repo / "models/tasks/ldm.pt", weights_only=True)["config"]["code"] == "task"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params = merge(params, {"conv_ae": {"train_ae": {"lr": 0.5}, "train_ldm": {"steps": 7},
                                        "generate": {"steps": 3}}})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(["dvc", "status", "--json", "tasks_evaluate@run"], repo).stdout or "{}")
    assert status == {}, status
    params["tokens"]["generate"]["steps"] = 4  # the selected generator's sampling reruns the evaluation only
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(["dvc", "status", "--json", "tasks_evaluate@run"], repo).stdout)
    assert set(status) == {"tasks_evaluate@run"}, status


def test_the_task_stages_declare_the_selected_generators_groups():
    """dvc.yaml's task stages read `generator` and its groups (no conv_ae key by name): tasks_ae its train_ae,
    tasks_ldm its train_ldm and tasks_ldm, tasks_evaluate its generate and tasks_eval."""
    stages = {name: stage["do"] for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()
              if name.startswith("tasks_")}
    reads = {name: set(stage["params"]) for name, stage in stages.items()}
    assert {"generator", "${generator}.train_ae"} <= reads["tasks_ae"]
    assert {"generator", "${generator}.train_ldm", "tasks_ldm"} <= reads["tasks_ldm"]
    assert {"generator", "${generator}.generate", "tasks_eval"} <= reads["tasks_evaluate"]
    assert not [k for keys in reads.values() for k in keys if k.startswith("conv_ae")]
    assert all("user/generators" in stage["deps"] for name, stage in stages.items() if name != "tasks_collect")
    assert "user/generators" not in stages["tasks_collect"]["deps"]  # it trains heads: no generator code
