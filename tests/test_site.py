"""The website as a reader meets it: built, served, and driven in a real browser.

What is checked
---------------
* The site builds (``jupyter-book build -W -n --keep-going``: any Sphinx warning
  fails), and every page in ``_toc.yml`` is in it.
* Links, offline (``tools/linkcheck.py``): every local ``href``/``src`` names a
  file of the build and every ``#fragment`` an ``id`` of its target page.
  External links are not fetched (CI has no network); they are listed in
  ``_build/external_links.txt`` and must be ``https:``/``mailto:``.
* Every figure that the notebooks store has an opaque, light background.
* In headless Chromium (Debian's ``chromium``, driven by Playwright), for every
  page of ``_toc.yml``: one ``<h1>``, which the tab title repeats; MathJax has
  typeset every equation (each ``.math`` element holds an ``mjx-container``, no
  ``mjx-merror``, no raw TeX such as ``$$`` or ``\\(`` left in the prose); every
  ``<img>`` in the article loaded (``naturalWidth > 0``) and has an alt text
  that is neither empty nor a file name or path (``.png``, ``.svg``, ``.jpg``,
  ``_images/``: myst-nb's default); all text in the
  article has a WCAG AA contrast ratio (>= 4.5) in the light *and* the dark
  theme, and every figure stays readable in the dark theme (light background,
  dark ink); notebook pages carry Binder/Colab/download buttons that point at
  ``repository.url`` of ``_config.yml`` (the ``.ipynb`` download is fetched);
  no console error, page error, failed request or request to another host than
  the local server, except the commented :data:`ALLOWED_PROBLEMS`.
* The landing page redirects to the root page, whose sidebar lists every page.
* The search page finds a term that is on a chapter page, and nothing for
  nonsense.
* Screenshots for a human to look at: ``_build/screenshots/landing.png``,
  ``chapter.png`` and ``chapter-dark.png`` (the first page with a figure,
  scrolled to it).

Where the site comes from
-------------------------
The tests build the site themselves, so ``make test`` works from a fresh clone:
into ``_build/html`` (as ``make book`` does, but incremental, without
``--all``), and only when a source (``_config.yml``, ``_toc.yml``,
``chapters/``, ``_static/``, ``_ext/``) changed since the last build these tests
made; nothing else re-executes notebooks (``execute_notebooks: off``).
Environment knobs, for development: ``SITE_PATH_OUTPUT=/tmp/x`` builds into
``/tmp/x/_build`` instead (keeps a shared ``_build`` untouched);
``SITE_CONFIG=/path/_config.yml`` builds with another config file;
``CHROMIUM=/path/to/chromium`` picks the browser.

Without Playwright or without a Chromium binary the browser tests are SKIPPED
with the reason; ``make test`` installs Chromium first when it can (its ``browser`` target). The
link check and the figure check need neither.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import yaml

from tools.toc import resolve_entry, toc_entries

ROOT = Path(__file__).resolve().parent.parent
TOC = ROOT / "_toc.yml"
CONFIG = Path(os.environ.get("SITE_CONFIG") or ROOT / "_config.yml").resolve()


def _load_tool(name: str):
    """Import ``tools/<name>.py`` (``tools`` is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"_site_tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


linkcheck = _load_tool("linkcheck")
serve_tool = _load_tool("serve")

# Console messages, failed requests and page errors that are not the site's
# fault. Each entry: a regex over the problem's one-line description, and why.
# Two errors the theme stack used to log are fixed at their source instead:
# "Identifier 'THEBE_JS_URL' has already been declared" (Sphinx 7 writes
# sphinx-thebe's inline script twice; _ext/dedupe_inline_scripts.py) and "Got
# invalid theme mode" on a first visit (html_context.default_mode in _config.yml).
ALLOWED_PROBLEMS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"127\.0\.0\.1:\d+/favicon\.ico\b"),
        "Chromium asks every server for /favicon.ico on its own; the book sets no "
        "favicon (html.favicon in _config.yml), so the first page of the session logs a "
        "404 for it. No reader sees it.",
    ),
]

# The launch flags for Debian's Chromium here (root, no GPU, no network but
# the local server); Playwright adds --headless and a fresh profile.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
MIN_CONTRAST = 4.5  # WCAG 2 AA for body text


# --------------------------------------------------------------------------------------
# The pages of the book, from _toc.yml and _config.yml
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TocPage:
    docname: str  # "chapters/04_data_flow"
    source: Path

    @property
    def html(self) -> str:
        return f"{self.docname}.html"

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"


def toc_pages() -> list[TocPage]:
    """Every page that ``_toc.yml`` lists, in reading order."""
    pages = []
    for entry in toc_entries(TOC):
        path = resolve_entry(entry)
        if path is None:
            raise FileNotFoundError(f"_toc.yml names {entry!r}, but there is no such .ipynb/.md file")
        pages.append(TocPage(path.relative_to(ROOT).with_suffix("").as_posix(), path))
    return pages


PAGES = toc_pages()
BOOK_CONFIG = yaml.safe_load(CONFIG.read_text(encoding="utf8"))


# --------------------------------------------------------------------------------------
# Building the site (once per test session, only when stale)
# --------------------------------------------------------------------------------------


def _site_sources() -> list[Path]:
    files = [CONFIG, TOC]
    for folder in ("chapters", "_static", "_ext"):
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts
        ]
    return files


def _jupyter_book() -> str:
    beside = Path(sys.executable).with_name("jupyter-book")
    found = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if not found:
        pytest.fail("jupyter-book is not installed (it is in requirements.txt)")
    return found


@pytest.fixture(scope="module")
def site() -> Path:
    """The built site's html folder, rebuilt first if any source is newer."""
    out = Path(os.environ.get("SITE_PATH_OUTPUT") or ROOT).resolve()
    build = out / "_build"
    html = build / "html"
    stamp = build / ".site-test-stamp"  # written after a build these tests ran passed
    newest = max(p.stat().st_mtime for p in _site_sources())
    if not (stamp.is_file() and (html / "index.html").is_file() and stamp.stat().st_mtime >= newest):
        started = time.time()
        cmd = [_jupyter_book(), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"]
        if os.environ.get("SITE_CONFIG"):
            cmd += ["--config", str(CONFIG)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            log = (proc.stdout + proc.stderr).splitlines()
            problems = [line for line in log if re.search(r"WARNING|ERROR|Error|Traceback", line)] or log[-40:]
            pytest.fail(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n" + "\n".join(problems[:60]))
        stamp.touch()
        os.utime(stamp, (started, started))  # a source saved during the build still counts as newer
    return html


# --------------------------------------------------------------------------------------
# Without a browser: links, the pages' presence, the figures' backgrounds
# --------------------------------------------------------------------------------------


def test_link_checker_reports_missing_files_and_anchors(tmp_path: Path) -> None:
    """The checker itself: a tiny site with one good and three broken links."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#here">ok</a> <a href="sub/page.html#gone">bad anchor</a>'
        '<a href="missing.html">bad file</a> <img src="sub/nope.png"> <a href="#top" id="top">self</a>'
        '<a href="https://example.org/x">external</a>',
        encoding="utf8",
    )
    (tmp_path / "sub" / "page.html").write_text('<h1 id="here">x</h1>', encoding="utf8")
    report = linkcheck.check_site(tmp_path)
    assert report.local_links == 5
    assert set(report.external) == {"https://example.org/x"}
    assert len(report.broken) == 3, report.broken
    assert any("'gone'" in b for b in report.broken)
    assert any("missing.html" in b for b in report.broken)
    assert any("nope.png" in b for b in report.broken)


def test_every_toc_page_is_built(site: Path) -> None:
    missing = [p.html for p in PAGES if not (site / p.html).is_file()]
    assert not missing, f"pages in _toc.yml with no HTML in {site}: {missing}"


def test_no_broken_links(site: Path) -> None:
    report = linkcheck.check_site(site)
    (site.parent / "external_links.txt").write_text(report.external_listing(), encoding="utf8")
    assert report.pages >= len(PAGES)
    assert not report.broken, "broken local links or anchors:\n" + "\n".join(report.broken)
    insecure = sorted(u for u in report.external if urlsplit(u).scheme not in ("https", "mailto"))
    assert not insecure, f"external links that are not https: {insecure}"


def test_figures_have_opaque_light_backgrounds(site: Path) -> None:
    """Every stored figure (PNG) has an opaque, near-white border: readable on any theme."""
    from PIL import Image

    bad = []
    for png in sorted((site / "_images").glob("*.png")):
        rgba = np.asarray(Image.open(png).convert("RGBA"), dtype=float)
        border = np.concatenate(
            [rgba[:3].reshape(-1, 4), rgba[-3:].reshape(-1, 4), rgba[:, :3].reshape(-1, 4), rgba[:, -3:].reshape(-1, 4)]
        )
        alpha, light = np.median(border[:, 3]), np.median(border[:, :3].mean(axis=1))
        if alpha < 250 or light < 235:
            bad.append(
                f"{png.name}: border alpha {alpha:.0f}, brightness {light:.0f} (want 255 and white: "
                "fig.patch.set_facecolor('white'))"
            )
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------------------
# In the browser
# --------------------------------------------------------------------------------------


def _chromium() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "browser tests skipped: the Python package playwright is not installed "
            "(it is in requirements.txt: .venv/bin/pip install -r requirements.txt)"
        )
    executable = _chromium()
    if executable is None:
        pytest.skip(
            "browser tests skipped: no Chromium found ($CHROMIUM, chromium, chromium-browser); "
            "install Debian's: `make browser` (apt-get install -y chromium)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Reader:
    """One browser tab on the served site, recording what goes wrong on each visit."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.base = base_url
        self.local_host = urlsplit(base_url).netloc
        self.problems: list[str] = []
        page.set_default_timeout(15_000)
        page.on("console", self._on_console)
        page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)
        page.on("request", self._on_request)

    def _on_console(self, msg) -> None:
        if msg.type in ("error", "assert"):
            where = msg.location.get("url", "") if msg.location else ""
            self.problems.append(f"console {msg.type}: {msg.text} [{where}]")

    def _on_request_failed(self, request) -> None:
        # ERR_ABORTED: the page navigated away (or a redirect) before it finished; images
        # that really fail to load are caught by their naturalWidth.
        if "ERR_ABORTED" not in (request.failure or ""):
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _on_response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def _on_request(self, request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != self.local_host:
            self.problems.append(f"request to another host (the site must work offline): {request.url}")

    def visit(self, path: str, redirects_to: str | None = None) -> None:
        self.problems = []
        self.page.goto(self.base + path, wait_until="load")
        if redirects_to:
            self.page.wait_for_url(f"**/{redirects_to}")
            self.page.wait_for_load_state("load")
        self.wait_for_mathjax()

    def wait_for_mathjax(self) -> None:
        self.page.evaluate(
            "() => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
            " ? MathJax.startup.promise.then(() => true) : false"
        )

    def unexpected_problems(self) -> list[str]:
        return [p for p in self.problems if not any(rx.search(p) for rx, _why in ALLOWED_PROBLEMS)]

    def set_theme(self, theme: str) -> None:
        """Switch light/dark the way the theme does it (the attribute its CSS keys on)."""
        self.page.evaluate("(t) => { document.documentElement.dataset.theme = t; }", theme)


@pytest.fixture(scope="module")
def reader(site: Path, browser):
    with serve_tool.serve(site) as base_url:
        context = browser.new_context(viewport=VIEWPORT, color_scheme="light", device_scale_factor=1)
        try:
            yield Reader(context.new_page(), base_url)
        finally:
            context.close()


@pytest.fixture(scope="module")
def screenshots(site: Path) -> Path:
    folder = site.parent / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# JavaScript run in the page -------------------------------------------------------------

JS_HEADINGS = """() => [document.title,
  [...document.querySelectorAll('article.bd-article h1')].map(h => h.textContent.replace(/[#¶]\\s*$/, '').trim())]"""

JS_MATH = """() => {
  const art = document.querySelector('article.bd-article');
  const math = [...art.querySelectorAll('.math')];
  const untypeset = math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.trim().slice(0, 80));
  const errors = [...art.querySelectorAll('mjx-merror, [data-mjx-error]')]
    .map(e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 80));
  const prose = art.cloneNode(true);
  prose.querySelectorAll('pre, code, .highlight, mjx-container, script, style').forEach(e => e.remove());
  return {math: math.length, rendered: art.querySelectorAll('mjx-container').length, untypeset, errors,
          text: prose.textContent};
}"""

JS_IMAGES = """async () => {
  const imgs = [...document.querySelectorAll('article.bd-article img')];
  imgs.forEach(i => { i.loading = 'eager'; });
  const settle = Promise.all(imgs.map(i => (i.complete ? null : new Promise(r => {
      i.addEventListener('load', r); i.addEventListener('error', r); }))));
  await Promise.race([settle, new Promise(r => setTimeout(r, 10000))]);
  return imgs.map(i => ({src: i.getAttribute('src'), alt: i.getAttribute('alt'), width: i.naturalWidth,
                         visible: i.getClientRects().length > 0 && getComputedStyle(i).visibility !== 'hidden'}));
}"""

# An alt text that is a file name or path (myst-nb's default for a figure without
# `"image": {"alt": ...}` in its cell metadata is the image's own path) tells a
# screen-reader user nothing; neither does an empty one.
ALT_IS_A_FILE = re.compile(r"\.(png|svg|jpe?g|gif|webp)$|_images/", re.IGNORECASE)


def _alt_text_problem(image: dict) -> str | None:
    """Why an article image's alt text is useless to a screen reader, or None if it is not."""
    alt = (image.get("alt") or "").strip()
    if not alt:
        return f"image without alt text: {image['src']}"
    if ALT_IS_A_FILE.search(alt):
        return (
            f"image whose alt text is a file name, {alt!r}: give its cell "
            f'"mystnb": {{"image": {{"alt": "..."}}}} metadata describing the figure'
        )
    return None


# WCAG contrast of every visible text node in the article against the colour
# actually behind it (backgrounds composited up the ancestor chain).
JS_CONTRAST = """(minRatio) => {
  const parse = (c) => { const m = c && c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
  const over = (top, under) => ({r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
                                 b: top.b * top.a + under.b * (1 - top.a)});
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let base = {r: 255, g: 255, b: 255};  // the canvas, if nothing is opaque
    for (let i = layers.length - 1; i >= 0; i--) base = over(layers[i], base);
    return base;
  };
  const art = document.querySelector('article.bd-article');
  const walker = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  const worst = new Map(); let node, checked = 0;
  while ((node = walker.nextNode())) {
    const text = node.textContent.trim(); if (!text) continue;
    const el = node.parentElement;
    if (!el || el.closest('mjx-container, script, style, .visually-hidden, .sr-only')) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || !el.getClientRects().length || parseFloat(st.opacity) === 0) continue;
    const bg = background(el); const fg = over(parse(st.color), bg);
    const [a, b] = [lum(fg), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); checked++;
    if (ratio < minRatio) {
      const key = `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} ${st.color} on rgb(${Math.round(bg.r)}, ${Math.round(bg.g)}, ${Math.round(bg.b)})`;
      if (!worst.has(key)) worst.set(key, `${ratio.toFixed(2)}: ${key}: ${JSON.stringify(text.slice(0, 40))}`);
    }
  }
  return {checked, low: [...worst.values()]};
}"""  # noqa: E501 (JavaScript run in the page; its template literals stay on one line)

# TeX that MathJax should have consumed; none of it may be left in the prose.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\frac\b|\$\\[A-Za-z]")


def _check_contrast(reader: Reader, theme: str) -> list[str]:
    result = reader.page.evaluate(JS_CONTRAST, MIN_CONTRAST)
    assert result["checked"] > 0, "no visible text found in the article"
    return [f"[{theme}] contrast {line}" for line in result["low"]]


def _figure_contrast(png: bytes) -> tuple[float, float]:
    """(background luminance, contrast ratio of the darkest ink to it) of a screenshot."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float) / 255.0
    linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    lum = linear @ np.array([0.2126, 0.7152, 0.0722])
    border = np.concatenate([lum[:4].ravel(), lum[-4:].ravel(), lum[:, :4].ravel(), lum[:, -4:].ravel()])
    bg, ink = float(np.median(border)), float(np.percentile(lum, 0.5))
    return bg, (max(bg, ink) + 0.05) / (min(bg, ink) + 0.05)


def _repository() -> tuple[str, str, str]:
    repo = BOOK_CONFIG.get("repository") or {}
    url = (repo.get("url") or "").rstrip("/")
    owner_repo = "/".join(urlsplit(url).path.strip("/").split("/")[:2])
    return url, owner_repo, repo.get("branch") or "main"


def _check_launch_buttons(reader: Reader, page: TocPage) -> list[str]:
    url, owner_repo, branch = _repository()
    if not url:
        return []
    path = page.source.relative_to(ROOT / ((BOOK_CONFIG.get("repository") or {}).get("path_to_book") or "")).as_posix()
    hrefs = reader.page.eval_on_selector_all(".bd-header-article a[href]", "els => els.map(a => a.href)")
    problems = []
    launch = BOOK_CONFIG.get("launch_buttons") or {}
    wanted = {
        "repository button": lambda h: h.rstrip("/") == url,
        "download .ipynb": lambda h: h.endswith(f"_sources/{page.docname}.ipynb"),
    }
    if launch.get("binderhub_url"):
        wanted["Binder"] = lambda h: (
            h.startswith(launch["binderhub_url"].rstrip("/") + "/")
            and f"/{owner_repo}/{branch}" in h
            and h.endswith(path)
        )
    if launch.get("colab_url"):
        wanted["Colab"] = lambda h: (
            h.startswith(launch["colab_url"].rstrip("/") + "/") and f"github/{owner_repo}/blob/{branch}/{path}" in h
        )
    for name, ok in wanted.items():
        if not any(ok(h) for h in hrefs):
            problems.append(f"no {name} link for {path} (repository {url}); header links: {hrefs}")
    downloads = [h for h in hrefs if wanted["download .ipynb"](h)]
    if downloads:
        response = reader.page.request.get(downloads[0])
        if response.status != 200:
            problems.append(f"download {downloads[0]}: HTTP {response.status}")
        elif "cells" not in json.loads(response.body()):
            problems.append(f"download {downloads[0]} is not a notebook")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[p.docname for p in PAGES])
def test_page_reads_right(reader: Reader, page: TocPage) -> None:
    """Title, typeset maths, loaded images, readable text in both themes, launch buttons, clean console."""
    reader.visit(page.html)
    problems: list[str] = []

    title, h1s = reader.page.evaluate(JS_HEADINGS)
    if len(h1s) != 1 or not h1s[0]:
        problems.append(f"want exactly one non-empty <h1> in the article, found {h1s}")
    elif not title.startswith(h1s[0]):
        problems.append(f"the tab title {title!r} does not start with the <h1> {h1s[0]!r}")

    math = reader.page.evaluate(JS_MATH)
    if math["math"] and not math["rendered"]:
        problems.append(f"{math['math']} equations but no mjx-container: MathJax did not typeset")
    problems += [f"equation not typeset: {m!r}" for m in math["untypeset"]]
    problems += [f"MathJax error: {e!r}" for e in math["errors"]]
    for match in RAW_TEX.finditer(math["text"]):
        context = math["text"][max(0, match.start() - 40) : match.end() + 40].replace("\n", " ")
        problems.append(f"raw TeX left in the text: ...{context}...")

    images = reader.page.evaluate(JS_IMAGES)
    problems += [f"image did not load: {i['src']}" for i in images if i["width"] == 0]
    problems += [p for p in map(_alt_text_problem, images) if p]

    problems += _check_contrast(reader, "light")
    reader.set_theme("dark")
    try:
        problems += _check_contrast(reader, "dark")
        # Figures in the dark theme: the screenshot of each (theme CSS included) must show
        # a light background with dark ink, i.e. the figure was not dimmed into illegibility.
        for i, img in enumerate(reader.page.locator("article.bd-article img").all()):
            if not images[i]["visible"] or images[i]["width"] == 0:
                continue
            bg, ratio = _figure_contrast(img.screenshot(animations="disabled"))
            if bg < 0.4 or ratio < MIN_CONTRAST:
                problems.append(
                    f"[dark] figure {images[i]['src']}: background luminance {bg:.2f}, "
                    f"ink contrast {ratio:.1f} (want >= 0.4 and >= {MIN_CONTRAST})"
                )
    finally:
        reader.set_theme("light")

    if page.is_notebook:
        problems += _check_launch_buttons(reader, page)

    problems += reader.unexpected_problems()
    problems = list(dict.fromkeys(problems))  # a 404 is reported by the response and the console
    assert not problems, f"{page.html}:\n" + "\n".join(problems)


def test_landing_page_lists_every_page(reader: Reader, screenshots: Path) -> None:
    reader.visit("index.html", redirects_to=PAGES[0].html)  # index.html redirects to the root page
    nav = set(
        reader.page.eval_on_selector_all(
            "nav.bd-links a[href], .navbar-brand[href]",
            "els => els.map(a => new URL(a.href).pathname.replace(/^\\//, ''))",
        )
    )
    missing = [p.html for p in PAGES if p.html not in nav]
    assert not missing, f"pages of _toc.yml missing from the sidebar: {missing} (sidebar: {sorted(nav)})"
    reader.page.screenshot(path=str(screenshots / "landing.png"))
    assert not reader.unexpected_problems(), reader.unexpected_problems()


@pytest.mark.parametrize("term", ["weight_ih_l0", "hidden state"])
def test_search_finds_a_chapter_term(reader: Reader, site: Path, term: str) -> None:
    """The search page (searchindex.js, in the browser) finds the pages that use the term."""
    having = {p.html for p in PAGES if term.lower() in (site / p.html).read_text(encoding="utf8").lower()}
    assert having, f"no page contains {term!r}: pick another search term"
    reader.visit(f"search.html?q={term.replace(' ', '+')}")
    summary = reader.page.locator("#search-results p.search-summary")
    summary.wait_for(state="attached")
    hits = reader.page.eval_on_selector_all(
        "#search-results ul.search li a", "els => els.map(a => a.getAttribute('href').split(/[?#]/)[0])"
    )
    assert hits, f"searching {term!r} found nothing: {summary.inner_text()}"
    assert set(hits) <= {p.html for p in PAGES}, f"search hits outside the book: {hits}"
    assert set(hits) & having, f"search hits {hits} miss every page containing {term!r}: {sorted(having)}"

    reader.visit("search.html?q=zzqxjv")
    reader.page.locator("#search-results p.search-summary").wait_for(state="attached")
    assert reader.page.locator("#search-results ul.search li").count() == 0
    assert not reader.unexpected_problems(), reader.unexpected_problems()


def _first_page_with_a_figure(site: Path) -> TocPage | None:
    for page in PAGES:
        if 'src="../_images/' in (site / page.html).read_text(encoding="utf8"):
            return page
    return None


def test_chapter_screenshots_light_and_dark(reader: Reader, site: Path, screenshots: Path) -> None:
    """A chapter with a figure, as a reader sees it in each theme (picked with the theme's own switch)."""
    page = _first_page_with_a_figure(site) or PAGES[-1]
    for mode, name in (("light", "chapter.png"), ("dark", "chapter-dark.png")):
        reader.visit(page.html)
        reader.page.evaluate("(m) => localStorage.setItem('mode', m)", mode)  # what the theme switch stores
        reader.page.reload(wait_until="load")
        reader.wait_for_mathjax()
        theme, background = reader.page.evaluate(
            "() => [document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor]"
        )
        assert theme == mode
        channels = [float(c) for c in re.findall(r"[\d.]+", background)[:3]]
        assert (sum(channels) / 3 > 128) == (mode == "light"), f"{mode} theme, body background {background}"
        figure = reader.page.locator("article.bd-article img").first
        if figure.count():
            figure.scroll_into_view_if_needed()
            reader.page.evaluate("() => window.scrollBy(0, -200)")
        reader.page.screenshot(path=str(screenshots / name))
        assert not reader.unexpected_problems(), reader.unexpected_problems()

    if page.is_notebook:  # the launch menu opens on a click and shows Binder
        reader.page.locator(".dropdown-launch-buttons button").click()
        binder = reader.page.locator(".dropdown-launch-buttons a[href*='binder']")
        if (BOOK_CONFIG.get("launch_buttons") or {}).get("binderhub_url"):
            binder.wait_for(state="visible")
    reader.page.evaluate("() => localStorage.removeItem('mode')")
