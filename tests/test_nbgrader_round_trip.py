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


# One course per assignment, so that xdist runs the five side by side (conftest.py: groups).
@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.xdist_group(f"nbgrader-{name.upper()}")) for name in sorted(ASSIGNMENTS)],
)
def test_nbgrader_course_round_trip(tmp_path, student_dir, name):  # noqa: F811 - the fixture imported above
    """In a teacher's own nbgrader course, for each of A1-A5: generate_assignment == our student
    version; autograde gives the solution full marks, the untouched student version zero, and the
    same points per task as our grader (plus, for A1, a submission with a wrong answer and an
    edited test)."""
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'rnn-course'\n"
        "c.Execute.timeout = 120\n"
    )
    assignments = {name: ASSIGNMENTS[name]}
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
