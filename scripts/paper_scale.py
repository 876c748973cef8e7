"""A preset's headline over several seeds, each a full `dvc repro` in a fresh clone of the current commit.

    python scripts/paper_scale.py run --seeds 0 1 2                  # -> reports/mnist5k-resnet18/results.{json,md,png}
    python scripts/paper_scale.py collect REPO LOG                   # add a finished run (REPO, its repro output LOG)
    python scripts/paper_scale.py report                             # re-render results.md / results.png

Options: --preset (default mnist5k-resnet18), --out (default reports/<preset>), --work (clone folder; default a
temporary one), --set KEY=VALUE (repeatable: a params value on top of the preset, for instance
`--set generator=tokens --set collect.storage=mmap --out reports/mnist5k-resnet18/tokens`; one results file holds
one setting). Logic lives in tools/paper_scale.py."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pdiff.core.artifacts import save_json  # noqa: E402
from pdiff.core.stage import run_script  # noqa: E402
from tools import paper_scale  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("run", "collect", "report"))
    ap.add_argument("paths", nargs="*", help="collect: the run's repository and the file with its repro output")
    ap.add_argument("--preset", default="mnist5k-resnet18")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="params value on top of the preset (YAML value), repeatable")
    args = ap.parse_args()
    overrides = paper_scale.parse_overrides(args.overrides)
    out = args.out or Path("reports") / args.preset
    path = out / "results.json"
    if args.action == "run":
        paper_scale.run(args.preset, args.seeds, out, args.work, overrides=overrides)
        return
    if args.action == "collect":
        if len(args.paths) != 2:
            raise SystemExit("collect needs two paths: the run's repository and its repro output file.")
        repo, log = map(Path, args.paths)
        entry = paper_scale.collect(repo, log.read_text().splitlines())
        save_json(paper_scale.add_entry(paper_scale.load_results(path), args.preset, entry, overrides), path)
    paper_scale.write_report(paper_scale.load_results(path), out)
    print(f"wrote {out / 'results.md'} and {out / 'results.png'}")


if __name__ == "__main__":
    run_script(main)
