"""Record one full pytest run in metrics/tests.json: passed, skipped, failed, seconds, how many tests the
suite collects in all and without the `slow` marker, and its ten slowest tests. README.md and docs/testing.md
quote these numbers through `tools.doc_numbers` markers, so the pages always quote this one run.

    python -m tools.test_counts            # run `pytest -q tests` (minutes), then write metrics/tests.json
    make test-counts                       # the same, then refresh the numbers the pages quote

Counts are read from pytest's JUnit XML report, not from its printed summary.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from pdiff.core.artifacts import save_json
from pdiff.core.kernels import cpu

ROOT = Path(__file__).resolve().parents[1]


def junit_counts(xml_path: Path) -> dict:
    """{"tests", "passed", "skipped", "failed"} from a pytest JUnit XML report (failures and errors count as
    failed)."""
    root = ET.parse(xml_path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    n = {k: int(suite.get(k, 0)) for k in ("tests", "skipped", "failures", "errors")}
    failed = n["failures"] + n["errors"]
    return {"tests": n["tests"], "passed": n["tests"] - n["skipped"] - failed, "skipped": n["skipped"],
            "failed": failed}


def junit_slowest(xml_path: Path, n: int = 10) -> list[dict]:
    """The ``n`` slowest test cases of a JUnit XML report: [{"test": file::name, "seconds"}], slowest first (a
    test's seconds include the fixtures it set up first, such as the shared tiny repository)."""
    cases = [(float(c.get("time", 0.0)), f"{c.get('classname', '').replace('.', '/')}.py::{c.get('name')}")
             for c in ET.parse(xml_path).getroot().iter("testcase")]
    return [{"test": name, "seconds": round(t, 1)} for t, name in sorted(cases, reverse=True)[:n]]


def collected(*marker: str) -> int:
    """How many tests `pytest --collect-only -q` lists (one node id per line; ``marker``: e.g. "-m", "not
    slow")."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", *marker, "tests"], cwd=ROOT,
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if "::" in line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="metrics/tests.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "run.xml"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", f"--junitxml={xml}", "tests"], cwd=ROOT)
        seconds = time.perf_counter() - start
        counts = junit_counts(xml)
        slowest = junit_slowest(xml)
    record = counts | {"seconds": round(seconds, 1), "collected": collected(),
                       "fast": collected("-m", "not slow and not longrun"),
                       "command": "python -m pytest -q tests", "python": platform.python_version(),
                       "machine": cpu() | {"logical_cpus": os.cpu_count()},
                       "exit_status": proc.returncode, "slowest": slowest}
    save_json(record, ROOT / args.out)
    print(f"{args.out}: {record}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
