"""Opening a page in headless Chromium with the network off: the DOM after scripts ran, and a screenshot.

Used by the offline-plots test and by `python -m tools.offline_plots ... --screenshot PNG` (the docs' screenshot).
The network is off twice over: the browser gets a proxy that refuses every connection and a resolver that finds
no host; where the kernel allows it (`unshare -n`, as root), it also runs in a network namespace of its own with
no interface but loopback. `file://` pages and the files beside them still load.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

from pdiff import PdiffError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
OFFLINE_FLAGS = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--hide-scrollbars", *OFFLINE_FLAGS]


def find_chromium() -> str | None:
    """The first Chromium binary on PATH (`NAMES`), or None."""
    return next((found for name in NAMES if (found := shutil.which(name))), None)


NO_CHROMIUM = (f"no Chromium on PATH (looked for {', '.join(NAMES)}); `make browser` installs Debian's `chromium` "
               "package (apt-get, as root, else through sudo).")


def chromium() -> str:
    """The Chromium binary on PATH, or a clear error (`make browser` installs Debian's `chromium`)."""
    found = find_chromium()
    if not found:
        raise PdiffError(NO_CHROMIUM)
    return found


@lru_cache(maxsize=1)
def netns_prefix() -> tuple[str, ...]:
    """``("unshare", "-n")`` where a command can run without any network interface, else ``()``."""
    if not shutil.which("unshare"):
        return ()
    try:
        ok = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ("unshare", "-n") if ok else ()


def run_chromium(page: str | Path, args: list[str], budget_ms: int = 10000, timeout: float = 60.0) -> str:
    """Open ``page`` (a file) offline, let its scripts run for ``budget_ms`` of virtual time, return stdout."""
    page = Path(page).resolve()
    if not page.is_file():
        raise PdiffError(f"no page to open at {page}.")
    with tempfile.TemporaryDirectory(prefix="pdiff-chromium-") as profile:
        cmd = [*netns_prefix(), chromium(), *FLAGS, f"--user-data-dir={profile}",
               f"--virtual-time-budget={budget_ms}", *args, page.as_uri()]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise PdiffError(f"Chromium did not finish {page.name} within {timeout:.0f} s.") from exc
    if res.returncode != 0:
        raise PdiffError(f"Chromium failed on {page.name} ({res.returncode}): {res.stderr.strip()[-800:]}")
    return res.stdout


def open_page(page: str | Path, screenshot: str | Path | None = None, width: int = 1400, height: int = 1000,
              budget_ms: int = 10000) -> str:
    """The page's DOM after its scripts ran (--dump-dom); with ``screenshot``, also a ``width`` x ``height``
    PNG of it, from the same run."""
    args = ["--dump-dom"]
    if screenshot is not None:
        screenshot = Path(screenshot).resolve()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.unlink(missing_ok=True)
        args += [f"--screenshot={screenshot}", f"--window-size={width},{height}"]
    dom = run_chromium(page, args, budget_ms)
    if screenshot is not None and not screenshot.is_file():
        raise PdiffError(f"Chromium wrote no screenshot of {Path(page).name}.")
    return dom


def page_status(dom: str, element_id: str) -> dict[str, str]:
    """The ``data-*`` attributes of the element ``element_id`` in ``dom`` (empty when it is missing)."""
    found = re.search(rf"<[^>]*\bid=\"{re.escape(element_id)}\"[^>]*>", dom)
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', found.group(0))) if found else {}


class _PerDiv(HTMLParser):
    """Counts tags inside each <div id=...> of ``ids``, and `mark-item`s: elements inside a Vega mark group
    (class `role-mark`), i.e. the drawn lines, points and bars."""

    VOID = {"img", "br", "hr", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}

    def __init__(self, ids):
        super().__init__()
        self.ids, self.stack, self.counts = set(ids), [], {i: Counter() for i in ids}

    def _count(self, tag, attrs) -> bool:
        """Count ``tag`` for the plot divs it sits in; True when it is a Vega mark group."""
        in_mark = any(mark for _, mark in self.stack)
        is_mark = "role-mark" in (attrs.get("class") or "")
        for owner in {o for o, _ in self.stack if o}:
            self.counts[owner][tag] += 1
            self.counts[owner]["role-mark"] += is_mark
            self.counts[owner]["mark-item"] += in_mark
        return is_mark or in_mark

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        mark = self._count(tag, attrs)
        if tag not in self.VOID:
            self.stack.append((attrs.get("id") if tag == "div" and attrs.get("id") in self.ids else "", mark))

    def handle_startendtag(self, tag, attrs):
        self._count(tag, dict(attrs))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()


def tags_per_div(dom: str, ids: list[str]) -> dict[str, Counter]:
    """For each div id: how many <svg>, <canvas>, <img>, <pre>, ..., Vega mark groups (`role-mark`) and drawn
    items in them (`mark-item`) it contains."""
    parser = _PerDiv(ids)
    parser.feed(dom)
    return parser.counts


def colour_pixels(png: str | Path, min_spread: int = 60) -> tuple[int, float]:
    """(pixels in colour, i.e. max - min channel >= ``min_spread``; grey-level standard deviation) of a PNG.
    Text and a blank page are grey; drawn plots are not."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return int((spread >= min_spread).sum()), float(rgb.mean(axis=2).std())
