"""The student edition of the site (``tools/coursework.py site``): built with warnings as
errors, and its HTML holds no solution text: no exercise solution, no nbgrader solution or
hidden-test code. A positive control checks that the same text extraction does find the
exercises on each page.

Its own module so that pytest-xdist (``--dist loadscope``) runs it beside, not after, the
other coursework tests.
"""

from __future__ import annotations

import html.parser
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import coursework as cw
from tools.toc import resolve_entry, toc_entries

ROOT = Path(__file__).resolve().parent.parent

PYTHON = sys.executable
TOOL = ROOT / "tools" / "coursework.py"
SOLUTIONS = cw.solution_notebooks()

pytestmark = pytest.mark.skipif(not SOLUTIONS, reason="no coursework notebooks in chapters/coursework")


# --------------------------------------------------------------------------------------
# Slow: the student edition of the site
# --------------------------------------------------------------------------------------


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def normalize(text: str) -> str:
    text = text.replace("\u2026", "...").replace("\u00a0", " ")
    text = re.sub("[\u2018\u2019\u201c\u201d'\"]", "", text)
    text = re.sub("[\u2013\u2014]|-{2,3}", "-", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def html_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text(encoding="utf8"))
    return normalize("".join(parser.parts))


def directive_bodies(markdown: str, name: str) -> list[str]:
    """The bodies of ```{name} (or :::{name}) blocks, options dropped."""
    bodies, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(`{3,}|:{3,})\{" + name + r"\}", lines[i].strip())
        i += 1
        if not m:
            continue
        fence, body = m.group(1), []
        while i < len(lines) and not re.fullmatch(re.escape(fence[0]) + f"{{{len(fence)},}}", lines[i].strip()):
            body.append(lines[i])
            i += 1
        bodies.append("\n".join(ln for ln in body if not re.match(r"^:\w[\w-]*:", ln)))
    return bodies


def plain_fragments(body: str, min_words: int = 6) -> list[str]:
    """Runs of >= min_words plain words from markdown (math, roles, code blocks and markup cut out)."""
    body = re.sub(r"^(`{3,}|~{3,}).*?^\1", " \x00 ", body, flags=re.S | re.M)  # code blocks
    body = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", " \x00 ", body, flags=re.S)  # math
    body = re.sub(r"\{[\w:-]+\}`[^`]*`", " \x00 ", body)  # roles
    body = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", body)  # links -> text
    body = re.sub(r"[*`]|^\s*[-+>] |^\s*\d+\. ", "", body, flags=re.M)
    out = []
    for segment in re.split(r"\x00|\n\s*\n|[()]", body):
        words = segment.split()
        if len(words) >= min_words and not any(ch in segment for ch in "\\{}|<>_#"):
            out.append(normalize(" ".join(words)))
    return out


def toc_pages(toc: Path) -> list[Path]:
    """The book's pages, as tools.toc reads them."""
    return [p for p in (resolve_entry(e) for e in toc_entries(toc)) if p is not None]


def page_markdown(path: Path) -> str:
    if path.suffix == ".md":
        return path.read_text(encoding="utf8")
    return "\n\n".join(c.source for c in cw.read_notebook(path).cells if c.cell_type == "markdown")


@pytest.fixture(scope="module")
def student_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [PYTHON, str(TOOL), "site", "--out", str(out), "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "WARNING" not in result.stderr, result.stderr[-5000:]
    return out / "html"


@pytest.mark.slow
def test_student_site_has_no_solution_text(student_site):
    html_files = sorted(student_site.rglob("*.html"))
    assert html_files
    assert not (student_site / "_sources").exists(), "page sources (with solutions) copied into the site"
    for path in [*html_files, *student_site.rglob("*.js"), *student_site.rglob("*.txt")]:
        raw = path.read_text(encoding="utf8", errors="replace")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "solution-content"):
            assert marker not in raw, f"{marker!r} in {path.relative_to(student_site)}"

    checked = found_exercises = 0
    for page in toc_pages(ROOT / "_toc.yml"):
        out = student_site / page.relative_to(ROOT).with_suffix(".html")
        assert out.is_file(), f"{out} not built"
        text = html_text(out)
        md = page_markdown(page)
        for body in directive_bodies(md, "solution"):
            for fragment in plain_fragments(body):
                checked += 1
                assert fragment not in text, f"solution text on {out.name}: {fragment!r}"
        # positive control: the same extraction finds the exercises' text on the page
        exercise_fragments = [f for body in directive_bodies(md, "exercise") for f in plain_fragments(body)]
        found = sum(f in text for f in exercise_fragments)
        assert found >= 0.8 * len(exercise_fragments), (out.name, [f for f in exercise_fragments if f not in text])
        found_exercises += found
        if page.resolve() in {p.resolve() for p in SOLUTIONS}:
            solution = cw.read_notebook(page)
            student_text = "\n".join(c.source for c in cw.make_student(page).cells)
            for line in cw.solution_code_lines(solution, student_text):
                assert normalize(line) not in text, f"solution code on {out.name}: {line!r}"
            assert "# your code here raise notimplementederror()" in text  # the stubs' code cells
    assert checked > 0 and found_exercises > 0, (checked, found_exercises)
