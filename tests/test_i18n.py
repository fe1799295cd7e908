"""The Chinese edition's catalogs (issue 15): in step with the English, markup intact, complete.

What is checked, without building the site (``tests/test_site.py`` builds both editions
and checks the language switch, ``<html lang>``, the interface strings and Chinese
search in the browser):

* every page of ``_toc.yml`` has its catalog in ``locales/zh_CN/LC_MESSAGES/`` and no
  catalog belongs to no page;
* the catalogs are in step with the English: a fresh gettext extraction
  (``tools/i18n.py extract``) gives exactly the messages the catalogs hold, and no
  catalog keeps obsolete (``#~``) messages. When it fails, run ``make i18n-update``;
* display maths (and code) never reaches a catalog (``_ext/i18n_untranslatable.py``);
* every translation keeps its inline maths, inline code, ``{ref}``/``{numref}``/``{doc}``
  targets and link targets byte for byte (``tools/i18n.py check``), and GNU ``msgfmt``
  accepts every catalog when it is installed;
* the interface catalogs (``sphinx.po``, ``booktheme.po``) are complete; the edition's
  settings (``edition.yml``) and jieba's user dictionary are there, and jieba is
  installed and keeps the course's terms whole;
* completeness: no message untranslated or fuzzy (``make i18n-update`` lists what is left after
  the English changed).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
import yaml

from tools.toc import resolve_entry, toc_entries

ROOT = Path(__file__).resolve().parent.parent


def _load_i18n():
    spec = importlib.util.spec_from_file_location("_i18n_tool", ROOT / "tools" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


i18n = _load_i18n()


def _toc_sources() -> list[Path]:
    paths = []
    for entry in toc_entries(ROOT / "_toc.yml"):
        path = resolve_entry(entry)
        assert path is not None, f"_toc.yml names {entry!r}, but there is no such page"
        paths.append(path)
    return paths


def _toc_docnames() -> list[str]:
    return [p.relative_to(ROOT).with_suffix("").as_posix() for p in _toc_sources()]


def _msgids(path: Path) -> set[str]:
    """The live (not obsolete) messages of a catalog or template; the header and empty ids left out."""
    return {e.msgid for e in polib.pofile(str(path)) if not e.obsolete and e.msgid}


# --------------------------------------------------------------------------------------
# The checker itself
# --------------------------------------------------------------------------------------


def test_markup_check_catches_changed_maths_code_and_references() -> None:
    english = (
        "Layer $l$ reads `h[l-1]` (see {numref}`fig-02-stack` and {doc}`Chapter 6 <06_vanishing>`), "
        "as [the docs](https://pytorch.org/docs) say: $W_{hh}^{(l)}$."
    )
    good = (
        "第 $l$ 层读取 `h[l-1]`（见 {numref}`fig-02-stack` 和 {doc}`第 6 章 <06_vanishing>`），"
        "正如[文档](https://pytorch.org/docs)所说：$W_{hh}^{(l)}$。"
    )
    assert i18n.markup_problems(english, good) == []
    # the order may change
    assert i18n.markup_problems("$a$ then $b$", "先 $b$ 后 $a$") == []
    # each kind of damage is caught
    assert i18n.markup_problems(english, good.replace("$W_{hh}^{(l)}$", "$W_{hh}^{l}$"))
    assert i18n.markup_problems(english, good.replace("`h[l-1]`", "`h[l - 1]`"))
    assert i18n.markup_problems(english, good.replace("`h[l-1]`", "h[l-1]"))
    assert i18n.markup_problems(english, good.replace("{numref}`fig-02-stack`", "图 2"))
    assert i18n.markup_problems(english, good.replace("<06_vanishing>", "<06_消失>"))
    assert i18n.markup_problems(english, good.replace("https://pytorch.org/docs", "https://pytorch.org/cn"))
    assert i18n.markup_problems("one $x$", "一个 $x$ 和 $y$")
    # braces inside inline code are code, not a role; a $ inside code is not maths
    assert i18n.markup_tokens("`weight_ih_l{k}` and `$HOME`") == {"`weight_ih_l{k}`": 1, "`$HOME`": 1}
    assert (
        i18n.markup_problems(
            "one `bias_ih_l{k}` and one `bias_hh_l{k}` per layer", "每层一个 `bias_ih_l{k}` 和一个 `bias_hh_l{k}`"
        )
        == []
    )
    # a translation that markdown reads as a list (the heading "1. Weights ...") is dropped by Sphinx
    assert i18n.markup_problems("1. Weights stored as", "1. 权重存为")
    assert i18n.markup_problems("1. Weights stored as", "1\\. 权重存为") == []


def test_english_words_leave_out_maths_and_code() -> None:
    assert (
        i18n.english_words("The state $h_t^{(l)}$ of `nn.RNN` has {numref}`fig-x` three words") == 6
    )  # The state of has three words


# --------------------------------------------------------------------------------------
# The catalogs
# --------------------------------------------------------------------------------------


def test_every_page_has_one_catalog() -> None:
    pages = set(_toc_docnames())
    catalogs = {i18n.page_of(p) for p in i18n.catalogs()}
    assert not pages - catalogs, f"pages without a catalog (run `make i18n-update`): {sorted(pages - catalogs)}"
    assert not catalogs - pages, (
        f"catalogs of no page in _toc.yml (delete them, or their page came back "
        f"under another name): {sorted(catalogs - pages)}"
    )


def test_catalogs_in_step_with_the_english(tmp_path: Path) -> None:
    """A fresh extraction gives exactly the catalogs' messages: the English did not change behind them."""
    out = tmp_path / "gettext"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "i18n.py"), "extract", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"gettext extraction failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    templates = {p.relative_to(out).with_suffix("").as_posix(): p for p in out.rglob("*.pot")}
    assert templates, f"the extraction wrote no templates in {out}"
    problems = []
    for po in i18n.catalogs():
        page = i18n.page_of(po)
        if page not in templates:
            continue  # test_every_page_has_one_catalog reports it
        want, have = _msgids(templates[page]), _msgids(po)
        if want - have:
            problems.append(
                f"{page}: {len(want - have)} new English messages not in the catalog, e.g. "
                f"{sorted(want - have)[0][:100]!r}"
            )
        if have - want:
            problems.append(
                f"{page}: {len(have - want)} messages the English no longer has, e.g. {sorted(have - want)[0][:100]!r}"
            )
        obsolete = [e for e in polib.pofile(str(po)) if e.obsolete]
        if obsolete:
            problems.append(f"{page}: {len(obsolete)} obsolete (#~) messages: reuse what helps, then delete them")
    assert not problems, (
        "the catalogs are out of step with the English pages; run `make i18n-update`, then "
        "translate what it lists:\n" + "\n".join(problems)
    )


def _display_maths() -> list[str]:
    """The body of every display equation ($$ ... $$ or a bare amsmath environment) in the pages."""
    bodies = []
    for source in _toc_sources():
        if source.suffix == ".ipynb":
            cells = json.loads(source.read_text(encoding="utf8"))["cells"]
            text = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        else:
            text = source.read_text(encoding="utf8")
        bodies += [m.group(1).strip() for m in re.finditer(r"\$\$(.+?)\$\$", text, re.DOTALL)]
        bodies += [
            m.group(0).strip() for m in re.finditer(r"^\\begin\{(\w+\*?)\}.+?\\end\{\1\}", text, re.DOTALL | re.M)
        ]
    return [b for b in bodies if b]


def test_no_display_maths_in_the_catalogs() -> None:
    equations = _display_maths()
    assert len(equations) > 50, "found almost no display maths in the pages: the test's pattern is broken"
    leaked = []
    for po in i18n.catalogs():
        for msgid in _msgids(po):
            stripped = msgid.strip()
            if stripped in equations or "$$" in msgid or stripped.startswith("\\begin{"):
                leaked.append(f"{i18n.page_of(po)}: {stripped[:80]!r}")
    assert not leaked, "display maths in the catalogs (_ext/i18n_untranslatable.py keeps it out):\n" + "\n".join(leaked)


def test_translations_keep_maths_code_and_references() -> None:
    problems = []
    for po in i18n.catalogs() + i18n.interface_catalogs():
        problems += i18n.read_catalog(po).problems
    assert not problems, (
        "translations that changed the English's maths, code, references or links "
        "(`tools/i18n.py check FILE` shows the same):\n" + "\n".join(problems[:60])
    )


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt is not installed")
def test_msgfmt_accepts_every_catalog() -> None:
    problems = []
    for po in i18n.catalogs() + i18n.interface_catalogs():
        problems += i18n.msgfmt_problems(po)
    assert not problems, "\n".join(problems)


def test_catalogs_are_complete() -> None:
    reports = [i18n.read_catalog(p) for p in i18n.catalogs()]
    todo = [r for r in reports if r.untranslated or r.fuzzy]
    if not todo:
        return
    untranslated = sum(r.untranslated for r in todo)
    fuzzy = sum(r.fuzzy for r in todo)
    words = sum(r.untranslated_words for r in todo)
    detail = ", ".join(f"{i18n.page_of(r.path)} ({r.untranslated} + {r.fuzzy} fuzzy)" for r in todo)
    message = (
        f"{untranslated} untranslated and {fuzzy} fuzzy messages ({words} English words) of "
        f"{sum(r.messages for r in reports)}: {detail}"
    )
    pytest.fail(f"the zh_CN edition is incomplete: {message}; `tools/i18n.py report` lists them")


# --------------------------------------------------------------------------------------
# What gettext cannot translate: interface strings, settings, search
# --------------------------------------------------------------------------------------

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_interface_catalogs_are_complete() -> None:
    names = {p.name for p in i18n.interface_catalogs()}
    assert names == set(i18n.INTERFACE_CATALOGS), f"missing interface catalogs: {set(i18n.INTERFACE_CATALOGS) - names}"
    for po in i18n.interface_catalogs():
        report = i18n.read_catalog(po)
        assert report.messages and report.complete, f"{po.name}: {report}"
        entries = [e for e in polib.pofile(str(po)) if e.msgid]
        assert all(CJK.search(e.msgstr) or e.msgstr == e.msgid for e in entries), f"{po.name}: a msgstr is not Chinese"


def test_edition_settings_are_chinese() -> None:
    settings = yaml.safe_load(i18n.EDITION_SETTINGS.read_text(encoding="utf8"))
    for key in ("title", "search_bar_text"):
        assert CJK.search(settings.get(key) or ""), f"{i18n.EDITION_SETTINGS.name}: {key} is not Chinese"
    overrides = i18n.edition_overrides()
    assert overrides["language"] == "zh_CN"
    assert overrides["html_title"] == settings["title"]
    assert Path(overrides["html_search_options"]["dict"]).is_file()


SEARCH_TERMS = ("循环", "堆叠", "隐藏状态", "反向传播", "梯度消失")


def test_jieba_keeps_the_course_terms_whole() -> None:
    """Without jieba the zh_CN build succeeds with no Chinese word in its index; without the
    dictionary, jieba cuts 隐藏状态, 反向传播 and 梯度消失 in two and search cannot find them."""
    import logging

    jieba = pytest.importorskip("jieba", reason="jieba is pinned in requirements.txt: pip install -r requirements.txt")
    jieba.setLogLevel(logging.WARNING)
    lines = [line.split() for line in i18n.JIEBA_DICT.read_text(encoding="utf8").splitlines() if line.strip()]
    assert all(1 <= len(parts) <= 3 and (len(parts) < 2 or parts[1].isdigit()) for parts in lines), (
        "jieba_dict.txt: one 'word [frequency] [tag]' per line"
    )
    entries = [parts[0] for parts in lines]
    hiding = [(w, v) for w in entries for v in (*entries, *SEARCH_TERMS) if len(v) > 3 and v != w and v in w]
    assert not hiding, (
        f"jieba_dict.txt: an entry hides a longer term from search (only 2-3 characters are kept): {hiding}"
    )
    tokenizer = jieba.Tokenizer()
    tokenizer.load_userdict(str(i18n.JIEBA_DICT))
    for term in SEARCH_TERMS:
        words = set(tokenizer.cut_for_search(f"多层网络的{term}问题"))
        assert term in words, f"jieba splits {term!r} ({sorted(words)}): add it to {i18n.JIEBA_DICT.name}"
    assert "反向传播" in set(tokenizer.cut_for_search("截断的随时间反向传播"))
