"""Coursework tooling: student versions, a local autograder, the student edition of the site.

The coursework notebooks ``chapters/coursework/A*.ipynb`` are *solution* notebooks in
nbgrader's format (schema 3): solution cells with ``### BEGIN SOLUTION``/``### END
SOLUTION`` regions, autograded test cells whose ``### BEGIN HIDDEN TESTS`` part is not
shown to learners, and locked cells. This script works with or without an nbgrader course:

    python tools/coursework.py student [--force] [--out build/student]
        Student notebooks, made by nbgrader's own preprocessors in the order
        ``nbgrader generate_assignment`` applies them (solutions become ``# YOUR CODE
        HERE`` / ``raise NotImplementedError()``, hidden tests removed, outputs cleared,
        cells locked, checksums). Each generated notebook carries a mark in its metadata
        (``rnn_course``: who generated it, from which source, a fingerprint of its cells);
        an existing file without the mark, or one changed since it was generated (a
        learner's work), is never overwritten unless ``--force`` is given. Never writes
        inside chapters/.

    python tools/coursework.py grade SUBMISSION.ipynb [--json out.json] [--timeout 60]
        Grades one submission locally. The submission file is only read. A copy has its
        test cells and locked cells restored from the solution notebook by ``grade_id``
        (nbgrader's OverwriteCells rule, including the hidden tests; deleted test cells
        are put back), and is run in a fresh kernel in a temporary folder holding the
        assignment's other files (as nbgrader's autograde does), every cell even after errors, with a
        per-cell timeout (a cell that overruns is interrupted, or the kernel restarted and
        the earlier cells replayed) and an overall time bound. Points per test cell follow
        nbgrader's rule (``nbgrader.utils.determine_grade``: full points unless the cell
        raised or wrote to stderr). Prints one line per task; exit code 0 whenever a
        report was produced.

    python tools/coursework.py points
        The points table (Markdown) read from the solution notebooks' metadata.

    python tools/coursework.py site [--out _build/student]
        The student edition of the book in ``_build/student/html``: sphinx-exercise's
        ``hide_solutions``, the coursework pages replaced by their student versions, no
        copied page sources (``_sources/``) and no launch buttons, built with warnings as
        errors (-W -n --keep-going, fresh environment).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tools.numerics import apply_numeric_env  # noqa: E402

CHAPTERS = ROOT / "chapters"
SOURCE_DIR = CHAPTERS / "coursework"
DEFAULT_STUDENT_OUT = ROOT / "build" / "student"
DEFAULT_SITE_OUT = ROOT / "_build" / "student"
GENERATED_BY = "tools/coursework.py student"
MARK = "rnn_course"  # notebook-metadata key of generated student notebooks
ASSIGNMENT_FILE = re.compile(r"^(A\d+)_[A-Za-z0-9_\-]+\.ipynb$")


# --------------------------------------------------------------------------------------
# Solution notebooks
# --------------------------------------------------------------------------------------

def solution_notebooks(source_dir: Path = SOURCE_DIR) -> list[Path]:
    """The coursework solution notebooks ``A<n>_<name>.ipynb``, in assignment order."""
    found = [p for p in Path(source_dir).glob("A*.ipynb") if ASSIGNMENT_FILE.match(p.name)]
    return sorted(found, key=lambda p: (int(ASSIGNMENT_FILE.match(p.name).group(1)[1:]), p.name))


def read_notebook(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def is_grade(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("grade", False))


def is_solution(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution", False))


def is_locked(cell: NotebookNode) -> bool:
    """nbgrader's rule (``nbgrader.utils.is_locked``): grade cells and ``locked`` cells, not solutions."""
    meta = nbgrader_meta(cell)
    if not meta or meta.get("solution", False):
        return False
    return bool(meta.get("grade", False) or meta.get("locked", False))


@dataclass
class Task:
    """One autograded test cell of an assignment."""

    grade_id: str
    points: float


def tasks_of(nb: NotebookNode) -> list[Task]:
    """The autograded test cells (grade, not solution) in notebook order."""
    return [Task(grade_id(c), float(nbgrader_meta(c)["points"]))
            for c in nb.cells if is_grade(c) and not is_solution(c) and c.cell_type == "code"]


def assignment_name(path: Path) -> str:
    return Path(path).stem


# --------------------------------------------------------------------------------------
# Student versions (nbgrader's preprocessors, as `nbgrader generate_assignment` chains them)
# --------------------------------------------------------------------------------------

def student_preprocessors() -> list[type]:
    """``GenerateAssignment.preprocessors`` of the installed nbgrader, minus ``SaveCells``.

    SaveCells only records the cells in the gradebook database; it does not change the
    notebook. Everything else (header/footer, autotests, LockCells, ClearSolutions,
    ClearOutput, ComputeChecksums, ClearHiddenTests, ClearMarkScheme, metadata checks)
    runs exactly as in ``nbgrader generate_assignment``, in the same order.
    """
    from nbgrader.converters.generate_assignment import GenerateAssignment
    from nbgrader.preprocessors import SaveCells

    chain = GenerateAssignment.class_traits()["preprocessors"].default()
    return [pp for pp in chain if pp is not SaveCells]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cells_fingerprint(nb: NotebookNode) -> str:
    """A hash of what a learner changes: each cell's type, source and outputs.

    Notebook/cell metadata and formatting are left out, so opening and saving a notebook
    in Jupyter without editing or running it does not count as a change.
    """
    content = [[c.cell_type, c.source, c.get("outputs", [])] for c in nb.cells]
    return sha256_bytes(json.dumps(content, sort_keys=True, ensure_ascii=True).encode())


def make_student(solution_path: Path) -> NotebookNode:
    """The student version of one solution notebook (nbgrader's preprocessors), with the mark."""
    from nbconvert.exporters import NotebookExporter

    solution_path = Path(solution_path)
    exporter = NotebookExporter()
    for pp in student_preprocessors():
        exporter.register_preprocessor(pp(parent=exporter), enabled=True)
    resources = {
        "metadata": {"path": str(solution_path.parent), "name": solution_path.stem},
        "unique_key": solution_path.stem,
        "nbgrader": {"notebook": solution_path.stem, "assignment": assignment_name(solution_path),
                     "student": ".", "db_url": ""},
    }
    output, _ = exporter.from_notebook_node(read_notebook(solution_path), resources=resources)
    nb = nbformat.reads(output, as_version=4)
    try:
        source_rel = solution_path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        source_rel = str(solution_path)
    nb.metadata[MARK] = {
        "generated_by": GENERATED_BY,
        "assignment": assignment_name(solution_path),
        "source": source_rel,
        "source_sha256": sha256_bytes(solution_path.read_bytes()),
        "cells_sha256": cells_fingerprint(nb),
    }
    return nb


def serialize(nb: NotebookNode) -> str:
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def check_overwrite(target: Path) -> str | None:
    """Why ``target`` must not be overwritten without --force, or None if it may be."""
    if not target.exists():
        return None
    try:
        existing = read_notebook(target)
    except Exception as err:  # not a notebook at all
        return f"{target} exists and is not a notebook generated by this tool ({type(err).__name__})"
    mark = existing.metadata.get(MARK)
    if not isinstance(mark, dict) or mark.get("generated_by") != GENERATED_BY:
        return f"{target} exists and was not generated by `{GENERATED_BY}` (no '{MARK}' mark in its metadata)"
    if mark.get("cells_sha256") != cells_fingerprint(existing):
        return (f"{target} was changed after it was generated (a learner's edits or outputs?); "
                "move it away or use --force to overwrite it")
    return None


def cmd_student(args: argparse.Namespace) -> int:
    source_dir = Path(args.source_dir)
    out = Path(args.out) if args.out else DEFAULT_STUDENT_OUT
    if out.resolve().is_relative_to(CHAPTERS.resolve()):
        print(f"refusing to write inside chapters/: {out}", file=sys.stderr)
        return 2
    sources = solution_notebooks(source_dir)
    if not sources:
        print(f"no solution notebooks A<n>_<name>.ipynb in {source_dir}", file=sys.stderr)
        return 2
    plans = []
    refused = []
    for src in sources:
        target = out / src.name
        reason = check_overwrite(target)
        if reason and not args.force:
            refused.append(reason)
        plans.append((src, target, reason))
    if refused:
        for reason in refused:
            print(f"refusing to overwrite: {reason}", file=sys.stderr)
        print("nothing written (use --force to overwrite these files)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for src, target, reason in plans:
        text = serialize(make_student(src))
        if target.exists() and target.read_text(encoding="utf8") == text:
            status = "unchanged"
        else:
            status = "overwritten (--force)" if reason else ("updated" if target.exists() else "created")
            target.write_text(text, encoding="utf8")
        print(f"{status:>22}  {target}")
    return 0


# --------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------

@dataclass
class TaskResult:
    grade_id: str
    points: float
    max_points: float
    status: str  # passed | partial | failed | not_implemented | timed_out | not_run | error
    feedback: str
    message: str = ""  # the test cell's full error message, if any


@dataclass
class Report:
    assignment: str
    submission: str
    tasks: list[TaskResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def total(self) -> dict:
        return {"points": sum(t.points for t in self.tasks), "max_points": sum(t.max_points for t in self.tasks)}

    def to_json(self) -> dict:
        return {"assignment": self.assignment, "submission": self.submission,
                "tasks": [asdict(t) for t in self.tasks], "total": self.total,
                "notes": self.notes, "elapsed_s": round(self.elapsed_s, 2)}

    def table(self) -> str:
        def fmt(x: float) -> str:
            return f"{x:g}"
        rows = [(t.grade_id, f"{fmt(t.points)} / {fmt(t.max_points)}", t.feedback) for t in self.tasks]
        total = self.total
        rows.append(("total", f"{fmt(total['points'])} / {fmt(total['max_points'])}", ""))
        w0 = max(len("task"), *(len(r[0]) for r in rows))
        w1 = max(len("points"), *(len(r[1]) for r in rows))
        lines = [f"{self.assignment}: {self.submission}", "",
                 f"{'task':<{w0}}  {'points':>{w1}}  feedback", f"{'-' * w0}  {'-' * w1}  --------"]
        for i, (a, b, c) in enumerate(rows):
            if i == len(rows) - 1:
                lines.append(f"{'-' * w0}  {'-' * w1}")
            lines.append(f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip())
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"graded in {self.elapsed_s:.1f} s")
        return "\n".join(lines)


def identify_assignment(submission: Path, nb: NotebookNode | None, sources: list[Path],
                        forced: str | None = None) -> Path | None:
    """Which solution notebook a submission belongs to.

    In order: ``--assignment``; the ``rnn_course.assignment`` mark of a generated student
    notebook; the grade ids it shares with each solution notebook; its filename prefix
    (``A1_...``, or any name containing ``A1``).
    """
    by_name = {assignment_name(p): p for p in sources}
    by_prefix = {ASSIGNMENT_FILE.match(p.name).group(1).upper(): p for p in sources}
    if forced:
        return by_name.get(forced) or by_prefix.get(forced.upper())
    if nb is not None:
        mark = nb.metadata.get(MARK, {})
        if isinstance(mark, dict) and mark.get("assignment") in by_name:
            return by_name[mark["assignment"]]
        ids = {grade_id(c) for c in nb.cells if grade_id(c)}
        overlaps = []
        for p in sources:
            theirs = {grade_id(c) for c in read_notebook(p).cells if grade_id(c)}
            overlaps.append((len(ids & theirs), p))
        overlaps.sort(key=lambda t: -t[0])
        if overlaps and overlaps[0][0] > 0 and (len(overlaps) == 1 or overlaps[1][0] < overlaps[0][0]):
            return overlaps[0][1]
    stem = submission.stem
    if stem in by_name:
        return by_name[stem]
    m = re.search(r"(?<![A-Za-z0-9])(A\d+)(?![0-9])", stem, flags=re.IGNORECASE)
    if m and m.group(1).upper() in by_prefix:
        return by_prefix[m.group(1).upper()]
    return None


RESTORED_NOTE = "restored"  # cell metadata flag (under MARK) of a re-inserted cell


def restore_cells(sub: NotebookNode, src: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The notebook to run: the submission with its test and locked cells taken from the source.

    nbgrader's OverwriteCells rule, without a database: every cell whose ``grade_id`` is in
    the source gets the source's cell type and nbgrader metadata (points cannot be edited);
    a locked or test cell also gets the source's text (so hidden tests are back and an
    edited test is undone); solution cells keep the learner's text. Cells with unknown or
    duplicate grade ids lose their nbgrader metadata (they run but score nothing). Test
    and locked cells the learner deleted are re-inserted after the nearest preceding
    source cell that is present (like ``OverwriteCells.add_missing_cells``). Outputs are
    cleared; the kernelspec is the source's.
    """
    nb = copy.deepcopy(sub)
    notes: list[str] = []
    source_by_id = {grade_id(c): c for c in src.cells if grade_id(c)}
    seen: set[str] = set()
    cells = []
    for cell in nb.cells:
        if cell.cell_type not in ("code", "markdown", "raw"):
            continue
        gid = grade_id(cell)
        if gid is not None:
            if gid not in source_by_id or gid in seen:
                why = "unknown" if gid not in source_by_id else "duplicate"
                notes.append(f"cell with {why} grade_id '{gid}' kept as an ordinary cell")
                cell.metadata.pop("nbgrader", None)
                cell.metadata.pop("deletable", None)
                cell.metadata.pop("editable", None)
            else:
                seen.add(gid)
                ref = source_by_id[gid]
                if cell.cell_type != ref.cell_type:
                    cell = _as_type(cell, ref.cell_type)
                cell.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
                if is_locked(ref):
                    cell.source = ref.source
        cells.append(cell)
    # Re-insert deleted test/locked cells after their nearest preceding source cell.
    for i, ref in enumerate(src.cells):
        gid = grade_id(ref)
        if gid is None or gid in seen or not is_locked(ref):
            continue
        restored = copy.deepcopy(ref)
        restored.metadata.setdefault(MARK, {})[RESTORED_NOTE] = True
        if restored.cell_type == "code":
            restored.outputs, restored.execution_count = [], None
        position = 0
        for prev in reversed(src.cells[:i]):
            pid = grade_id(prev)
            idx = next((k for k, c in enumerate(cells) if pid is not None and grade_id(c) == pid), None)
            if idx is not None:
                position = idx + 1
                break
        cells.insert(position, restored)
        seen.add(gid)
        if is_grade(ref):
            notes.append(f"test cell '{gid}' was missing from the submission; restored from the source")
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    nb.cells = cells
    nb.metadata["kernelspec"] = copy.deepcopy(src.metadata.get("kernelspec", {"name": "python3"}))
    return nb, notes


SUSPICIOUS = re.compile(r"rnnlib\.checks|\bimportlib\b|\bbuiltins\b|__builtins__|sys\.modules|__import__"
                        r"|get_ipython|\bos\._exit\b|\bdef\s+(?:check|diagnose)_\w+")


def suspicious_cells(nb: NotebookNode, src: NotebookNode) -> list[str]:
    """Notes on learner-written code that touches the grading machinery (points are not changed).

    The tests run in the learner's kernel, as in nbgrader: code that patches the checkers
    or the import system could defeat them. The restored test cells reload the checkers,
    which undoes the simple patches; anything cleverer is for a human to judge, so the
    report points at it. Learner-written means: a solution cell, or a cell whose text is
    not in the solution notebook.
    """
    known = {c.source for c in src.cells}
    notes = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or is_locked(cell):
            continue
        if not is_solution(cell) and cell.source in known:
            continue
        hits = sorted({m.group(0) for m in SUSPICIOUS.finditer(cell.source)})
        if hits:
            where = f"solution cell '{grade_id(cell)}'" if is_solution(cell) else f"cell {i}"
            notes.append(f"review by hand: {where} uses {', '.join(hits)}")
    return notes


def _as_type(cell: NotebookNode, cell_type: str) -> NotebookNode:
    if cell_type == "code":
        new = nbformat.v4.new_code_cell(cell.source, metadata=cell.metadata)
    elif cell_type == "markdown":
        new = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata)
    else:
        new = nbformat.v4.new_raw_cell(cell.source, metadata=cell.metadata)
    if "id" in cell:
        new["id"] = cell["id"]
    return new


@dataclass
class CellRun:
    status: str  # ok | error | timeout | died | not_run
    ename: str = ""
    evalue: str = ""
    stderr: str = ""


class _CurrentEnvKernelSpecs:
    """Kernel spec manager that always runs ``python3`` on this interpreter (like nbval --current-env)."""

    @staticmethod
    def make():
        import ipykernel.kernelspec
        from jupyter_client.kernelspec import KernelSpecManager

        class Specs(KernelSpecManager):
            def get_kernel_spec(self, kernel_name):
                return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                              **ipykernel.kernelspec.get_kernel_dict())

        return Specs()


MAX_OUTPUT_BYTES = 100_000  # per cell: a learner's print loop must not fill the grader's memory


def _capped_client_class():
    """nbclient's NotebookClient, keeping at most MAX_OUTPUT_BYTES of stream/display output per cell.

    Errors are always kept (they decide the points); the rest of a flood is dropped and
    replaced by one line saying so.
    """
    from nbclient import NotebookClient
    from nbformat.v4 import new_output

    class CappedClient(NotebookClient):
        _cap_cell = None
        _cap_bytes = 0
        _cap_noted = False

        def output(self, outs, msg, display_id, cell_index):
            if self._cap_cell != cell_index:
                self._cap_cell, self._cap_bytes, self._cap_noted = cell_index, 0, False
            if msg["msg_type"] in ("stream", "display_data", "execute_result", "update_display_data"):
                self._cap_bytes += len(json.dumps(msg["content"]))
                if self._cap_bytes > MAX_OUTPUT_BYTES:
                    if not self._cap_noted:
                        self._cap_noted = True
                        outs.append(new_output("stream", name="stdout",
                                               text=f"\n[grader: output beyond {MAX_OUTPUT_BYTES} bytes dropped]\n"))
                    return None
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


class Runner:
    """Runs a notebook's code cells in a fresh kernel, every cell, with time bounds.

    * per cell: ``cell_timeout`` seconds, then the kernel is interrupted (nbclient's
      ``interrupt_on_timeout``) and the run goes on; if the kernel does not come back
      (a loop that swallows KeyboardInterrupt) or dies (``os._exit``), a new kernel is
      started and the cells that ran fine before are replayed in it, silently;
    * overall: ``total_timeout`` seconds; cells not reached are ``not_run``, and a
      watchdog thread kills the kernel process if a cell is still running at the deadline.
    """

    def __init__(self, nb: NotebookNode, workdir: Path, cell_timeout: float, total_timeout: float):
        self.nb = nb
        self.workdir = workdir
        self.cell_timeout = cell_timeout
        self.deadline = time.monotonic() + total_timeout
        self.total_timeout = total_timeout
        self.runs: dict[int, CellRun] = {}
        self.notes: list[str] = []
        self._client = None
        self._km = None
        self._last_reply: dict | None = None
        self._not_run_reason = f"not run: the overall time limit ({total_timeout:g} s) was reached"

    # kernel lifetime ------------------------------------------------------------------
    def _start(self) -> None:
        from jupyter_client.manager import AsyncKernelManager

        NotebookClient = _capped_client_class()

        # An *async* kernel manager: with a blocking client nbclient waits on IOPub without
        # a timeout and a cell that never ends would hang the grader.
        self._km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_CurrentEnvKernelSpecs.make(),
                                      transport="ipc", ip=str(self.workdir / "kernel-ipc"))
        self._client = NotebookClient(
            self.nb, km=self._km, timeout=int(self.cell_timeout), allow_errors=True,
            interrupt_on_timeout=True, record_timing=False, iopub_timeout=4,
            raise_on_iopub_timeout=False, startup_timeout=120,
            extra_arguments=["--HistoryManager.hist_file=:memory:"],
            error_on_timeout={"ename": "CellTimeoutError", "evalue": f"timed out after {self.cell_timeout:g} s",
                              "traceback": [f"CellTimeoutError: timed out after {self.cell_timeout:g} s"]},
            on_cell_executed=self._on_executed,
            resources={"metadata": {"path": str(self.workdir)}},
        )
        self._client.reset_execution_trackers()
        env = dict(os.environ)
        apply_numeric_env(env)  # the course's numerical environment (tools/numerics.py), as under make test
        self._client.start_new_kernel(env=env)
        self._client.start_new_kernel_client()

    def _stop(self) -> None:
        from jupyter_core.utils import run_sync

        try:
            if self._client is not None and self._client.kc is not None:
                self._client.kc.stop_channels()
        except Exception:
            pass
        try:
            if self._km is not None and self._km.has_kernel:
                run_sync(self._km.shutdown_kernel)(now=True)
        except Exception:
            self._kill_kernel_process()
        self._client = self._km = None

    def _kill_kernel_process(self) -> None:
        """Watchdog: SIGKILL the kernel process (nbclient then sees a dead kernel)."""
        try:
            pid = self._km.provisioner.process.pid  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        except Exception:
            pass

    def _on_executed(self, cell=None, cell_index=None, execute_reply=None, **_: Any) -> None:
        self._last_reply = execute_reply

    def _responsive(self, wait: float = 5.0, code: str = "") -> bool:
        """Does the kernel run ``code`` (default: a no-op) and answer within ``wait`` seconds?"""
        from jupyter_core.utils import run_sync

        kc = self._client.kc
        try:
            msg_id = kc.execute(code, silent=True, store_history=False)
            end = time.monotonic() + wait
            while time.monotonic() < end:
                try:
                    msg = run_sync(kc.get_shell_msg)(timeout=max(0.05, end - time.monotonic()))
                except Exception:
                    continue
                if msg["parent_header"].get("msg_id") == msg_id:
                    return True
        except Exception:
            return False
        return False

    # running ---------------------------------------------------------------------------
    def _run_one(self, index: int, cell: NotebookNode, silent: bool = False) -> CellRun:
        from nbclient.exceptions import DeadKernelError

        remaining = self.deadline - time.monotonic()
        if remaining <= 1:
            return CellRun("not_run")
        timeout = min(self.cell_timeout, remaining)
        self._client.timeout = max(1, int(timeout))
        target = copy.deepcopy(cell) if silent else cell
        refresh = reloaded_modules(cell.source) if is_grade(cell) and not is_solution(cell) else []
        if refresh:
            # Fresh copies of the checkers this test reloads, even if importlib.reload was patched.
            self._responsive(wait=min(10.0, remaining), code=(
                "import sys as _rnn_course_sys\n"
                f"for _rnn_course_m in {refresh!r}:\n"
                "    _rnn_course_sys.modules.pop(_rnn_course_m, None)\n"
                "del _rnn_course_sys, _rnn_course_m"))
        self._last_reply = None
        watchdog = threading.Timer(remaining + 10, self._kill_kernel_process)
        watchdog.daemon = True
        watchdog.start()
        try:
            self._client.execute_cell(target, index)
        except DeadKernelError:
            return CellRun("died", "DeadKernelError", "the kernel died")
        except Exception as err:  # nbclient internals; treat like a dead kernel
            return CellRun("died", type(err).__name__, str(err))
        finally:
            watchdog.cancel()
        if time.monotonic() > self.deadline + 5:
            return CellRun("not_run")
        reply = (self._last_reply or {}).get("content", {})
        stderr = "".join(o.get("text", "") for o in target.get("outputs", [])
                         if o.get("output_type") == "stream" and o.get("name") == "stderr")
        if reply.get("status") == "error" and reply.get("ename") == "CellTimeoutError":
            if timeout < self.cell_timeout:  # cut short by the overall limit
                return CellRun("timeout", "CellTimeoutError",
                               f"timed out: the overall time limit ({self.total_timeout:g} s) was reached")
            return CellRun("timeout", "CellTimeoutError", f"timed out after {self._client.timeout:g} s")
        errors = [o for o in target.get("outputs", []) if o.get("output_type") == "error"]
        if reply.get("status") == "error" or errors:
            ename = reply.get("ename") or (errors[0].get("ename") if errors else "Error")
            evalue = reply.get("evalue") if reply.get("ename") else (errors[0].get("evalue", "") if errors else "")
            return CellRun("error", ename, evalue or "", stderr)
        return CellRun("ok", stderr=stderr)

    def run(self) -> dict[int, CellRun]:
        code = [(i, c) for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        pos = 0
        try:
            while pos < len(code):
                if self._client is None:
                    if self.deadline - time.monotonic() <= 1:
                        break
                    try:
                        self._start()
                    except Exception as err:  # no kernel: the remaining cells are "not run"
                        self.notes.append(f"could not start a kernel: {type(err).__name__}: {_first_line(str(err))}")
                        self._not_run_reason = "not run: could not start a kernel"
                        self._stop()
                        break
                    replay = [(i, c) for i, c in code[:pos] if self.runs.get(i, CellRun("x")).status in ("ok", "error")]
                    for i, c in replay:  # rebuild the state the lost kernel had
                        if self._run_one(i, c, silent=True).status in ("timeout", "died", "not_run"):
                            break
                i, cell = code[pos]
                result = self._run_one(i, cell)
                self.runs[i] = result
                pos += 1
                if result.status == "not_run":
                    break
                if result.status == "died":
                    self.notes.append(f"the kernel died in cell {i}; a new kernel replayed the earlier cells")
                    self._stop()
                elif result.status == "timeout" and not self._responsive(wait=3.0):
                    self.notes.append(f"cell {i} could not be interrupted; a new kernel replayed the earlier cells")
                    self._stop()
        finally:
            self._stop()
        for i, _ in code:
            if i not in self.runs or self.runs[i].status == "not_run":
                self.runs[i] = CellRun("not_run", evalue=self._not_run_reason)
        return self.runs


def reloaded_modules(source: str) -> list[str]:
    """The modules a test cell reloads with ``importlib.reload(name)``, by module name.

    ``import rnnlib.checks as _checks`` then ``importlib.reload(_checks)`` gives
    ``["rnnlib.checks"]``. Before such a cell runs, the grader drops these modules from
    ``sys.modules``, so the cell's own import executes the checker's file afresh: a learner
    who patched the checker *and* ``importlib.reload`` still meets the real checks.
    """
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "reload"
                and node.args and isinstance(node.args[0], (ast.Name, ast.Attribute))):
            arg = ast.unparse(node.args[0])
            module = aliases.get(arg, arg)
            if module not in found:
                found.append(module)
    return found


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text or "")


def _solution_note(before: list[CellRun]) -> str:
    """Why the solution cells a failed test follows went wrong, if they did."""
    for b in reversed(before):  # in notebook order
        if b.status == "timeout":
            return f" (a solution cell before it {b.evalue})"
        if b.status == "died":
            return " (a solution cell before it killed the kernel)"
        if b.status == "error" and b.ename != "NotImplementedError":
            return f" (a solution cell before it raised {b.ename}: {_first_line(_strip_ansi(b.evalue))})"
    return ""


def score(nb: NotebookNode, runs: dict[int, CellRun], src: NotebookNode, total_timeout: float) -> list[TaskResult]:
    """One result per test cell of the source, in source order (nbgrader's grading rule)."""
    from nbgrader.utils import determine_grade

    results = []
    by_id = {grade_id(c): (i, c) for i, c in enumerate(nb.cells) if grade_id(c)}
    for task in tasks_of(src):
        i, cell = by_id[task.grade_id]
        run = runs.get(i, CellRun("not_run"))
        restored = bool(cell.metadata.get(MARK, {}).get(RESTORED_NOTE))
        prefix = "test cell was missing, restored; " if restored else ""
        # the solution cells this test follows (since the previous test cell)
        before = []
        for j in range(i - 1, -1, -1):
            c = nb.cells[j]
            if is_grade(c) and not is_solution(c):
                break
            if is_solution(c) and c.cell_type == "code":
                before.append(runs.get(j, CellRun("not_run")))
        if run.status == "ok":
            points, _ = determine_grade(cell)
            points = float(points or 0.0)
            if run.stderr and points == 0:
                status, feedback = "failed", f"wrote to stderr: {_first_line(_strip_ansi(run.stderr))}"
            elif points >= task.points:
                status, feedback = "passed", "passed"
            else:
                status, feedback = "partial", f"partial credit ({points:g} of {task.points:g})"
            results.append(TaskResult(task.grade_id, points, task.points, status, prefix + feedback))
            continue
        if run.status == "timeout":
            status, feedback = "timed_out", run.evalue
        elif run.status == "not_run":
            status = "not_run"
            feedback = run.evalue or f"not run: the overall time limit ({total_timeout:g} s) was reached"
        elif run.status == "died":
            status, feedback = "error", "the kernel died while running this test"
        elif (run.ename == "NotImplementedError" or "NotImplementedError" in run.evalue
              or (run.ename == "NameError" and any(b.ename == "NotImplementedError" for b in before))):
            status, feedback = "not_implemented", "not implemented yet"
        elif run.ename == "AssertionError":
            status = "failed"
            feedback = _first_line(_strip_ansi(run.evalue)) or "AssertionError (no message)"
        else:
            status = "error"
            feedback = f"{run.ename}: {_first_line(_strip_ansi(run.evalue))}".rstrip(": ")
        if status not in ("timed_out", "not_implemented", "not_run"):
            feedback += _solution_note(before)
        message = f"{run.ename}: {_strip_ansi(run.evalue)}".strip(": ") if run.ename else ""
        results.append(TaskResult(task.grade_id, 0.0, task.points, status, prefix + feedback, message))
    return results


def grade(submission: Path, *, source_dir: Path = SOURCE_DIR, assignment: str | None = None,
          timeout: float = 60, total_timeout: float | None = None, save_executed: Path | None = None) -> Report:
    """Grade one submission (never modified) against its solution notebook.

    Raises ``LookupError`` when the assignment cannot be identified.
    """
    t0 = time.monotonic()
    submission = Path(submission)
    sources = solution_notebooks(source_dir)
    try:
        sub_nb = nbformat.reads(submission.read_text(encoding="utf8"), as_version=4)
    except Exception as err:
        sub_nb, read_error = None, f"{type(err).__name__}: {_first_line(str(err))}"
    else:
        read_error = None
    src_path = identify_assignment(submission, sub_nb, sources, assignment)
    if src_path is None:
        raise LookupError(f"cannot tell which assignment {submission} is "
                          f"(solution notebooks: {[p.name for p in sources]}); use --assignment")
    src = read_notebook(src_path)
    report = Report(assignment_name(src_path), str(submission))
    if total_timeout is None:
        total_timeout = max(600.0, 4 * timeout)
    if sub_nb is None:
        report.notes.append(f"the submission is not a readable notebook ({read_error})")
        report.tasks = [TaskResult(t.grade_id, 0.0, t.points, "error", "submission unreadable") for t in tasks_of(src)]
        report.elapsed_s = time.monotonic() - t0
        return report
    nb, notes = restore_cells(sub_nb, src)
    report.notes += notes + suspicious_cells(nb, src)
    with tempfile.TemporaryDirectory(prefix="rnn-grade-") as tmp:
        work = Path(tmp)
        # Like nbgrader's autograde: the assignment's other files (not notebooks) beside it.
        for extra in src_path.parent.iterdir():
            if extra.is_file() and extra.suffix != ".ipynb" and not extra.name.startswith("."):
                shutil.copy2(extra, work / extra.name)
        runner = Runner(nb, work, timeout, total_timeout)
        runs = runner.run()
        report.notes += runner.notes
    report.tasks = score(nb, runs, src, total_timeout)
    if save_executed is not None:
        nbformat.write(nb, str(save_executed))
    report.elapsed_s = time.monotonic() - t0
    return report


def cmd_grade(args: argparse.Namespace) -> int:
    submission = Path(args.submission)
    if not submission.is_file():
        print(f"no such file: {submission}", file=sys.stderr)
        return 2
    try:
        report = grade(submission, source_dir=Path(args.source_dir), assignment=args.assignment,
                       timeout=args.timeout, total_timeout=args.total_timeout,
                       save_executed=Path(args.save_executed) if args.save_executed else None)
    except LookupError as err:
        print(str(err), file=sys.stderr)
        return 2
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf8")
    return 0


# --------------------------------------------------------------------------------------
# Points table
# --------------------------------------------------------------------------------------

def task_titles(nb: NotebookNode) -> dict[str, str]:
    """Each test cell's task title: the last ``## `` heading above it, without "(N points)"."""
    titles, heading = {}, ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    heading = re.sub(r"\s*\(\d+(\.\d+)? points?\)\s*$", "", line[3:]).strip()
        elif is_grade(cell) and not is_solution(cell):
            titles[grade_id(cell)] = heading
    return titles


def solution_code_lines(nb: NotebookNode, exclude_text: str = "") -> list[str]:
    """Distinctive code lines inside ### BEGIN/END SOLUTION regions (not found in ``exclude_text``)."""
    lines, inside = [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside:
                s = line.strip()
                if len(s) >= 15 and not s.startswith("#") and s not in exclude_text:
                    lines.append(s)
    return lines


def points_table(source_dir: Path = SOURCE_DIR) -> str:
    """Markdown table of every autograded task: assignment, task, test cell, points; totals."""
    lines = ["| Assignment | Task | Test cell (`grade_id`) | Points |", "|---|---|---|---:|"]
    grand = 0.0
    for path in solution_notebooks(source_dir):
        nb = read_notebook(path)
        titles = task_titles(nb)
        tasks = tasks_of(nb)
        for t in tasks:
            lines.append(f"| {assignment_name(path)} | {titles.get(t.grade_id, '')} | `{t.grade_id}` | {t.points:g} |")
        subtotal = sum(t.points for t in tasks)
        grand += subtotal
        lines.append(f"| **{assignment_name(path)}** | | **total** | **{subtotal:g}** |")
    lines.append(f"| **All** | | **total** | **{grand:g}** |")
    return "\n".join(lines)


def cmd_points(args: argparse.Namespace) -> int:
    print(points_table(Path(args.source_dir)))
    return 0


# --------------------------------------------------------------------------------------
# The student edition of the site
# --------------------------------------------------------------------------------------

STAGING_MARK = ".student-edition-staging"
SKIP_TOP = {".git", ".venv", "_build", "build", ".pytest_cache", ".hypothesis", ".ci", "_config.yml",
            "_toc.yml", "chapters", "tests", "tools", "benchmarks", "rnnlib", "rnnlib.egg-info"}


def student_config(config_path: Path = ROOT / "_config.yml") -> dict:
    """The book's configuration with solutions hidden, no copied sources, no launch or download buttons."""
    import yaml

    cfg = yaml.safe_load(config_path.read_text(encoding="utf8"))
    cfg["title"] = f"{cfg.get('title', 'Book')} (student edition)"
    # Binder/Colab buttons open the repository's notebooks, which carry the solutions.
    cfg["launch_buttons"] = {"notebook_interface": cfg.get("launch_buttons", {}).get("notebook_interface", "classic")}
    sphinx_cfg = cfg.setdefault("sphinx", {})
    sphinx_cfg["recursive_update"] = True
    conf = sphinx_cfg.setdefault("config", {})
    conf["hide_solutions"] = True  # sphinx-exercise drops every {solution} block
    conf["html_copy_source"] = False  # no _sources/ copies of pages (they contain the solutions)
    conf["html_show_sourcelink"] = False
    # The theme's download menu would link to those missing sources.
    conf.setdefault("html_theme_options", {})["use_download_button"] = False
    return cfg


def stage_student_site(out: Path, toc: Path = ROOT / "_toc.yml") -> Path:
    """Lay out the student edition's source tree in ``out/src`` (same layout as the book).

    Every file of ``chapters/`` is symlinked, except the coursework solution notebooks,
    which are replaced by their student versions (so page names and cross-references are
    those of the normal book); ``_toc.yml`` is copied, ``_config.yml`` derived.
    """
    import yaml

    src = out / "src"
    if src.exists():
        if not (src / STAGING_MARK).exists():
            raise SystemExit(f"refusing to replace {src}: it was not made by `tools/coursework.py site`")
        shutil.rmtree(src)
    src.mkdir(parents=True)
    (src / STAGING_MARK).write_text("generated by tools/coursework.py site; deleted on every build\n")
    solutions = {p.resolve() for p in solution_notebooks(SOURCE_DIR)}
    for path in sorted(CHAPTERS.rglob("*")):
        if ".ipynb_checkpoints" in path.parts or "__pycache__" in path.parts or path.is_dir():
            continue
        dest = src / path.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.resolve() in solutions:
            dest.write_text(serialize(make_student(path)), encoding="utf8")
        else:
            dest.symlink_to(path.resolve())
    for entry in ROOT.iterdir():
        if entry.name in SKIP_TOP or entry.name.startswith("."):
            continue
        (src / entry.name).symlink_to(entry.resolve())
    shutil.copy2(toc, src / "_toc.yml")
    (src / "_config.yml").write_text(
        "# Generated by tools/coursework.py site from ../../_config.yml: the student edition.\n"
        + yaml.safe_dump(student_config(), sort_keys=False), encoding="utf8")
    return src


def build_student_site(out: Path, *, toc: Path = ROOT / "_toc.yml", quiet: bool = False) -> int:
    from jupyter_book.sphinx import build_sphinx

    out = out.resolve()
    src = stage_student_site(out, toc)
    html = out / "html"
    result = build_sphinx(
        src, html, use_external_toc=True, noconfig=True, path_config=str(src / "_config.yml"),
        confoverrides={"external_toc_path": (src / "_toc.yml").as_posix(), "latex_individualpages": False,
                       "nitpicky": True},
        doctreedir=out / ".doctrees", builder="html", warningiserror=True, keep_going=True,
        freshenv=True, quiet=quiet,
    )
    if isinstance(result, Exception):
        print(f"student edition build failed: {result!r}", file=sys.stderr)
        return 1
    if result:
        print(f"student edition build failed (exit code {result}); see the warnings above", file=sys.stderr)
        return int(result)
    print(f"student edition: {html / 'index.html'}")
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else DEFAULT_SITE_OUT
    if out.resolve().is_relative_to(CHAPTERS.resolve()):
        print(f"refusing to write inside chapters/: {out}", file=sys.stderr)
        return 2
    return build_student_site(out, toc=Path(args.toc) if args.toc else ROOT / "_toc.yml", quiet=args.quiet)


# --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/coursework.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-dir", default=str(SOURCE_DIR),
                        help="folder of the solution notebooks A<n>_<name>.ipynb (default: chapters/coursework)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("student", help="generate the student notebooks")
    p.add_argument("--out", default=None, help="output folder (default: build/student in the repository)")
    p.add_argument("--force", action="store_true",
                   help="overwrite files this tool did not generate, or that were changed since")
    p.set_defaults(func=cmd_student)

    p = sub.add_parser("grade", help="grade one submission locally")
    p.add_argument("submission")
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.add_argument("--timeout", type=float, default=60, help="seconds per cell (default 60)")
    p.add_argument("--total-timeout", type=float, default=None,
                   help="seconds for the whole run (default: max(600, 4 x --timeout))")
    p.add_argument("--assignment", help="the assignment (e.g. A1 or A1_rnn_step) if it cannot be inferred")
    p.add_argument("--save-executed", help="write the graded (restored and executed) notebook here")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("points", help="print the points table (Markdown)")
    p.set_defaults(func=cmd_points)

    p = sub.add_parser("site", help="build the student edition of the book")
    p.add_argument("--out", default=None,
                   help="output folder; the site goes to OUT/html (default: _build/student in the repository)")
    p.add_argument("--toc", default=None, help="table of contents to use (default: the book's _toc.yml)")
    p.add_argument("--quiet", action="store_true", help="only print warnings")
    p.set_defaults(func=cmd_site)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
