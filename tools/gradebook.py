"""Class-scale batch grading: one gradebook from a folder of submissions.

Grades every notebook of an nbgrader ``submitted/`` folder with the course's own grader
(``tools/coursework.py grade``), one independent subprocess per submission, and writes

    OUT/gradebook.csv                      student, assignment, task, points, max_points, status, flags
                                           (one row per task, plus a row ``total`` per submission)
    OUT/gradebook.json                     one object per submission (points, tasks, flags, notes, ...)
    OUT/feedback/<student>/<assignment>.md the feedback a student gets (like nbgrader's generate_feedback)
    OUT/logs/<student>/<folder>/<nb>.log   the grader's own stdout/stderr, per job
    OUT/cache/<key>.json                   the grader's report, per (submission bytes, grader) key

Usage (``python tools/coursework.py batch ...`` calls :func:`main` with the same arguments):

    python tools/gradebook.py SUBMITTED --out OUT [--jobs N] [--timeout S] [--source-dir DIR] [--force]

``SUBMITTED`` is laid out as nbgrader lays it out: ``SUBMITTED/<student>/<assignment>/*.ipynb``.
The assignment folder's name (``a1``, ``A1``, ``A1_rnn_step``) is passed on to the grader as
``--assignment`` when it names one of the solution notebooks; otherwise the grader tells
the assignment from the notebook itself. Notebooks whose name starts with ``.`` and
anything under a hidden folder (``.ipynb_checkpoints``) are skipped; a notebook that is a
symbolic link is not followed (it becomes an error row: it could point at any file of the
instructor's machine, the solution notebook included).

**Failures stay local.** A grader crash, a non-zero exit, a job over its wall-clock bound
(``20 x --timeout + 120`` s), or a missing or malformed report makes an error row for that
one submission (status ``error`` or ``timeout`` and the reason, in the gradebook and in
``flags``); the batch goes on. The exit code is 0 when every submission was graded, 1 when
the gradebook was written but some could not be graded, 2 on a usage error.

**Resumable.** A job's key is the sha256 of the submission's bytes together with a
fingerprint of the grader (``tools/*.py``, ``rnnlib/**/*.py`` and the solution notebooks)
and the grading options (``--timeout``, the assignment passed on). A rerun reuses every
cached report whose key still matches and grades only new or changed submissions, or all
of them after a change to the grader; ``--force`` grades everything again. Failed jobs are
not cached, so a rerun retries them. Identical files (untouched student notebooks,
copies) are graded once per run and share the report; the gradebook flags them. ``OUT/cache``
may be deleted at any time.

**Several machines.** Each submission is an independent job with files in and files out,
so a class can be spread over machines that share the course image (the same grader
fingerprint) and a file system:

    python tools/gradebook.py submitted --out OUT --plan > jobs.txt   # one command per pending job
    parallel -S host1,host2 --workdir /path/to/course < jobs.txt      # or one Kubernetes Job per line
    python tools/gradebook.py submitted --out OUT --collect-only      # the gradebook from OUT/cache

Each planned command is ``python tools/coursework.py --source-dir DIR grade NB --json
OUT/cache/<key>.json``; ``--collect-only`` grades nothing and lists a submission without a
valid cached report as ``missing``. (A normal run afterwards grades exactly the missing ones.)

The gradebook trusts the JSON the grader writes: keeping a hostile submission away from
the job's files (and from ``OUT``) is the grader's sandbox's job. Here a report is only
checked for shape (finite points within ``0..max_points``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import io
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GRADER = ROOT / "tools" / "coursework.py"  # a module constant so that tests can stand in a fake grader
DEFAULT_SOURCE_DIR = ROOT / "chapters" / "coursework"
CSV_COLUMNS = ["student", "assignment", "task", "points", "max_points", "status", "flags"]
LOG_TAIL_BYTES = 1_000_000  # keep at most this much of a job's log (a chatty grader must not fill the disk)
MAX_SUBMISSION_BYTES = 100_000_000  # nbgrader's default max_file_size (100000 KB); a larger file is not read

# Submission statuses. A per-task row carries the grader's own task status instead.
GRADED, ERROR, TIMEOUT, MISSING = "graded", "error", "timeout", "missing"


# --------------------------------------------------------------------------------------
# Finding the submissions
# --------------------------------------------------------------------------------------


@dataclass
class Submission:
    """One notebook of ``SUBMITTED/<student>/<folder>/``."""

    student: str
    folder: str  # the assignment folder's name, as nbgrader's assignment id
    path: Path
    assignment: str | None = None  # the solution notebook's name (stem) if the folder names one
    data: bytes | None = None  # the bytes that were hashed (and are graded), read once
    sha256: str = ""
    key: str = ""
    read_error: str = ""


def _hidden(name: str) -> bool:
    return name.startswith(".")


def find_submissions(submitted: Path) -> list[Submission]:
    """Every notebook of ``submitted/<student>/<assignment>/``, in a stable order.

    The student and assignment folders are the instructor's (nbgrader's collect makes
    them) and may be links; inside an assignment folder everything is the student's, so
    the walk there does not follow linked folders.
    """
    found = []
    for student in sorted(p for p in submitted.iterdir() if p.is_dir() and not _hidden(p.name)):
        for folder in sorted(p for p in student.iterdir() if p.is_dir() and not _hidden(p.name)):
            for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
                for name in sorted(filenames):
                    if name.endswith(".ipynb") and not _hidden(name):
                        found.append(Submission(student.name, folder.name, Path(dirpath) / name))
    return found


def _coursework():
    """The grader module, imported late: coursework.py imports this module for its ``batch`` command."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tools import coursework

    return coursework


def solution_for_folder(folder: str, source_dir: Path) -> str | None:
    """The assignment (solution notebook stem) an assignment folder's name identifies, if any.

    Uses the grader's own rule (``identify_assignment`` with ``--assignment``), so that
    exactly the names the grader accepts are passed on: ``A1``, ``a1``, ``A1_rnn_step``.
    """
    cw = _coursework()
    sources = cw.solution_notebooks(source_dir)
    try:
        found = cw.identify_assignment(Path(folder), None, sources, forced=folder)
    except Exception:  # an unexpected name must not stop the batch: the grader identifies it
        return None
    return Path(found).stem if found else None


def solution_tasks(assignment: str | None, source_dir: Path) -> list[tuple[str, float]]:
    """The (grade_id, max points) of an assignment's tasks, for the rows of a failed job."""
    if not assignment:
        return []
    cw = _coursework()
    try:
        nb = cw.read_notebook(Path(source_dir) / f"{assignment}.ipynb")
        return [(t.grade_id, float(t.points)) for t in cw.tasks_of(nb)]
    except Exception:
        return []


# --------------------------------------------------------------------------------------
# Keys and the cache
# --------------------------------------------------------------------------------------


def grader_fingerprint(source_dir: Path, root: Path = ROOT) -> str:
    """A hash of everything that decides a grade: the grader, the course package, the solutions.

    Paths are hashed with the bytes, so that renaming or adding a file changes it too.
    """
    files = {root / "tools" / "coursework.py"}
    files |= set((root / "tools").glob("*.py")) | set((root / "rnnlib").rglob("*.py"))
    files |= set(Path(source_dir).glob("*.ipynb"))
    digest = hashlib.sha256()
    for path in sorted(files, key=str):
        if path.is_file():
            name = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
            digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def job_key(sub_sha256: str, fingerprint: str, options: dict[str, Any]) -> str:
    """The cache key: submission bytes, grader fingerprint and the options that change a grade."""
    text = json.dumps({"submission": sub_sha256, "grader": fingerprint, "options": options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def valid_report(report: Any) -> str:
    """Why a grader report cannot be used ("" when it can)."""
    if not isinstance(report, dict):
        return "the report is not a JSON object"
    tasks = report.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        return "the report lists no tasks"
    for t in tasks:
        if not (
            isinstance(t, dict)
            and isinstance(t.get("grade_id"), str)
            and _number(t.get("points"))
            and _number(t.get("max_points"))
            and 0 <= t["points"] <= t["max_points"]
        ):
            return f"the report has a malformed task: {str(t)[:200]}"
    if not isinstance(report.get("assignment"), str):
        return "the report names no assignment"
    return ""


def load_report(path: Path) -> tuple[dict | None, str]:
    """A grader report from a file, or None and the reason. Never reads through a link."""
    if path.is_symlink():
        return None, f"{path.name} is a symbolic link"
    if not path.is_file():
        return None, "the grader wrote no report"
    try:
        report = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        return None, f"the grader's report is not valid JSON ({type(err).__name__})"
    problem = valid_report(report)
    return (None, problem) if problem else (report, "")


# --------------------------------------------------------------------------------------
# Writing inside OUT: atomically, never through a link
# --------------------------------------------------------------------------------------


def safe_dir(out: Path, *parts: str) -> Path:
    """``out/parts...`` as real folders: a symbolic link on the way is removed, not followed."""
    path = out
    for part in parts:
        path = path / part
        if path.is_symlink():
            path.unlink()
        path.mkdir(exist_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # mkstemp makes 0600 files; outputs get the mode an ordinary write gives


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file whole or not at all: a temp file in the same folder, then ``os.replace``.

    ``os.replace`` renames over the target's directory entry, so a symbolic link at the
    target is replaced by the file, never written through.
    """
    if isinstance(data, str):
        data = data.encode("utf8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------
# Running one job
# --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one submission."""

    sub: Submission
    status: str
    report: dict | None = None
    reason: str = ""
    reused: bool = False
    elapsed_s: float = 0.0
    log: str = ""


def wall_timeout(cell_timeout: float) -> float:
    """The wall-clock bound of one job: generous, the grader bounds its own cells and run."""
    return cell_timeout * 20 + 120


def grade_command(notebook: Path, report: Path, source_dir: Path, timeout: float, assignment: str | None) -> list[str]:
    """The grader's command line for one submission (also what ``--plan`` prints)."""
    cmd = [
        sys.executable,
        str(GRADER),
        "--source-dir",
        str(source_dir),
        "grade",
        str(notebook),
        "--json",
        str(report),
        "--timeout",
        f"{timeout:g}",
    ]
    return cmd + (["--assignment", assignment] if assignment else [])


class Jobs:
    """The running grader processes, so that an interrupted batch can stop them all.

    Each job runs in its own session (so a runaway submission's processes can be killed
    with their group); the same separation keeps the terminal's Ctrl-C from reaching them,
    so :meth:`kill_all` does it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self.stopping = False

    def start(self, cmd: list[str], log, cwd: Path) -> subprocess.Popen:
        with self._lock:
            if self.stopping:
                raise RuntimeError("the batch was interrupted")
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
            )
            self._procs.add(proc)
            return proc

    def finish(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """Kill a job's whole process group; only while it is not yet reaped (its id is still ours)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill_all(self) -> None:
        with self._lock:
            self.stopping = True
            for proc in self._procs:
                if proc.returncode is None:  # a reaped job's id may already belong to someone else
                    self.kill(proc)


def _log_tail(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
        return f.read()


def _last_line(log: bytes) -> str:
    """The log's last non-empty line: a hint for the reason of a failed job, never a result."""
    lines = [ln.strip() for ln in log.decode("utf8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def run_job(sub: Submission, out: Path, source_dir: Path, timeout: float, jobs: Jobs) -> Outcome:
    """Grade one submission in a subprocess; every failure becomes an :class:`Outcome`, never an exception."""
    t0 = time.monotonic()
    log_dir = safe_dir(out, "logs", sub.student, sub.folder)
    log_path = log_dir / f"{sub.path.stem}.log"
    outcome = Outcome(sub, ERROR, log=str(log_path.relative_to(out)))
    with tempfile.TemporaryDirectory(prefix="gradebook-") as tmp:
        job = Path(tmp)
        # The job grades a snapshot of exactly the bytes that were hashed (the key stays
        # true even if the file changes meanwhile), under its own name (the grader may
        # identify the assignment from it), in a folder of its own (files in, files out).
        notebook, report_path = job / sub.path.name, job / "report.json"
        notebook.write_bytes(sub.data or b"")
        sub.data = None  # the snapshot holds them now; a class's notebooks need not all stay in memory
        cmd = grade_command(notebook, report_path, source_dir, timeout, sub.assignment)
        with open(job / "grade.log", "wb") as log:
            try:
                proc = jobs.start(cmd, log, job)
            except Exception as err:
                outcome.reason = f"could not start the grader: {err}"
                return outcome
            try:
                code = proc.wait(timeout=wall_timeout(timeout))
            except subprocess.TimeoutExpired:
                jobs.kill(proc)
                proc.wait()
                code = None
            finally:
                jobs.finish(proc)
        tail = _log_tail(job / "grade.log")
        atomic_write(log_path, tail)
        if code is None:
            outcome.status, outcome.reason = TIMEOUT, f"the grader ran over {wall_timeout(timeout):g} s and was stopped"
        elif code != 0:
            hint = _last_line(tail).replace(str(notebook), str(sub.path))  # the student's file, not the snapshot
            outcome.reason = f"the grader exited with code {code}" + (f": {hint}" if hint else "")
        else:
            report, problem = load_report(report_path)
            if report is None:
                outcome.reason = problem
            else:
                outcome.status, outcome.report = GRADED, report
                atomic_write(safe_dir(out, "cache") / f"{sub.key}.json", json.dumps(report, indent=1))
    outcome.elapsed_s = time.monotonic() - t0
    return outcome


# --------------------------------------------------------------------------------------
# The gradebook
# --------------------------------------------------------------------------------------


def entry_for(outcome: Outcome, source_dir: Path) -> dict:
    """One submission's object in gradebook.json (the optional report fields defaulted)."""
    sub, report = outcome.sub, outcome.report
    if report is not None:
        tasks = [
            {
                "grade_id": t["grade_id"],
                "points": float(t["points"]),
                "max_points": float(t["max_points"]),
                "status": str(t.get("status", "")),
                "feedback": str(t.get("feedback", "")),
                "message": str(t.get("message", "")),
            }
            for t in report["tasks"]
        ]
        raw_flags = report.get("flags") or []
        flags = [str(f) for f in raw_flags] if isinstance(raw_flags, list) else [str(raw_flags)]
        errors = sum(t["status"] == "error" for t in tasks)
        if errors:  # e.g. an unreadable notebook: zero points a teacher may want to look at
            flags.append(f"{errors} task(s) with status error")
        notes = [str(n) for n in report.get("notes") or []]
        assignment, sandbox = report["assignment"], str(report.get("sandbox") or "")
    else:
        # No report: every task of the assignment (if the folder tells which) at zero points.
        tasks = [
            {
                "grade_id": gid,
                "points": 0.0,
                "max_points": mx,
                "status": outcome.status,
                "feedback": "not graded",
                "message": "",
            }
            for gid, mx in solution_tasks(sub.assignment, source_dir)
        ]
        flags, notes = [f"{outcome.status}: {outcome.reason}"], [outcome.reason]
        assignment, sandbox = sub.assignment or sub.folder, ""
    return {
        "student": sub.student,
        "assignment": assignment,
        "folder": sub.folder,
        "submission": str(sub.path),
        "sha256": sub.sha256,
        "points": sum(t["points"] for t in tasks),
        "max_points": sum(t["max_points"] for t in tasks),
        "tasks": tasks,
        "flags": flags,
        "notes": notes,
        "sandbox": sandbox,
        "status": outcome.status,
        "reason": outcome.reason,
        "reused": outcome.reused,
        "log": outcome.log,
        "feedback": "",
    }


def add_review_flags(entries: list[dict]) -> None:
    """Flags across submissions: identical bytes from different students, several notebooks per assignment."""
    by_sha: dict[str, set[str]] = {}
    by_slot: dict[tuple[str, str], int] = {}
    for e in entries:
        if e["sha256"]:
            by_sha.setdefault(e["sha256"], set()).add(e["student"])
        by_slot[(e["student"], e["assignment"])] = by_slot.get((e["student"], e["assignment"]), 0) + 1
    for e in entries:
        others = sorted(by_sha.get(e["sha256"], set()) - {e["student"]})
        if others:
            e["flags"].append(f"identical to the submission of {', '.join(others)}")
        if by_slot[(e["student"], e["assignment"])] > 1:
            e["flags"].append(f"several notebooks for {e['assignment']}")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _csv_text(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula (names and flags are not ours)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def gradebook_csv(entries: list[dict]) -> str:
    """gradebook.csv: one row per task and a ``total`` row per submission (which carries the flags)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        for t in e["tasks"]:
            writer.writerow(
                [
                    _csv_text(e["student"]),
                    _csv_text(e["assignment"]),
                    _csv_text(t["grade_id"]),
                    _fmt(t["points"]),
                    _fmt(t["max_points"]),
                    _csv_text(t["status"]),
                    "",
                ]
            )
        writer.writerow(
            [
                _csv_text(e["student"]),
                _csv_text(e["assignment"]),
                "total",
                _fmt(e["points"]),
                _fmt(e["max_points"]),
                e["status"],
                _csv_text("; ".join(e["flags"])),
            ]
        )
    return buf.getvalue()


def md_cell(text: str) -> str:
    """One Markdown table cell: HTML escaped (it may quote a student's code), with ``|`` and newlines kept in."""
    text = html.escape(text.strip(), quote=False).replace("|", "\\|")
    return "<br>".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def feedback_markdown(e: dict) -> str:
    """A student's feedback page: title, total, a table of task / points / feedback, the notes."""
    lines = [
        f"# Feedback: {md_cell(e['assignment'])}",
        "",
        f"Student: {md_cell(e['student'])}",
        "",
        f"**Total: {_fmt(e['points'])} / {_fmt(e['max_points'])}**",
        "",
    ]
    if e["status"] != GRADED:
        lines += ["This submission could not be graded automatically; your teacher will look at it.", ""]
    if e["tasks"]:
        lines += ["| task | points | feedback |", "| --- | ---: | --- |"]
        for t in e["tasks"]:
            text = t["feedback"]
            if t["message"] and t["message"] not in text:
                text += "\n" + t["message"]
            lines.append(
                f"| {md_cell(t['grade_id'])} | {_fmt(t['points'])} / {_fmt(t['max_points'])} | {md_cell(text)} |"
            )
        lines.append("")
    if e["notes"] and e["status"] == GRADED:  # a failed job's reason is for the teacher (the log, paths)
        lines += ["## Notes", ""] + [f"- {md_cell(n)}" for n in e["notes"]] + [""]
    return "\n".join(lines)


def write_outputs(out: Path, entries: list[dict]) -> None:
    """gradebook.csv, gradebook.json and the feedback files, each written atomically."""
    names: dict[tuple[str, str], int] = {}
    for e in entries:
        names[(e["student"], e["assignment"])] = names.get((e["student"], e["assignment"]), 0) + 1
    for e in entries:
        # Two notebooks for one assignment (a draft beside the answer) get one file each.
        stem = (
            e["assignment"]
            if names[(e["student"], e["assignment"])] == 1
            else f"{e['assignment']}__{Path(e['submission']).stem}"
        )
        path = safe_dir(out, "feedback", e["student"]) / f"{stem}.md"
        atomic_write(path, feedback_markdown(e))
        e["feedback"] = str(path.relative_to(out))
    atomic_write(out / "gradebook.csv", gradebook_csv(entries))
    atomic_write(out / "gradebook.json", json.dumps(entries, indent=1) + "\n")


# --------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------


def prepare(subs: list[Submission], source_dir: Path, timeout: float) -> None:
    """Read, hash and key every submission; the assignment its folder names."""
    fingerprint = grader_fingerprint(source_dir)
    folders: dict[str, str | None] = {}
    for sub in subs:
        if sub.folder not in folders:
            folders[sub.folder] = solution_for_folder(sub.folder, source_dir)
        sub.assignment = folders[sub.folder]
        if sub.path.is_symlink():
            sub.read_error = "the submission is a symbolic link; not followed"
            continue
        try:
            if sub.path.stat().st_size > MAX_SUBMISSION_BYTES:
                sub.read_error = f"the submission is larger than {MAX_SUBMISSION_BYTES // 1_000_000} MB; not graded"
                continue
            sub.data = sub.path.read_bytes()
        except OSError as err:
            sub.read_error = f"cannot read the submission ({type(err).__name__})"
            continue
        sub.sha256 = hashlib.sha256(sub.data).hexdigest()
        sub.key = job_key(sub.sha256, fingerprint, {"timeout": timeout, "assignment": sub.assignment})


def cached_outcome(sub: Submission, out: Path) -> Outcome | None:
    """The outcome from the cache, if a valid report is stored under the submission's key."""
    report, _ = load_report(out / "cache" / f"{sub.key}.json")
    return Outcome(sub, GRADED, report, reused=True) if report is not None else None


def run_batch(pending: list[Submission], out: Path, source_dir: Path, timeout: float, n_jobs: int) -> list[Outcome]:
    """Grade the pending submissions on a bounded pool, with a progress bar on stderr."""
    from tqdm import tqdm

    outcomes: list[Outcome] = []
    jobs = Jobs()
    bar = tqdm(total=len(pending), desc="grading", unit="nb", file=sys.stderr, disable=None)
    pool = ThreadPoolExecutor(max_workers=max(1, n_jobs))
    try:
        futures = {pool.submit(run_job, sub, out, source_dir, timeout, jobs): sub for sub in pending}
        failed = 0
        for fut in as_completed(futures):
            try:
                outcome = fut.result()
            except Exception as err:  # a bug or a full disk in one job: still only that row
                outcome = Outcome(futures[fut], ERROR, reason=f"{type(err).__name__}: {err}")
            failed += outcome.status != GRADED
            outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix(failed=failed)
    except BaseException:  # Ctrl-C: the jobs run in their own sessions and would outlive us
        jobs.kill_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
    return outcomes


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submitted", help="nbgrader's submitted folder: SUBMITTED/<student>/<assignment>/*.ipynb")
    parser.add_argument("--out", required=True, help="output folder (gradebook, feedback, logs, cache)")
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="submissions graded at once (default: the number of CPUs)",
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds per cell, passed to the grader (default 60)")
    parser.add_argument(
        "--source-dir",
        default=str(DEFAULT_SOURCE_DIR),
        help="folder of the solution notebooks (default: chapters/coursework)",
    )
    parser.add_argument("--force", action="store_true", help="grade every submission again, ignoring the cache")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--plan", action="store_true", help="only print the grader's command for each submission not yet in the cache"
    )
    mode.add_argument(
        "--collect-only", action="store_true", help="grade nothing: the gradebook from the cached reports"
    )
    return parser.parse_args(argv)


def summary(entries: list[dict], n_run: int, n_reused: int, wall_s: float) -> str:
    """The one-line summary; the throughput counts the jobs run now (not the reused reports), over wall time."""
    failed = sum(e["status"] != GRADED for e in entries)
    rate = f"{n_run / wall_s * 60:.1f} submissions/min ({wall_s:.1f} s)" if n_run and wall_s > 0 else "nothing to grade"
    return (
        f"{len(entries)} submissions: {n_run} graded now, {n_reused} reused (cached or identical), "
        f"{failed} without a grade; {rate}"
    )


def main(argv: list[str] | None = None) -> int:
    """Grade a submitted/ folder into OUT; see the module docstring."""
    args = parse_args(argv)
    submitted, out, source_dir = Path(args.submitted), Path(args.out), Path(args.source_dir).resolve()
    if not submitted.is_dir():
        print(f"no such folder: {submitted}", file=sys.stderr)
        return 2
    if not source_dir.is_dir():
        print(f"no such folder: {source_dir}", file=sys.stderr)
        return 2
    subs = find_submissions(submitted)
    prepare(subs, source_dir, args.timeout)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()

    outcomes: list[Outcome] = []
    pending: list[Submission] = []
    for sub in subs:
        cached = None if (args.force or sub.read_error) else cached_outcome(sub, out)
        if sub.read_error:
            outcomes.append(Outcome(sub, ERROR, reason=sub.read_error))
        elif cached is not None:
            outcomes.append(cached)
            sub.data = None
        elif args.collect_only:
            outcomes.append(Outcome(sub, MISSING, reason="no report in the cache"))
        else:
            pending.append(sub)

    # Identical bytes (untouched student notebooks, copies) are graded once; the others share the report.
    unique: dict[str, Submission] = {}
    for sub in pending:
        unique.setdefault(sub.key, sub)
    twins = [sub for sub in pending if unique[sub.key] is not sub]

    if args.plan:
        cache = safe_dir(out, "cache")
        for sub in unique.values():
            print(
                shlex.join(
                    grade_command(
                        sub.path.resolve(), cache / f"{sub.key}.json", source_dir, args.timeout, sub.assignment
                    )
                )
            )
        return 0

    t0 = time.monotonic()
    try:
        graded = run_batch(list(unique.values()), out, source_dir, args.timeout, args.jobs) if unique else []
    except KeyboardInterrupt:
        print(
            "interrupted: the jobs were stopped; the reports graded so far are cached, a rerun resumes", file=sys.stderr
        )
        return 130
    wall = time.monotonic() - t0
    by_key = {o.sub.key: o for o in graded}
    shared = [replace(by_key[sub.key], sub=sub, reused=True) for sub in twins]
    order = {id(sub): i for i, sub in enumerate(subs)}
    outcomes = sorted(outcomes + graded + shared, key=lambda o: order[id(o.sub)])

    entries = [entry_for(o, source_dir) for o in outcomes]
    add_review_flags(entries)
    write_outputs(out, entries)
    n_reused = sum(o.reused for o in outcomes)
    print(summary(entries, len(graded), n_reused, wall))
    print(f"gradebook: {out / 'gradebook.csv'}")
    return 0 if all(e["status"] == GRADED for e in entries) else 1


if __name__ == "__main__":
    if str(ROOT) not in sys.path:  # `python tools/gradebook.py`: make `tools` importable
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
