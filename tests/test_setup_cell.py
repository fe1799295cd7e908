"""The setup cell that lets a chapter run on Colab (tools/setup_cell.py), tested offline.

* Every chapter starts (first code cell) with the same setup cell, generated from the one
  setting ``repository.url``/``branch`` of ``_config.yml``, hidden from the site.
* Run where `rnnlib` is missing, the cell asks pip for the package from that repository
  (without dependencies); where `rnnlib` is importable (the course's own environment, and
  so nbval) it runs nothing.
* The tool leaves an up-to-date notebook untouched, numbers execution counts as a re-run
  would when it inserts the cell, and refuses to overwrite uncommitted work without --force.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from unittest import mock

import nbformat
import pytest

from tools import setup_cell

CHAPTERS = setup_cell.chapters()


def test_every_chapter_starts_with_the_generated_setup_cell() -> None:
    assert len(CHAPTERS) >= 9
    source = setup_cell.setup_source(*setup_cell.repository())
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert first.source == source, path
        assert {"course-setup", "remove-cell"} <= set(first.metadata.get("tags", [])), path
        assert first.execution_count == 1 and first.outputs == [], path


def test_the_check_mode_agrees() -> None:
    assert setup_cell.main(["--check"]) == 0


def _run_cell(found: bool) -> list[list[str]]:
    calls: list[list[str]] = []
    source = setup_cell.setup_source("https://example.org/course", "dev")
    spec = importlib.util.find_spec("rnnlib") if found else None
    with (
        mock.patch.object(importlib.util, "find_spec", return_value=spec),
        mock.patch.object(subprocess, "check_call", side_effect=lambda cmd: calls.append(cmd)),
    ):
        exec(compile(source, "<setup cell>", "exec"), {})
    return calls


def test_where_rnnlib_is_missing_the_cell_installs_it_from_the_configured_repository() -> None:
    (cmd,) = _run_cell(found=False)
    assert cmd[1:5] == ["-m", "pip", "install", "--quiet"] and "--no-deps" in cmd
    assert cmd[-1] == "rnnlib @ git+https://example.org/course@dev"


def test_where_rnnlib_is_importable_the_cell_does_nothing() -> None:
    assert _run_cell(found=True) == []


def test_the_repository_setting_must_be_an_https_url(tmp_path: Path) -> None:
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: git@github.com:x/y\n")
    with pytest.raises(ValueError, match="https"):
        setup_cell.repository(config)


def test_inserting_the_cell_renumbers_execution_counts_as_a_rerun_would() -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title"),
            nbformat.v4.new_code_cell(
                "1 + 1",
                execution_count=1,
                outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)],
            ),
            nbformat.v4.new_code_cell("print(3)", execution_count=2),
        ]
    )
    assert setup_cell.apply(nb, "pass")
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2, 3]
    assert nb.cells[2].outputs[0]["execution_count"] == 2
    assert not setup_cell.apply(nb, "pass")  # up to date: untouched
    assert setup_cell.apply(nb, "pass  # new url")  # a changed setting rewrites only that cell
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2, 3]


def test_uncommitted_work_is_not_overwritten_without_force(monkeypatch: pytest.MonkeyPatch) -> None:
    path = CHAPTERS[0]
    monkeypatch.setattr(setup_cell, "setup_source", lambda url, branch: "pass  # another repository")
    monkeypatch.setattr(setup_cell, "unsaved_work", lambda paths: list(paths))
    written: list[Path] = []
    monkeypatch.setattr(setup_cell.nbformat, "write", lambda nb, p: written.append(p))
    assert setup_cell.main([]) == 2 and written == []
    assert setup_cell.main(["--force"]) == 0 and path in written
