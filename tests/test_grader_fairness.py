"""The local grader is fair to correct answers written in other styles.

``tests/fixtures/submissions/honest.py`` is a gallery of correct submissions, each written
in a deliberately different style (einsum, column vectors, loops over units, helpers in
cells of the learner's own, preallocated arrays, other ways of handling ``h0=None`` and of
summing gradients over time, other optimisers and model sizes, a notebook saved without
cell metadata, ...). Every one must get full marks from ``tools/coursework.py grade``, and
none may be flagged for review by hand (except the one that *is* the published solution).

A known defect of the grader is marked ``xfail(strict=True)``: when the grader is fixed,
the test passes, the strict mark turns that into a failure, and the mark must go.

Each submission is graded once (module-scoped cache); the four A4 submissions train a
model each (about 10 s on one thread), which dominates the module's runtime.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from fixtures.submissions import honest  # tests/ is on sys.path, as for fixtures.mistakes
from test_coursework import assert_complete, full_marks, graded

from tools import coursework as cw

ROOT = Path(__file__).resolve().parent.parent

NAMES = list(honest.SUBMISSIONS)


def by_submission(name: str, *marks: pytest.MarkDecorator):  # -> a pytest ParameterSet
    """A test of one submission: in that submission's xdist group, so the workers share the gallery and
    each submission is graded once (conftest.py: groups)."""
    return pytest.param(name, marks=[pytest.mark.xdist_group(f"fairness-{name}"), *marks])


# Fixed by the trusted grader (the [trusted-grader] commit); before it, float(loss) in train_step
# cost Task 2 (torch's UserWarning reached stderr during the test cell), a float64 model cost Task 1
# (the model test fed float32 batches to it) -- both are in a4_float64_float_loss -- and
# a1_metadata_stripped scored 0/10 (without grade ids, the test cells were restored at the top of
# the notebook, before the functions existed).

# a1_metadata_stripped *is* the published solution: the copy check is right to flag it.
EXPECTED_FLAGS = {"a1_metadata_stripped": "matches the course's published reference solution"}
# Fixed: the copy check skipped nothing, and flagged AddingRegressor and train_step written as the
# task text dictates them; those two solution cells now opt out (rnn_course.copy_check = false).
FLAGGED_BY_DEFECT: dict = {}


def write_submission(name: str, folder: Path) -> Path:
    """The submission ``name``: its solution notebook, edited by the gallery's function."""
    notebook, edit = honest.SUBMISSIONS[name]
    nb = cw.read_notebook(cw.SOURCE_DIR / notebook)
    edit(nb)
    path = folder / notebook  # the assignment's file name, as a learner hands it in
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def report_of(tmp_path_factory):
    """``report_of(name)``: the grader's report on one submission, graded once per module."""
    reports: dict[str, tuple[Path, cw.Report]] = {}

    def report(name: str) -> tuple[Path, cw.Report]:
        if name not in reports:
            path = write_submission(name, tmp_path_factory.mktemp(name))
            reports[name] = path, graded(path)
        return reports[name]

    return report


@pytest.mark.parametrize("name", [by_submission(n) for n in NAMES])
def test_a_correct_submission_gets_full_marks(report_of, name):
    path, report = report_of(name)
    source = cw.SOURCE_DIR / path.name
    assert_complete(report, source, full_marks(source))
    assert all(t.status == "passed" for t in report.tasks), report.table()
    print(f"{name}: graded in {report.elapsed_s:.1f} s")


@pytest.mark.parametrize(
    "name", [by_submission(n, *([FLAGGED_BY_DEFECT[n]] if n in FLAGGED_BY_DEFECT else [])) for n in NAMES]
)
def test_a_correct_submission_is_not_flagged_for_review(report_of, name):
    _, report = report_of(name)
    flags = list(getattr(report, "flags", [])) + [n for n in report.notes if n.startswith("review by hand")]
    expected = EXPECTED_FLAGS.get(name)
    assert all(expected and expected in f for f in flags), flags


@pytest.mark.xdist_group("fairness-a4_float64_float_loss")
def test_a_warning_from_the_learners_code_is_shown_not_penalised(report_of):
    _, report = report_of("a4_float64_float_loss")
    step = next(t for t in report.tasks if t.grade_id == "a4_step_tests")
    assert step.status == "passed" and "warning (not a failure): UserWarning" in step.feedback, report.table()


def test_every_submission_rewrites_every_solution_cell():
    """Each style is really exercised: every solution region replaced (but in the notebook
    saved without metadata, which is the solution itself), no other cell of the source
    changed or lost, and the training budget of the A4 submissions respected."""
    for name, (notebook, edit) in honest.SUBMISSIONS.items():
        assert (edit.__doc__ or "").strip(), f"{name}: the docstring says the style"
        source = cw.read_notebook(cw.SOURCE_DIR / notebook)
        nb = cw.read_notebook(cw.SOURCE_DIR / notebook)
        edit(nb)
        if name == "a1_metadata_stripped":
            assert [c.source for c in nb.cells] == [c.source for c in source.cells]
            assert all(c.metadata == {} for c in nb.cells) and [c.id for c in nb.cells] == [c.id for c in source.cells]
            continue
        ours = {cw.grade_id(c): c for c in nb.cells if cw.grade_id(c)}
        for ref in source.cells:
            gid = cw.grade_id(ref)
            if gid is None:
                continue
            assert gid in ours, f"{name}: cell {gid} lost"
            if cw.is_solution(ref):
                assert honest.BEGIN not in ours[gid].source and ours[gid].source != ref.source, (name, gid)
            else:
                assert ours[gid].source == ref.source, (name, gid)
    assert sum(notebook.startswith("A4") for notebook, _ in honest.SUBMISSIONS.values()) <= 4
