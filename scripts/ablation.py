"""Run one of the paper's ablations as queued DVC experiments and/or turn finished ones into a report.

    python scripts/ablation.py list
    python scripts/ablation.py run NAME [--jobs N]   # queue the grid, `dvc queue start -j N`, wait, report
    python scripts/ablation.py report NAME           # reports/ablations/NAME.md + NAME.png from `dvc exp show`

Both write reports/ablations/NAME_plots/ too: `dvc plots diff` of the points as a page that opens offline, with
one PNG per plot (tools/offline_plots.py), linked from NAME.md (--no-plots skips it).

--out DIR writes the report, logs and run summary to DIR instead of reports/ablations (for instance
reports/mnist5k-resnet18/ablations for a run on that preset).

Run it from the repository root of a committed git + DVC repo (queued runs only see git-tracked files).
Logic lives in tools/ablations.py."""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from pdiff import PdiffError  # noqa: E402
from pdiff.core.stage import run_script  # noqa: E402
from tools import ablations  # noqa: E402

OUT = Path("reports/ablations")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("list", "run", "report"))
    ap.add_argument("name", nargs="?")
    ap.add_argument("--jobs", "-j", type=int, help="parallel queue workers (dvc queue start -j); default: CPU "
                    "cores / params.yaml `threads`, at least 1")
    ap.add_argument("--out", type=Path, default=OUT, help=f"report folder (default {OUT})")
    ap.add_argument("--no-plots", action="store_true", help="skip the offline `dvc plots diff` page of the points")
    args = ap.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    jobs = args.jobs or ablations.default_jobs(int(params.get("threads") or 1))
    if args.action == "list":
        for r in ablations.recipes(params).values():
            print(f"{r.name:8} {r.title}: " + "; ".join(f"{p.label} {p.overrides}" for p in r.points))
        return
    if not args.name:
        raise PdiffError("give the ablation's NAME; `python scripts/ablation.py list` shows them.")
    recipe = ablations.get_recipe(args.name, params)
    run = None
    if args.action == "run":
        run = ablations.run_recipe(recipe, jobs, Path.cwd(), args.out)
        print(f"ablation {recipe.name}: {len(recipe.points)} experiments in {run['wall_seconds']:.0f} s "
              f"(-j {jobs})")
        for name, info in run["experiments"].items():
            print(f"  {name}: ran {', '.join(info['ran']) or 'nothing'}; reused {', '.join(info['reused'])}")
    elif (args.out / f"{recipe.name}_run.json").exists():
        run = json.loads((args.out / f"{recipe.name}_run.json").read_text())
    show = ablations.show_experiments(Path.cwd())
    if recipe.target == "tasks/dvc.yaml":  # the task pipeline's own report (unseen-task accuracy per method)
        from tools import tasks_ablations

        found = ablations.finished_points(recipe, show, tasks_ablations.TASKS_METRICS)
        path = tasks_ablations.write_report(recipe, found, args.out, run)
        print(f"wrote {path} and {path.with_suffix('.png')}")
        return
    plots = None
    if not args.no_plots:
        try:
            plots = ablations.plots_page(recipe, show, args.out, Path.cwd())
        except PdiffError as exc:  # the table does not need the plots
            print(f"no offline plots page: {exc}", file=sys.stderr)
    path = ablations.write_report(recipe, show, args.out, run, plots)
    print(f"wrote {path} and {path.with_suffix('.png')}" + (f"; offline plots {plots}/index.html" if plots else ""))


if __name__ == "__main__":
    run_script(main)
