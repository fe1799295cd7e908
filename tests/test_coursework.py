"""The coursework tooling (tools/coursework.py): student versions, the local grader, the points table.

* The solution notebooks ``chapters/coursework/A*.ipynb`` score full marks with the local
  grader; their student versions (nbgrader's preprocessors), untouched, score zero on
  every task and the grader reports every task; the CLI prints a table, writes JSON and
  identifies the assignment.
* ``student`` never overwrites a file it did not generate, nor one changed since it was
  generated, unless ``--force``; it never writes inside ``chapters/``.
* The points table in ``chapters/instructor_guide.md`` is the one the notebooks' metadata
  gives.

Elsewhere: hostile and broken submissions and the sandbox (tests/test_coursework_robustness.py),
the nbgrader round trip (tests/test_nbgrader_round_trip.py), the galleries of hostile and of
correct-but-different submissions (tests/test_grader_security.py, tests/test_grader_fairness.py),
the student edition of the site (tests/test_student_site.py). Gradings are shared through
``graded`` (one grading per content and options in a process).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tools import coursework as cw

ROOT = Path(__file__).resolve().parent.parent

PYTHON = sys.executable
TOOL = ROOT / "tools" / "coursework.py"
FIXTURES = ROOT / "tests" / "fixtures" / "coursework"
A0 = FIXTURES / "A0_fixture.ipynb"
SOLUTIONS = cw.solution_notebooks()
A1 = cw.SOURCE_DIR / "A1_rnn_step.ipynb"
GUIDE = ROOT / "chapters" / "instructor_guide.md"

pytestmark = pytest.mark.skipif(not SOLUTIONS, reason="no coursework notebooks in chapters/coursework")


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def by_id(nb, gid):
    return next(c for c in nb.cells if cw.grade_id(c) == gid)


_GRADED: dict[str, cw.Report] = {}


def _content_key(path: Path, kwargs: dict) -> str:
    """What grading depends on: the cells (type, text, nbgrader metadata, id) and the options.

    Two files with the same cells get the same report (the grader's seed aside, which does not
    change a verdict), so a submission graded once in this test run is not graded again: the
    nbgrader round trip compares against the reports of the solution and student fixtures.
    """
    raw = Path(path).read_bytes()
    try:
        nb = nbformat.reads(raw.decode("utf8"), as_version=4)
        content = json.dumps(
            [[c.cell_type, c.source, c.get("metadata", {}).get("nbgrader"), c.get("id")] for c in nb.cells]
            + [nb.metadata.get("rnn_course")],
            sort_keys=True,
            default=str,
        )
    except Exception:  # noqa: BLE001 - an unreadable file is keyed by its bytes
        content = raw.hex()
    from tools import sandbox

    options = json.dumps({k: str(v) for k, v in sorted(kwargs.items()) if k != "save_executed"})
    options += f" sandbox={sandbox.available()}"
    return hashlib.sha256((content + options).encode()).hexdigest()


def _run_folder() -> Path | None:
    """The folder the xdist workers of this test run share (tests/conftest.py), None outside xdist."""
    run = os.environ.get("RNN_COURSE_RUN_TMP")
    return Path(run) if run else None


@contextlib.contextmanager
def _exclusively(lock: Path) -> Iterator[None]:
    """Hold the file lock ``lock`` for the block: a worker doing the same work waits for this one."""
    import fcntl

    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _shared_reports() -> Path | None:
    """A folder the xdist workers of this run share (None outside xdist): a report graded by one
    worker is read by the others, which wait for it rather than grade the same cells again."""
    run = _run_folder()
    if run is None:
        return None
    folder = run / "graded"
    folder.mkdir(exist_ok=True)
    return folder


def _graded_once(key: str, path: Path, kwargs: dict) -> cw.Report:
    folder = _shared_reports()
    if folder is None:
        return cw.grade(path, **kwargs)
    import pickle

    with _exclusively(folder / f"{key}.lock"):  # another worker grading the same cells: wait for its report
        stored = folder / f"{key}.pickle"
        if stored.exists():
            return pickle.loads(stored.read_bytes())  # noqa: S301 - written by this test run
        report = cw.grade(path, **kwargs)
        stored.with_suffix(".tmp").write_bytes(pickle.dumps(report))
        stored.with_suffix(".tmp").replace(stored)
        return report


def graded(path: Path, **kwargs) -> cw.Report:
    """Grade ``path`` (once per content and options in this test run, across xdist workers) and check
    the grader left the file's bytes alone."""
    import copy

    before = sha(path)
    key = _content_key(path, kwargs)
    if "save_executed" in kwargs:
        _GRADED[key] = cw.grade(path, **kwargs)
    elif key not in _GRADED:
        _GRADED[key] = _graded_once(key, path, kwargs)
    assert sha(path) == before, f"the grader modified the submission {path}"
    report = copy.deepcopy(_GRADED[key])
    report.submission = str(path)
    return report


def assert_complete(report: cw.Report, source: Path, expected: dict[str, float] | None = None) -> None:
    """Every task of the source listed once, in order, with its points; and the expected points."""
    tasks = cw.tasks_of(cw.read_notebook(source))
    assert [t.grade_id for t in report.tasks] == [t.grade_id for t in tasks], report.table()
    assert [t.max_points for t in report.tasks] == [t.points for t in tasks], report.table()
    assert all(t.feedback for t in report.tasks), report.table()
    assert report.total["max_points"] == sum(t.points for t in tasks)
    if expected is not None:
        got = {t.grade_id: t.points for t in report.tasks}
        assert got == expected, report.table()


def full_marks(source: Path) -> dict[str, float]:
    return {t.grade_id: t.points for t in cw.tasks_of(cw.read_notebook(source))}


# --------------------------------------------------------------------------------------
# Student versions
# --------------------------------------------------------------------------------------


def _write_student_versions(out: Path) -> None:
    result = subprocess.run([PYTHON, str(TOOL), "student", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    """The student versions, as the command line writes them (``coursework.py student``).

    Written once per test run: under xdist the workers share one folder (the first writes it, the
    others wait for it), instead of every module on every worker running the command again. The
    tests only read it (the grader is checked not to modify what it grades)."""
    run = _run_folder()
    if run is None:
        out = tmp_path_factory.mktemp("student")
        _write_student_versions(out)
        return out
    out, done = run / "student", run / "student.done"
    with _exclusively(run / "student.lock"):
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)  # a worker that failed half-way
            out.mkdir()
            _write_student_versions(out)
            done.touch()
    return out


def test_student_versions_have_no_solutions_hidden_tests_or_outputs(student_dir):
    for src in SOLUTIONS:
        nb = cw.read_notebook(student_dir / src.name)
        text = "\n".join(c.source for c in nb.cells)
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        assert "HIDDEN TESTS" not in text
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
            if cw.is_solution(cell) and cell.cell_type == "code":
                assert "# YOUR CODE HERE\n" in cell.source and "raise NotImplementedError()" in cell.source
        # the same grade ids as the solution, and the mark that makes it a generated file
        assert [cw.grade_id(c) for c in nb.cells] == [cw.grade_id(c) for c in cw.read_notebook(src).cells]
        mark = nb.metadata[cw.MARK]
        assert mark["generated_by"] == cw.GENERATED_BY and mark["assignment"] == src.stem
        assert mark["source_sha256"] == sha(src)


def test_solution_code_lines_are_not_in_student_versions(student_dir):
    for src in SOLUTIONS:
        student_text = "\n".join(c.source for c in cw.read_notebook(student_dir / src.name).cells)
        lines = cw.solution_code_lines(cw.read_notebook(src), student_text)
        assert lines, f"{src.name}: no solution lines found to check"
        assert not [ln for ln in lines if ln in student_text]


def run_student(argv: list[str]) -> subprocess.CompletedProcess:
    """``coursework.py --source-dir FIXTURES student ARGV``, run in this process (its entry point,
    ``main``, with stdout and stderr captured): the CLI's own process start is tested elsewhere."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cw.main(["--source-dir", str(FIXTURES), "student", *argv])
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def test_student_refuses_to_overwrite_a_hand_written_file(tmp_path):
    target = tmp_path / A0.name
    hand = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("my own notes")])
    nbformat.write(hand, target)
    before = target.read_bytes()
    result = run_student(["--out", str(tmp_path)])
    assert result.returncode == 1
    assert str(target) in result.stderr and "not generated" in result.stderr
    assert target.read_bytes() == before
    result = run_student(["--out", str(tmp_path), "--force"])
    assert result.returncode == 0, result.stderr
    assert cw.read_notebook(target).metadata[cw.MARK]["generated_by"] == cw.GENERATED_BY


def test_student_refuses_to_overwrite_a_learners_changes(tmp_path):
    target = tmp_path / A0.name
    assert run_student(["--out", str(tmp_path)]).returncode == 0
    result = run_student(["--out", str(tmp_path)])  # unchanged: regenerating is fine
    assert result.returncode == 0 and "unchanged" in result.stdout
    nb = cw.read_notebook(target)
    by_id(nb, "a0_add_one").source = by_id(nb, "a0_add_one").source.replace(
        "# YOUR CODE HERE\n    raise NotImplementedError()", "return x + 1"
    )
    nbformat.write(nb, target)
    before = target.read_bytes()
    result = run_student(["--out", str(tmp_path)])
    assert result.returncode == 1
    assert str(target) in result.stderr and "changed after it was generated" in result.stderr
    assert target.read_bytes() == before
    result = run_student(["--out", str(tmp_path), "--force"])
    assert result.returncode == 0 and "overwritten (--force)" in result.stdout
    assert "raise NotImplementedError()" in by_id(cw.read_notebook(target), "a0_add_one").source


def test_student_never_writes_inside_chapters():
    out = ROOT / "chapters" / "coursework" / "student_test_output"
    result = run_student(["--out", str(out)])
    assert result.returncode == 2 and "chapters/" in result.stderr
    assert not out.exists()


# --------------------------------------------------------------------------------------
# Grading: solutions, untouched student versions
# --------------------------------------------------------------------------------------


def by_assignment(paths: list[Path]) -> list:
    """One xdist group per assignment (conftest.py: groups): the workers share the gradings."""
    return [
        pytest.param(p, id=p.stem, marks=pytest.mark.xdist_group(f"coursework-{p.stem.split('_')[0]}")) for p in paths
    ]


@pytest.fixture(scope="module", params=by_assignment(SOLUTIONS))
def solution_report(request) -> tuple[Path, cw.Report]:
    return request.param, graded(request.param)


@pytest.fixture(scope="module", params=by_assignment(SOLUTIONS))
def student_report(request, student_dir) -> tuple[Path, cw.Report]:
    return request.param, graded(student_dir / request.param.name)


def test_solution_notebooks_score_full_marks(solution_report):
    src, report = solution_report
    assert_complete(report, src, full_marks(src))
    assert all(t.status == "passed" and t.feedback == "passed" for t in report.tasks), report.table()
    assert report.notes == [], report.notes
    print(f"{src.stem}: graded in {report.elapsed_s:.1f} s")


def test_untouched_student_versions_score_zero_on_every_task(student_report):
    src, report = student_report
    assert_complete(report, src, {gid: 0.0 for gid in full_marks(src)})
    assert all(t.status == "not_implemented" and t.feedback == "not implemented yet" for t in report.tasks), (
        report.table()
    )
    assert report.notes == [], report.notes


def test_grade_cli_prints_a_table_writes_json_and_exits_0(tmp_path):
    out = tmp_path / "report.json"
    result = subprocess.run(
        [PYTHON, str(TOOL), "grade", str(A1), "--json", str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["assignment"] == "A1_rnn_step"
    assert data["total"] == {"points": 10.0, "max_points": 10.0}
    assert [t["grade_id"] for t in data["tasks"]] == ["a1_step_tests", "a1_forward_tests", "a1_count_tests"]
    for task in data["tasks"]:
        assert re.search(
            rf"^{task['grade_id']}\s+{task['points']:g} / {task['max_points']:g}\s+passed$", result.stdout, flags=re.M
        ), result.stdout
    assert re.search(r"^total\s+10 / 10$", result.stdout, flags=re.M)


def test_grade_cli_identifies_the_assignment_by_metadata_grade_ids_or_name(tmp_path, student_dir):
    sources = cw.solution_notebooks()
    renamed = tmp_path / "alice_submission.ipynb"
    shutil.copy(student_dir / "A2_stacked_forward.ipynb", renamed)  # the rnn_course mark
    assert cw.identify_assignment(renamed, cw.read_notebook(renamed), sources).name == "A2_stacked_forward.ipynb"
    nb = cw.read_notebook(renamed)
    del nb.metadata[cw.MARK]  # only its grade ids
    assert cw.identify_assignment(renamed, nb, sources).name == "A2_stacked_forward.ipynb"
    assert cw.identify_assignment(tmp_path / "bob_A3.ipynb", None, sources).name == "A3_bptt.ipynb"
    unknown = tmp_path / "notes.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), unknown)
    result = subprocess.run([PYTHON, str(TOOL), "grade", str(unknown)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "--assignment" in result.stderr


# --------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------
# The instructor guide's points table
# --------------------------------------------------------------------------------------


def test_points_table_in_instructor_guide_matches_the_notebooks():
    text = GUIDE.read_text(encoding="utf8")
    m = re.search(r"<!-- points-table:start -->\n(.*?)\n<!-- points-table:end -->", text, flags=re.S)
    assert m, "chapters/instructor_guide.md has no points-table markers"
    assert m.group(1).strip() == cw.points_table().strip(), (
        "the points table is out of date; paste the output of `python tools/coursework.py points`"
    )
