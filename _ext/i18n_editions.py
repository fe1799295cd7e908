"""The book's two editions, English and Chinese, built from the same pages (issue 15).

The English site is built by ``jupyter-book build`` into ``_build/html``; the
Chinese one by ``tools/i18n.py build`` (the same Sphinx entry point, with
``language=zh_CN``) and copied to ``_build/html/zh_CN``. This extension, loaded
by both builds, gives every page of either edition:

* a language switch in the article header (``templates/i18n-switch.html``) that
  points at the same page in the other edition, and ``<link rel="alternate"
  hreflang=...>`` alternates for every edition (plus ``x-default``, English) in
  the ``<head>``; ``<html lang>`` is Sphinx's own (``en``, ``zh-CN``);
* the part captions of ``_toc.yml`` translated: sphinx-external-toc inserts
  them after Sphinx applied the translations (its transform runs at priority
  100, Sphinx's ``Locale`` at 20), so this extension translates them from the
  root page's catalog (``intro.po``, where gettext extracts them) right after;
* interface strings that the themes have no Chinese for: the two sidebar toggles,
  which sphinx-book-theme writes in English, are overridden here
  (``templates/toggle-*-sidebar.html``, found before the theme's ``components/``)
  with their tooltips wrapped in ``_()``; their
  Chinese, and pydata-sphinx-theme's missing ones, are in
  ``locales/<lang>/LC_MESSAGES/sphinx.po`` (Sphinx loads it itself); the book
  theme's missing ones (launch and source buttons) in ``booktheme.po`` beside it,
  added here as a fallback to the theme's own catalog;
* one MathJax: a translated edition loads the English site's copy
  (``../_static/mathjax``) instead of its own 31 MB one, which
  ``tools/i18n.py`` leaves out when it copies the edition into the English site;
* a faster Chinese search index: Sphinx's Chinese indexer runs jieba over every
  word of a page, English and code included (about 1 s per chapter); here jieba
  only segments the runs of Chinese characters, and Latin words are indexed as
  Sphinx's own indexer does (the same ``[a-zA-Z0-9_]+`` words). A jieba user
  dictionary of course terms (``html_search_options = {"dict": ...}``, set by
  ``tools/i18n.py``) keeps terms such as 隐藏状态 in one piece.

Settings (``_config.yml`` may override them): ``i18n_editions`` maps a
language to its folder under the English site (``""`` for English itself),
``i18n_edition_names`` to the name the switch shows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.i18n import CatalogRepository, docname_to_domain

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"  # i18n-switch.css: the switch in the header's row

DEFAULT_EDITIONS = {"en": "", "zh_CN": "zh_CN"}
DEFAULT_NAMES = {"en": "English", "zh_CN": "中文"}
# The switch's tooltip, in the language of the page it leads to.
SWITCH_TITLES = {"en": "Read this page in English", "zh_CN": "阅读本页的中文版"}
X_DEFAULT = "en"

# Runs of Chinese characters (CJK unified ideographs, extension A, compatibility).
CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def hreflang(language: str) -> str:
    """``zh_CN`` -> ``zh-CN`` (BCP 47, as Sphinx writes ``<html lang>``)."""
    return language.replace("_", "-")


def edition_root(language: str, editions: dict[str, str]) -> str:
    """From the root of ``language``'s edition up to the English site's root: ``""`` or ``"../"``."""
    folder = editions.get(language, "")
    return "../" * (folder.count("/") + 1) if folder else ""


def alternates(pagename_uri: str, language: str, editions: dict[str, str], names: dict[str, str]) -> list[dict]:
    """The page ``pagename_uri`` (``chapters/x.html``) in every edition, as relative links from it."""
    up = "../" * pagename_uri.count("/") + edition_root(language, editions)
    result = []
    for lang, folder in editions.items():
        result.append(
            {
                "language": lang,
                "hreflang": hreflang(lang),
                "href": up + (folder.strip("/") + "/" if folder else "") + pagename_uri,
                "name": names.get(lang, lang),
                "title": SWITCH_TITLES.get(lang, names.get(lang, lang)),
                "current": lang == language,
            }
        )
    return result


# --------------------------------------------------------------------------------------
# Configuration: templates, the theme's header, the book theme's missing strings
# --------------------------------------------------------------------------------------


def _configure(app, config) -> None:
    config.templates_path = [str(TEMPLATES), *[p for p in config.templates_path if p != str(TEMPLATES)]]
    if str(STATIC) not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, str(STATIC)]
    options = config.html_theme_options
    end = options.get("article_header_end") or ["article-header-buttons.html"]
    if isinstance(end, str):
        end = [t.strip() for t in end.split(",") if t.strip()]
    if "i18n-switch.html" not in end:
        options["article_header_end"] = ["i18n-switch.html", *end]

    if not config.language or config.language == "en":
        return
    # sphinx-book-theme's catalog lacks some strings it uses (the launch and source buttons):
    # ours comes after it, so it only answers what the theme's does not.
    repo = CatalogRepository(app.srcdir, config.locale_dirs, config.language, config.source_encoding)
    for catalog in repo.catalogs:
        if catalog.domain == "booktheme":
            if catalog.is_outdated():
                catalog.write_mo(config.language, config.gettext_allow_fuzzy_translations)
            app.add_message_catalog("booktheme", str(Path(catalog.base_dir).parent.parent))
    if config.language.startswith("zh"):
        _install_chinese_search()


def _install_chinese_search() -> None:
    from sphinx import search
    from sphinx.search.zh import JIEBA, SearchChinese

    if not JIEBA:
        logger.warning(
            "jieba is not installed: the Chinese search index will hold no Chinese word "
            "(pip install jieba; it is pinned in requirements.txt)",
            type="i18n",
        )
        return

    class SearchChineseRuns(SearchChinese):
        """Sphinx's Chinese search, with jieba run on the Chinese text only."""

        def init(self, options: dict[str, str]) -> None:
            import logging as std_logging

            import jieba

            jieba.setLogLevel(std_logging.WARNING)
            super().init(options)
            # Sphinx keeps the Latin words seen so far in a list, and stem() asks whether each
            # word is in it: quadratic in the size of the book (15 s of the build). A set.
            self.latin_terms = set()  # type: ignore[assignment]

        def split(self, input: str) -> list[str]:  # noqa: A002 (Sphinx's signature)
            import jieba

            chinese = [word for run in CJK_RUN.findall(input) for word in jieba.cut_for_search(run)]
            latin1 = [term.strip() for term in self.latin1_letters.findall(input)]
            self.latin_terms.update(latin1)  # type: ignore[attr-defined]
            return chinese + latin1

    search.languages["zh"] = SearchChineseRuns


# --------------------------------------------------------------------------------------
# Translated nodes: the document they belong to
# --------------------------------------------------------------------------------------


class ReattachTranslatedNodes(SphinxTransform):
    """Make the nodes that a translation brought in belong to this page's document.

    Sphinx's ``Locale`` transform (priority 20) parses each msgstr as a small document
    of its own and moves its nodes into the page; they keep a reference to that small
    document (``node.document``), whose settings hold the build environment. Pickled
    with the page's doctree, every translated paragraph then carries a copy of the
    environment: the chapters' doctrees grew from 0.2 MB to 1-3 MB, and each
    ``{numref}`` (which unpickles its target's doctree) took 0.5 s. Pointing them back
    at the page's document removes both.
    """

    default_priority = 21

    def apply(self, **kwargs: Any) -> None:
        if not self.config.language or self.config.language == "en":
            return
        document = self.document
        for node in document.findall():  # elements and their Text nodes
            if getattr(node, "_document", None) not in (None, document):
                node.document = document


# --------------------------------------------------------------------------------------
# The toc's part captions
# --------------------------------------------------------------------------------------


class TranslateTocCaptions(SphinxTransform):
    """Translate the captions of the toctrees that sphinx-external-toc inserted (priority 100)."""

    default_priority = 150

    def apply(self, **kwargs: Any) -> None:
        config = self.config
        if not config.language or config.language == "en" or not config.locale_dirs:
            return
        toctrees = [n for n in self.document.findall(addnodes.toctree) if n.get("caption")]
        if not toctrees:
            return
        textdomain = docname_to_domain(self.env.docname, config.gettext_compact)
        dirs = [os.path.join(self.env.srcdir, d) for d in config.locale_dirs]
        catalog, has_catalog = init_locale(dirs, config.language, textdomain)
        if not has_catalog:
            return
        for node in toctrees:
            translated = catalog.gettext(node["caption"])
            if translated and translated != node["caption"]:
                node["caption"] = translated
                node["rawcaption"] = translated


# --------------------------------------------------------------------------------------
# Each page: the switch, the alternates, the shared MathJax
# --------------------------------------------------------------------------------------


def _page_alternates(app, pagename: str, templatename: str, context: dict, doctree: nodes.document | None) -> None:
    """The switch's links and the hreflang alternates (before the theme drops templates that render empty)."""
    config = app.config
    editions: dict[str, str] = dict(config.i18n_editions)
    language = config.language or "en"
    if language not in editions or app.builder.format != "html":
        return
    uri = app.builder.get_target_uri(pagename)
    if not uri.endswith(".html"):
        return
    alts = alternates(uri, language, editions, dict(config.i18n_edition_names))
    context["i18n_alternates"] = alts
    links = [f'<link rel="alternate" hreflang="{a["hreflang"]}" href="{a["href"]}" />' for a in alts]
    default = next((a for a in alts if a["language"] == X_DEFAULT), None)
    if default:
        links.append(f'<link rel="alternate" hreflang="x-default" href="{default["href"]}" />')
    context["metatags"] = context.get("metatags", "") + "\n" + "\n".join(links) + "\n"


def _shared_mathjax(app, pagename: str, templatename: str, context: dict, doctree: nodes.document | None) -> None:
    """One MathJax for the whole site: a translated edition loads the English edition's."""
    config = app.config
    editions: dict[str, str] = dict(config.i18n_editions)
    language = config.language or "en"
    if language not in editions or app.builder.format != "html":
        return
    up = edition_root(language, editions)
    mathjax = f"_static/{config.mathjax_path}" if config.mathjax_path and "://" not in config.mathjax_path else None
    if up and mathjax and config.i18n_share_mathjax:
        scripts = context.get("script_files") or []
        for i, js in enumerate(scripts):
            if os.fspath(getattr(js, "filename", js) or "") == mathjax:
                scripts[i] = type(js)(up + mathjax, priority=js.priority, **js.attributes)


# --------------------------------------------------------------------------------------
# The cost of translating: one MyST parse per message
# --------------------------------------------------------------------------------------


def _cheaper_myst_documents() -> None:
    """Stop MyST building a throw-away docutils document for every parse.

    Sphinx parses each translated message as a small document of its own (about 1,700 in
    the zh_CN edition). For each, myst-parser's renderer evaluates
    ``options.get("document", make_document())``: the default is built even though a
    document is always passed, and ``make_document`` builds docutils' default settings
    from scratch (an ``OptionParser`` with every option): a quarter of the zh_CN build's
    CPU. Here ``make_document`` reuses one set of default settings, copied for each
    document, which is what docutils would have built anyway.
    """
    import copy
    import functools
    import inspect

    try:
        from docutils.frontend import get_default_settings
        from docutils.utils import new_document
        from myst_parser.mdit_to_docutils import base
    except ImportError:  # another myst-parser or docutils: keep theirs
        return
    if getattr(base.make_document, "_i18n_cached", False) or list(inspect.signature(base.make_document).parameters) != [
        "source_path",
        "parser_cls",
    ]:
        return
    default_parser = base.make_document.__defaults__[1] if base.make_document.__defaults__ else None
    settings_for = functools.lru_cache(maxsize=None)(get_default_settings)

    def make_document(source_path="notset", parser_cls=default_parser):  # type: ignore[no-untyped-def]
        return new_document(source_path, settings=copy.copy(settings_for(parser_cls)))

    make_document._i18n_cached = True  # type: ignore[attr-defined]
    base.make_document = make_document


def setup(app) -> dict[str, Any]:
    _cheaper_myst_documents()
    app.add_config_value("i18n_editions", DEFAULT_EDITIONS, "html", types={dict})
    app.add_config_value("i18n_edition_names", DEFAULT_NAMES, "html", types={dict})
    app.add_config_value("i18n_share_mathjax", True, "html", types={bool})
    app.connect("config-inited", _configure, priority=900)
    app.add_css_file("i18n-switch.css")
    app.add_transform(ReattachTranslatedNodes)
    app.add_transform(TranslateTocCaptions)
    # Before pydata-sphinx-theme renders the header's templates to drop the empty ones (500).
    app.connect("html-page-context", _page_alternates, priority=400)
    # After sphinx.ext.mathjax added its script (500) and before dedupe_inline_scripts (900).
    app.connect("html-page-context", _shared_mathjax, priority=850)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
