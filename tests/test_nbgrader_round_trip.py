"""The round trip through a real nbgrader course, for A1-A5 (slow, marked ``slow``; it runs in the
normal suite). Split from tests/test_coursework.py so that xdist can run it beside the rest."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from test_coursework import (
    PYTHON,
    SOLUTIONS,
    graded,
    student_dir,  # noqa: F401 - a fixture, requested by name below
)
from test_coursework_robustness import a1_edits_test_cell

from tools import coursework as cw

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------
# Slow: a real nbgrader course, with every assignment
# --------------------------------------------------------------------------------------


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [str(Path(PYTHON).parent / "nbgrader"), *args], cwd=course, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


ASSIGNMENTS = {path.stem.split("_")[0].lower(): path for path in SOLUTIONS}  # a1 -> A1_rnn_step.ipynb


def test_the_round_trip_covers_every_assignment():
    assert sorted(ASSIGNMENTS) == ["a1", "a2", "a3", "a4", "a5"]


def submissions_for(name: str, students: Path) -> dict[str, tuple[nbformat.NotebookNode, float]]:
    """Who hands in what for one assignment, and the total nbgrader must give them: alice the
    solution (full marks), bob the untouched student version (zero); for A1 also carol, a wrong
    answer whose test cell was replaced by ``pass`` and given 100 points (nbgrader restores it)."""
    solution = ASSIGNMENTS[name]
    alice = cw.read_notebook(solution)
    out = {
        "alice": (alice, float(sum(t.points for t in cw.tasks_of(alice)))),
        "bob": (cw.read_notebook(students / solution.name), 0.0),
    }
    if name == "a1":
        carol = cw.read_notebook(solution)
        a1_edits_test_cell(carol)
        out["carol"] = (carol, 7.0)
    return out


@pytest.fixture(scope="module")
def course(tmp_path_factory, student_dir) -> Path:  # noqa: F811 - the fixture imported above
    """A teacher's own nbgrader course holding A1-A5, as a teacher runs it: the solutions in
    ``source/``, ``generate_assignment``, the submissions in ``submitted/``, ``autograde``. Each
    command runs once for every assignment (nbgrader's ``"*"``), as in a real course, and so the
    suite starts two nbgrader processes instead of ten (about 1.3 s of CPU each)."""
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'rnn-course'\n"
        "c.Execute.timeout = 120\n"
    )
    for name, solution in ASSIGNMENTS.items():
        (course / "source" / name).mkdir(parents=True)
        shutil.copy(solution, course / "source" / name / solution.name)
    nbgrader(course, "generate_assignment", "*", "--force")
    for name, solution in ASSIGNMENTS.items():
        for student, (nb, _total) in submissions_for(name, student_dir).items():
            (course / "submitted" / student / name).mkdir(parents=True)
            nbformat.write(nb, course / "submitted" / student / name / solution.name)
    nbgrader(course, "autograde", "*")  # creates the students in the gradebook (create_student=True)
    return course


# The course is built once (a module-scoped fixture), so the module is one xdist group
# (conftest.py: groups); each assignment is still its own test, with its own verdict.
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_nbgrader_course_round_trip(course, student_dir, name):  # noqa: F811 - the fixture imported above
    """In a teacher's own nbgrader course, for each of A1-A5: generate_assignment == our student
    version; autograde gives the solution full marks, the untouched student version zero, and the
    same points per task as our grader (plus, for A1, a submission with a wrong answer and an
    edited test)."""
    from nbgrader.api import Gradebook

    solution = ASSIGNMENTS[name]
    release = cw.read_notebook(course / "release" / name / solution.name)
    ours = cw.read_notebook(student_dir / solution.name)
    assert [(c.cell_type, c.source) for c in release.cells] == [(c.cell_type, c.source) for c in ours.cells]
    assert [c.metadata for c in release.cells] == [c.metadata for c in ours.cells]

    expected = {student: total for student, (_nb, total) in submissions_for(name, student_dir).items()}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "rnn-course") as gb:
        for student, total in expected.items():
            submission = gb.find_submission(name, student)
            assert submission.score == total, (name, student, submission.score)
            theirs = {g.name: g.score for g in gb.find_submission_notebook(solution.stem, name, student).grades}
            ours_report = graded(course / "submitted" / student / name / solution.name)
            assert theirs == {t.grade_id: t.points for t in ours_report.tasks}, ours_report.table()
