"""Serve the built website on 127.0.0.1 (for a look in a browser, and for tests).

Usage (from the repository root, after `make book`):

    python tools/serve.py                 # _build/html on http://127.0.0.1:8000/
    python tools/serve.py --port 0 DIR    # another folder, on a free port

Opening ``_build/html/index.html`` as a file mostly works too, but a few
things need a server: the search page loads ``searchindex.js`` by URL, and
browsers restrict ``file://`` pages. ``tests/test_site.py`` uses
:func:`serve` to run the site in a background thread on a free port.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, no request log; no caching unless ``cache_assets`` (a rebuilt page is seen at once)."""

    cache_assets = False  # see serve(cache_assets=...)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def end_headers(self) -> None:
        page = self.path.split("?", 1)[0].split("#", 1)[0]
        # Only a file that was there: a missing one (404) must fail again on the next page.
        found = getattr(self, "_status", 0) == 200
        if self.cache_assets and found and not page.endswith((".html", ".htm", "/")):
            self.send_header("Cache-Control", "max-age=3600")
        else:
            self.send_header("Cache-Control", "no-store")
        super().end_headers()


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A browser that closes a connection early (navigating away, a
        # cancelled favicon request) is normal; do not print a traceback.
        pass


@contextlib.contextmanager
def serve(html_dir: Path, port: int = 0, *, cache_assets: bool = False) -> Iterator[str]:
    """Serve ``html_dir`` on 127.0.0.1 in a daemon thread; yield its base URL.

    ``cache_assets=True`` lets the browser keep everything but the pages themselves (scripts,
    styles, fonts, images, the search index) for an hour, as a real host would. For a site that
    does not change while it is served (the tests): MathJax and the theme's scripts are then
    fetched and compiled once, not on every page (measured on an idle 2-core machine: reading
    the 19 English pages as tests/test_site.py does took 28 CPU-s instead of 33). The default
    re-sends everything, so a page
    rebuilt while you look at it shows its new figures at once.
    """
    handler_class = type("Handler", (QuietHandler,), {"cache_assets": cache_assets})
    handler = functools.partial(handler_class, directory=str(html_dir))
    server = QuietServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", default=str(ROOT / "_build" / "html"))
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    html_dir = Path(args.html_dir)
    if not (html_dir / "index.html").is_file():
        raise SystemExit(f"no built site at {html_dir} (run `make book` first)")
    with serve(html_dir, args.port) as url:
        print(f"Serving {html_dir} at {url} (Ctrl+C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
