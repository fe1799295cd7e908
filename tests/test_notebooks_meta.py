"""Checks on the course notebooks that nbval itself does not make.

nbval re-runs each notebook and compares outputs, but it silently passes a
code cell that was never executed (no stored output to compare), a stored
memory address (`<object at 0x7f...>`) makes it fail on every run, and it
ignores a trailing `;` that hides a cell's result (nbval issue #194). These
tests catch all three, and keep _toc.yml and chapters/ in step.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools.toc import resolve_entry, toc_entries

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
TOC = ROOT / "_toc.yml"

MEMORY_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]{4,}")


def chapter_notebooks() -> list[Path]:
    return sorted(p for p in CHAPTERS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


NOTEBOOKS = chapter_notebooks()
NOTEBOOK_IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]


def code_cells(path: Path):
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def test_toc_has_root_and_entries_exist():
    entries = toc_entries()
    assert entries, "_toc.yml lists no files"
    assert entries[0] == "chapters/intro"
    missing = [e for e in entries if resolve_entry(e) is None]
    assert not missing, f"_toc.yml entries with no .md/.ipynb file: {missing}"


def test_every_chapter_notebook_is_in_toc():
    listed = {resolve_entry(e) for e in toc_entries()}
    unlisted = [str(p.relative_to(ROOT)) for p in NOTEBOOKS if p.resolve() not in listed]
    assert not unlisted, f"notebooks in chapters/ missing from _toc.yml: {unlisted}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_every_code_cell_was_executed(path):
    never_run = [i for i, c in enumerate(code_cells(path)) if c.execution_count is None]
    assert not never_run, (
        f"code cells (0-based, among non-empty code cells) never executed: {never_run}; run `make execute`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_execution_counts_are_a_clean_top_to_bottom_run(path):
    counts = [c.execution_count for c in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"execution counts {counts} are not 1..n in order; run `make execute`"
    )


def _output_texts(output):
    if output.output_type == "stream":
        yield output.text
    elif output.output_type == "error":
        yield output.evalue
        yield from output.traceback
    else:  # execute_result, display_data
        for mime, value in output.get("data", {}).items():
            if not mime.startswith("image/"):
                yield value if isinstance(value, str) else str(value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_no_memory_addresses_in_outputs(path):
    offenders = []
    for i, cell in enumerate(code_cells(path)):
        for output in cell.get("outputs", []):
            for text in _output_texts(output):
                match = MEMORY_ADDRESS.search(text)
                if match:
                    offenders.append((i, match.group()))
    assert not offenders, (
        f"outputs contain memory addresses, which change on every run and break nbval (cell index, match): {offenders}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_no_trailing_semicolon_to_hide_output(path):
    # Jupyter hides the result of `plt.plot(...);` but nbval 0.11 runs cells
    # with store_history=False, which defeats the `;`, so the test run gets an
    # extra output and fails. Write `_ = plt.plot(...)` or end with plt.show().
    offenders = []
    for i, cell in enumerate(code_cells(path)):
        lines = [ln.split("#", 1)[0].rstrip() for ln in cell.source.splitlines()]
        lines = [ln for ln in lines if ln]
        if lines and lines[-1].endswith(";"):
            offenders.append(i)
    assert not offenders, (
        f"code cells (0-based, among non-empty code cells) ending in ';': {offenders}; "
        "nbval ignores the ';' (use `_ = ...` instead)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_kernelspec_is_python3(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
