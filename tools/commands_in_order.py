"""The README's two commands in order, `make repro` then `make test`, on a CPU whose bytes differ from the committed.

A new user on another CPU type runs `make repro` first: it rewrites dvc.lock, metrics/ and report.md with that
CPU's bytes, and `make test` must still pass, since the tests compare the docs with the committed state, not
with the workspace. This check makes such a user on any machine: in a fresh clone of the checked-out commit it
runs `make repro` with ``kernels: native`` under AVX2 caps (other bytes than the committed portable ones on any
x86-64 CPU; docs/pipeline.md, Determinism), puts params.yaml back, checks that dvc.lock now differs from the
commit (else the check would prove nothing) and runs `make test`. The clone shares this checkout's .venv.

    python -m tools.commands_in_order     # (make test-slow runs it)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pdiff.core.kernels import with_setting
from tools.kernel_pins import AVX2_CAPS_ALL
from tools.workcopy import ROOT, clone_head, run, subprocess_env


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pdiff-order-") as tmp:
        repo = Path(tmp) / "repo"
        commit = clone_head(repo)
        (repo / ".venv").symlink_to(ROOT / ".venv")
        params = repo / "params.yaml"
        params.write_text(with_setting(params.read_text(), "native"))
        print(f"commands_in_order: {commit[:12]}: make repro (kernels: native, AVX2 caps)", flush=True)
        run(["make", "repro"], repo, env=subprocess_env() | AVX2_CAPS_ALL)
        run(["git", "checkout", "params.yaml"], repo)
        if run(["git", "diff", "--quiet", "dvc.lock"], repo, check=False).returncode == 0:
            print("commands_in_order: dvc.lock is the committed one: these kernels gave the committed bytes, so "
                  "this run shows nothing", file=sys.stderr)
            return 1
        changed = run(["git", "status", "--short"], repo).stdout
        print(f"commands_in_order: make repro changed\n{changed}commands_in_order: make test", flush=True)
        done = run(["make", "test"], repo, check=False)
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
