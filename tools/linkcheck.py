"""Check the links of the built website, offline.

Usage (from the repository root, after `make book`):

    python tools/linkcheck.py                 # checks _build/html
    python tools/linkcheck.py path/to/html    # checks another build

For every HTML page of the site (everything under the build folder except
``_static/`` and ``_sources/``) it reads each ``href``/``src`` of ``<a>``,
``<link>``, ``<img>``, ``<script>``, ``<source>`` and ``<iframe>``:

* a link to a local file must name a file that exists in the build (a folder
  counts if it holds an ``index.html``);
* a ``#fragment`` must be an ``id`` (or an ``<a name>``) of the target page,
  or of the page itself for a bare ``#fragment``;
* an external link (``http:``, ``https:``, ``mailto:`` ...) is not fetched
  (CI has no network): it is listed, with the pages that use it, in
  ``external_links.txt`` beside the build folder (``_build/external_links.txt``)
  and printed.

The site may hold other editions of the book in subfolders (``zh_CN/``, copied
there by ``tools/i18n.py build``; any subfolder with its own ``searchindex.js``):
they are checked with it, including the language switch's links between them,
and the pages checked are counted per edition.

Exit status 1 if any local link or anchor is broken. ``tests/test_site.py``
runs the same check through :func:`check_site`.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent

# Attributes that point at another resource, per tag.
LINK_ATTRS = {
    "a": ("href",),
    "link": ("href",),
    "img": ("src",),
    "script": ("src",),
    "source": ("src",),
    "iframe": ("src",),
}
# Generated/copied folders whose HTML is not a page of the course.
SKIP_DIRS = ("_static", "_sources")
# Hrefs that are no link to anything (theme buttons, JS hooks).
NON_LINKS = ("javascript:", "data:")


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if ident := values.get("id"):
            self.ids.add(ident)
        if tag == "a" and (name := values.get("name")):
            self.ids.add(name)
        if tag == "link" and "preconnect" in (values.get("rel") or "").split():
            return  # a hint to open a connection, not a resource
        for attr in LINK_ATTRS.get(tag, ()):
            url = values.get(attr)
            if url is not None:
                self.links.append((tag, url.strip()))

    handle_startendtag = handle_starttag


@dataclass
class LinkReport:
    pages: int = 0
    local_links: int = 0
    broken: list[str] = field(default_factory=list)
    # external URL -> pages (relative to the build) that use it
    external: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # edition folder ("" for the site's own pages, "zh_CN", ...) -> pages checked
    editions: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def external_listing(self) -> str:
        lines = [f"# {len(self.external)} external links (not fetched: no network in CI)"]
        for url in sorted(self.external):
            lines.append(f"{url}\t{', '.join(sorted(self.external[url]))}")
        return "\n".join(lines) + "\n"


def _parse(path: Path, cache: dict[Path, _PageParser]) -> _PageParser:
    if path not in cache:
        parser = _PageParser()
        parser.feed(path.read_text(encoding="utf8", errors="replace"))
        parser.close()
        cache[path] = parser
    return cache[path]


def site_pages(html_dir: Path) -> list[Path]:
    """Every HTML page of the built site, in a stable order."""
    return sorted(p for p in html_dir.rglob("*.html") if not set(p.relative_to(html_dir).parts[:-1]) & set(SKIP_DIRS))


def check_site(html_dir: Path) -> LinkReport:
    """Check every local link and anchor of the site under ``html_dir``."""
    html_dir = html_dir.resolve()
    report = LinkReport()
    cache: dict[Path, _PageParser] = {}
    editions = {p.parent.relative_to(html_dir).parts[0] for p in html_dir.glob("*/searchindex.js")}
    for page in site_pages(html_dir):
        report.pages += 1
        rel_page = page.relative_to(html_dir).as_posix()
        top = rel_page.split("/", 1)[0]
        report.editions[top if top in editions else ""] += 1
        for tag, url in _parse(page, cache).links:
            if not url or url.lower().startswith(NON_LINKS):
                continue
            parts = urlsplit(url)
            if parts.scheme or parts.netloc:
                report.external[url].add(rel_page)
                continue
            report.local_links += 1
            where = f"{rel_page}: <{tag}> {url!r}"
            if parts.path:
                if parts.path.startswith("/"):
                    report.broken.append(f"{where}: absolute path (breaks when the site is not at the server root)")
                    continue
                target = (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if html_dir not in target.parents:
                    report.broken.append(f"{where}: points outside the site")
                    continue
                if not target.is_file():
                    report.broken.append(f"{where}: no such file {target.relative_to(html_dir).as_posix()}")
                    continue
            else:
                target = page
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                if fragment not in _parse(target, cache).ids:
                    report.broken.append(f"{where}: no id {fragment!r} in {target.relative_to(html_dir).as_posix()}")
    return report


def main(argv: list[str]) -> int:
    html_dir = Path(argv[1]) if len(argv) > 1 else ROOT / "_build" / "html"
    if not (html_dir / "index.html").is_file():
        print(f"no built site at {html_dir} (run `make book` first)", file=sys.stderr)
        return 2
    report = check_site(html_dir)
    listing = report.external_listing()
    out = html_dir.parent / "external_links.txt"
    out.write_text(listing, encoding="utf8")
    print(listing, end="")
    per_edition = ", ".join(f"{n} in {e or 'the site'}" for e, n in sorted(report.editions.items()))
    print(
        f"checked {report.local_links} local links on {report.pages} pages ({per_edition}); "
        f"{len(report.external)} external links listed in {out}"
    )
    for line in report.broken:
        print(f"BROKEN {line}")
    if report.broken:
        print(f"{len(report.broken)} broken links")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
