"""Offline `dvc plots`: DVC's page with Vega inlined and PNGs from DVC's own specs (tools/offline_plots.py),
checked in headless Chromium with the network off (tools/browser.py). Without a Chromium on PATH the browser
test skips, naming `make browser`, which installs one (`make test` installs no system package)."""
import json
import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from pdiff import PdiffError
from tests.conftest import ROOT, run
from tools import browser, workcopy
from tools import offline_plots as offline

DVC_COLOURS = [(0x94, 0x5D, 0xD6), (0x13, 0xAD, 0xC7)]  # dvc-render's colours of the first two revisions
DVC_YAML = """plots:
  - m/loss.tsv:
      x: step
  - acc:
      template: scatter
      x: x
      y:
        m/a.csv: acc
        m/b.csv: acc
  - m/img.png
"""


def _write_plots(repo, shift: float):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(int(shift * 10))
    (repo / "m").mkdir(exist_ok=True)
    (repo / "m/loss.tsv").write_text("step\tloss\n" + "".join(f"{i}\t{1 / (i + 1) + shift:.4f}\n" for i in range(30)))
    for name in ("a", "b"):
        rows = rng.random((12, 2))
        (repo / f"m/{name}.csv").write_text("x,acc\n" + "".join(f"{x:.3f},{y:.3f}\n" for x, y in rows))
    fig, ax = plt.subplots(figsize=(1.5, 1.5))
    ax.plot([0, 1], [1, shift], color="tab:green", lw=4)
    fig.savefig(repo / "m/img.png")
    plt.close(fig)


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory):
    """A git + DVC repo with three top-level plots (a line, a two-file scatter, an image), committed, and
    changed in the workspace: `dvc plots diff HEAD` has two revisions of each."""
    repo = tmp_path_factory.mktemp("plots")
    run("git init -q && git config user.email t@t && git config user.name t && dvc init -q", repo)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    _write_plots(repo, 0.0)
    run("git add -A && git commit -qm base", repo)
    _write_plots(repo, 0.3)
    return repo


def _near(png, colour, tol=12) -> int:
    """Pixels of ``colour``, drawn opaque or at Vega's default point opacity (0.7) on white."""
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    shades = [np.array(colour), np.round(0.7 * np.array(colour) + 0.3 * 255)]
    return int(sum((np.abs(rgb - shade).max(axis=2) <= tol).sum() for shade in shades))


@pytest.fixture(scope="module")
def diff_page(plots_repo):
    """`make plots-diff REVS=HEAD` in ``plots_repo``: the command, run as a user runs it, into its default folder
    (the repository root on PYTHONPATH, as `python -m` from the root has it) -> (folder, manifest)."""
    env = workcopy.subprocess_env({**os.environ, "PYTHONPATH": str(ROOT)})
    workcopy.run([sys.executable, "-m", "tools.offline_plots", "diff", "HEAD"], plots_repo, env=env,
                 error=AssertionError)
    out = plots_repo / "reports/plots_diff/workspace_vs_HEAD"
    return out, json.loads((out / "plots.json").read_text())


@pytest.mark.slow
def test_plots_diff_writes_an_offline_page_and_one_png_per_plot(diff_page):
    out, manifest = diff_page
    assert manifest["revisions"] == ["HEAD", "workspace"] and manifest["errors"] == []
    by_type = {t: [p for p in manifest["plots"] if p["type"] == t] for t in ("vega", "image")}
    assert sorted(p["id"] for p in by_type["vega"]) == ["acc", "m/loss.tsv"]
    assert len(by_type["image"]) == 2 and {r for p in by_type["image"] for r in p["revisions"]} == {"HEAD",
                                                                                                    "workspace"}
    page = (out / "index.html").read_text()
    assert offline.external_refs(page) == [] and "vegaEmbed(" in page and "cdn.jsdelivr" not in page
    # One PNG per Vega plot, rendered from DVC's spec: both revisions in DVC's own colours.
    for plot in by_type["vega"]:
        (png,) = plot["png"]
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
        assert all(_near(out / png, c) > 100 for c in DVC_COLOURS), png
    for plot in by_type["image"]:  # image plots: DVC's copy for the page, and one PNG per revision
        assert (out / plot["png"][0]).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.skipif(browser.find_chromium() is None, reason=browser.NO_CHROMIUM)
def test_plots_diff_page_renders_every_plot_in_chromium_without_network(diff_page, plots_repo, tmp_path):
    out, manifest = diff_page
    by_type = {t: [p for p in manifest["plots"] if p["type"] == t] for t in ("vega", "image")}
    # The page in Chromium with the network off: every Vega plot drew SVG marks, every image loaded.
    shot = tmp_path / "page.png"
    dom = browser.open_page(out / "index.html", shot, 1300, 900)
    counts = browser.tags_per_div(dom, [p["div"] for p in manifest["plots"]])
    for plot in by_type["vega"]:
        c = counts[plot["div"]]
        # the scatter: 2 revisions x 2 files x 12 points; the line plot: at least a line per revision
        assert c["svg"] >= 1 and c["mark-item"] >= (48 if plot["id"] == "acc" else 2) and c["pre"] == 0, (plot["id"], c)
    for plot in by_type["image"]:
        assert counts[plot["div"]]["img"] == 2, plot["id"]
    assert browser.page_status(dom, offline.STATUS_ID) == {"vega": "2/2", "images": "2/2"}
    assert offline.not_rendered(dom, manifest) == []
    coloured, spread = browser.colour_pixels(shot)
    assert coloured > 2000 and spread > 10, (coloured, spread)  # plots drawn, not a blank or text-only page

    # Control: DVC's default page (Vega from a CDN) in the same browser draws nothing, so the network is off
    # and the checks above can fail.
    run(["dvc", "plots", "diff", "HEAD", "-o", str(tmp_path / "cdn"), "--targets", "m/loss.tsv", "acc"], plots_repo)
    cdn_page = tmp_path / "cdn/index.html"
    assert offline.external_refs(cdn_page.read_text())  # it does load from the network
    cdn_dom = browser.open_page(cdn_page, tmp_path / "cdn.png", 1300, 900)
    cdn_counts = browser.tags_per_div(cdn_dom, [p["div"] for p in by_type["vega"]])
    assert all(c["svg"] == 0 and c["canvas"] == 0 and c["mark-item"] == 0 for c in cdn_counts.values()), cdn_counts
    assert offline.not_rendered(cdn_dom, {"plots": by_type["vega"]})
    assert browser.colour_pixels(tmp_path / "cdn.png")[0] == 0


def test_template_inlines_the_bundle_and_leaves_out_dvcs_cdn_scripts():
    from dvc_render.vega import VegaRenderer

    page = offline.page_template("a <b> & c", "5.21")
    assert page.count("{plot_divs}") == 1 and "{scripts}" not in page  # DVC adds its CDN tags at {scripts}
    bundle = page.split("<script>(function () {\n", 1)[1].split("\n})();</script>", 1)[0]
    assert len(bundle) > 100_000 and "window.vegaEmbed=" in bundle and "</script" not in bundle
    assert "<title>a &lt;b&gt; &amp; c</title>" in page and offline.external_refs(page) == []
    assert len(offline.external_refs(VegaRenderer.SCRIPTS)) == 3  # what the default page would fetch


def test_vl_version_follows_the_schema_major():
    v5 = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json"}
    assert offline.vl_version([v5]).startswith("5.") and offline.vl_version([]).startswith("5.")
    with pytest.raises(PdiffError, match="v99"):
        offline.vl_version([{"$schema": "https://vega.github.io/schema/vega-lite/v99.json"}])


def test_default_out_and_file_names():
    from pathlib import Path

    assert offline.default_out([]) == Path("reports/plots")
    assert offline.default_out(["HEAD~1"]) == Path("reports/plots_diff/workspace_vs_HEAD_1")
    assert offline.default_out(["noise-none", "noise-both"]) == Path("reports/plots_diff/noise-none_vs_noise-both")
    assert offline.div_id("metrics/train_ae/plots/metrics/loss.tsv") == "metrics_train_ae_plots_metrics_loss_tsv"


def test_dom_checks_count_marks_per_plot_and_the_page_status():
    dom = ('<span id="plots-status" data-vega="1/2" data-images="1/1">x</span><main>'
           '<div id="a"><div class="vega-embed"><svg><g class="mark-line role-mark"><path/></g></svg></div></div>'
           '<div id="b"><pre class="plot-error">could not render</pre></div>'
           '<div id="c"><p>c</p><div><img src="static/c.png"></div></div></main>')
    counts = browser.tags_per_div(dom, ["a", "b", "c"])
    assert counts["a"]["svg"] == 1 and counts["a"]["role-mark"] == 1 and counts["a"]["mark-item"] == 1
    assert counts["b"]["svg"] == 0 and counts["b"]["mark-item"] == 0
    assert counts["c"]["img"] == 1 and counts["b"]["pre"] == 1
    manifest = {"plots": [{"id": "A", "div": "a", "type": "vega"}, {"id": "B", "div": "b", "type": "vega"},
                          {"id": "C", "div": "c", "type": "image"}]}
    assert offline.not_rendered(dom, manifest) == ["B", "page count of vega: 1 of 2"]


def test_colour_pixels_tells_plots_from_grey_text(tmp_path):
    img = Image.new("RGB", (60, 40), "white")
    img.paste((90, 90, 90), (5, 5, 50, 10))  # grey "text"
    img.save(tmp_path / "grey.png")
    assert browser.colour_pixels(tmp_path / "grey.png")[0] == 0
    img.paste(DVC_COLOURS[0], (5, 20, 25, 30))
    img.save(tmp_path / "plot.png")
    assert browser.colour_pixels(tmp_path / "plot.png")[0] == 200


def _axis_ranges(svg: str) -> dict[str, tuple[float, float]]:
    """{"X": (low, high), "Y": (low, high)}: the value range Vega drew on each axis, from its SVG's axis labels."""
    import re

    found = re.findall(r"aria-label=\"([XY])-axis titled '[^']*' for a linear scale with values from "
                       r"(-?[\d.]+) to (-?[\d.]+)\"", svg)
    return {axis: (float(low), float(high)) for axis, low, high in found}


def test_novelty_scatter_axes_fit_the_data_not_zero(tmp_path):
    """dvc.yaml's novelty scatter (accuracy against max-IoU), through `dvc plots show --json` with the project's
    template folder, on data like the default run's (accuracies 97.1-98.0 %, IoUs 0.97-1): Vega draws each axis
    over the data's range, not from 0 (where every point sat in one corner)."""
    import vl_convert
    import yaml

    run("git init -q && dvc init -q", tmp_path)
    shutil.copytree(ROOT / ".dvc/plots", tmp_path / ".dvc/plots")
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    (definition,) = [p for p in plots if isinstance(p, dict) and "novelty_scatter" in p]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"plots": [definition]}))
    rng = np.random.default_rng(0)
    for csv in definition["novelty_scatter"]["y"]:
        (tmp_path / csv).parent.mkdir(parents=True, exist_ok=True)
        rows = zip(rng.uniform(0.97, 1.0, 6), rng.uniform(97.1, 98.0, 6), strict=True)
        (tmp_path / csv).write_text("max_similarity,accuracy\n" + "".join(f"{s:.4f},{a:.1f}\n" for s, a in rows))
    answer = json.loads(run(["dvc", "plots", "show", "--json", "novelty_scatter"], tmp_path).stdout)
    spec = answer["data"]["novelty_scatter"][0]["content"]
    assert spec["encoding"]["x"]["scale"] == {"zero": False} and spec["encoding"]["y"]["scale"] == {"zero": False}
    ranges = _axis_ranges(vl_convert.vegalite_to_svg(spec, vl_version=offline.vl_version([spec])))
    assert 97.0 <= ranges["Y"][0] and ranges["Y"][1] <= 98.5, ranges
    assert 0.95 <= ranges["X"][0] and ranges["X"][1] <= 1.0, ranges
    del spec["encoding"]["y"]["scale"], spec["encoding"]["x"]["scale"]  # control: DVC's own scatter's axes
    assert _axis_ranges(vl_convert.vegalite_to_svg(spec, vl_version=offline.vl_version([spec])))["Y"][0] == 0
