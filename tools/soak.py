"""Kill-anywhere soak (`make soak`): does the pipeline recover from a SIGKILL at any moment?

In a temporary clone of the current commit (the venv is reused): one clean `dvc repro`, whose metrics/ are
kept as the reference; then, per round, `dvc repro` is started, its whole process group is killed with SIGKILL
at a seeded random moment, and `dvc repro` is run to completion. The moments (`kill_plan`) first aim once at each
stage of the clean run (a kill at a random fraction of the stage's clean duration after dvc prints
"Running stage 'x'"), so every stage, short ones included, is hit at least once when there are as many rounds as
stages; the remaining rounds are uniform over the clean run's duration.
The killed run is `dvc repro -f`, so that each round runs every stage again.
After every round metrics/ must be byte-identical to the clean run's and `dvc status` clean. The summary
(per round: kill time, the stage that was running when the kill landed, recovery time, checks) is rewritten
after every round, so a partial soak leaves its finished rounds behind.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
from pathlib import Path

from tools.workcopy import ROOT, clone_head, run, timed_run

RUNNING = re.compile(r"Running stage '([^']+)'")


# ------------------------------------------------------------------------------------------------ pure parts
def kill_times(seed: int, rounds: int, duration_s: float) -> list[float]:
    """``rounds`` kill moments drawn uniformly from (0, duration_s), reproducible from ``seed``."""
    rng = random.Random(seed)
    return [round(rng.uniform(0.0, duration_s), 3) for _ in range(rounds)]


def stage_windows(starts: list[tuple[float, str]], duration_s: float) -> list[tuple[str, float, float]]:
    """(stage, start, end) of each stage of a finished run: a stage ends where the next one starts, the last one
    where the run ends."""
    ends = [t for t, _ in starts[1:]] + [duration_s]
    return [(stage, t, end) for (t, stage), end in zip(starts, ends, strict=True)]


def kill_plan(seed: int, rounds: int, duration_s: float, windows: list[tuple[str, float, float]]) -> list[dict]:
    """``rounds`` kills, reproducible from ``seed``, each ``{"stage": name, "after_s": s}`` (kill ``s`` seconds
    after dvc starts that stage) or ``{"stage": None, "at_s": t}`` (``t`` seconds after dvc starts).

    One kill per stage of ``windows`` (the clean run's `stage_windows`), at a uniform 10-90 % of the stage's
    clean duration, so that a stage of a second is hit as surely as one of a minute; with fewer rounds than
    stages, a seeded choice of stages. The rounds left over are uniform over (0, ``duration_s``). The order of
    the rounds is shuffled."""
    rng = random.Random(seed)
    targets = list(windows) if rounds >= len(windows) else rng.sample(list(windows), rounds)
    plan = [{"stage": stage, "after_s": round((end - start) * rng.uniform(0.1, 0.9), 3)}
            for stage, start, end in targets]
    plan += [{"stage": None, "at_s": t} for t in kill_times(rng.randrange(2 ** 31), rounds - len(plan), duration_s)]
    rng.shuffle(plan)
    return plan


def stage_starts(lines: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """(time, stage) for every "Running stage 'x'" line of dvc's output, given as (time, line) pairs."""
    out = []
    for t, line in lines:
        m = RUNNING.search(line)
        if m:
            out.append((t, m.group(1)))
    return out


def stage_at(starts: list[tuple[float, str]], t: float) -> str | None:
    """The stage dvc had last started at time ``t`` (None: no stage started yet, e.g. dvc still loading)."""
    current = None
    for start, stage in starts:
        if start <= t:
            current = stage
    return current


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def differences(reference: dict[str, bytes], current: dict[str, bytes]) -> list[str]:
    """Relative paths that are missing, extra or differ in ``current`` against ``reference``."""
    return sorted(k for k in reference.keys() | current.keys() if reference.get(k) != current.get(k))


# ------------------------------------------------------------------------------------------------ processes
def timed_dvc(args: list[str], cwd: Path, kill_after: float | None = None,
              kill_in: tuple[str, float] | None = None) -> dict:
    """``dvc ARGS`` in its own process group, its output lines time-stamped (`tools.workcopy.timed_run`). The
    whole group (dvc and every stage process it started) gets SIGKILL ``kill_after`` seconds after the start, or
    with ``kill_in = (stage, s)`` ``s`` seconds after dvc prints "Running stage 'stage'"."""
    pattern = (re.compile(rf"Running stage '{re.escape(kill_in[0])}'"), kill_in[1]) if kill_in else None
    return timed_run(["dvc", *args], cwd, kill_after, pattern)


def status_clean(repo: Path) -> tuple[bool, str]:
    # the default pipeline: a clone of HEAD has `task_pipeline: []`, so dvc.yaml has no task stages to list
    res = run(["dvc", "status", "--json", "dvc.yaml"], repo, check=False)
    text = (res.stdout or "").strip()
    return res.returncode == 0 and json.loads(text or "{}") == {}, (text or res.stderr.strip())[-600:]


def tail(lines: list[tuple[float, str]], n: int = 15) -> str:
    return "\n".join(line for _, line in lines[-n:])


# ------------------------------------------------------------------------------------------------------ soak
def soak(rounds: int, seed: int, out: Path, keep: bool = False, log=print) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pdiff-soak-"))
    repo = tmp / "repo"
    summary: dict = {"rounds_requested": rounds, "seed": seed, "commit": clone_head(repo), "cpus": os.cpu_count(),
                     "load_avg_1m_at_start": round(os.getloadavg()[0], 2), "rounds": []}

    def write():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(f".{out.name}.tmp")
        tmp_out.write_text(json.dumps(summary, indent=2) + "\n")
        tmp_out.replace(out)

    log(f"soak: clean dvc repro in {repo} (commit {summary['commit'][:10]}) ...")
    clean = timed_dvc(["repro"], repo)
    if clean["returncode"] != 0:
        summary["clean_error"] = tail(clean["lines"], 40)
        summary["ok"] = False
        write()
        raise RuntimeError(f"soak: the clean dvc repro failed:\n{summary['clean_error']}")
    reference = snapshot(repo / "metrics")
    summary["clean"] = {"duration_s": clean["elapsed_s"], "metrics_files": len(reference),
                        "stage_starts_s": [[round(t, 2), s] for t, s in stage_starts(clean["lines"])]}
    ok, status = status_clean(repo)
    summary["clean"]["status_clean"] = ok
    write()
    log(f"soak: clean run {clean['elapsed_s']:.1f} s, {len(reference)} metrics files")

    windows = stage_windows(stage_starts(clean["lines"]), clean["elapsed_s"])
    for i, aim in enumerate(kill_plan(seed, rounds, clean["elapsed_s"], windows)):
        # -f: every round reruns the whole pipeline (after the clean run a plain repro has nothing to do)
        if aim["stage"] is None:
            killed = timed_dvc(["repro", "-f"], repo, kill_after=aim["at_s"])
        else:
            killed = timed_dvc(["repro", "-f"], repo, kill_in=(aim["stage"], aim["after_s"]))
        at = killed["kill_at_s"] if killed["killed"] else aim.get("at_s")
        stage = stage_at(stage_starts(killed["lines"]), at) if killed["killed"] else None
        recovered = timed_dvc(["repro"], repo)
        diff = differences(reference, snapshot(repo / "metrics"))
        clean_status, status = status_clean(repo)
        row = {"round": i + 1, "aimed_at": aim, "kill_at_s": at, "killed": killed["killed"],
               "stage_at_kill": stage if killed["killed"] else "(finished before the kill)",
               "recovery_s": recovered["elapsed_s"], "recovery_returncode": recovered["returncode"],
               "stages_rerun": [s for _, s in stage_starts(recovered["lines"])],
               "metrics_identical": not diff, "status_clean": clean_status}
        if diff:
            row["metrics_differ"] = diff
        if not clean_status:
            row["status"] = status
        if recovered["returncode"] != 0:
            row["recovery_error"] = tail(recovered["lines"], 40)
        row["ok"] = recovered["returncode"] == 0 and not diff and clean_status
        summary["rounds"].append(row)
        summary["rounds_done"] = len(summary["rounds"])
        summary["ok"] = all(r["ok"] for r in summary["rounds"])
        write()
        log(f"soak: round {i + 1}/{rounds}: kill at {at or 0:.1f} s in {row['stage_at_kill']}, recovery "
            f"{recovered['elapsed_s']:.1f} s, rerun {row['stages_rerun']} -> {'ok' if row['ok'] else 'FAILED'}")

    stages: dict[str, int] = {}
    for r in summary["rounds"]:
        stages[str(r["stage_at_kill"])] = stages.get(str(r["stage_at_kill"]), 0) + 1
    summary["kills_per_stage"] = stages
    summary["stages_not_hit"] = [s for s, _, _ in windows if s not in stages]
    summary["ok"] = all(r["ok"] for r in summary["rounds"])
    summary["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    write()
    if keep:
        log(f"soak: kept {repo}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--out", default=str(ROOT / "reports/soak/soak.json"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = ap.parse_args(argv)
    summary = soak(args.rounds, args.seed, Path(args.out), args.keep, log=lambda m: print(m, flush=True))
    print(f"soak: {summary['rounds_done'] if summary['rounds'] else 0} rounds, kills per stage "
          f"{summary['kills_per_stage']} (not hit: {summary['stages_not_hit'] or 'none'}), "
          f"{'all ok' if summary['ok'] else 'FAILURES'}; wrote {args.out}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
