"""Batch grading (tools/gradebook.py): the gradebook, the feedback, the cache, failures kept local.

The real grader runs on the one-second fixture assignment ``A0_fixture`` for three
students (a correct one, a wrong answer, an unreadable file); the failure modes of a
job (crash, no report, malformed report, over time) use a stand-in grader script, which
is quicker and fails on purpose (it also covers ``--force``).

The grader fingerprint hashes the working tree's tools/ and rnnlib/, which other people
may be editing while these tests run; the resume tests therefore pin it to one value
(``frozen_fingerprint``), and the fingerprint itself is tested on a tree of its own.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tools import gradebook as gb  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "coursework"
A0 = FIXTURES / "A0_fixture.ipynb"
FULL = {"a0_add_one_tests": 2.0, "a0_square_tests": 3.0}


def with_add_one(body: str) -> str:
    """The fixture solution with another ``add_one`` body (``x + 2``: 0 of 2 points for that task)."""
    nb = nbformat.read(str(A0), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "a0_add_one")
    cell.source = cell.source.replace("return x + 1", f"return {body}")
    assert body in cell.source
    return nbformat.writes(nb)


def make_submitted(root: Path) -> Path:
    """submitted/<student>/<assignment>/ with three students and some files to skip."""
    sub = root / "submitted"
    (sub / "alice" / "A0").mkdir(parents=True)
    shutil.copy(A0, sub / "alice" / "A0" / "A0_fixture.ipynb")
    (sub / "alice" / "A0" / ".ipynb_checkpoints").mkdir()  # skipped: a checkpoint and a hidden notebook
    shutil.copy(A0, sub / "alice" / "A0" / ".ipynb_checkpoints" / "A0_fixture-checkpoint.ipynb")
    shutil.copy(A0, sub / "alice" / "A0" / ".hidden.ipynb")
    (sub / "bob" / "a0").mkdir(parents=True)
    (sub / "bob" / "a0" / "A0_fixture.ipynb").write_text(with_add_one("x + 2"), encoding="utf8")
    (sub / "carol" / "A0_fixture").mkdir(parents=True)
    (sub / "carol" / "A0_fixture" / "A0_fixture.ipynb").write_text("{not a notebook", encoding="utf8")
    return sub


def run(capsys, sub: Path, out: Path, *extra: str) -> tuple[int, str, float]:
    """``gradebook.main`` in this process (the jobs are subprocesses anyway); its code, stdout, seconds."""
    t0 = time.monotonic()
    code = gb.main([str(sub), "--out", str(out), "--source-dir", str(FIXTURES), "--jobs", "3", *extra])
    return code, capsys.readouterr().out, time.monotonic() - t0


def csv_rows(out: Path) -> dict[tuple[str, str], dict]:
    with open(out / "gradebook.csv", newline="", encoding="utf8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == gb.CSV_COLUMNS
    return {(r["student"], r["task"]): r for r in rows}


@pytest.fixture(scope="module")
def fingerprint_value() -> str:
    return gb.grader_fingerprint(FIXTURES)


@pytest.fixture()
def frozen_fingerprint(monkeypatch, fingerprint_value):
    """One grader fingerprint for the module (see the module docstring)."""
    monkeypatch.setattr(gb, "grader_fingerprint", lambda source_dir, root=gb.ROOT: fingerprint_value)
    return fingerprint_value


@pytest.fixture()
def first_run(tmp_path, capsys, frozen_fingerprint):
    sub, out = make_submitted(tmp_path), tmp_path / "out"
    code, stdout, _ = run(capsys, sub, out)
    return sub, out, code, stdout


def test_gradebook_feedback_cache_and_regrades(first_run, capsys):
    sub, out, code, stdout = first_run
    assert code == 0, stdout  # the unreadable notebook is graded (at zero), not a failed job
    assert "3 graded now, 0 reused" in stdout and "submissions/min" in stdout

    rows = csv_rows(out)
    assert {k: float(r["points"]) for k, r in rows.items() if k[1] != "total"} == {
        ("alice", "a0_add_one_tests"): 2,
        ("alice", "a0_square_tests"): 3,
        ("bob", "a0_add_one_tests"): 0,
        ("bob", "a0_square_tests"): 3,
        ("carol", "a0_add_one_tests"): 0,
        ("carol", "a0_square_tests"): 0,
    }
    totals = {
        s: (float(rows[(s, "total")]["points"]), float(rows[(s, "total")]["max_points"]))
        for s in ("alice", "bob", "carol")
    }
    assert totals == {"alice": (5, 5), "bob": (3, 5), "carol": (0, 5)}
    assert all(r["assignment"] == "A0_fixture" for r in rows.values())
    assert rows[("bob", "a0_add_one_tests")]["status"] == "failed"
    assert rows[("carol", "a0_square_tests")]["status"] == "error"
    assert "error" in rows[("carol", "total")]["flags"] and rows[("alice", "total")]["flags"] == ""

    book = json.loads((out / "gradebook.json").read_text())
    assert [e["student"] for e in book] == ["alice", "bob", "carol"]  # the skipped files are not in it
    alice = book[0]
    assert alice["sha256"] == gb.hashlib.sha256(A0.read_bytes()).hexdigest()
    assert alice["submission"] == str(sub / "alice" / "A0" / "A0_fixture.ipynb")
    assert (alice["points"], alice["max_points"], alice["status"]) == (5, 5, "graded")
    assert {t["grade_id"]: t["max_points"] for t in alice["tasks"]} == FULL
    assert alice["flags"] == [] and isinstance(alice["sandbox"], str)
    assert alice["notes"] == [] or alice["sandbox"].startswith("none")  # unsandboxed: a "no sandbox" note
    assert any("not a readable notebook" in n for n in book[2]["notes"])
    for e in book:
        assert (out / e["log"]).is_file()

    for student, total in (("alice", "5 / 5"), ("bob", "3 / 5"), ("carol", "0 / 5")):
        text = (out / "feedback" / student / "A0_fixture.md").read_text()
        assert text.startswith("# Feedback: A0_fixture") and f"**Total: {total}**" in text
        assert "| a0_add_one_tests |" in text and "| task | points | feedback |" in text
    assert "| a0_add_one_tests | 0 / 2 |" in (out / "feedback" / "bob" / "A0_fixture.md").read_text()

    # A rerun grades nothing: all three reused from the cache.
    code, stdout, seconds = run(capsys, sub, out)
    assert code == 0 and "0 graded now, 3 reused" in stdout, stdout
    assert all(e["reused"] for e in json.loads((out / "gradebook.json").read_text()))
    assert seconds < 5, seconds  # no grader runs: hashing and reading the cache
    assert csv_rows(out) == rows

    # A changed submission is graded again, and only that one.
    (sub / "bob" / "a0" / "A0_fixture.ipynb").write_text(with_add_one("1 + x"), encoding="utf8")
    code, stdout, _ = run(capsys, sub, out)
    assert "1 graded now, 2 reused" in stdout, stdout
    assert float(csv_rows(out)[("bob", "total")]["points"]) == 5

    # The key is the content: bob handing in alice's bytes reuses her report, and is flagged.
    shutil.copy(A0, sub / "bob" / "a0" / "A0_fixture.ipynb")
    code, stdout, _ = run(capsys, sub, out)
    assert "0 graded now, 3 reused" in stdout, stdout
    rows = csv_rows(out)
    assert "identical to the submission of bob" in rows[("alice", "total")]["flags"]
    assert "identical to the submission of alice" in rows[("bob", "total")]["flags"]
    assert json.loads((out / "gradebook.json").read_text())[1]["submission"].startswith(str(sub / "bob"))


FAKE_GRADER = r"""
import json, os, subprocess, sys, time
from pathlib import Path
args = sys.argv[1:]
nb, report = Path(args[args.index("grade") + 1]), Path(args[args.index("--json") + 1])
kind = nb.stem
if kind == "crash":
    raise RuntimeError("the grader fell over")
if kind == "nojson":
    sys.exit(0)
if kind == "badjson":
    report.write_text('{"tasks": [')
    sys.exit(0)
if kind == "overpoints":
    report.write_text(json.dumps({"assignment": "A0_fixture", "tasks": [
        {"grade_id": "a0_add_one_tests", "points": 99, "max_points": 2}], "total": {}}))
    sys.exit(0)
if kind == "slow":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path(os.environ["GRADEBOOK_TEST_PIDS"]).write_text(f"{os.getpid()} {child.pid}")
    time.sleep(120)
report.write_text(json.dumps({"assignment": "A0_fixture", "submission": str(nb), "tasks": [
    {"grade_id": "a0_add_one_tests", "points": 2, "max_points": 2, "status": "passed",
     "feedback": "passed | well\nsecond line", "message": ""},
    {"grade_id": "a0_square_tests", "points": 1.5, "max_points": 3, "status": "partial",
     "feedback": "<b>almost</b>", "message": "AssertionError: square(-3)"}],
    "total": {"points": 3.5, "max_points": 5}, "notes": ["a note"], "flags": ["=check this"], "sandbox": "fake"}))
"""


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")
    except FileNotFoundError:
        return True


def test_failing_jobs_become_error_rows(tmp_path, capsys, monkeypatch, frozen_fingerprint):
    fake = tmp_path / "fake_grader.py"
    fake.write_text(FAKE_GRADER)
    pids = tmp_path / "pids.txt"
    monkeypatch.setattr(gb, "GRADER", fake)
    monkeypatch.setattr(gb, "wall_timeout", lambda cell_timeout: 2.0)
    monkeypatch.setenv("GRADEBOOK_TEST_PIDS", str(pids))
    sub = tmp_path / "submitted"
    for student in ("crash", "nojson", "badjson", "overpoints", "slow", "ok"):
        (sub / student / "A0").mkdir(parents=True)
        (sub / student / "A0" / f"{student}.ipynb").write_text(f"{{}} {student}")
    (sub / "ok2" / "A0").mkdir(parents=True)  # the same bytes as ok's: graded once, the report shared
    (sub / "ok2" / "A0" / "ok.ipynb").write_bytes((sub / "ok" / "A0" / "ok.ipynb").read_bytes())
    (sub / "linked" / "A0").mkdir(parents=True)
    (sub / "linked" / "A0" / "A0_fixture.ipynb").symlink_to(A0)  # never followed

    out = tmp_path / "out"
    code, stdout, seconds = run(capsys, sub, out)
    assert code == 1, stdout  # the gradebook is written; some submissions have no grade
    assert "6 graded now, 1 reused" in stdout and "6 without a grade" in stdout, stdout
    assert seconds < 20

    book = {e["student"]: e for e in json.loads((out / "gradebook.json").read_text())}
    status = {s: (e["status"], e["reason"]) for s, e in book.items()}
    assert status["crash"][0] == "error" and "code 1" in status["crash"][1] and "fell over" in status["crash"][1]
    assert status["nojson"] == ("error", "the grader wrote no report")
    assert status["badjson"][0] == "error" and "not valid JSON" in status["badjson"][1]
    assert status["overpoints"][0] == "error" and "malformed task" in status["overpoints"][1]
    assert status["slow"][0] == "timeout"
    assert status["linked"] == ("error", "the submission is a symbolic link; not followed")
    for s in ("crash", "nojson", "badjson", "overpoints", "slow", "linked"):
        e = book[s]  # zero points for every task of the assignment its folder names
        assert (e["points"], e["max_points"]) == (0, 5) and e["flags"], e
        assert {t["grade_id"]: t["points"] for t in e["tasks"]} == {"a0_add_one_tests": 0, "a0_square_tests": 0}
        assert "could not be graded automatically" in (out / "feedback" / s / "A0_fixture.md").read_text()
    # the job over time was killed with its process group
    grader_pid, child_pid = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5
    while not (_gone(grader_pid) and _gone(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(grader_pid) and _gone(child_pid)

    ok = book["ok"]  # the optional report fields are carried over
    assert ok["status"] == "graded" and ok["points"] == 3.5 and ok["sandbox"] == "fake"
    assert ok["flags"] == ["=check this", "identical to the submission of ok2"]
    ok2 = book["ok2"]
    assert (ok2["status"], ok2["points"], ok2["reused"]) == ("graded", 3.5, True)
    assert "identical to the submission of ok" in ok2["flags"] and ok2["submission"].startswith(str(sub / "ok2"))
    rows = csv_rows(out)
    assert rows[("ok", "total")]["flags"].startswith("'=check this;")  # not a spreadsheet formula
    text = (out / "feedback" / "ok" / "A0_fixture.md").read_text()
    assert "| a0_add_one_tests | 2 / 2 | passed \\| well<br>second line |" in text
    assert "&lt;b&gt;almost&lt;/b&gt;<br>AssertionError: square(-3)" in text
    assert "- a note" in text

    # Failed jobs are not cached: a rerun tries them again and reuses only the good one;
    # --force grades the good one again too. (Without the slow one: each timeout costs seconds.)
    shutil.rmtree(sub / "slow")
    code, stdout, _ = run(capsys, sub, out)
    assert "4 graded now, 2 reused" in stdout, stdout
    code, stdout, _ = run(capsys, sub, out, "--force")
    assert "5 graded now, 1 reused" in stdout, stdout
    book = {e["student"]: e for e in json.loads((out / "gradebook.json").read_text())}
    assert (book["ok"]["status"], book["ok"]["reused"]) == ("graded", False)


def test_assignment_folder_names():
    """The folder name is passed on when the grader's own rule accepts it, else left to the grader."""
    for folder in ("A0", "a0", "A0_fixture"):
        assert gb.solution_for_folder(folder, FIXTURES) == "A0_fixture"
    for folder in ("homework", "A1", "A0_other", "week 3"):
        assert gb.solution_for_folder(folder, FIXTURES) is None


def test_fingerprint_follows_grader_and_solutions(tmp_path):
    root = tmp_path / "course"
    (root / "tools").mkdir(parents=True)
    (root / "rnnlib" / "sub").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "tools" / "coursework.py").write_text("grader")
    (root / "rnnlib" / "sub" / "m.py").write_text("lib")
    (root / "src" / "A0_x.ipynb").write_text("solution")
    first = gb.grader_fingerprint(root / "src", root)
    assert gb.grader_fingerprint(root / "src", root) == first
    seen = {first}
    for path, text in (
        ("tools/coursework.py", "grader 2"),
        ("rnnlib/sub/m.py", "lib 2"),
        ("src/A0_x.ipynb", "solution 2"),
        ("tools/new.py", ""),
    ):
        (root / path).write_text(text)
        value = gb.grader_fingerprint(root / "src", root)
        assert value not in seen, path
        seen.add(value)
    key = gb.job_key("a" * 64, first, {"timeout": 60, "assignment": None})
    assert key != gb.job_key("b" * 64, first, {"timeout": 60, "assignment": None})
    assert key != gb.job_key("a" * 64, first, {"timeout": 30, "assignment": None})


def test_outputs_are_atomic_and_never_written_through_links(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "victim.txt").write_text("keep")
    (out / "gradebook.csv").symlink_to(elsewhere / "victim.txt")
    gb.atomic_write(out / "gradebook.csv", "new")
    assert not (out / "gradebook.csv").is_symlink() and (out / "gradebook.csv").read_text() == "new"
    assert (elsewhere / "victim.txt").read_text() == "keep"
    (out / "feedback").symlink_to(elsewhere, target_is_directory=True)
    path = gb.safe_dir(out, "feedback", "alice")
    gb.atomic_write(path / "A0.md", "x")
    assert not (out / "feedback").is_symlink() and sorted(p.name for p in elsewhere.iterdir()) == ["victim.txt"]
    assert [p.name for p in path.iterdir()] == ["A0.md"]  # no temp files left behind
    assert oct((path / "A0.md").stat().st_mode & 0o777) == oct(gb.FILE_MODE)


def test_markdown_cells_and_csv_text():
    assert gb.md_cell("a | b\nc\r\nd") == "a \\| b<br>c<br>d"
    assert gb.md_cell("<script>") == "&lt;script&gt;"
    assert gb._csv_text("=1+1") == "'=1+1" and gb._csv_text("-x") == "'-x" and gb._csv_text("ok") == "ok"
    assert gb.valid_report({"assignment": "A", "tasks": [{"grade_id": "t", "points": 1, "max_points": 2}]}) == ""
    assert gb.valid_report({"assignment": "A", "tasks": [{"grade_id": "t", "points": float("nan"), "max_points": 2}]})
    assert gb.valid_report([]) and gb.valid_report({"assignment": "A", "tasks": []})
