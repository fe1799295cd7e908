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
  scrolled to it), ``landing-zh_CN.png``.
* Both editions (issue 15): the Chinese one, built by ``tools/i18n.py build`` from
  the same pages and ``locales/zh_CN``, is copied into ``_build/html/zh_CN``. The
  link check covers both; every page of both carries a language switch to the
  same page in the other edition and ``hreflang`` alternates, and the right
  ``<html lang>``; the Chinese pages' interface is Chinese (title, search box,
  theme strings: :data:`ENGLISH_INTERFACE_LEFT` lists what no catalog can reach);
  in the browser, every Chinese page gets the same checks as its English one
  except contrast and the dark-theme figures (same CSS, same images), its
  landing page lists every page, the switch leads to the same page, and the
  Chinese search finds 循环, 堆叠, 隐藏状态, 反向传播 and 梯度消失 on every
  page whose article uses them.

Where the site comes from
-------------------------
The tests build the site themselves, so ``make test`` works from a fresh clone:
into ``_build/html`` (as ``make book`` does, but incremental, without
``--all``), and only when a source (``_config.yml``, ``_toc.yml``,
``chapters/``, ``_static/``, ``_ext/``) changed since the last build these tests
made; nothing else re-executes notebooks (``execute_notebooks: off``). The
Chinese edition likewise, into ``_build/zh_CN`` (its doctrees kept there, so a
changed page or catalog re-reads only that page), when those sources or
``locales/`` changed. A change to ``_config.yml``, ``_toc.yml`` or ``_ext/``
rebuilds an edition from scratch (Sphinx does not notice a changed extension or
template). Each edition's build time is written to ``_build/site-build-times.json``.
Environment knobs, for development: ``SITE_PATH_OUTPUT=/tmp/x`` builds into
``/tmp/x/_build`` instead (keeps a shared ``_build`` untouched);
``SITE_CONFIG=/path/_config.yml`` builds with another config file;
``CHROMIUM=/path/to/chromium`` picks the browser.

Without Playwright or without a Chromium binary the browser tests are SKIPPED
with the reason; ``make test`` installs Chromium first when it can (its ``browser`` target). The
link check and the figure check need neither.
"""

from __future__ import annotations

import fcntl
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

# The editions: the folder each lives in under the English site ("" for English) and
# the <html lang> / hreflang it declares. The Chinese one: tools/i18n.py, _ext/i18n_editions.py.
ZH = "zh_CN"
EDITIONS = {"": "en", ZH: "zh-CN"}
LOCALES = ROOT / "locales"


def edition_path(edition: str, path: str) -> str:
    """``chapters/x.html`` in an edition: as is for English, ``zh_CN/chapters/x.html`` for Chinese."""
    return f"{edition}/{path}" if edition else path


# --------------------------------------------------------------------------------------
# Building the site (once per test session, only when stale)
# --------------------------------------------------------------------------------------


def _site_sources(folders: tuple[str, ...] = ("chapters", "_static", "_ext")) -> list[Path]:
    files = [CONFIG, TOC]
    for folder in folders:
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            # .mo files are compiled from the .po files by the build itself
            if p.is_file()
            and ".ipynb_checkpoints" not in p.parts
            and "__pycache__" not in p.parts
            and p.suffix != ".mo"
        ]
    return files


def _structural_sources() -> list[Path]:
    """Sources whose change Sphinx's incremental build misses (settings, toc, extensions, templates)."""
    return [CONFIG, TOC, *(p for p in (ROOT / "_ext").rglob("*") if p.is_file() and "__pycache__" not in p.parts)]


def _newest(paths: list[Path]) -> float:
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def _stale(stamp: Path, sources: list[Path]) -> bool:
    return not stamp.is_file() or stamp.stat().st_mtime < _newest(sources)


def _run_build(cmd: list[str], what: str) -> float:
    """Run one edition's build; its wall time in seconds, or the test fails with the warnings."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr).splitlines()
        problems = [line for line in log if re.search(r"WARNING|ERROR|Error|Traceback", line)] or log[-40:]
        pytest.fail(f"{what}: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n" + "\n".join(problems[:60]))
    return time.perf_counter() - started


def _jupyter_book() -> str:
    beside = Path(sys.executable).with_name("jupyter-book")
    found = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    if not found:
        pytest.fail("jupyter-book is not installed (it is in requirements.txt)")
    return found


@pytest.fixture(scope="module")
def site() -> Path:
    """The built site's html folder (both editions), rebuilt first if any source is newer."""
    out = Path(os.environ.get("SITE_PATH_OUTPUT") or ROOT).resolve()
    build = out / "_build"
    build.mkdir(parents=True, exist_ok=True)
    # Under pytest-xdist without --dist loadgroup, two workers may each set this fixture up:
    # the second waits here, then finds the site fresh (two builds into one folder break both).
    # Once per test run: a worker that comes second does not rebuild (a source saved meanwhile
    # would otherwise have it rewrite the site under the first worker's browser).
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    with (build / ".site-test.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built_in = build / ".site-test-run"
        if not (run and built_in.is_file() and built_in.read_text(encoding="utf8") == run):
            _build_editions(out, build)
            built_in.write_text(run, encoding="utf8")
    return build / "html"


def _build_editions(out: Path, build: Path) -> None:
    html = build / "html"
    stamp = build / ".site-test-stamp"  # written after a build these tests ran passed
    times_file = build / "site-build-times.json"
    times = json.loads(times_file.read_text(encoding="utf8")) if times_file.is_file() else {}
    if _stale(stamp, _site_sources()) or not (html / "index.html").is_file():
        started = time.time()
        cmd = [_jupyter_book(), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"]
        if os.environ.get("SITE_CONFIG"):
            cmd += ["--config", str(CONFIG)]
        if _stale(stamp, _structural_sources()):
            cmd.append("--all")
        times["en"] = {"seconds": round(_run_build(cmd, "the English edition"), 1), "fresh": "--all" in cmd}
        stamp.touch()
        os.utime(stamp, (started, started))  # a source saved during the build still counts as newer
    # The Chinese edition: its own folder, copied into the English site (tools/i18n.py build).
    zh_stamp = build / f".site-test-stamp-{ZH}"
    zh_sources = _site_sources(("chapters", "_static", "_ext", "locales"))
    if _stale(zh_stamp, zh_sources) or not (html / ZH / "index.html").is_file():
        started = time.time()
        cmd = [sys.executable, str(ROOT / "tools" / "i18n.py"), "build", "--out", str(build / ZH)]
        cmd += ["--copy-to", str(html / ZH)]
        if os.environ.get("SITE_CONFIG"):
            cmd += ["--config", str(CONFIG)]
        if _stale(zh_stamp, _structural_sources()):
            cmd.append("--all")
        times[ZH] = {"seconds": round(_run_build(cmd, "the zh_CN edition"), 1), "fresh": "--all" in cmd}
        zh_stamp.touch()
        os.utime(zh_stamp, (started, started))
    times_file.write_text(json.dumps(times, indent=1) + "\n", encoding="utf8")


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
    missing = [
        edition_path(e, p.html) for e in EDITIONS for p in PAGES if not (site / edition_path(e, p.html)).is_file()
    ]
    assert not missing, f"pages in _toc.yml with no HTML in {site}: {missing}"


def test_no_broken_links(site: Path) -> None:
    """Both editions: the Chinese one lives inside the English site, and links to it."""
    report = linkcheck.check_site(site)
    (site.parent / "external_links.txt").write_text(report.external_listing(), encoding="utf8")
    assert report.pages >= len(EDITIONS) * len(PAGES)
    assert report.editions.get(ZH, 0) >= len(PAGES), f"pages checked per edition: {report.editions}"
    assert not report.broken, "broken local links or anchors:\n" + "\n".join(report.broken)
    insecure = sorted(u for u in report.external if urlsplit(u).scheme not in ("https", "mailto"))
    assert not insecure, f"external links that are not https: {insecure}"


def test_figures_have_opaque_light_backgrounds(site: Path) -> None:
    """Every stored figure (PNG) has an opaque, near-white border: readable on any theme."""
    from PIL import Image

    bad = []
    for png in sorted([*(site / "_images").glob("*.png"), *(site / ZH / "_images").glob("*.png")]):
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
# Without a browser: the two editions
# --------------------------------------------------------------------------------------


def _edition_pages(site: Path, edition: str) -> list[Path]:
    """Every templated HTML page of an edition (not the redirecting index.html, not the other edition)."""
    root = site / edition if edition else site
    pages = []
    for page in sorted(root.rglob("*.html")):
        parts = page.relative_to(root).parts
        if parts[0] in ("_static", "_sources", "_images") or (not edition and parts[0] in EDITIONS):
            continue
        if parts == ("index.html",):
            continue  # the redirect to the root page, written by sphinx-external-toc
        pages.append(page)
    return pages


def test_every_page_declares_its_language(site: Path) -> None:
    """``<html lang>``: en on the English pages, zh-CN on the Chinese ones (what screen readers and search use)."""
    wrong = []
    for edition, lang in EDITIONS.items():
        pages = _edition_pages(site, edition)
        assert len(pages) >= len(PAGES), f"edition {edition or 'en'}: only {len(pages)} pages"
        for page in pages:
            found = re.search(r'<html[^>]*\blang="([^"]*)"', page.read_text(encoding="utf8"))
            if not found or found.group(1) != lang:
                wrong.append(f"{page.relative_to(site)}: lang={found and found.group(1)!r}, want {lang!r}")
    assert not wrong, "\n".join(wrong)


def test_every_page_links_to_itself_in_the_other_edition(site: Path) -> None:
    """The language switch and the ``hreflang`` alternates (plus x-default) point at the same page."""
    problems = []
    for edition in EDITIONS:
        root = site / edition if edition else site
        for page in _edition_pages(site, edition):
            html = page.read_text(encoding="utf8")
            rel = page.relative_to(root).as_posix()
            where = page.relative_to(site).as_posix()
            alternates = dict(re.findall(r'<link rel="alternate" hreflang="([^"]+)" href="([^"]+)"', html))
            if set(alternates) != {*EDITIONS.values(), "x-default"}:
                problems.append(f"{where}: hreflang alternates {sorted(alternates)}")
                continue
            want = {lang: (site / edition_path(e, rel)).resolve() for e, lang in EDITIONS.items()}
            want["x-default"] = want["en"]
            for lang, href in alternates.items():
                if (page.parent / href).resolve() != want[lang]:
                    problems.append(f"{where}: hreflang={lang} points at {href}")
            switch = re.findall(r'<a class="[^"]*\bi18n-switch-link\b[^"]*" href="([^"]+)" hreflang="([^"]+)"', html)
            others = {lang for e, lang in EDITIONS.items() if e != edition}
            if {lang for _href, lang in switch} != others or len(switch) != len(others):
                problems.append(f"{where}: language switch {switch}, want one link to each of {sorted(others)}")
            for href, lang in switch:
                target = (page.parent / href).resolve()
                if target != want.get(lang) or not target.is_file():
                    problems.append(f"{where}: the switch to {lang} points at {href}, not at this page there")
    assert not problems, "\n".join(problems[:60])


def test_editions_share_one_mathjax(site: Path) -> None:
    """The Chinese edition loads the English site's MathJax (31 MB) instead of carrying a copy."""
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert not (site / ZH / "_static" / "mathjax").exists(), "the zh_CN edition carries its own MathJax copy"
    page = site / ZH / PAGES[1].html
    src = re.search(r'<script[^>]*src="([^"?]*mathjax/tex-chtml\.js)', page.read_text(encoding="utf8"))
    assert src and (page.parent / src.group(1)).resolve() == (site / "_static/mathjax/tex-chtml.js").resolve()


# English that the Chinese pages' interface (outside the article) may still show: names and
# symbols that stay as they are, and what no catalog can reach, with the reason.
ENGLISH_INTERFACE_LEFT: dict[str, str] = {
    "Binder": "a service's name",
    "Colab": "a service's name",
    ".ipynb": "a file type",
    ".pdf": "a file type",
    "Ctrl": "a key's name (the search shortcut)",
    "English": "the language switch: the other edition's name, in its own language",
    "Read this page in English": "the switch's tooltip, in the language it leads to",
    "The rnnlib course team": "the author's name",
    "@aria-label=Page": 'sphinx-book-theme\'s layout.html writes <nav aria-label="Page"> in English; only a copy of '
    "the whole layout could change it",
}


def _interface_strings(html: str) -> list[str]:
    """Text, tooltips and labels of a page's body that are not the book's own text: not the article, nor
    what repeats the pages' titles and headings (the sidebar's links, the page's table of contents,
    previous/next, the print-only table of contents)."""
    from bs4 import BeautifulSoup, Comment

    # The article is most of a page: cut it (and the scripts) out before parsing the rest.
    start = html.find('<article class="bd-article"')
    if start >= 0:
        html = html[:start] + html[html.find("</article>", start) + len("</article>") :]
    html = re.sub(r"(?s)<script\b.*?</script>", "", html)
    soup = BeautifulSoup(html, "html.parser")
    if soup.head:
        soup.head.decompose()
    for node in soup.select(
        "article.bd-article, script, style, nav.bd-links, .bd-sidebar-secondary, .prev-next-area, #jb-print-docs-body"
    ):
        node.decompose()
    for comment in soup.find_all(string=lambda t: isinstance(t, Comment)):
        comment.extract()
    found = []
    for element in soup.find_all(True):
        for attr in ("title", "aria-label", "placeholder", "alt", "data-bs-title"):
            if element.get(attr):
                found.append(f"@{attr}={element[attr]}")
    body = soup.body or soup
    found += [t.strip() for t in body.find_all(string=True) if t.strip()]
    return found


def test_chinese_pages_have_a_chinese_interface(site: Path) -> None:
    """Title, search box and the themes' strings: Chinese wherever a catalog or a setting can make them so."""
    latin, cjk = re.compile(r"[A-Za-z]{3,}"), re.compile(r"[\u4e00-\u9fff]")
    english = _interface_strings((site / PAGES[1].html).read_text(encoding="utf8"))
    assert "@title=Toggle primary sidebar" in english, f"the interface scan finds nothing on {PAGES[1].html}"
    left: dict[str, set[str]] = {}
    for page in _edition_pages(site, ZH):
        for text in _interface_strings(page.read_text(encoding="utf8")):
            value = text.split("=", 1)[1] if text.startswith("@") else text
            if (
                latin.search(value)
                and not cjk.search(value)
                and text not in ENGLISH_INTERFACE_LEFT
                and value not in ENGLISH_INTERFACE_LEFT
            ):
                left.setdefault(text, set()).add(page.relative_to(site / ZH).as_posix())
    assert not left, (
        "English interface strings on the Chinese pages (translate them in locales/zh_CN: sphinx.po, "
        "booktheme.po or edition.yml, or list them in ENGLISH_INTERFACE_LEFT with the reason):\n"
        + "\n".join(f"{text!r} on {len(pages)} pages, e.g. {sorted(pages)[0]}" for text, pages in sorted(left.items()))
    )


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
    # The site does not change while the module reads it: scripts, fonts and images are cached
    # between pages as a host would let them be (tools/serve.py), the pages themselves never.
    with serve_tool.serve(site, cache_assets=True) as base_url:
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


# The page checks are the longest part of this module (two editions, the English pages in both themes),
# so under `make test` they run as several xdist groups, each in its own worker with its own browser: run
# as one group, they were the suite's tail on 2 cores. Not more groups than that: each starts a browser
# and loads the theme's scripts, styles and fonts afresh (about 1.5 s of CPU). The site itself is built
# once per run (`site`).
PAGE_GROUPS_PER_EDITION = {"": 2, ZH: 1}
EDITION_PAGES = [
    pytest.param(
        edition,
        page,
        id=edition_path(edition, page.docname),
        marks=pytest.mark.xdist_group(f"site-pages-{EDITIONS[edition]}-{i % PAGE_GROUPS_PER_EDITION[edition]}"),
    )
    for edition in EDITIONS
    for i, page in enumerate(PAGES)
]


@pytest.mark.parametrize(("edition", "page"), EDITION_PAGES)
def test_page_reads_right(reader: Reader, edition: str, page: TocPage) -> None:
    """Title, typeset maths, loaded images, readable text in both themes, launch buttons, clean console.

    The Chinese pages skip the contrast and dark-theme figure checks: same CSS, same classes,
    same images as their English pages, which have them.
    """
    reader.visit(edition_path(edition, page.html))
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

    if not edition:
        problems += _check_contrast_and_dark_figures(reader, images)

    if page.is_notebook:
        problems += _check_launch_buttons(reader, page)

    problems += reader.unexpected_problems()
    problems = list(dict.fromkeys(problems))  # a 404 is reported by the response and the console
    assert not problems, f"{edition_path(edition, page.html)}:\n" + "\n".join(problems)


def _check_contrast_and_dark_figures(reader: Reader, images: list[dict]) -> list[str]:
    problems = _check_contrast(reader, "light")
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
    return problems


@pytest.mark.parametrize("edition", list(EDITIONS), ids=[e or "en" for e in EDITIONS])
def test_landing_page_lists_every_page(reader: Reader, screenshots: Path, edition: str) -> None:
    # index.html redirects to the root page
    reader.visit(edition_path(edition, "index.html"), redirects_to=edition_path(edition, PAGES[0].html))
    nav = set(
        reader.page.eval_on_selector_all(
            "nav.bd-links a[href], .navbar-brand[href]",
            "els => els.map(a => new URL(a.href).pathname.replace(/^\\//, ''))",
        )
    )
    missing = [edition_path(edition, p.html) for p in PAGES if edition_path(edition, p.html) not in nav]
    assert not missing, f"pages of _toc.yml missing from the sidebar: {missing} (sidebar: {sorted(nav)})"
    reader.page.screenshot(path=str(screenshots / (f"landing-{edition}.png" if edition else "landing.png")))
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


def _article_text(html_file: Path) -> str:
    """The text of a page's article (not its sidebars, which name every page)."""
    import html as html_lib

    source = html_file.read_text(encoding="utf8")
    start = source.find('<article class="bd-article"')
    article = source[start : source.find("</article>", start)] if start >= 0 else ""
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", article)))


@pytest.mark.parametrize("term", ["循环", "堆叠", "隐藏状态", "反向传播", "梯度消失"])
def test_chinese_search_finds_every_page_that_uses_a_term(reader: Reader, site: Path, term: str) -> None:
    """The zh_CN search (jieba + locales/zh_CN/jieba_dict.txt) finds every page whose article uses the term."""
    having = {p.html for p in PAGES if term in _article_text(site / ZH / p.html)}
    assert having, f"no Chinese page uses {term!r} (the pilot page, chapters/intro, does: is it translated?)"
    reader.visit(f"{ZH}/search.html?q={term}")
    summary = reader.page.locator("#search-results p.search-summary")
    summary.wait_for(state="attached")
    # the results are listed one by one; the summary gets its text when the last one is shown
    reader.page.wait_for_function(
        "() => document.querySelector('#search-results p.search-summary').innerText.trim().length > 0"
    )
    hits = reader.page.eval_on_selector_all(
        "#search-results ul.search li a", "els => els.map(a => a.getAttribute('href').split(/[?#]/)[0])"
    )
    assert hits, f"searching {term!r} found nothing: {summary.inner_text()}"
    assert set(hits) <= {p.html for p in PAGES}, f"search hits outside the book: {hits}"
    missed = having - set(hits)
    assert not missed, f"searching {term!r} misses pages that use it: {sorted(missed)} (found {sorted(set(hits))})"
    assert not reader.unexpected_problems(), reader.unexpected_problems()


def test_language_switch_leads_to_the_same_page(reader: Reader) -> None:
    """Clicking the switch on a chapter opens that chapter in the other edition, and back."""
    page = PAGES[1].html
    reader.visit(page)
    for edition, lang in ((ZH, "zh-CN"), ("", "en")):
        reader.page.locator("a.i18n-switch-link").first.click()
        reader.page.wait_for_url(f"**/{edition_path(edition, page)}")
        reader.page.wait_for_load_state("load")
        assert reader.page.evaluate("() => document.documentElement.lang") == lang
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
