"""`dvc plots show` / `dvc plots diff` as a page that opens without a network, plus one PNG per plot.

    python scripts/plots.py show                            # workspace -> reports/plots/
    python scripts/plots.py diff noise-none noise-both      # two experiments -> reports/plots_diff/<a>_vs_<b>/
    python scripts/plots.py diff HEAD~1                     # a commit against the workspace
    python scripts/plots.py show --targets metrics/train_ae/plots --out reports/ae

Revisions are anything `dvc plots diff` takes: commits, branches, tags, experiment names (`dvc exp show`).
Each output folder holds index.html (DVC's page, Vega inlined), static/ (image plots), png/ (one PNG per plot,
rendered by vl-convert from DVC's own Vega-Lite specs) and plots.json (what was written).
--screenshot PNG also opens the page in headless Chromium with the network off, checks that every plot
rendered, and saves what it showed. Logic: tools/offline_plots.py, tools/browser.py."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pdiff import PdiffError  # noqa: E402
from pdiff.core.stage import run_script  # noqa: E402
from tools import browser  # noqa: E402
from tools import offline_plots as offline  # noqa: E402


def check_in_browser(out: Path, manifest: dict, png: Path, width: int, height: int) -> str:
    """Open out/index.html offline and save a screenshot to ``png``; an error unless every Vega plot drew its
    marks and every image plot has its image."""
    dom = browser.open_page(out / "index.html", png, width, height)
    status = browser.page_status(dom, offline.STATUS_ID)
    missing = offline.not_rendered(dom, manifest)
    if missing:
        raise PdiffError(f"in Chromium (network off) these did not render: {'; '.join(missing)}.")
    return (f"Chromium (network off) rendered {status.get('vega')} Vega plots and loaded {status.get('images')} "
            f"images; screenshot {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("show", "diff"))
    ap.add_argument("revs", nargs="*", help="diff: git revisions or experiment names; one rev compares it with "
                                            "the workspace")
    ap.add_argument("--targets", nargs="+", default=[], help="plots or plot files to include (default: all in "
                                                               "dvc.yaml)")
    ap.add_argument("--out", type=Path, help="output folder (default reports/plots or reports/plots_diff/<revs>)")
    ap.add_argument("--title", default="", help="page title (default: the dvc command)")
    ap.add_argument("--screenshot", type=Path, help="check the page in headless Chromium and save a PNG of it")
    ap.add_argument("--size", default="1400x1000", help="screenshot WIDTHxHEIGHT (default 1400x1000)")
    args = ap.parse_args()
    if args.action == "show" and args.revs:
        raise PdiffError("`show` takes no revisions (it shows the workspace); use `diff REV...`.")
    if args.action == "diff" and not args.revs:
        raise PdiffError("`diff` needs at least one revision, e.g. `make plots-diff REVS=\"noise-none noise-both\"` "
                         "or REVS=HEAD~1 (against the workspace).")
    revs = args.revs if args.action == "diff" else None
    out = args.out or offline.default_out(args.revs)
    manifest = offline.render(revs, out, args.targets, title=args.title)
    kinds = [p["type"] for p in manifest["plots"]]
    print(f"wrote {out}/index.html (opens offline) and {sum(len(p['png']) for p in manifest['plots'])} PNGs in "
          f"{out}/png/: {kinds.count('vega')} Vega plots, {kinds.count('image')} image plots, revisions "
          f"{', '.join(manifest['revisions'])}")
    for err in manifest["errors"]:
        print(f"  DVC could not load {err.get('name') or 'plots'} at {err.get('rev')}: "
              f"{err.get('msg') or err.get('type')}", file=sys.stderr)
    if args.screenshot:
        width, height = (int(v) for v in args.size.lower().split("x"))
        print(check_in_browser(out, manifest, args.screenshot, width, height))


if __name__ == "__main__":
    run_script(main)
