"""The coursework tooling (tools/coursework.py): student versions, the local grader, nbgrader, the student site.

* The solution notebooks ``chapters/coursework/A*.ipynb`` score full marks with the local
  grader; their student versions (nbgrader's preprocessors), untouched, score zero on
  every task and the grader reports every task.
* Hostile submissions (an endless loop, an import that fails, a deleted test cell, a
  redefined checker, a patched ``importlib.reload``, an edited test cell, a cell that
  kills the kernel, an uninterruptible loop, an unreadable file, the overall time limit)
  each get a complete report with the right points, and the submission file is never
  modified.
* ``student`` never overwrites a file it did not generate, nor one changed since it was
  generated, unless ``--force``; it never writes inside ``chapters/``.
* The points table in ``chapters/instructor_guide.md`` is the one the notebooks' metadata
  gives.
* Slow, marked ``slow`` (they run in the normal suite): the round trip through a real
  nbgrader course (``generate_assignment`` gives exactly our student version;
  ``autograde`` gives the same points per task as the local grader), for A1-A4;
  the student edition of the site is tested in ``tests/test_student_site.py``.

Gradings are shared between tests through module-scoped fixtures (each notebook is run
once). Hostile cases use the real A1 where the point is the assignment's own tests, and
the one-second fixture assignment ``tests/fixtures/coursework/A0_fixture.ipynb`` where the
point is the grader's machinery (timeouts, dead kernels).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import coursework as cw  # noqa: E402

PYTHON = sys.executable
TOOL = ROOT / "tools" / "coursework.py"
FIXTURES = ROOT / "tests" / "fixtures" / "coursework"
A0 = FIXTURES / "A0_fixture.ipynb"
SOLUTIONS = cw.solution_notebooks()
SOLUTION_IDS = [p.stem for p in SOLUTIONS]
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
    change a verdict), so a submission graded once in this process is not graded again: the
    nbgrader round trip compares against the reports of the solution and student fixtures.
    """
    raw = Path(path).read_bytes()
    try:
        nb = nbformat.reads(raw.decode("utf8"), as_version=4)
        content = json.dumps([[c.cell_type, c.source, c.get("metadata", {}).get("nbgrader"), c.get("id")]
                              for c in nb.cells] + [nb.metadata.get("rnn_course")], sort_keys=True, default=str)
    except Exception:  # noqa: BLE001 - an unreadable file is keyed by its bytes
        content = raw.hex()
    import sandbox

    options = json.dumps({k: str(v) for k, v in sorted(kwargs.items()) if k != "save_executed"})
    options += f" sandbox={sandbox.available()}"
    return hashlib.sha256((content + options).encode()).hexdigest()


def graded(path: Path, **kwargs) -> cw.Report:
    """Grade ``path`` (once per content and options in this process) and check the grader left the
    file's bytes alone."""
    import copy

    before = sha(path)
    key = _content_key(path, kwargs)
    if key not in _GRADED or "save_executed" in kwargs:
        _GRADED[key] = cw.grade(path, **kwargs)
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

@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    result = subprocess.run([PYTHON, str(TOOL), "student", "--out", str(out)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
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
    return subprocess.run([PYTHON, str(TOOL), "--source-dir", str(FIXTURES), "student", *argv],
                          capture_output=True, text=True, cwd=ROOT)


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
        "# YOUR CODE HERE\n    raise NotImplementedError()", "return x + 1")
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

@pytest.fixture(scope="module", params=SOLUTIONS, ids=SOLUTION_IDS)
def solution_report(request) -> tuple[Path, cw.Report]:
    return request.param, graded(request.param)


@pytest.fixture(scope="module", params=SOLUTIONS, ids=SOLUTION_IDS)
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
    assert all(t.status == "not_implemented" and t.feedback == "not implemented yet" for t in report.tasks), \
        report.table()
    assert report.notes == [], report.notes


def test_grade_cli_prints_a_table_writes_json_and_exits_0(tmp_path):
    out = tmp_path / "report.json"
    result = subprocess.run([PYTHON, str(TOOL), "grade", str(A1), "--json", str(out)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["assignment"] == "A1_rnn_step"
    assert data["total"] == {"points": 10.0, "max_points": 10.0}
    assert [t["grade_id"] for t in data["tasks"]] == ["a1_step_tests", "a1_forward_tests", "a1_count_tests"]
    for task in data["tasks"]:
        assert re.search(rf"^{task['grade_id']}\s+{task['points']:g} / {task['max_points']:g}\s+passed$",
                         result.stdout, flags=re.M), result.stdout
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
# Grading: hostile submissions
# --------------------------------------------------------------------------------------

WRONG_STEP = ("def rnn_step(x, h_prev, W_ih, W_hh, b_ih, b_hh):\n"
              "    return np.tanh(x @ W_ih.T + h_prev @ W_hh.T)  # forgets both biases\n")


def a1_loop_forever(nb):
    """An endless loop inside a solution function (the test that calls it must time out)."""
    by_id(nb, "a1_count").source = "def num_parameters(input_size, hidden_size, bias=True):\n    while True:\n        pass\n"


def a1_raises_at_import(nb):
    """A first cell that fails to import, and a solution cell whose import fails."""
    nb.cells.insert(0, nbformat.v4.new_code_cell("import a_module_that_does_not_exist"))
    cell = by_id(nb, "a1_step")
    cell.source = "from rnnlib import no_such_function\n" + cell.source


def a1_deletes_test_cells(nb):
    """Correct solutions, two test cells deleted (put back by the grader)."""
    nb.cells = [c for c in nb.cells if cw.grade_id(c) not in ("a1_forward_tests", "a1_count_tests")]


def a1_redefines_checkers(nb):
    """A wrong rnn_step with the checker patched in rnnlib.checks and shadowed by a global."""
    by_id(nb, "a1_step").source = (
        "import rnnlib.checks\n"
        "rnnlib.checks.check_rnn_step = lambda *args, **kwargs: None\n"
        "rnnlib.checks.check_rnn_forward = lambda *args, **kwargs: None\n"
        "def check_rnn_step(*args, **kwargs):\n    pass\n"
        "_checks = rnnlib.checks\n" + WRONG_STEP)


def a1_patches_reload(nb):
    """The checker patched *and* importlib.reload made a no-op (the test cells' reload is defeated)."""
    by_id(nb, "a1_step").source = (
        "import importlib, rnnlib.checks\n"
        "importlib.reload = lambda module: module\n"
        "rnnlib.checks.check_rnn_step = lambda *args, **kwargs: None\n"
        "rnnlib.checks.check_rnn_forward = lambda *args, **kwargs: None\n" + WRONG_STEP)


def a1_edits_test_cell(nb):
    """A wrong num_parameters, its test cell replaced by `pass` and given 100 points."""
    by_id(nb, "a1_count").source = ("def num_parameters(input_size, hidden_size, bias=True):\n"
                                    "    return hidden_size * input_size + hidden_size ** 2\n")
    test = by_id(nb, "a1_count_tests")
    test.source = "pass"
    test.metadata["nbgrader"]["points"] = 100


A1_HOSTILE = {
    # name: (modify, expected points, expected status per failing task, per-cell timeout)
    "loop_forever": (a1_loop_forever, {"a1_step_tests": 3, "a1_forward_tests": 4, "a1_count_tests": 0},
                     {"a1_count_tests": "timed_out"}, 8),
    "raises_at_import": (a1_raises_at_import, {"a1_step_tests": 0, "a1_forward_tests": 0, "a1_count_tests": 3},
                         {"a1_step_tests": "error", "a1_forward_tests": "failed"}, 60),
    "deletes_test_cells": (a1_deletes_test_cells, {"a1_step_tests": 3, "a1_forward_tests": 4, "a1_count_tests": 3},
                           {}, 60),
    # tampering with the checkers withholds every task's points for review (count was right: 3 as graded)
    "redefines_checkers": (a1_redefines_checkers, {"a1_step_tests": 0, "a1_forward_tests": 0, "a1_count_tests": 0},
                           {"a1_step_tests": "withheld", "a1_count_tests": "withheld"}, 60),
    "patches_reload": (a1_patches_reload, {"a1_step_tests": 0, "a1_forward_tests": 0, "a1_count_tests": 0},
                       {"a1_step_tests": "withheld", "a1_count_tests": "withheld"}, 60),
    "edits_test_cell": (a1_edits_test_cell, {"a1_step_tests": 3, "a1_forward_tests": 4, "a1_count_tests": 0},
                        {"a1_count_tests": "failed"}, 60),
}


@pytest.fixture(scope="module", params=list(A1_HOSTILE), ids=list(A1_HOSTILE))
def a1_hostile(request, tmp_path_factory):
    modify, expected, statuses, timeout = A1_HOSTILE[request.param]
    nb = cw.read_notebook(A1)
    modify(nb)
    path = tmp_path_factory.mktemp(request.param) / "A1_rnn_step.ipynb"
    nbformat.write(nb, path)
    return request.param, graded(path, timeout=timeout), expected, statuses


def test_hostile_a1_submission_gets_a_complete_report_with_the_right_points(a1_hostile):
    name, report, expected, statuses = a1_hostile
    assert_complete(report, A1, {k: float(v) for k, v in expected.items()})
    for gid, status in statuses.items():
        assert next(t for t in report.tasks if t.grade_id == gid).status == status, report.table()
    if name == "loop_forever":
        assert report.tasks[2].feedback == "timed out after 8 s"
    if name == "raises_at_import":
        assert "ImportError" in report.tasks[0].feedback, report.table()
    if name == "deletes_test_cells":
        assert all("restored" in t.feedback for t in report.tasks[1:]), report.table()
        assert sum("was missing from the submission" in n for n in report.notes) == 2
    if name in ("redefines_checkers", "patches_reload"):
        assert any(f.startswith("review by hand: solution cell 'a1_step'") for f in report.flags), report.flags
        assert "bias" in report.tasks[0].message, report.table()  # the real checker's diagnosis, kept
        assert "as graded: 3 / 3" in report.tasks[2].feedback, report.table()
        assert report.flags[0].startswith("POINTS WITHHELD"), report.flags


def a0_with(tmp_path: Path, name: str, step_source: str | None = None, raw: str | None = None) -> Path:
    path = tmp_path / f"A0_{name}.ipynb"
    if raw is not None:
        path.write_text(raw)
        return path
    nb = cw.read_notebook(A0)
    by_id(nb, "a0_add_one").source = step_source
    nbformat.write(nb, path)
    return path


def test_uninterruptible_loop_restarts_the_kernel_and_replays(tmp_path):
    source = ("def add_one(x):\n    return x + 1\n"
              "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass\n")
    report = graded(a0_with(tmp_path, "stubborn", source), source_dir=FIXTURES, timeout=5)
    # the cell that never ends is not replayed, so add_one is not defined; square still counts
    assert_complete(report, A0, {"a0_add_one_tests": 0.0, "a0_square_tests": 3.0})
    assert "timed out after 5 s" in report.tasks[0].feedback
    assert any("could not be interrupted" in n for n in report.notes)


def test_a_cell_that_kills_the_kernel_does_not_stop_grading(tmp_path):
    source = "def add_one(x):\n    return x + 1\nimport os\nos._exit(1)\n"
    report = graded(a0_with(tmp_path, "exit", source), source_dir=FIXTURES, timeout=20)
    assert_complete(report, A0, {"a0_add_one_tests": 0.0, "a0_square_tests": 3.0})
    assert "killed the kernel" in report.tasks[0].feedback
    assert any("kernel died" in n for n in report.notes)


def test_the_overall_time_limit_still_gives_a_complete_report(tmp_path):
    source = "def add_one(x):\n    while True:\n        pass\n"
    report = graded(a0_with(tmp_path, "slow", source), source_dir=FIXTURES, timeout=60, total_timeout=6)
    assert_complete(report, A0, {"a0_add_one_tests": 0.0, "a0_square_tests": 0.0})
    assert report.tasks[0].status == "timed_out", report.table()
    assert "overall time limit (6 s)" in report.tasks[0].feedback, report.table()
    assert report.tasks[1].status == "not_run" and "overall time limit (6 s)" in report.tasks[1].feedback
    assert report.elapsed_s < 30


def test_an_unreadable_submission_gets_a_complete_zero_report(tmp_path):
    report = graded(a0_with(tmp_path, "garbage", raw="{not a notebook"), source_dir=FIXTURES)
    assert_complete(report, A0, {"a0_add_one_tests": 0.0, "a0_square_tests": 0.0})
    assert "not a readable notebook" in report.notes[0]


# --------------------------------------------------------------------------------------
# The instructor guide's points table
# --------------------------------------------------------------------------------------

def test_points_table_in_instructor_guide_matches_the_notebooks():
    text = GUIDE.read_text(encoding="utf8")
    m = re.search(r"<!-- points-table:start -->\n(.*?)\n<!-- points-table:end -->", text, flags=re.S)
    assert m, "chapters/instructor_guide.md has no points-table markers"
    assert m.group(1).strip() == cw.points_table().strip(), (
        "the points table is out of date; paste the output of `python tools/coursework.py points`")


# --------------------------------------------------------------------------------------
# Slow: a real nbgrader course, with every assignment
# --------------------------------------------------------------------------------------

def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run([str(Path(PYTHON).parent / "nbgrader"), *args], cwd=course, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_nbgrader_course_round_trip(tmp_path, student_dir):
    """In a teacher's own nbgrader course, for A1-A4: generate_assignment == our student version;
    autograde gives the solution full marks, the untouched student version zero, and the same
    points per task as our grader (plus, for A1, a submission with a wrong answer and an edited test)."""
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'rnn-course'\n"
        "c.Execute.timeout = 120\n")
    assignments = {path.stem.split("_")[0].lower(): path for path in SOLUTIONS}  # a1 -> A1_rnn_step.ipynb
    assert sorted(assignments) == ["a1", "a2", "a3", "a4"]
    expected: dict[tuple[str, str], float] = {}
    for name, solution in assignments.items():
        (course / "source" / name).mkdir(parents=True)
        shutil.copy(solution, course / "source" / name / solution.name)
        nbgrader(course, "generate_assignment", name, "--force")

        release = cw.read_notebook(course / "release" / name / solution.name)
        ours = cw.read_notebook(student_dir / solution.name)
        assert [(c.cell_type, c.source) for c in release.cells] == [(c.cell_type, c.source) for c in ours.cells]
        assert [c.metadata for c in release.cells] == [c.metadata for c in ours.cells]

        submissions = {"alice": cw.read_notebook(solution), "bob": ours}
        expected[name, "alice"] = float(sum(t.points for t in cw.tasks_of(submissions["alice"])))
        expected[name, "bob"] = 0.0
        if name == "a1":
            carol = cw.read_notebook(solution)
            a1_edits_test_cell(carol)
            submissions["carol"] = carol
            expected[name, "carol"] = 7.0
        for student, nb in submissions.items():
            (course / "submitted" / student / name).mkdir(parents=True)
            nbformat.write(nb, course / "submitted" / student / name / solution.name)
        nbgrader(course, "autograde", name)  # creates the students in the gradebook (create_student=True)

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "rnn-course") as gb:
        for (name, student), total in expected.items():
            solution = assignments[name]
            submission = gb.find_submission(name, student)
            assert submission.score == total, (name, student, submission.score)
            theirs = {g.name: g.score for g in gb.find_submission_notebook(solution.stem, name, student).grades}
            ours_report = graded(course / "submitted" / student / name / solution.name)
            assert theirs == {t.grade_id: t.points for t in ours_report.tasks}, ours_report.table()


# --------------------------------------------------------------------------------------
# The sandbox, and grading without one
# --------------------------------------------------------------------------------------

def test_without_bubblewrap_the_report_says_no_sandbox_and_grades_the_same(tmp_path, monkeypatch):
    """On a machine without bubblewrap (macOS, a locked-down container) grading still works, with
    limits, a private copy of rnnlib and a process sweep, and every report says it was not sandboxed."""
    import sandbox

    monkeypatch.setattr(sandbox, "available", lambda: False)
    right = graded(A0, source_dir=FIXTURES)
    assert_complete(right, A0, full_marks(A0))
    assert right.sandbox.startswith("none") and any(n.startswith("no sandbox") for n in right.notes)
    wrong = graded(a0_with(tmp_path, "wrong", "def add_one(x):\n    return x + 2\n"), source_dir=FIXTURES)
    assert_complete(wrong, A0, {"a0_add_one_tests": 0.0, "a0_square_tests": 3.0})
    assert "add_one(0) returned 2, expected 1" in wrong.tasks[0].feedback


@pytest.mark.skipif(not cw.sandbox_available(), reason="bubblewrap is not available on this machine")
def test_the_sandboxed_kernel_sees_no_repository_and_cannot_write_or_reach_out(tmp_path):
    """What the kernel sees, reported by a submission that looks around (it scores what it scores)."""
    probe = ("import os, socket, json\n"
             "seen = {'repo': sorted(os.listdir(%r)), 'home': os.environ['HOME']}\n"
             "try:\n    open(%r, 'a')\n    seen['write'] = 'written'\nexcept OSError as e:\n    seen['write'] = e.errno\n"
             "try:\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n    seen['net'] = 'connected'\n"
             "except OSError as e:\n    seen['net'] = 'refused'\n"
             "seen['ppid_visible'] = os.path.exists('/proc/%d')\n"
             "raise AssertionError(json.dumps(seen))\n"
             "def add_one(x):\n    return x + 1\n") % (str(ROOT), str(ROOT / "README.md"), os.getpid())
    path = a0_with(tmp_path, "looks", probe)
    report = graded(path, source_dir=FIXTURES, save_executed=tmp_path / "executed.ipynb")
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    text = next(o["evalue"] for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if o.get("output_type") == "error" and o.get("evalue", "").startswith("{"))
    seen = json.loads(text)
    assert "chapters" not in seen["repo"] and "tools" not in seen["repo"], seen
    assert seen["write"] != "written" and seen["net"] == "refused" and not seen["ppid_visible"], seen
    assert seen["home"] != os.environ.get("HOME")
    assert report.sandbox.startswith("bubblewrap")
