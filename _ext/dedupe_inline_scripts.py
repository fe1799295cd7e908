"""Drop duplicated ``<script>`` tags from every HTML page.

Sphinx 7.x (which Jupyter Book 1 pins) writes an inline script twice when an
extension adds it after the HTML builder started: ``Sphinx.add_js_file(None,
body=...)`` hands the builder ``filename=None``, while the builder's own
re-read of the registry uses ``''``, and ``None != ''`` defeats its duplicate
check (sphinx-doc/sphinx#13402, fixed only in Sphinx 8.2). sphinx-thebe adds
``const THEBE_JS_URL = ...`` that way, so every page threw "Identifier
'THEBE_JS_URL' has already been declared" in the browser console.

This extension removes, page by page, any script that equals an earlier one
(same source or body, priority and attributes). Enabled in ``_config.yml``
under ``sphinx.local_extensions``; ``tests/test_site.py`` fails on the error.
"""

from __future__ import annotations

from typing import Any


def _key(js: Any) -> tuple:
    filename = getattr(js, "filename", js) or ""
    attributes = getattr(js, "attributes", {}) or {}
    return (str(filename), getattr(js, "priority", 500), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for js in scripts:
        key = _key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    # In place: a handler that runs later and adds a script still reaches the page
    # (the builder restores its list after each page anyway).
    scripts[:] = unique


def setup(app) -> dict[str, Any]:
    # Late (priority 900), after other extensions have added their per-page scripts.
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
