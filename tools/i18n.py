"""The Chinese (zh_CN) edition of the book: catalogs, checks and the build.

The English pages are the source. Sphinx's gettext builder extracts every
translatable text of every page (markdown cells, ``intro.md``, admonitions,
exercises; never code cells, outputs or display maths:
``_ext/i18n_untranslatable.py``) into one template per page; ``sphinx-intl``
merges the templates into the catalogs that translators fill,
``locales/zh_CN/LC_MESSAGES/<page>.po``. Building with ``language=zh_CN`` then
replaces each message by its translation (an untranslated or fuzzy message
stays English).

Usage (from the repository root; ``make i18n-update`` runs ``update``)::

    python tools/i18n.py extract          # gettext build: _build/gettext/**/*.pot
    python tools/i18n.py update           # extract, then sphinx-intl update; prints the report
    python tools/i18n.py report           # messages, words, translated/fuzzy/untranslated/obsolete per catalog
    python tools/i18n.py check [PO ...]   # format and markup checks (default: every catalog);
                                          #   --complete also fails on untranslated/fuzzy/obsolete
    python tools/i18n.py build [--out D]  # the zh_CN site (-W -n --keep-going) in D/html (default
                                          #   _build/zh_CN), copied to _build/html/zh_CN

The checks on a translated message (``check``; ``tests/test_i18n.py`` runs them
on every catalog): its inline maths (``$...$``), inline code (`` `...` ``),
``{ref}``/``{numref}``/``{doc}``/``{eq}`` roles and link targets are byte-identical
to the English (as multisets: the order may change), and the catalog parses.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = "zh_CN"
LOCALES = ROOT / "locales"
CATALOGS = LOCALES / LANGUAGE / "LC_MESSAGES"
GETTEXT_OUT = ROOT / "_build" / "gettext"
ZH_OUT = ROOT / "_build" / LANGUAGE
ENGLISH_HTML = ROOT / "_build" / "html"
# Settings of the edition that gettext cannot translate (the title and the search box
# come from _config.yml), and the jieba user dictionary of course terms for search.
EDITION_SETTINGS = LOCALES / LANGUAGE / "edition.yml"
JIEBA_DICT = LOCALES / LANGUAGE / "jieba_dict.txt"
# Catalogs of interface strings, maintained by hand (not extracted from a page):
# sphinx.po (Sphinx and pydata-sphinx-theme), booktheme.po (sphinx-book-theme).
INTERFACE_CATALOGS = ("sphinx.po", "booktheme.po")

# --------------------------------------------------------------------------------------
# Markup that must survive translation unchanged
# --------------------------------------------------------------------------------------

# A MyST role: {name}`content`. The content of a cross-reference may carry its own
# title ("Chapter 6 <06_vanishing_exploding>"), which is translated; the target is not.
ROLE = r"(?P<role>\{(?P<name>[a-zA-Z][\w:+-]*)\}`(?P<body>[^`]*)`)"
# Inline code: one or more backticks, the same number to close.
CODE = r"(?P<code>(?P<ticks>`+).+?(?P=ticks))"
# Inline maths: $...$, not $$ (display maths is not extracted at all), not \$.
MATH = r"(?P<math>(?<![\\$])\$(?!\$)(?:\\.|[^$\\])+?\$(?!\$))"
# One scan, left to right, so that whichever starts first wins: `l{k}` inside a code
# span is code, not a role; a $ inside code is not maths.
MARKUP = re.compile("|".join((ROLE, CODE, MATH)), re.DOTALL)
XREF_ROLES = {"ref", "numref", "doc", "eq", "term", "download", "prf:ref", "cite", "footcite"}
# Markdown link targets: [text](target) and autolinks <https://...>.
LINK = re.compile(r"\]\((?P<target>[^()\s]*(?:\([^()]*\)[^()\s]*)*)(?:\s+\"[^\"]*\")?\)|<(?P<auto>https?://[^>\s]+)>")


def _xref_target(body: str) -> str:
    match = re.fullmatch(r"(?s).*<(?P<target>[^<>]+)>\s*", body)
    return match.group("target") if match else body


def markup_tokens(text: str) -> Counter:
    """The pieces of ``text`` that a translation must keep byte for byte."""
    tokens: Counter = Counter()

    def take(m: re.Match) -> str:
        if m.group("role"):
            name, body = m.group("name"), m.group("body")
            if name in XREF_ROLES and "<" in body:
                tokens[f"{{{name}}}<{_xref_target(body)}>"] += 1  # the title is translated, the target kept
            else:
                tokens[m.group(0)] += 1  # a bare cross-reference, or any other role ({math}, {kbd}), whole
        else:
            tokens[m.group(0)] += 1
        return " "

    rest = MARKUP.sub(take, text)
    for m in LINK.finditer(rest):
        tokens["link " + (m.group("target") or m.group("auto") or "")] += 1
    return tokens


# A msgstr is parsed as markdown on its own, and Sphinx only uses it if it comes out as one
# paragraph: one that starts like a list item, a heading, a quote, a fence or a table row
# ("1. 权重", the translation of the heading "1. Weights ...") is dropped without a warning,
# and the English stays. Escaping the first character ("1\\. 权重") keeps it a paragraph.
BLOCK_START = re.compile(r"^ {0,3}(?:\d{1,9}[.)](?:\s|$)|[-*+](?:\s|$)|#{1,6}(?:\s|$)|>|```|~~~|\|)")


def markup_problems(msgid: str, msgstr: str) -> list[str]:
    """What a translation changed of the English message's maths, code, roles and links."""
    want, got = markup_tokens(msgid), markup_tokens(msgstr)
    problems = []
    if msgstr != msgid and BLOCK_START.match(msgstr):  # an identical msgstr is never parsed
        problems.append(
            f"starts like a list item, heading or quote ({msgstr[:12]!r}): Sphinx drops such a "
            "translation and shows the English; escape it, e.g. '1\\. ' for '1. '"
        )
    for token in sorted((want - got).keys()):
        problems.append(f"missing or altered: {token}")
    for token in sorted((got - want).keys()):
        problems.append(f"not in the English: {token}")
    return problems


# --------------------------------------------------------------------------------------
# Catalogs
# --------------------------------------------------------------------------------------

WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")


def english_words(text: str) -> int:
    """Words of an English message, with its maths and code left out (they are not translated)."""
    text = MARKUP.sub(" ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return len(WORD.findall(text))


def catalogs(folder: Path = CATALOGS) -> list[Path]:
    """The pages' catalogs (one per page of _toc.yml), not the interface ones."""
    return sorted(p for p in folder.rglob("*.po") if p.relative_to(folder).as_posix() not in INTERFACE_CATALOGS)


def interface_catalogs(folder: Path = CATALOGS) -> list[Path]:
    return [folder / name for name in INTERFACE_CATALOGS if (folder / name).is_file()]


def page_of(po: Path, folder: Path = CATALOGS) -> str:
    """``chapters/01_one_layer`` for ``.../LC_MESSAGES/chapters/01_one_layer.po``."""
    return po.relative_to(folder).with_suffix("").as_posix()


@dataclass
class CatalogReport:
    path: Path
    messages: int = 0
    words: int = 0
    translated: int = 0
    fuzzy: int = 0
    untranslated: int = 0
    untranslated_words: int = 0
    obsolete: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.fuzzy or self.untranslated or self.obsolete)


def read_catalog(po_path: Path) -> CatalogReport:
    """Counts and markup problems of one catalog (polib)."""
    import polib  # type: ignore[import-untyped]  # no stubs (types-polib is not pinned)

    report = CatalogReport(po_path)
    try:
        po = polib.pofile(str(po_path), wrapwidth=0)
    except (OSError, ValueError) as exc:  # polib raises IOError/ValueError on a malformed file
        report.problems.append(f"{po_path}: does not parse: {exc}")
        return report
    seen: set[tuple[str | None, str]] = set()
    for entry in po:
        if entry.obsolete:
            report.obsolete += 1
            continue
        key = (entry.msgctxt, entry.msgid)
        if key in seen:
            report.problems.append(f"{po_path}: duplicate msgid {entry.msgid[:60]!r}")
        seen.add(key)
        words = english_words(entry.msgid)
        report.messages += 1
        report.words += words
        if "fuzzy" in entry.flags:
            report.fuzzy += 1
            report.untranslated_words += words
        elif not entry.msgstr:
            report.untranslated += 1
            report.untranslated_words += words
        else:
            report.translated += 1
            where = f"{po_path.relative_to(ROOT) if po_path.is_relative_to(ROOT) else po_path}:{entry.linenum}"
            for problem in markup_problems(entry.msgid, entry.msgstr):
                report.problems.append(f"{where}: {problem} (msgid {entry.msgid[:60]!r})")
            if entry.msgid.endswith("\n") != entry.msgstr.endswith("\n"):
                report.problems.append(f"{where}: msgid and msgstr differ in a trailing newline")
    return report


def msgfmt_problems(po_path: Path) -> list[str]:
    """GNU msgfmt's own check of the file's syntax and header, when msgfmt is installed."""
    msgfmt = shutil.which("msgfmt")
    if not msgfmt:
        return []
    proc = subprocess.run(
        [msgfmt, "--check-format", "--check-header", "-o", "/dev/null", str(po_path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return [f"{po_path}: msgfmt: {line}" for line in proc.stderr.splitlines() if line.strip()]
    return []


def report_table(reports: list[CatalogReport], folder: Path = CATALOGS) -> str:
    header = (
        f"{'catalog':42} {'msgs':>5} {'words':>6} {'done':>5} {'fuzzy':>5} {'todo':>5} {'todo words':>10} {'obsol':>5}"
    )
    lines = [header, "-" * len(header)]
    total = CatalogReport(folder)
    for r in reports:
        name = page_of(r.path, folder) + ".po"
        lines.append(
            f"{name:42} {r.messages:5} {r.words:6} {r.translated:5} {r.fuzzy:5} {r.untranslated:5} "
            f"{r.untranslated_words:10} {r.obsolete:5}"
        )
        for attr in ("messages", "words", "translated", "fuzzy", "untranslated", "untranslated_words", "obsolete"):
            setattr(total, attr, getattr(total, attr) + getattr(r, attr))
    lines.append("-" * len(header))
    lines.append(
        f"{'total (' + str(len(reports)) + ' catalogs)':42} {total.messages:5} {total.words:6} "
        f"{total.translated:5} {total.fuzzy:5} {total.untranslated:5} {total.untranslated_words:10} "
        f"{total.obsolete:5}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Building: the gettext templates, the zh_CN site
# --------------------------------------------------------------------------------------


def _sphinx_build(
    out: Path,
    *,
    builder: str,
    doctrees: Path,
    overrides: dict | None = None,
    config: Path = ROOT / "_config.yml",
    quiet: bool = True,
    freshenv: bool = True,
) -> int:
    """One Sphinx build through Jupyter Book's entry point (as ``jupyter-book build`` runs it)."""
    from jupyter_book.sphinx import build_sphinx

    confoverrides = {
        "external_toc_path": (ROOT / "_toc.yml").as_posix(),
        "latex_individualpages": False,
        "nitpicky": True,
        **(overrides or {}),
    }
    result = build_sphinx(
        ROOT,
        out,
        use_external_toc=True,
        noconfig=True,
        path_config=str(config),
        confoverrides=confoverrides,
        doctreedir=doctrees,
        builder=builder,
        warningiserror=True,
        keep_going=True,
        freshenv=freshenv,
        quiet=quiet,
    )
    if isinstance(result, Exception):
        print(f"{builder} build failed: {result!r}", file=sys.stderr)
        return 1
    return int(result or 0)


def extract(out: Path = GETTEXT_OUT, quiet: bool = True) -> int:
    """The gettext templates (``.pot``), one per page, in ``out``; old ones removed first."""
    if out.exists():
        # what a gettext build writes: the templates, and the static files some extensions
        # copy for any builder (sphinx-exercise's _static/exercise.css)
        others = [
            p for p in out.rglob("*") if p.is_file() and p.suffix != ".pot" and p.relative_to(out).parts[0] != "_static"
        ]
        if others:
            print(f"refusing to empty {out}: it holds more than .pot files ({others[0]})", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    status = _sphinx_build(out, builder="gettext", doctrees=out.parent / ".doctrees-gettext", quiet=quiet)
    # The builder also writes the translatable strings of the templates (ours in _ext/templates
    # and the themes') into sphinx.pot. Their Chinese is kept by hand in sphinx.po, which only
    # holds what the themes' own catalogs lack: sphinx-intl must not merge (and obsolete) it.
    (out / "sphinx.pot").unlink(missing_ok=True)
    return status


def sphinx_intl_update(pot_dir: Path = GETTEXT_OUT, locale_dir: Path = LOCALES) -> int:
    exe = Path(sys.executable).with_name("sphinx-intl")
    cmd = [
        str(exe) if exe.is_file() else "sphinx-intl",
        "update",
        "-p",
        str(pot_dir),
        "-l",
        LANGUAGE,
        "-d",
        str(locale_dir),
        "-j",
        "1",
    ]
    return subprocess.run(cmd, cwd=ROOT).returncode


def edition_overrides() -> dict:
    """The Sphinx settings of the zh_CN edition, on top of _config.yml's."""
    import yaml

    settings = yaml.safe_load(EDITION_SETTINGS.read_text(encoding="utf8")) or {}
    overrides: dict = {"language": LANGUAGE, "html_search_options": {"dict": str(JIEBA_DICT)}}
    if settings.get("title"):
        overrides["html_title"] = settings["title"]
    if settings.get("search_bar_text"):
        overrides["html_theme_options"] = {"search_bar_text": settings["search_bar_text"]}
    return overrides


def edition_inputs(config: Path = ROOT / "_config.yml") -> list[Path]:
    """The zh_CN build's inputs that Sphinx's incremental build does not track: the settings, the toc,
    the extensions and templates, the interface catalogs, the edition's settings and jieba's dictionary
    (an unchanged page would keep its old words in the search index)."""
    ext = [p for p in (ROOT / "_ext").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return [config, ROOT / "_toc.yml", EDITION_SETTINGS, JIEBA_DICT, *interface_catalogs(), *ext]


def copy_edition(html: Path, copy_to: Path) -> None:
    """Copy the built edition into the English site, without its MathJax (it loads the English site's)."""
    if copy_to.exists():
        shutil.rmtree(copy_to)
    mathjax = (html / "_static" / "mathjax").resolve()
    shutil.copytree(
        html,
        copy_to,
        symlinks=True,
        ignore=lambda folder, names: ["mathjax"] if Path(folder).resolve() == mathjax.parent else [],
    )


def build_site(
    out: Path = ZH_OUT,
    *,
    copy_to: Path | None = ENGLISH_HTML / LANGUAGE,
    quiet: bool = True,
    freshenv: bool = False,
    config: Path = ROOT / "_config.yml",
) -> int:
    """The zh_CN edition into ``out/html`` (``out/.doctrees`` beside it), then copied to ``copy_to``.

    Built into its own folder, not straight into ``_build/html/zh_CN``: myst-nb writes a
    ``jupyter_execute/`` folder beside the output folder, which would land in the English site.
    Incremental unless ``freshenv``: Sphinx re-reads a page when it or its catalog changed, and
    everything when one of :func:`edition_inputs` did (which Sphinx would not notice).
    """
    html = out / "html"
    environment = out / ".doctrees" / "environment.pickle"
    if not freshenv and environment.is_file():
        built = environment.stat().st_mtime
        freshenv = any(p.stat().st_mtime > built for p in edition_inputs(config) if p.is_file())
    status = _sphinx_build(
        html,
        builder="html",
        doctrees=out / ".doctrees",
        overrides=edition_overrides(),
        quiet=quiet,
        freshenv=freshenv,
        config=config,
    )
    if status:
        print(f"the {LANGUAGE} edition did not build (exit {status}); see the warnings above", file=sys.stderr)
        return status
    if copy_to is not None:
        copy_edition(html, copy_to)
        print(f"{LANGUAGE} edition: {copy_to / 'index.html'}")
    return 0


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    print(report_table([read_catalog(p) for p in catalogs()]))
    return 0


def all_catalogs() -> list[Path]:
    return catalogs() + interface_catalogs()


def cmd_check(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.po] or all_catalogs()
    if not paths:
        print(f"no catalogs in {CATALOGS}: run `make i18n-update`", file=sys.stderr)
        return 2
    failed = False
    for path in paths:
        report = read_catalog(path.resolve())
        problems = report.problems + msgfmt_problems(path)
        if args.complete and not report.complete:
            problems.append(
                f"{path}: incomplete: {report.untranslated} untranslated, {report.fuzzy} fuzzy, "
                f"{report.obsolete} obsolete of {report.messages} messages"
            )
        status = "ok" if not problems else "FAILED"
        print(
            f"{path}: {status}: {report.translated}/{report.messages} translated, {report.fuzzy} fuzzy, "
            f"{report.untranslated} untranslated ({report.untranslated_words} words), {report.obsolete} obsolete"
        )
        for problem in problems:
            print(f"  {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


def cmd_extract(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve() if args.out else GETTEXT_OUT
    status = extract(out, quiet=not args.verbose)
    if not status:
        print(f"templates: {len(list(out.rglob('*.pot')))} .pot files in {out}")
    return status


def cmd_update(args: argparse.Namespace) -> int:
    status = extract(quiet=not args.verbose) or sphinx_intl_update()
    if status:
        return status
    print()
    print(report_table([read_catalog(p) for p in catalogs()]))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve() if args.out else ZH_OUT
    copy_to = None if args.no_copy else (Path(args.copy_to).resolve() if args.copy_to else ENGLISH_HTML / LANGUAGE)
    config = Path(args.config).resolve() if args.config else ROOT / "_config.yml"
    return build_site(out, copy_to=copy_to, quiet=not args.verbose, freshenv=args.all, config=config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (
        ("extract", cmd_extract, "gettext templates into _build/gettext"),
        ("update", cmd_update, "extract, then sphinx-intl update, then report"),
        ("report", cmd_report, "counts per catalog"),
        ("check", cmd_check, "format and markup checks"),
        ("build", cmd_build, "the zh_CN site"),
    ):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        if name in ("extract", "update", "build"):
            p.add_argument("-v", "--verbose", action="store_true", help="show Sphinx's output")
    sub.choices["extract"].add_argument(
        "--out", help=f"where to write the templates (default {GETTEXT_OUT.relative_to(ROOT)})"
    )
    sub.choices["check"].add_argument("po", nargs="*", help="catalogs to check (default: all)")
    sub.choices["check"].add_argument(
        "--complete", action="store_true", help="also fail on untranslated, fuzzy or obsolete messages"
    )
    sub.choices["build"].add_argument("--out", help=f"build folder (default {ZH_OUT.relative_to(ROOT)})")
    sub.choices["build"].add_argument("--copy-to", help="where to copy the html (default _build/html/zh_CN)")
    sub.choices["build"].add_argument("--no-copy", action="store_true", help="do not copy the html")
    sub.choices["build"].add_argument("--all", action="store_true", help="fresh environment: re-read every page")
    sub.choices["build"].add_argument("--config", help="another _config.yml (default: the book's)")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
