"""`dvc plots diff`, rendered offline to a PNG (DVC's HTML needs a CDN for Vega).

    python scripts/plots_diff.py noise-none noise-both      # two experiments (names from `dvc exp show`)
    python scripts/plots_diff.py HEAD~1 --out diff.png       # a commit against the workspace

Every Vega plot of dvc.yaml becomes a panel (accuracy distributions, loss curves, novelty scatter), one colour per
revision. Default output: reports/plots_diff/<rev>_vs_<rev>.png. Logic lives in tools/plots_diff.py."""
import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pdiff.core.stage import run_script  # noqa: E402
from tools import plots_diff as plotdiff  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revs", nargs="+", help="git revisions or experiment names; one rev compares it with the workspace")
    ap.add_argument("--out", type=Path, help="PNG path (default reports/plots_diff/<revs>.png)")
    args = ap.parse_args()
    revs = args.revs if len(args.revs) > 1 else ["workspace", *args.revs]
    out = args.out or Path("reports/plots_diff") / ("_vs_".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", r) for r in revs)
                                                    + ".png")
    path = plotdiff.render(plotdiff.plots_diff_json(args.revs), out)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_script(main)
