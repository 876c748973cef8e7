"""Check a published result on your own machine: rerun the committed default and compare every output's hash.

`make verify` clones the checked-out commit into a temporary folder, runs `dvc repro` there from scratch, and
compares the MD5 of every stage output with the committed dvc.lock, stage by stage in pipeline order. It prints
each stage's verdict, the first stage whose outputs differ, and how this run's CPU and kernel setting compare
with the ones recorded for the committed outputs in reports/determinism/default.json (`--record` writes that
record from the workspace's dvc.lock after a `dvc repro`). Exit 0: every output has the
committed bytes; 1: some differ (`dvc metrics diff` in the clone, kept with `--keep`, shows by how much).

    python -m tools.verify [--keep DIR]     # the check (make verify)
    python -m tools.verify --out FILE       # the check, and its outcome as JSON (reports/determinism/verify_<cpu>.json)
    python -m tools.verify --record         # after `dvc repro`: record this machine's outputs as the committed ones
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pdiff.core.artifacts import save_json
from pdiff.core.kernels import cpu, from_params_file
from tools.doc_numbers import markdown_table
from tools.workcopy import ROOT, clone_head, run

RECORD = Path("reports/determinism/default.json")


def stage_outputs(lock: dict) -> dict[str, dict[str, str]]:
    """{stage: {output path: MD5}} of a parsed dvc.lock, stages in the file's order (the pipeline's)."""
    return {name: {out["path"]: out.get("md5", "") for out in stage.get("outs", [])}
            for name, stage in lock.get("stages", {}).items()}


def compare(committed: dict, here: dict) -> list[dict]:
    """One row per stage of ``committed`` (`stage_outputs`): its outputs whose MD5 differs ``here``."""
    rows = []
    for stage, outs in committed.items():
        differ = [{"path": path, "committed": md5, "here": here.get(stage, {}).get(path)}
                  for path, md5 in outs.items() if here.get(stage, {}).get(path) != md5]
        rows.append({"stage": stage, "same": not differ, "differ": differ})
    return rows


def machine_differences(recorded: dict | None, kernels: str, this_cpu: dict) -> list[str]:
    """How this run's kernel setting and CPU differ from the recorded ones (empty: the same, or no record)."""
    parts = []
    if not recorded:
        return parts
    if recorded.get("kernels") != kernels:
        parts.append(f"kernel setting differs: committed with {recorded.get('kernels')}, here {kernels}")
    if (recorded.get("cpu"), recorded.get("isa")) != (this_cpu["cpu"], this_cpu["isa"]):
        parts.append(f"CPU differs: committed on {recorded.get('cpu')} ({' '.join(recorded.get('isa', []))}), "
                     f"here {this_cpu['cpu']} ({' '.join(this_cpu['isa'])})")
    return parts


def machine_note(recorded: dict | None, kernels: str, this_cpu: dict) -> str:
    """One line: how this run's CPU and kernel setting compare with the recorded ones."""
    if not recorded:
        return f"no record of the machine behind the committed outputs ({RECORD} is missing)"
    return "; ".join(machine_differences(recorded, kernels, this_cpu)) or (
        f"same CPU type ({this_cpu['cpu']}) and kernel setting ({kernels}) as the committed outputs")


def report(rows: list[dict], note: str, same_machine: bool) -> str:
    lines = [f"{r['stage']:<10} {'same bytes' if r['same'] else 'DIFFERS'}" for r in rows]
    first = next((r for r in rows if not r["same"]), None)
    if first is None:
        lines.append("verify: every output has the committed bytes.")
    else:
        lines.append(f"verify: the first stage that differs is `{first['stage']}`:")
        lines += [f"  {d['path']}: committed {d['committed']}, here {d['here']}" for d in first["differ"]]
    lines.append(f"verify: {note}")
    if first is not None and same_machine:
        lines.append("verify: same CPU type and setting, other bytes: check the torch version and threads")
    return "\n".join(lines)


def this_machine() -> dict:
    """The CPU (`pdiff.core.kernels.cpu`) and torch version a record of output hashes names."""
    import torch

    return {**cpu(), "torch": torch.__version__}


def record(root: Path = ROOT, out: Path | None = None) -> dict:
    """Write the record of the workspace's outputs (dvc.lock), kernel setting and CPU."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())
    entry = {"what": "the committed default's output hashes and the machine that wrote them (python -m "
                     "tools.verify --record)",
             "commit": run(["git", "rev-parse", "HEAD"], root).stdout.strip(),
             "kernels": params.get("kernels", "portable"), **this_machine(),
             "threads": params.get("threads"),
             "outs": stage_outputs(lock)}
    save_json(entry, out or root / RECORD)
    return entry


def outcome(commit: str, kernels: str, here: dict, rows: list[dict], recorded: dict | None, seconds: float) -> dict:
    """The record of one check (`--out`): this machine, its output hashes, and per stage whether they equal the
    committed ones, beside the CPU that wrote those."""
    return {"what": "the committed default rerun from scratch on this CPU (python -m tools.verify --out): its "
                    "output hashes, and per stage whether they equal the committed dvc.lock's",
            "commit": commit, "kernels": kernels, **this_machine(), "repro_seconds": round(seconds),
            "outs": here, "equal_to_committed": {r["stage"]: r["same"] for r in rows},
            "committed_cpu": {k: (recorded or {}).get(k) for k in ("cpu", "isa")}}


def docs_checks(load) -> str:
    """Markdown for docs/pipeline.md (through tools.doc_numbers; ``load(path)``: a JSON file): one row per check
    recorded with ``--out`` as reports/determinism/verify_<cpu>.json: which stages have the committed bytes, and
    which other records give the same bytes for every output."""
    records = {p.stem.removeprefix("verify_"): load(p.relative_to(ROOT).as_posix())
               for p in sorted((ROOT / RECORD.parent).glob("verify_*.json"))}
    rows = []
    for name, r in records.items():
        same = [stage for stage, equal in r["equal_to_committed"].items() if equal]
        differ = [stage for stage, equal in r["equal_to_committed"].items() if not equal]
        twins = [f"`{n}`" for n, o in records.items() if n != name and o["outs"] == r["outs"]]
        rows.append([f"`{name}`", r["cpu"], " ".join(r["isa"]), r["kernels"], f"`{r['commit'][:7]}`",
                     f"{r['repro_seconds']:,}", ", ".join(same) or "none", ", ".join(differ) or "none",
                     ", ".join(twins) or "none"])
    return markdown_table(["record", "CPU", "extensions", "kernels", "commit", "`dvc repro` s",
                           "stages with the committed bytes", "stages with other bytes", "every output the same as"],
                          rows)


def verify(root: Path = ROOT, keep: Path | None = None, out: Path | None = None) -> tuple[int, str]:
    """Rerun ``root``'s checked-out commit from scratch in a temporary clone -> (exit code, report); with ``out``,
    the outcome (`outcome`) is written there too."""
    committed_lock = yaml.safe_load(run(["git", "show", "HEAD:dvc.lock"], root).stdout)
    record_text = run(["git", "show", f"HEAD:{RECORD.as_posix()}"], root, check=False)
    recorded = json.loads(record_text.stdout) if record_text.returncode == 0 else None
    with tempfile.TemporaryDirectory(prefix="pdiff-verify-") as tmp:
        repo = Path(tmp) / "repo"
        commit = clone_head(repo, root)
        print(f"verify: commit {commit[:12]}, `dvc repro` from scratch in {repo}", flush=True)
        start = time.perf_counter()
        run(["dvc", "repro"], repo)
        seconds = time.perf_counter() - start
        print(f"verify: dvc repro took {seconds:.0f} s", flush=True)
        here = stage_outputs(yaml.safe_load((repo / "dvc.lock").read_text()))
        kernels = from_params_file(str(repo / "params.yaml"))
        if keep is not None:
            shutil.copytree(repo, keep, symlinks=True)
    rows = compare(stage_outputs(committed_lock), here)
    note = machine_note(recorded, kernels, cpu())
    same_machine = recorded is not None and not machine_differences(recorded, kernels, cpu())
    if out is not None:
        save_json(outcome(commit, kernels, here, rows, recorded, seconds), out)
    return (0 if all(r["same"] for r in rows) else 1), report(rows, note, same_machine)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=ROOT, help="the repository to check (default: this one)")
    ap.add_argument("--keep", type=Path, help="copy the rerun clone here (then `dvc metrics diff` in it)")
    ap.add_argument("--out", type=Path, help="also write the check's outcome here as JSON (`outcome`)")
    ap.add_argument("--record", action="store_true", help=f"write {RECORD} from the workspace and exit")
    args = ap.parse_args(argv)
    if args.record:
        entry = record(args.repo)
        print(f"verify: recorded {sum(len(o) for o in entry['outs'].values())} outputs, kernels "
              f"{entry['kernels']}, {entry['cpu']} -> {RECORD}")
        return 0
    code, text = verify(args.repo, args.keep, args.out)
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
