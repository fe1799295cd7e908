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
        Grades one submission locally, without trusting its kernel. The submission file is
        only read. A copy has its test and locked cells restored from the solution notebook
        by ``grade_id`` (nbgrader's OverwriteCells rule; cells whose metadata an editor
        stripped are matched by their cell id), and each test cell is replaced by a *probe*:
        it evaluates the names the instructor's test cell checks and returns the learner's
        outputs on inputs drawn from a secret seed, as plain data (rnnlib/coursework/grading.py,
        rnnlib/coursework/wire.py). The notebook runs in a fresh kernel in a sandbox (tools/sandbox.py:
        bubblewrap when available), every cell even after errors, with a per-cell timeout
        and an overall time bound. The correct answers never enter the kernel: each task is
        judged here by rnnlib.coursework.checks (full points or none). The report also carries flags
        for a teacher (code that reaches for the grading machinery, a copy of the published
        solution), says whether a sandbox was used, and is refused (exit code 3) if anything
        the grader relies on changed during grading. Prints one line per task; exit code 0
        whenever a report was produced.

    python tools/coursework.py batch SUBMITTED --out OUT [--jobs N]
        A whole class (nbgrader's submitted/<student>/<assignment>/ layout): see tools/gradebook.py.

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
from typing import IO, TYPE_CHECKING, Any

import nbformat
from nbformat import NotebookNode

if TYPE_CHECKING:  # imported when a grading starts, not by every command
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

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
    found = [
        (int(m.group(1)[1:]), p) for p in Path(source_dir).glob("A*.ipynb") if (m := ASSIGNMENT_FILE.match(p.name))
    ]
    return [p for _, p in sorted(found, key=lambda t: (t[0], t[1].name))]


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


def required_grade_id(cell: NotebookNode) -> str:
    """The ``grade_id`` of a grade cell, which nbgrader's format requires it to have."""
    gid = grade_id(cell)
    if gid is None:
        raise ValueError(f"an nbgrader grade cell without a grade_id: {cell.source[:80]!r}")
    return gid


def tasks_of(nb: NotebookNode) -> list[Task]:
    """The autograded test cells (grade, not solution) in notebook order."""
    return [
        Task(required_grade_id(c), float(nbgrader_meta(c)["points"]))
        for c in nb.cells
        if is_grade(c) and not is_solution(c) and c.cell_type == "code"
    ]


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
        "nbgrader": {
            "notebook": solution_path.stem,
            "assignment": assignment_name(solution_path),
            "student": ".",
            "db_url": "",
        },
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
        return (
            f"{target} was changed after it was generated (a learner's edits or outputs?); "
            "move it away or use --force to overwrite it"
        )
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
    status: str  # passed | partial | failed | not_implemented | timed_out | not_run | error | withheld
    feedback: str
    message: str = ""  # the full diagnosis or error message, if any


@dataclass
class Report:
    assignment: str
    submission: str
    tasks: list[TaskResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # for a teacher to look at: suspicious code, a copied solution
    sandbox: str = ""
    elapsed_s: float = 0.0

    @property
    def total(self) -> dict:
        return {"points": sum(t.points for t in self.tasks), "max_points": sum(t.max_points for t in self.tasks)}

    def to_json(self) -> dict:
        return {
            "assignment": self.assignment,
            "submission": self.submission,
            "tasks": [asdict(t) for t in self.tasks],
            "total": self.total,
            "notes": self.notes,
            "flags": self.flags,
            "sandbox": self.sandbox,
            "elapsed_s": round(self.elapsed_s, 2),
        }

    def table(self) -> str:
        def fmt(x: float) -> str:
            return f"{x:g}"

        rows = [(t.grade_id, f"{fmt(t.points)} / {fmt(t.max_points)}", t.feedback) for t in self.tasks]
        total = self.total
        rows.append(("total", f"{fmt(total['points'])} / {fmt(total['max_points'])}", ""))
        w0 = max(len("task"), *(len(r[0]) for r in rows))
        w1 = max(len("points"), *(len(r[1]) for r in rows))
        lines = [
            f"{self.assignment}: {self.submission}",
            "",
            f"{'task':<{w0}}  {'points':>{w1}}  feedback",
            f"{'-' * w0}  {'-' * w1}  --------",
        ]
        for i, (a, b, c) in enumerate(rows):
            if i == len(rows) - 1:
                lines.append(f"{'-' * w0}  {'-' * w1}")
            lines.append(f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip())
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"FLAG: {f}" for f in self.flags]
        if self.sandbox:
            lines.append(f"sandbox: {self.sandbox}")
        lines.append(f"graded in {self.elapsed_s:.1f} s")
        return "\n".join(lines)


class IntegrityError(RuntimeError):
    """Something the grader relies on changed while a submission was graded: no grade is reported."""


def identify_assignment(
    submission: Path, nb: NotebookNode | None, sources: list[Path], forced: str | None = None
) -> Path | None:
    """Which solution notebook a submission belongs to.

    In order: ``--assignment``; the ``rnn_course.assignment`` mark of a generated student
    notebook; the grade ids it shares with each solution notebook; its filename prefix
    (``A1_...``, or any name containing ``A1``).
    """
    by_name = {assignment_name(p): p for p in sources}
    by_prefix = {m.group(1).upper(): p for p in sources if (m := ASSIGNMENT_FILE.match(p.name))}
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


def _reattach_by_cell_id(nb: NotebookNode, src: NotebookNode) -> list[str]:
    """Give back their nbgrader metadata to cells that lost it (some editors strip cell metadata).

    nbformat's cell ``id`` survives such an editor, and the student version keeps the
    solution notebook's ids: a cell with no ``grade_id`` whose id is a source cell's is
    that cell, unless the grade id is already present elsewhere in the submission.
    """
    present = {grade_id(c) for c in nb.cells if grade_id(c)}
    by_cell_id = {c.get("id"): c for c in src.cells if grade_id(c) and c.get("id")}
    reattached = []
    for cell in nb.cells:
        ref = by_cell_id.get(cell.get("id"))
        ref_id = grade_id(ref) if ref is not None else None  # never None for a ref (by_cell_id)
        if grade_id(cell) is None and ref is not None and ref_id is not None and ref_id not in present:
            cell.setdefault("metadata", {})["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
            present.add(ref_id)
            reattached.append(ref_id)
    return reattached


def restore_cells(sub: NotebookNode, src: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The notebook to run: the submission with its test and locked cells taken from the source.

    nbgrader's OverwriteCells rule, without a database: every cell whose ``grade_id`` is in
    the source gets the source's cell type and nbgrader metadata (points cannot be edited);
    a locked or test cell also gets the source's text (so hidden tests are back and an
    edited test is undone); solution cells keep the learner's text. Cells whose nbgrader
    metadata was stripped are recognised by their nbformat cell id first. Cells with
    unknown or duplicate grade ids, and cells that claim to be locked without a known
    grade id, lose their nbgrader metadata (they run but score nothing). Test and locked
    cells the learner deleted are re-inserted after the nearest preceding source cell
    that is present (like ``OverwriteCells.add_missing_cells``). Outputs are cleared; the
    kernelspec is the source's.
    """
    nb = copy.deepcopy(sub)
    notes: list[str] = []
    reattached = _reattach_by_cell_id(nb, src)
    if reattached:
        notes.append(
            f"{len(reattached)} cells had lost their nbgrader metadata (as some editors save a notebook); "
            "they were matched to the assignment by their cell ids"
        )
    source_by_id = {grade_id(c): c for c in src.cells if grade_id(c)}
    seen: set[str] = set()
    cells = []
    for cell in nb.cells:
        if cell.cell_type not in ("code", "markdown", "raw"):
            continue
        gid = grade_id(cell)
        if gid is None and nbgrader_meta(cell):
            cell.metadata.pop("nbgrader", None)  # "locked" without a grade id: an ordinary learner cell
        elif gid is not None:
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


# --------------------------------------------------------------------------------------
# What a teacher should look at: code that reaches for the machinery, a copied solution
# --------------------------------------------------------------------------------------

# Names whose use in learner code has no place in these assignments and can subvert a
# grader that runs in the same process (nbgrader's): the import system, the interpreter's
# frames, IPython's hooks, processes, signals, files, the network.
SUSPICIOUS_NAMES = {
    "exec",
    "eval",
    "compile",
    "__import__",
    "importlib",
    "builtins",
    "__builtins__",
    "get_ipython",
    "globals",
    "setattr",
    "delattr",
    "inspect",
    "ctypes",
    "subprocess",
    "multiprocessing",
    "threading",
    "signal",
    "socket",
    "shutil",
    "atexit",
    "gc",
    "open",
    "breakpoint",
    "urllib",
    "requests",
    "http",
    "site",
    "sysconfig",
    "pickle",
    "marshal",
    "types",
    "pty",
    "fcntl",
    "resource",
    "tempfile",
    "glob",
    "pathlib",
    "Path",
    "io",
}
# What no honest answer does: reach into the interpreter's frames or code objects, IPython's input and
# event hooks, the import system, or the grading machinery's private parts, or reassign what another
# module exports. A submission that does is graded, and its points are withheld for a teacher.
TAMPER_ATTRS = {
    "__code__",
    "__globals__",
    "__closure__",
    "__builtins__",
    "_getframe",
    "f_back",
    "f_locals",
    "f_globals",
    "f_code",
    "gi_frame",
    "tb_frame",
    "input_transformers_cleanup",
    "input_transformers_post",
    "ast_transformers",
    "meta_path",
    "path_hooks",
    "path_importer_cache",
    "settrace",
    "setprofile",
    "register_magic_function",
}
# Everything that tampers (TAMPER_ATTRS: the points are withheld) is also flagged for review, and more:
SUSPICIOUS_ATTRS = TAMPER_ATTRS | {
    "modules",
    "events",
    "system",
    "popen",
    "fork",
    "forkpty",
    "setsid",
    "setpgrp",
    "kill",
    "killpg",
    "_exit",
    "execv",
    "execve",
    "spawnv",
    "write_text",
    "write_bytes",
    "unlink",
    "remove",
    "rename",
    "replace",
    "chmod",
    "symlink",
    "__class__",
    "__subclasses__",
    "__dict__",
    "func_globals",
    "environ",
    "putenv",
    "chdir",
    "getppid",
    "run_cell",
    "run_line_magic",
    "user_ns",
}
MODULE_NAMES = {"np", "numpy", "torch", "nn", "F", "rnnlib", "sys", "os", "math", "random"}


def parse_cell(source: str) -> Any:
    """A code cell's syntax tree, IPython magics and shell lines dropped; ``None`` if it does not parse."""
    import ast

    text = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        return ast.parse(text)
    except SyntaxError:
        return None


def assigned_attributes(tree: Any) -> list[tuple[str, str]]:
    """``(root name, dotted path)`` of every attribute the code assigns or deletes: ``np.allclose = ...``
    gives ``("np", "np.allclose")``."""
    import ast

    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute):
                    root: ast.expr = sub
                    while isinstance(root, ast.Attribute):
                        root = root.value
                    if isinstance(root, ast.Name):
                        found.append((root.id, ast.unparse(sub)))
                    break
    return found


def _patched_names(tree: Any, imported: set[str]) -> list[str]:
    """``np.allclose = ...``, ``torch.nn.RNN = ...``: assignments to attributes of modules."""
    return [f"{path} = ..." for root, path in assigned_attributes(tree) if root in imported or root in MODULE_NAMES]


def code_findings(source: str, imported: set[str]) -> list[str]:
    """What in ``source`` reaches for the grading machinery (an empty list for ordinary code)."""
    import ast

    tree = parse_cell(source)
    if tree is None:
        return []
    found = _patched_names(tree, imported)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in SUSPICIOUS_NAMES:
            found.append(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in SUSPICIOUS_ATTRS:
            found.append(f".{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            )
            for name in names:
                parts = name.split(".")
                if parts[0] in SUSPICIOUS_NAMES or parts[-1] in SUSPICIOUS_NAMES | {"checks"} or "coursework" in parts:
                    found.append(f"import {name}")
        elif isinstance(node, ast.FunctionDef) and re.match(r"(check|diagnose|collect|judge|plan|answer)_?", node.name):
            found.append(f"def {node.name}")
    return list(dict.fromkeys(found))


def _imported_names(nb: NotebookNode) -> set[str]:
    import ast

    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = parse_cell(cell.source)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def learner_cells(nb: NotebookNode, src: NotebookNode) -> list[tuple[int, NotebookNode]]:
    """Cells the learner wrote: solution cells, and code cells whose text is not in the source.

    A locked cell only counts as the instructor's when its grade id is the source's and its
    text is the source's (the restored notebook guarantees both); a ``locked`` flag alone
    proves nothing.
    """
    source_locked = {grade_id(c): c.source for c in src.cells if grade_id(c) and is_locked(c)}
    known = {c.source for c in src.cells if c.cell_type == "code" and not is_solution(c)}
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        gid = grade_id(cell)
        if gid in source_locked and cell.source == source_locked[gid]:
            continue
        if not is_solution(cell) and cell.source in known:
            continue
        out.append((i, cell))
    return out


def suspicious_cells(nb: NotebookNode, src: NotebookNode) -> list[str]:
    """Flags on learner-written code that reaches for the grading machinery (points are not changed here).

    The local grader does not depend on the learner's kernel for its verdict, so such code
    cannot raise a grade; it can still break the learner's own results, and under nbgrader
    (which grades inside the learner's kernel) it could defeat the tests. A teacher should look.
    """
    imported = _imported_names(nb)
    notes = []
    for i, cell in learner_cells(nb, src):
        hits = code_findings(cell.source, imported)
        if hits:
            where = f"solution cell '{grade_id(cell)}'" if is_solution(cell) else f"cell {i}"
            notes.append(f"review by hand: {where} uses {', '.join(hits[:8])}")
    return notes


def off_limits_flags(nb: NotebookNode, probes: dict[str, ProbePlan]) -> list[str]:
    """Flags on solution cells that refer to what their task forbids inside the graded functions.

    The probes replace the library RNNs by recording stubs while the learner's function runs
    (so a call fails the task), but those stubs live in the kernel; this check reads the
    submitted code on the trusted side: a solution cell that mentions ``nn.RNN``, ``RNNCell``,
    the course library's RNN code or autograd (A1-A3; in A5 also ``nn.LSTM``, ``LSTMCell`` and
    rnnlib's LSTMs: the names each task forbids), or rnnlib's ready-made model and trainers
    (A4), is for a teacher to look at.
    """
    import ast

    from rnnlib.coursework import engine

    names: set[str] = set()
    modules: set[str] = set()
    for probe in probes.values():
        for plan in probe.plans:
            task = engine._TASKS.get(getattr(plan, "request", {}).get("task", "")) if hasattr(plan, "request") else None
            if task is not None and task.forbid:
                names |= {qual.split(".")[0] for _, qual in task.forbid if not qual.startswith("_")}
                names |= {"RNN", "RNNCell", "RNNBase"}
                modules.add("rnnlib")
                if any(mod == "torch.autograd" for mod, _ in task.forbid):
                    names |= {"autograd"}
            elif getattr(plan, "check", "") in ("adding_model", "train_step", "trained_adding_model"):
                names |= {"TorchRNNRegressor", "NumpyRNNLM", "TorchRNNLM"}
                modules |= {"rnnlib.training.train", "rnnlib.training.models"}
    names -= {"backward", "forward", "grad"}
    if not names and not modules:
        return []
    flags = []
    for cell in nb.cells:
        if not is_solution(cell) or cell.cell_type != "code":
            continue
        tree = parse_cell(cell.source)
        if tree is None:
            continue
        hits = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in names:
                hits.append(node.id)
            elif isinstance(node, ast.Attribute) and node.attr in names:
                hits.append(ast.unparse(node))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for m in mods:
                    if any(m == x or m.startswith(x + ".") for x in modules):
                        hits.append(f"import {m}")
                if isinstance(node, ast.ImportFrom) and node.module == "rnnlib":
                    hits += [a.name for a in node.names if a.name in names or f"rnnlib.{a.name}" in modules]
        if hits:
            flags.append(
                f"review by hand: solution cell '{grade_id(cell)}' refers to "
                f"{', '.join(dict.fromkeys(hits))}, which the task does not allow inside the graded code"
            )
    return flags


# The rest of tampering() (TAMPER_ATTRS is above, beside SUSPICIOUS_ATTRS): modules whose exports a learner's
# cell must not reassign, the grader's own modules, and calls that build code at run time.
TAMPER_ROOTS = {
    "rnnlib",
    "builtins",
    "__builtins__",
    "sys",
    "np",
    "numpy",
    "torch",
    "nn",
    "F",
    "importlib",
    "IPython",
    "nbformat",
    "nbclient",
    "jupyter_client",
    "ipykernel",
}
GRADER_MODULES = (
    "rnnlib.coursework.grading",
    "rnnlib.coursework.wire",
    "rnnlib.coursework.referee",
    "tools",
    "coursework",
    "sandbox",
    "importlib",
    "ctypes",
)
TAMPER_CALLS = {"exec", "eval", "compile", "__import__"}  # code built at run time hides from every reading of it


def tampering(nb: NotebookNode, src: NotebookNode) -> list[str]:
    """What in the learner's cells tampers with the grading machinery (empty for honest work)."""
    import ast

    found: list[str] = []
    for _, cell in learner_cells(nb, src):
        tree = parse_cell(cell.source)
        if tree is None:
            continue
        rnnlib_names = {"rnnlib"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                rnnlib_names |= {(a.asname or a.name.split(".")[0]) for a in node.names if a.name.startswith("rnnlib")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnnlib"):
                rnnlib_names |= {(a.asname or a.name) for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in TAMPER_CALLS:
                found.append(node.id)
            elif isinstance(node, ast.Attribute) and node.attr in TAMPER_ATTRS:
                found.append(f".{node.attr}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "register"
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "events"
            ):
                found.append("IPython events.register")
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                root: ast.expr = node
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in rnnlib_names:
                    found.append(ast.unparse(node))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"import {m}" for m in mods if m.startswith(GRADER_MODULES)]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("setattr", "delattr")
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in TAMPER_ROOTS | rnnlib_names
            ):
                found.append(f"{node.func.id}({node.args[0].id}, ...)")
        found += [
            f"{path} = ..."
            for root, path in assigned_attributes(tree)
            if root in TAMPER_ROOTS | rnnlib_names and not path.startswith("torch.backends.")
        ]
    return list(dict.fromkeys(found))


COPY_MIN_TOKENS = 40  # below this, the reference's code is the obvious answer (tools/similarity.py)


def copied_solution_flags(nb: NotebookNode, src: NotebookNode) -> list[str]:
    """A flag when the learner's solution cells are the public reference solution up to renaming and layout."""
    from tools import similarity

    mine = {gid: c.source for c in nb.cells if is_solution(c) and (gid := grade_id(c))}
    # A cell whose solution the task text dictates line by line (A4's model and training step)
    # opts out in the solution notebook: every honest answer would match it.
    ref = {
        gid: c.source
        for c in src.cells
        if is_solution(c) and (gid := grade_id(c)) and c.metadata.get(MARK, {}).get("copy_check", True)
    }
    matches = similarity.reference_matches(mine, ref, min_tokens=COPY_MIN_TOKENS)
    if not matches:
        return []
    return [
        f"review by hand: the code of {', '.join(repr(m) for m in matches)} matches the course's published "
        "reference solution after normalisation (names, layout, comments)"
    ]


# --------------------------------------------------------------------------------------
# The probes: what each test cell checks, asked of the kernel as data
# --------------------------------------------------------------------------------------


@dataclass
class CheckCall:
    """One ``<module>.check_<check>(<args>, **kwargs)`` call of a (trusted) test cell."""

    module: str
    check: str
    args: list[str]
    kwargs: dict[str, Any]


def test_cell_checks(source: str) -> list[CheckCall]:
    """The check calls of an instructor's test cell, visible and hidden merged.

    ``_checks.check_rnn_step(rnn_step)`` then ``_checks.check_rnn_step(rnn_step, seed=1,
    extended=True)`` give one call, ``extended=True``; the grader replaces the seed by a
    secret one. Arguments are kept as source text, evaluated in the kernel.
    """
    import ast

    tree = ast.parse(source)
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                modules[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    merged: dict[tuple[str, str, tuple[str, ...]], CheckCall] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith("check_")
        ):
            continue
        owner = ast.unparse(node.func.value)
        module = modules.get(owner, owner)
        args = [ast.unparse(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        key = (module, node.func.attr[len("check_") :], tuple(args))
        call = merged.setdefault(key, CheckCall(module, key[1], args, {}))
        extended = call.kwargs.get("extended", False) or kwargs.get("extended", False)
        call.kwargs.update(kwargs)
        call.kwargs["extended"] = extended
    for call in merged.values():
        call.kwargs.pop("seed", None)  # the grader draws a secret one
        call.kwargs.pop("refereed", None)  # the grader is the referee
    return list(merged.values())


def _check_module(name: str, source_dir: Path) -> Any:
    """The trusted side's copy of a checks module: rnnlib.coursework.checks, or one beside the solution notebooks."""
    import importlib
    import importlib.util

    if name.startswith("rnnlib."):
        return importlib.import_module(name)
    path = Path(source_dir) / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_trusted_{name}", path)
    if spec is None or spec.loader is None:
        raise LookupError(f"no checks module {name} beside the solution notebooks")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class ProbePlan:
    """The trusted side's plans for one test cell."""

    grade_id: str
    calls: list[CheckCall]
    plans: list[Any]
    modules: list[Any]


PROBE_CELL = (
    "__import__('rnnlib.coursework.grading', fromlist=['answer']).answer({stem!r}, globals())  "
    "# the grader's probe of this task"
)


# --------------------------------------------------------------------------------------
# Running the submission in the sandbox
# --------------------------------------------------------------------------------------


@dataclass
class CellRun:
    status: str  # ok | error | timeout | died | not_run
    ename: str = ""
    evalue: str = ""
    stderr: str = ""


class _SandboxKernelSpecs:
    """Kernel spec manager whose ``python3`` is this interpreter, started through tools/sandbox.py."""

    @staticmethod
    def make(argv: list[str]):
        import ipykernel.kernelspec
        from jupyter_client.kernelspec import KernelSpecManager

        class Specs(KernelSpecManager):
            def get_kernel_spec(self, kernel_name):
                spec = ipykernel.kernelspec.get_kernel_dict()
                spec["argv"] = list(argv)
                # A signal to the sandbox's first process does not reach the kernel inside it: ask
                # the kernel to interrupt itself (the interrupt_request message) instead.
                spec["interrupt_mode"] = "message"
                return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES, **spec)

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
                        outs.append(
                            new_output(
                                "stream",
                                name="stdout",
                                text=f"\n[grader: output beyond {MAX_OUTPUT_BYTES} bytes dropped]\n",
                            )
                        )
                    return None
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


class Runner:
    """Runs a notebook's code cells in a fresh sandboxed kernel, every cell, with time bounds.

    * the kernel is started by tools/sandbox.py (bubblewrap when available) in the job
      folder ``job``, with its own throwaway home and environment; its stdout and stderr
      go to ``job/kernel.log``, never to the grader's terminal;
    * per cell: ``cell_timeout`` seconds, then the kernel is interrupted (nbclient's
      ``interrupt_on_timeout``) and the run goes on; if the kernel does not come back
      (a loop that swallows KeyboardInterrupt) or dies (``os._exit``), a new kernel is
      started and the cells that ran fine before are replayed in it, silently;
    * overall: ``total_timeout`` seconds; cells not reached are ``not_run``, and a
      watchdog thread kills the kernel process if a cell is still running at the deadline.
    """

    def __init__(
        self,
        nb: NotebookNode,
        job: Path,
        cell_timeout: float,
        total_timeout: float,
        limits: Any = None,
        before_cell: Any = None,
        after_cell: Any = None,
    ):
        from tools import sandbox

        self.before_cell = before_cell or (lambda index: None)  # e.g. put a probe's inputs in place
        self.after_cell = after_cell or (lambda index: None)  # e.g. take its result away
        self.nb = nb
        self.job = job
        self.cell_timeout = cell_timeout
        self.deadline = time.monotonic() + total_timeout
        self.total_timeout = total_timeout
        self.limits = limits or sandbox.Limits()
        self.runs: dict[int, CellRun] = {}
        self.notes: list[str] = []
        self._client: NotebookClient | None = None
        self._km: AsyncKernelManager | None = None
        self._log: IO[bytes] | None = None
        self._last_reply: dict[str, Any] | None = None  # set by _on_executed, from nbclient
        self._not_run_reason = f"not run: the overall time limit ({total_timeout:g} s) was reached"

    # kernel lifetime ------------------------------------------------------------------
    def _start(self) -> None:
        from jupyter_client.manager import AsyncKernelManager

        from tools import sandbox

        NotebookClient = _capped_client_class()
        folders = sandbox.job_folders(self.job)
        # An *async* kernel manager: with a blocking client nbclient waits on IOPub without
        # a timeout and a cell that never ends would hang the grader. Unix sockets in the job
        # folder: the sandbox has no network.
        self._km = AsyncKernelManager(
            kernel_name="python3",
            kernel_spec_manager=_SandboxKernelSpecs.make(sandbox.kernel_argv(self.job, self.limits)),
            transport="ipc",
            ip=str(folders["io"] / "k"),
        )
        self._km.connection_file = str(folders["io"] / "kernel.json")
        self._client = NotebookClient(
            self.nb,
            km=self._km,
            timeout=int(self.cell_timeout),
            allow_errors=True,
            interrupt_on_timeout=True,
            record_timing=False,
            iopub_timeout=4,
            raise_on_iopub_timeout=False,
            startup_timeout=120,
            error_on_timeout={
                "ename": "CellTimeoutError",
                "evalue": f"timed out after {self.cell_timeout:g} s",
                "traceback": [f"CellTimeoutError: timed out after {self.cell_timeout:g} s"],
            },
            on_cell_executed=self._on_executed,
            resources={"metadata": {"path": str(folders["work"])}},
        )
        self._client.reset_execution_trackers()
        env = sandbox.kernel_env(self.job, apply_numeric_env({}))
        extra = sandbox.extra_pythonpath(self.job)
        if extra:
            env["PYTHONPATH"] = extra
        if self._log is None:
            self._log = open(self.job / "kernel.log", "ab")
        self._client.start_new_kernel(env=env, cwd=str(folders["work"]), stdout=self._log, stderr=self._log)
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
        self._kill_kernel_process()  # the sandbox's first process: with it goes everything inside
        self._client = self._km = None

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _kill_kernel_process(self) -> None:
        """Watchdog: SIGKILL the kernel process (nbclient then sees a dead kernel)."""
        km = self._km  # None before a start or after a stop (this runs on the watchdog's thread too)
        proc = getattr(km.provisioner if km is not None else None, "process", None)  # LocalProvisioner's Popen
        if proc is None:
            return
        try:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except Exception:
            pass

    def _on_executed(self, cell=None, cell_index=None, execute_reply=None, **_: Any) -> None:
        self._last_reply = execute_reply

    def _reply_content(self) -> dict[str, Any]:
        """The content of the last cell's execute reply, as _on_executed received it ({} if none)."""
        return (self._last_reply or {}).get("content", {})

    def _responsive(self, wait: float = 5.0, code: str = "") -> bool:
        """Does the kernel run ``code`` (default: a no-op) and answer within ``wait`` seconds?"""
        from jupyter_client.asynchronous.client import AsyncKernelClient
        from jupyter_core.utils import run_sync

        assert self._client is not None, "called between cells, with a kernel"
        kc = self._client.kc
        try:
            if not isinstance(kc, AsyncKernelClient):  # None (no channels), or not an AsyncKernelManager's client
                return False
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
        assert self._client is not None, "run() starts a kernel first"
        self._client.timeout = max(1, int(timeout))
        target = copy.deepcopy(cell) if silent else cell
        self._last_reply = None
        watchdog = threading.Timer(remaining + 10, self._kill_kernel_process)
        watchdog.daemon = True
        watchdog.start()
        self.before_cell(index)
        try:
            self._client.execute_cell(target, index)
        except DeadKernelError:
            return CellRun("died", "DeadKernelError", "the kernel died")
        except Exception as err:  # nbclient internals; treat like a dead kernel
            return CellRun("died", type(err).__name__, str(err))
        finally:
            watchdog.cancel()
            self.after_cell(index)
        if time.monotonic() > self.deadline + 5:
            return CellRun("not_run")
        reply = self._reply_content()
        stderr = "".join(
            o.get("text", "")
            for o in target.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stderr"
        )
        if reply.get("status") == "error" and reply.get("ename") == "CellTimeoutError":
            if timeout < self.cell_timeout:  # cut short by the overall limit
                return CellRun(
                    "timeout",
                    "CellTimeoutError",
                    f"timed out: the overall time limit ({self.total_timeout:g} s) was reached",
                )
            return CellRun("timeout", "CellTimeoutError", f"timed out after {self._client.timeout:g} s")
        errors = [o for o in target.get("outputs", []) if o.get("output_type") == "error"]
        if reply.get("status") == "error" or errors:
            ename = reply.get("ename") or (errors[0].get("ename") if errors else "Error")
            evalue = reply.get("evalue") if reply.get("ename") else (errors[0].get("evalue", "") if errors else "")
            return CellRun("error", str(ename)[:200], str(evalue or "")[:4000], stderr[:4000])
        return CellRun("ok", stderr=stderr[:4000])

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
            self.close()
        for i, _ in code:
            if i not in self.runs or self.runs[i].status == "not_run":
                self.runs[i] = CellRun("not_run", evalue=self._not_run_reason)
        return self.runs


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]", "", text or "")


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


NO_RESULT = "the grader received no readable result for this task"


def _judge_task(probe: ProbePlan, result: Any) -> tuple[str | None, str, list[str]]:
    """``(diagnosis, ename, warnings)`` for one task from the kernel's data (trusted side)."""
    calls = result.get("calls") if isinstance(result, dict) else None
    if not isinstance(calls, list) or len(calls) != len(probe.calls):
        return NO_RESULT, "NoResult", []
    caught: list[str] = []
    for plan, module, data in zip(probe.plans, probe.modules, calls, strict=True):  # lengths checked above
        if not isinstance(data, dict):
            return NO_RESULT, "NoResult", caught
        if "error" in data:
            err = data["error"] if isinstance(data["error"], dict) else {}
            ename, evalue = str(err.get("ename", "Error"))[:100], str(err.get("evalue", ""))[:2000]
            return f"{ename}: {evalue}".rstrip(": "), ename, caught
        try:
            diagnosis, warns = module.judge(plan, data.get("data"))
        except Exception as err:  # malformed data that got past the checks' own validation
            return f"{NO_RESULT} ({type(err).__name__})", "NoResult", caught
        caught += [w for w in warns if w not in caught]
        if diagnosis is not None:
            return str(diagnosis), "AssertionError", caught
    return None, "", caught


def score(
    nb: NotebookNode,
    runs: dict[int, CellRun],
    src: NotebookNode,
    total_timeout: float,
    probes: dict[str, ProbePlan],
    results: dict[str, Any],
) -> list[TaskResult]:
    """One result per test cell of the source, in source order: full points when the trusted side
    judged every check of the task correct (there is no partial credit within a task)."""
    from rnnlib.coursework.checks import NOT_IMPLEMENTED

    out = []
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
        numpy_only = _numpy_only_problem(nb, src, probes[task.grade_id])
        if run.status == "ok" and numpy_only:
            run = CellRun("error", "AssertionError", numpy_only)
        if run.status == "ok":
            diagnosis, ename, caught = _judge_task(probes[task.grade_id], results.get(task.grade_id))
            if caught:
                prefix += f"warning (not a failure): {caught[0]}; "
            if diagnosis is None:
                out.append(TaskResult(task.grade_id, task.points, task.points, "passed", prefix + "passed"))
                continue
            run = CellRun("error", ename, diagnosis)
        if run.status == "timeout":
            status, feedback = "timed_out", run.evalue
        elif run.status == "not_run":
            status = "not_run"
            feedback = run.evalue or f"not run: the overall time limit ({total_timeout:g} s) was reached"
        elif run.status == "died":
            status, feedback = "error", "the kernel died while running this test"
        elif (
            run.ename == "NotImplementedError"
            or NOT_IMPLEMENTED in run.evalue
            or "NotImplementedError" in run.evalue
            or (run.ename == "NameError" and any(b.ename == "NotImplementedError" for b in before))
        ):
            status, feedback = "not_implemented", "not implemented yet"
        elif run.ename == "AssertionError":
            status = "failed"
            feedback = _first_line(_strip_ansi(run.evalue)) or "AssertionError (no message)"
        else:
            status = "error"
            feedback = f"{run.ename}: {_first_line(_strip_ansi(run.evalue))}".rstrip(": ")
        if status not in ("timed_out", "not_implemented", "not_run"):
            feedback += _solution_note(before)
        message = (
            _strip_ansi(run.evalue)
            if run.ename == "AssertionError"
            else f"{run.ename}: {_strip_ansi(run.evalue)}".strip(": ")
            if run.ename
            else ""
        )
        out.append(TaskResult(task.grade_id, 0.0, task.points, status, prefix + feedback, message))
    return out


def _numpy_only_problem(nb: NotebookNode, src: NotebookNode, probe: ProbePlan) -> str | None:
    """A1-A3's and A5's rule "NumPy only inside your functions", decided on the trusted side from the code.

    Starting from the graded names (``rnn_forward``), follow every name the code uses through
    the learner's cells: functions defined there, module-level assignments, imports. If any of
    that code uses torch or the course library (or a name imported from them), the task
    breaks the rule, wherever the call is hidden: ``rnn_forward`` calling the learner's own
    ``rnn_step`` that calls ``torch.rnn_tanh_cell``, or a copy of a library function made in
    another cell. (The kernel's own check of the same rule reads only the graded function.)
    """
    import ast

    from rnnlib.coursework import checks, engine

    tasks = [engine._TASKS.get(p.request.get("task", "")) for p in probe.plans if hasattr(p, "request")]
    if not any(t is not None for t in tasks):
        return None  # not a NumPy task (A4, the fixture)
    name = next(t.name for t in tasks if t is not None)
    defs: dict[str, list[Any]] = {}
    imports: dict[str, str] = {}
    for _, cell in learner_cells(nb, src):
        tree = parse_cell(cell.source)
        if tree is None:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defs.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for sub in ast.walk(t):
                        if isinstance(sub, ast.Name):
                            defs.setdefault(sub.id, []).append(node)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    imports[a.asname or a.name.split(".")[0]] = a.name
            elif isinstance(node, ast.ImportFrom):
                for a in node.names:
                    imports[a.asname or a.name] = f"{node.module}.{a.name}"
    todo = [a for call in probe.calls for a in call.args]
    seen: set[str] = set()
    uses: list[str] = []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        module = imports.get(current, "")
        if module.split(".")[0] in ("torch", "rnnlib"):
            uses.append(f"{current} (from {module})")
        for node in defs.get(current, []):
            uses += checks.library_uses(ast.unparse(node))
            todo += [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    uses = list(dict.fromkeys(uses))
    return checks.library_problem(name, uses) if uses else None


def _probe_plans(src: NotebookNode, source_dir: Path, seed: int) -> dict[str, ProbePlan]:
    """The trusted side's plans, one per test cell, from the instructor's test cells and a secret seed."""
    by_id = {grade_id(c): c for c in src.cells if grade_id(c)}
    plans = {}
    for k, task in enumerate(tasks_of(src)):
        calls = test_cell_checks(by_id[task.grade_id].source)
        modules = [_check_module(c.module, source_dir) for c in calls]
        made = [
            m.plan(c.check, seed=seed + 1000 * k + j, **c.kwargs)
            for j, (c, m) in enumerate(zip(calls, modules, strict=True))
        ]
        plans[task.grade_id] = ProbePlan(task.grade_id, calls, made, modules)
    return plans


def grade(
    submission: Path,
    *,
    source_dir: Path = SOURCE_DIR,
    assignment: str | None = None,
    timeout: float = 60,
    total_timeout: float | None = None,
    save_executed: Path | None = None,
    seed: int | None = None,
) -> Report:
    """Grade one submission (never modified) against its solution notebook.

    The submission runs in a sandboxed kernel (tools/sandbox.py) in a throwaway job folder;
    each test cell is replaced by a probe that returns the learner's outputs on inputs
    drawn from a secret seed (``seed``, random by default), as data; the verdicts are
    computed here, from references the kernel never sees.

    Raises ``LookupError`` when the assignment cannot be identified, and
    :class:`IntegrityError` when something the grader relies on changed during grading.
    """
    import secrets

    from rnnlib.coursework import wire
    from tools import sandbox

    t0 = time.monotonic()
    submission = Path(submission)
    source_dir = Path(source_dir)
    sources = solution_notebooks(source_dir)
    read_error: str | None
    try:
        sub_nb = nbformat.reads(submission.read_text(encoding="utf8"), as_version=4)
    except Exception as err:
        sub_nb, read_error = None, f"{type(err).__name__}: {_first_line(str(err))}"
    else:
        read_error = None
    src_path = identify_assignment(submission, sub_nb, sources, assignment)
    if src_path is None:
        raise LookupError(
            f"cannot tell which assignment {submission} is "
            f"(solution notebooks: {[p.name for p in sources]}); use --assignment"
        )
    src = read_notebook(src_path)
    report = Report(assignment_name(src_path), str(submission), sandbox=sandbox.description())
    if total_timeout is None:
        total_timeout = max(600.0, 4 * timeout)
    if sub_nb is None:
        report.notes.append(f"the submission is not a readable notebook ({read_error})")
        report.tasks = [TaskResult(t.grade_id, 0.0, t.points, "error", "submission unreadable") for t in tasks_of(src)]
        report.elapsed_s = time.monotonic() - t0
        return report
    nb, notes = restore_cells(sub_nb, src)
    report.notes += notes
    report.flags += suspicious_cells(nb, src) + copied_solution_flags(nb, src)
    tampered = tampering(nb, src)  # read before the test cells become the grader's probes
    seed = secrets.randbelow(2**31 - 10**6) if seed is None else seed
    probes = _probe_plans(src, source_dir, seed)
    report.flags += off_limits_flags(nb, probes)
    if not sandbox.available():
        report.notes.append("no sandbox: " + sandbox.NO_SANDBOX.split(": ", 1)[1])
    before = sandbox.fingerprint(source_dir)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rnn-grade-") as tmp:
        job = Path(tmp)
        folders = sandbox.job_folders(job)
        # Like nbgrader's autograde: the assignment's other files (not notebooks) beside it.
        for extra in src_path.parent.iterdir():
            if extra.is_file() and extra.suffix != ".ipynb" and not extra.name.startswith("."):
                shutil.copy2(extra, folders["work"] / extra.name)
        sandbox.prepare_packages(job)
        # Each probe's inputs are put in the job folder just before its cell runs, and its result
        # (with the inputs) taken out right after: no cell can read another task's probe inputs,
        # and no later cell can touch a result.
        stems, requests, probe_cells = {}, {}, {}
        for gid, probe in probes.items():
            stems[gid] = folders["io"] / gid
            requests[gid] = {
                "calls": [
                    {"module": c.module, "args": c.args, "request": p.request}
                    for c, p in zip(probe.calls, probe.plans, strict=True)
                ]
            }
        for i, cell in enumerate(nb.cells):
            cell_gid = grade_id(cell)
            if cell_gid in probes and is_grade(cell) and cell.cell_type == "code":
                cell.source = PROBE_CELL.format(stem=str(stems[cell_gid]))
                probe_cells[i] = cell_gid
        trusted = Path(tempfile.mkdtemp(prefix="rnn-results-"))

        def put_inputs(index: int) -> None:
            if index in probe_cells:
                gid = probe_cells[index]
                wire.save(Path(f"{stems[gid]}.request"), requests[gid])

        def take_result(index: int) -> None:
            if index not in probe_cells:
                return
            gid = probe_cells[index]
            for suffix in (".request.json", ".request.npz"):
                Path(f"{stems[gid]}{suffix}").unlink(missing_ok=True)
            for suffix in (".result.json", ".result.npz"):
                source, target = Path(f"{stems[gid]}{suffix}"), trusted / f"{gid}{suffix}"
                target.unlink(missing_ok=True)
                if source.is_symlink() or not source.is_file():
                    source.unlink(missing_ok=True)
                    continue
                shutil.move(str(source), str(target))

        # Without a sandbox, whatever the submission leaves running is swept after grading. (In the
        # sandbox its PID namespace dies with it; no sweep, which also keeps concurrent gradings in
        # one process out of each other's way.)
        keep = None if sandbox.available() else sandbox.descendants()
        runner = Runner(nb, job, timeout, total_timeout, before_cell=put_inputs, after_cell=take_result)
        try:
            runs = runner.run()
            swept = sandbox.kill_descendants(keep) if keep is not None else 0
            if swept:
                report.flags.append(f"the submission left {swept} processes running after grading; they were killed")
            report.notes += runner.notes
            for i, gid in probe_cells.items():
                try:
                    results[gid] = wire.load(trusted / f"{gid}.result")
                except Exception as err:  # noqa: BLE001 - WireError, OSError, anything a hostile file causes
                    results[gid] = None
                    if runs.get(i, CellRun("x")).status == "ok":
                        report.flags.append(
                            f"{NO_RESULT} '{gid}' ({_first_line(str(err))}): the submission may "
                            "have interfered with the grader"
                        )
        finally:
            shutil.rmtree(trusted, ignore_errors=True)
    after = sandbox.fingerprint(source_dir)
    changed = sandbox.changed(before, after)
    if changed:
        raise IntegrityError(
            "files the grader relies on changed while this submission was graded; no grade is "
            f"reported: {', '.join(changed[:10])}"
        )
    report.tasks = score(nb, runs, src, total_timeout, probes, results)
    if tampered:
        report.flags.insert(
            0,
            "POINTS WITHHELD for review: the submission tampers with the grading machinery ("
            + ", ".join(tampered[:8])
            + "); a teacher must look at it",
        )
        for t in report.tasks:
            t.message = t.message or t.feedback
            t.feedback = f"withheld for review (tampering; as graded: {t.points:g} / {t.max_points:g}, {t.status})"
            t.points, t.status = 0.0, "withheld"
    if save_executed is not None:
        sandbox.write_atomic(Path(save_executed), nbformat.writes(nb))
    report.elapsed_s = time.monotonic() - t0
    return report


def cmd_grade(args: argparse.Namespace) -> int:
    submission = Path(args.submission)
    if not submission.is_file():
        print(f"no such file: {submission}", file=sys.stderr)
        return 2
    try:
        report = grade(
            submission,
            source_dir=Path(args.source_dir),
            assignment=args.assignment,
            timeout=args.timeout,
            total_timeout=args.total_timeout,
            save_executed=Path(args.save_executed) if args.save_executed else None,
        )
    except LookupError as err:
        print(str(err), file=sys.stderr)
        return 2
    except IntegrityError as err:
        print(f"REFUSED: {err}", file=sys.stderr)
        return 3
    print(report.table())
    if args.json:
        from tools import sandbox

        sandbox.write_atomic(Path(args.json), json.dumps(report.to_json(), indent=2) + "\n")
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
            titles[required_grade_id(cell)] = heading
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
SKIP_TOP = {
    ".git",
    ".venv",
    "_build",
    "build",
    ".pytest_cache",
    ".hypothesis",
    ".ci",
    "_config.yml",
    "_toc.yml",
    "chapters",
    "tests",
    "tools",
    "benchmarks",
    "rnnlib",
    "rnnlib.egg-info",
}


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
    # English only (chapters/instructor_guide.md says why): no language switch to a missing edition.
    conf["i18n_editions"] = {"en": ""}
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
        + yaml.safe_dump(student_config(), sort_keys=False),
        encoding="utf8",
    )
    return src


def build_student_site(out: Path, *, toc: Path = ROOT / "_toc.yml", quiet: bool = False) -> int:
    from jupyter_book.sphinx import build_sphinx

    out = out.resolve()
    src = stage_student_site(out, toc)
    html = out / "html"
    result = build_sphinx(
        src,
        html,
        use_external_toc=True,
        noconfig=True,
        path_config=str(src / "_config.yml"),
        confoverrides={
            "external_toc_path": (src / "_toc.yml").as_posix(),
            "latex_individualpages": False,
            "nitpicky": True,
        },
        doctreedir=out / ".doctrees",
        builder="html",
        warningiserror=True,
        keep_going=True,
        freshenv=True,
        quiet=quiet,
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


def _batch(before: list[str], rest: list[str]) -> int:
    """``batch`` hands its arguments to tools/gradebook.py (a ``--source-dir`` given before it included)."""
    from tools import gradebook

    if "--source-dir" in before and "--source-dir" not in rest:
        i = before.index("--source-dir")
        rest = rest + before[i : i + 2]
    return gradebook.main(rest)


def sandbox_available() -> bool:
    """Is submissions' code run in a real sandbox here (bubblewrap)?"""
    from tools import sandbox

    return sandbox.available()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "batch" in argv:
        i = argv.index("batch")
        return _batch(argv[:i], argv[i + 1 :])
    parser = argparse.ArgumentParser(prog="tools/coursework.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source-dir",
        default=str(SOURCE_DIR),
        help="folder of the solution notebooks A<n>_<name>.ipynb (default: chapters/coursework)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("student", help="generate the student notebooks")
    p.add_argument("--out", default=None, help="output folder (default: build/student in the repository)")
    p.add_argument(
        "--force", action="store_true", help="overwrite files this tool did not generate, or that were changed since"
    )
    p.set_defaults(func=cmd_student)

    p = sub.add_parser("grade", help="grade one submission locally")
    p.add_argument("submission")
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.add_argument("--timeout", type=float, default=60, help="seconds per cell (default 60)")
    p.add_argument(
        "--total-timeout", type=float, default=None, help="seconds for the whole run (default: max(600, 4 x --timeout))"
    )
    p.add_argument("--assignment", help="the assignment (e.g. A1 or A1_rnn_step) if it cannot be inferred")
    p.add_argument("--save-executed", help="write the graded (restored and executed) notebook here")
    p.set_defaults(func=cmd_grade)

    sub.add_parser("batch", help="grade a class: an nbgrader submitted/ folder (tools/gradebook.py; batch --help)")

    p = sub.add_parser("points", help="print the points table (Markdown)")
    p.set_defaults(func=cmd_points)

    p = sub.add_parser("site", help="build the student edition of the book")
    p.add_argument(
        "--out",
        default=None,
        help="output folder; the site goes to OUT/html (default: _build/student in the repository)",
    )
    p.add_argument("--toc", default=None, help="table of contents to use (default: the book's _toc.yml)")
    p.add_argument("--quiet", action="store_true", help="only print warnings")
    p.set_defaults(func=cmd_site)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Every file is written and closed and every child process waited for by now, so skip the
    # interpreter's teardown: with PyTorch loaded it frees every object one by one, about 0.3 s of
    # CPU, and a class's batch grading starts one grader process per submission.
    os._exit(status)
