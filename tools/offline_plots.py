"""`dvc plots show` / `dvc plots diff` that work without a network: DVC's own HTML and one PNG per plot.

DVC's HTML page loads Vega, Vega-Lite and vega-embed from a CDN, so on a machine without internet it opens blank.
Here DVC itself still writes the page (`--html-template`), from a template that inlines the same three libraries
as one script (`vl_convert.javascript_bundle()`, from vl-convert-python) instead of DVC's CDN `<script>` tags
(the template has no `{scripts}` placeholder, so DVC's tags are left out). The PNGs are rendered by vl-convert
from the Vega-Lite specs DVC hands back with `--json` (data inlined), so page and PNG show the same specs:
DVC's templates, colours per revision, shapes or dashes per file. Image plots (PNG files declared as plots) are
embedded by DVC in the page (copied to `static/`) and copied to `png/`, one file per revision.

    out/index.html          DVC's page, self-contained apart from static/ (no network needed)
    out/static/             image plots, as DVC copies them for the page
    out/png/<plot>.png      one PNG per Vega plot (all revisions overlaid, as on the page)
    out/png/<plot>__<rev>.png   one per revision of an image plot
    out/plots.json          what was written: plots, revisions, PNG files, DVC's per-revision errors

The output folder is written beside its final place and renamed into it, so an interrupted run leaves the last
complete page.

    python -m tools.offline_plots show                         # workspace -> reports/plots/ (`make plots`)
    python -m tools.offline_plots diff noise-none noise-both   # two experiments -> reports/plots_diff/<a>_vs_<b>/
    python -m tools.offline_plots diff HEAD~1                  # a commit against the workspace
    python -m tools.offline_plots show --targets metrics/train_ae/plots --out reports/ae

Revisions are anything `dvc plots diff` takes: commits, branches, tags, experiment names (`dvc exp show`).
--screenshot PNG also opens the page in headless Chromium with the network off (tools/browser.py), checks that
every plot rendered, and saves what it showed.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from pdiff import PdiffError
from pdiff.core.artifacts import save_json, save_text
from pdiff.core.stage import run_script
from tools.dvc_runner import run_dvc

STATUS_ID = "plots-status"  # the element the page fills with "N of M Vega plots ... rendered"
HINT = ("`dvc plots` needs the plot files of every revision: run `dvc repro` (or `dvc pull`) first, check the "
        "revisions with `git log` or `dvc exp show`, or name the plots that exist (TARGETS=...).")

# Page skeleton. @TITLE@, @VERSIONS@ and @BUNDLE@ are filled here; {plot_divs} is left for DVC. No {scripts}:
# DVC would put its CDN <script> tags there.
PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
<style>
  body { font-family: sans-serif; margin: 16px; }
  header p { color: #555; font-size: 13px; margin: 4px 0 12px; }
  main { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
  main > div { padding: 4px; }
  table { border-spacing: 15px; }
  pre.plot-error { color: #b00; white-space: pre-wrap; max-width: 420px; }
</style>
<script>(function () {
@BUNDLE@
})();</script>
<script>
// DVC's divs call vegaEmbed('#id', spec). Render as SVG (the same look as canvas, and the drawn marks are in the
// page's DOM), show an error in the plot's place instead of a blank, and count what rendered.
(function () {
  var embed = window.vegaEmbed, done = [];
  window.vegaEmbed = function (el, spec, opts) {
    var run = embed(el, spec, Object.assign({renderer: "svg"}, opts || {}));
    done.push(run.then(function () { return true; }, function (err) {
      var box = document.querySelector(el), pre = document.createElement("pre");
      pre.className = "plot-error";
      pre.textContent = "could not render this plot: " + err;
      if (box) { box.appendChild(pre); }
      return false;
    }));
    return run;
  };
  Object.assign(window.vegaEmbed, embed);
  window.addEventListener("load", function () {
    Promise.all(done).then(function (ok) {
      var images = Array.prototype.slice.call(document.querySelectorAll("main img"));
      var shown = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
      var drawn = ok.filter(Boolean).length, status = document.getElementById("@STATUS@");
      status.textContent = drawn + " of " + ok.length + " Vega plots and " + shown + " of " + images.length
        + " images rendered offline";
      status.setAttribute("data-vega", drawn + "/" + ok.length);
      status.setAttribute("data-images", shown + "/" + images.length);
    });
  });
})();
</script>
</head>
<body>
<header>
<h1>@TITLE@</h1>
<p>Written by DVC with Vega, Vega-Lite and vega-embed inlined (@VERSIONS@): no network needed.
<span id="@STATUS@">rendering...</span></p>
</header>
<main>
{plot_divs}
</main>
</body>
</html>
"""


def vl_version(specs: list[dict]) -> str:
    """The newest Vega-Lite bundled by vl-convert with the major version of DVC's specs (`$schema`, v5 today)."""
    import vl_convert

    majors = {m.group(1) for s in specs if (m := re.search(r"vega-lite/v(\d+)", str(s.get("$schema", ""))))}
    major = max(majors, key=int) if majors else "5"
    available = [v for v in vl_convert.get_vegalite_versions() if v.split(".")[0] == major]
    if not available:
        raise PdiffError(f"DVC's plots use Vega-Lite v{major}, which the installed vl-convert-python does not "
                         f"bundle (it has {', '.join(vl_convert.get_vegalite_versions())}).")
    return max(available, key=lambda v: tuple(int(p) for p in v.split(".")))


@lru_cache(maxsize=4)
def _bundle(version: str) -> str:
    import vl_convert

    # A classic script (DVC's inline calls run while the page is parsed); `</script` must not end it early.
    return vl_convert.javascript_bundle(vl_version=version).replace("</script", "<\\/script")


def page_template(title: str, version: str) -> str:
    """DVC's `--html-template`: the page with the Vega-Lite ``version`` bundle inlined and ``{plot_divs}``."""
    import vl_convert

    versions = (f"Vega {vl_convert.get_vega_version()}, Vega-Lite {version}, "
                f"vega-embed {vl_convert.get_vega_embed_version()}")
    page = (PAGE.replace("@TITLE@", html.escape(title)).replace("@VERSIONS@", versions)
            .replace("@STATUS@", STATUS_ID))
    head, tail = page.split("@BUNDLE@")
    return head + _bundle(version) + tail


def external_refs(page: str) -> list[str]:
    """Resources the page would fetch from the network (`src=` / `href=` with http(s) or //)."""
    return re.findall(r"""(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)""", page)


def div_id(plot_id: str) -> str:
    """The id of a plot's <div> in DVC's page (dvc-render's rule)."""
    from dvc_render.base import Renderer

    return Renderer.remove_special_chars(plot_id)


def file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "plot"


def default_out(revs: list[str]) -> Path:
    """reports/plots (workspace) or reports/plots_diff/<rev>_vs_<rev> (one rev: workspace_vs_<rev>)."""
    if not revs:
        return Path("reports/plots")
    names = revs if len(revs) > 1 else ["workspace", *revs]
    return Path("reports/plots_diff") / "_vs_".join(file_stem(r) for r in names)


def _dvc_plots(revs: list[str] | None, targets: list[str], extra: list[str], cwd: Path):
    if revs:  # `dvc plots diff` takes revisions as arguments, plots as --targets
        return run_dvc(["plots", "diff", *revs, *extra, *(["--targets", *targets] if targets else [])], cwd, hint=HINT)
    return run_dvc(["plots", "show", *extra, *targets], cwd, hint=HINT)


def render(revs: list[str] | None, out: str | Path, targets: list[str] | None = None, cwd: str | Path = ".",
           title: str = "", scale: float = 2.0) -> dict:
    """`dvc plots show` (``revs`` None) or `dvc plots diff REVS` as an offline page and PNGs in ``out``.
    Returns the manifest written to out/plots.json."""
    import vl_convert

    cwd, targets = Path(cwd).resolve(), list(targets or [])
    out = (cwd / out) if not Path(out).is_absolute() else Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = (f"dvc plots diff {' '.join(revs)}" + (f" --targets {' '.join(targets)}" if targets else "") if revs
               else "dvc plots show" + "".join(f" {t}" for t in targets))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        # 1. DVC's specs, data inlined (images copied to tmp/static, where the page's copies go too).
        res = _dvc_plots(revs, targets, ["--json", "-o", str(tmp / "static")], cwd)
        answer = json.loads(res.stdout or "{}")
        data, errors = answer.get("data") or {}, answer.get("errors") or []
        if not data:
            detail = "; ".join(f"{e.get('rev')}: {e.get('msg') or e.get('type')}" for e in errors) or "no plots"
            raise PdiffError(f"`{command}` returned no plots ({detail}). {HINT}")
        specs = [e["content"] for entries in data.values() for e in entries if e.get("type") == "vega"]
        version = vl_version(specs)
        # 2. DVC's page from the offline template.
        template = tmp / "template.html"
        save_text(page_template(title or command, version), template)
        _dvc_plots(revs, targets, ["--html-template", str(template), "-o", str(tmp)], cwd)
        template.unlink()
        if not (tmp / "index.html").exists():
            raise PdiffError(f"`{command}` wrote no page (DVC loaded no plots). {HINT}")
        refs = external_refs((tmp / "index.html").read_text(encoding="utf8"))
        if refs:
            raise PdiffError(f"the page DVC wrote still loads {refs[:3]} from the network; the installed DVC "
                             "does not follow --html-template as expected.")
        # 3. One PNG per Vega plot from the same specs; image plots copied per revision.
        (tmp / "png").mkdir()
        plots = []
        for plot_id, entries in data.items():
            for i, entry in enumerate(entries):
                stem = file_stem(plot_id) + (f"_{i}" if len(entries) > 1 else "")
                pngs = []
                if entry.get("type") == "vega":
                    png = tmp / "png" / f"{stem}.png"
                    png.write_bytes(vl_convert.vegalite_to_png(entry["content"], vl_version=version, scale=scale))
                    pngs.append(png)
                elif entry.get("type") == "image" and entry.get("url"):
                    rev = (entry.get("revisions") or ["?"])[0]
                    suffix = Path(entry["url"]).suffix
                    png = tmp / "png" / f"{file_stem(plot_id.removesuffix(suffix))}__{file_stem(rev)}{suffix}"
                    shutil.copyfile(entry["url"], png)
                    pngs.append(png)
                plots.append({"id": plot_id, "div": div_id(plot_id), "type": entry.get("type"),
                              "revisions": entry.get("revisions") or [],
                              "png": [p.relative_to(tmp).as_posix() for p in pngs]})
        manifest = {"command": command, "revisions": sorted({r for p in plots for r in p["revisions"]}),
                    "html": "index.html", "vega_lite": version, "plots": plots, "errors": errors}
        save_json(manifest, tmp / "plots.json")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def not_rendered(dom: str, manifest: dict) -> list[str]:
    """What did not render in ``dom`` (a browser's DOM of the page in ``manifest``): Vega plots without drawn
    marks, image plots without an <img>, and the page's own count when it saw a failed plot or image."""
    from tools.browser import page_status, tags_per_div

    counts = tags_per_div(dom, [p["div"] for p in manifest["plots"]])
    missing = [p["id"] for p in manifest["plots"]
               if (p["type"] == "vega" and not counts[p["div"]]["mark-item"])
               or (p["type"] == "image" and not counts[p["div"]]["img"])]
    status = page_status(dom, STATUS_ID)
    for key in ("vega", "images"):
        done, _, total = status.get(key, "?/?").partition("/")
        if done != total or done == "?":
            missing.append(f"page count of {key}: {done} of {total}")
    return missing


def check_in_browser(out: Path, manifest: dict, png: Path, width: int, height: int) -> str:
    """Open out/index.html offline and save a screenshot to ``png``; an error unless every Vega plot drew its
    marks and every image plot has its image."""
    from tools import browser

    dom = browser.open_page(out / "index.html", png, width, height)
    status = browser.page_status(dom, STATUS_ID)
    missing = not_rendered(dom, manifest)
    if missing:
        raise PdiffError(f"in Chromium (network off) these did not render: {'; '.join(missing)}.")
    return (f"Chromium (network off) rendered {status.get('vega')} Vega plots and loaded {status.get('images')} "
            f"images; screenshot {png}")


def main(argv=None) -> None:
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
    args = ap.parse_args(argv)
    if args.action == "show" and args.revs:
        raise PdiffError("`show` takes no revisions (it shows the workspace); use `diff REV...`.")
    if args.action == "diff" and not args.revs:
        raise PdiffError("`diff` needs at least one revision, e.g. `make plots-diff REVS=\"noise-none noise-both\"` "
                         "or REVS=HEAD~1 (against the workspace).")
    revs = args.revs if args.action == "diff" else None
    out = args.out or default_out(args.revs)
    manifest = render(revs, out, args.targets, title=args.title)
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
