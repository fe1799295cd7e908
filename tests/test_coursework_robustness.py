"""The local grader's machinery under hostile or broken submissions, and its sandbox.

* Hostile A1 submissions (an endless loop, an import that fails, deleted test cells, redefined
  checkers, a patched ``importlib.reload``, an edited test cell) each get a complete report with
  the right points; tampering with the checkers withholds the points for review.
* The one-second fixture assignment A0: an uninterruptible loop, a cell that kills the kernel,
  the overall time limit, an unreadable file.
* Grading without bubblewrap says so and grades the same; what a sandboxed kernel can see.

(Split from tests/test_coursework.py so that xdist can run the two modules side by side.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from test_coursework import A0, A1, FIXTURES, assert_complete, by_id, full_marks, graded

from tools import coursework as cw

ROOT = Path(__file__).resolve().parent.parent

XDIST_GROUP_EACH_TEST = True  # slow, independent tests: xdist spreads them one by one (conftest.py)


# --------------------------------------------------------------------------------------
# Grading: hostile submissions
# --------------------------------------------------------------------------------------

WRONG_STEP = (
    "def rnn_step(x, h_prev, W_ih, W_hh, b_ih, b_hh):\n"
    "    return np.tanh(x @ W_ih.T + h_prev @ W_hh.T)  # forgets both biases\n"
)


def a1_loop_forever(nb):
    """An endless loop inside a solution function (the test that calls it must time out)."""
    by_id(
        nb, "a1_count"
    ).source = "def num_parameters(input_size, hidden_size, bias=True):\n    while True:\n        pass\n"


def a1_raises_at_import(nb):
    """A first cell that fails to import, and a solution cell whose import fails."""
    nb.cells.insert(0, nbformat.v4.new_code_cell("import a_module_that_does_not_exist"))
    cell = by_id(nb, "a1_step")
    cell.source = "from rnnlib import no_such_function\n" + cell.source


def a1_deletes_test_cells(nb):
    """Correct solutions, two test cells deleted (put back by the grader)."""
    nb.cells = [c for c in nb.cells if cw.grade_id(c) not in ("a1_forward_tests", "a1_count_tests")]


def a1_redefines_checkers(nb):
    """A wrong rnn_step with the checker patched in rnnlib.coursework.checks and shadowed by a global."""
    by_id(nb, "a1_step").source = (
        "import rnnlib.coursework.checks\n"
        "rnnlib.coursework.checks.check_rnn_step = lambda *args, **kwargs: None\n"
        "rnnlib.coursework.checks.check_rnn_forward = lambda *args, **kwargs: None\n"
        "def check_rnn_step(*args, **kwargs):\n    pass\n"
        "_checks = rnnlib.coursework.checks\n" + WRONG_STEP
    )


def a1_patches_reload(nb):
    """The checker patched *and* importlib.reload made a no-op (the test cells' reload is defeated)."""
    by_id(nb, "a1_step").source = (
        "import importlib, rnnlib.coursework.checks\n"
        "importlib.reload = lambda module: module\n"
        "rnnlib.coursework.checks.check_rnn_step = lambda *args, **kwargs: None\n"
        "rnnlib.coursework.checks.check_rnn_forward = lambda *args, **kwargs: None\n" + WRONG_STEP
    )


def a1_edits_test_cell(nb):
    """A wrong num_parameters, its test cell replaced by `pass` and given 100 points."""
    by_id(nb, "a1_count").source = (
        "def num_parameters(input_size, hidden_size, bias=True):\n"
        "    return hidden_size * input_size + hidden_size ** 2\n"
    )
    test = by_id(nb, "a1_count_tests")
    test.source = "pass"
    test.metadata["nbgrader"]["points"] = 100


A1_HOSTILE = {
    # name: (modify, expected points, expected status per failing task, per-cell timeout)
    "loop_forever": (
        a1_loop_forever,
        {"a1_step_tests": 3, "a1_forward_tests": 4, "a1_count_tests": 0},
        {"a1_count_tests": "timed_out"},
        8,
    ),
    "raises_at_import": (
        a1_raises_at_import,
        {"a1_step_tests": 0, "a1_forward_tests": 0, "a1_count_tests": 3},
        {"a1_step_tests": "error", "a1_forward_tests": "failed"},
        60,
    ),
    "deletes_test_cells": (
        a1_deletes_test_cells,
        {"a1_step_tests": 3, "a1_forward_tests": 4, "a1_count_tests": 3},
        {},
        60,
    ),
    # tampering with the checkers withholds every task's points for review (count was right: 3 as graded)
    "redefines_checkers": (
        a1_redefines_checkers,
        {"a1_step_tests": 0, "a1_forward_tests": 0, "a1_count_tests": 0},
        {"a1_step_tests": "withheld", "a1_count_tests": "withheld"},
        60,
    ),
    "patches_reload": (
        a1_patches_reload,
        {"a1_step_tests": 0, "a1_forward_tests": 0, "a1_count_tests": 0},
        {"a1_step_tests": "withheld", "a1_count_tests": "withheld"},
        60,
    ),
    "edits_test_cell": (
        a1_edits_test_cell,
        {"a1_step_tests": 3, "a1_forward_tests": 4, "a1_count_tests": 0},
        {"a1_count_tests": "failed"},
        60,
    ),
}


# One xdist group per submission (conftest.py: groups), so that workers share them.
@pytest.fixture(
    scope="module",
    params=[pytest.param(name, id=name, marks=pytest.mark.xdist_group(f"robustness-{name}")) for name in A1_HOSTILE],
)
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
    source = (
        "def add_one(x):\n    return x + 1\n"
        "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass\n"
    )
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
# The sandbox, and grading without one
# --------------------------------------------------------------------------------------


def test_without_bubblewrap_the_report_says_no_sandbox_and_grades_the_same(tmp_path, monkeypatch):
    """On a machine without bubblewrap (macOS, a locked-down container) grading still works, with
    limits, a private copy of rnnlib and a process sweep, and every report says it was not sandboxed."""
    from tools import sandbox

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
    repo, readme, pid = str(ROOT), str(ROOT / "README.md"), os.getpid()
    probe = (
        "import os, socket, json\n"
        f"seen = {{'repo': sorted(os.listdir({repo!r})), 'home': os.environ['HOME']}}\n"
        f"try:\n    with open({readme!r}, 'a') as f:\n        f.write('rnn-sandbox-escape')\n"
        "    seen['write'] = 'attempted'\n"
        "except OSError as e:\n    seen['write'] = e.errno\n"
        "try:\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n    seen['net'] = 'connected'\n"
        "except OSError as e:\n    seen['net'] = 'refused'\n"
        f"seen['ppid_visible'] = os.path.exists('/proc/{pid:d}')\n"
        "raise AssertionError(json.dumps(seen))\n"
        "def add_one(x):\n    return x + 1\n"
    )
    path = a0_with(tmp_path, "looks", probe)
    report = graded(path, source_dir=FIXTURES, save_executed=tmp_path / "executed.ipynb")
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    text = next(
        o["evalue"]
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error" and o.get("evalue", "").startswith("{")
    )
    seen = json.loads(text)
    assert "chapters" not in seen["repo"] and "tools" not in seen["repo"], seen
    # the repository's README is not writable from inside (at most a throwaway path of the same name,
    # when the checkout lies under /tmp, the sandbox's private /tmp)
    assert b"rnn-sandbox-escape" not in (ROOT / "README.md").read_bytes(), seen
    assert seen["net"] == "refused" and not seen["ppid_visible"], seen
    assert seen["home"] != os.environ.get("HOME")
    assert report.sandbox.startswith("bubblewrap")
