"""Security of the local grader (``tools/coursework.py grade``): a gallery of hostile submissions.

Every attack of ``tests/fixtures/submissions/hostile.py`` is built on the untouched student
version of A1 (A2 where the id says so), graded once, and then judged by three tests:

* **score**: no task scores more than the honest-wrong baseline (the untouched student
  version, graded in the same run: 0 on every task), and every task is reported;
* **flag**: the report has ``flags`` (things for a teacher to review), or the feedback of a
  task names the problem (``Attack.words``);
* **no trace**: nothing carries the attack's marker afterwards, neither a file (the repo's
  tracked files, rnnlib/, tools/ and chapters/ with their __pycache__, the venv's
  site-packages *.pth and nbgrader's modules, $HOME and $HOME/.ipython) nor a process
  (``ps``: argv), and nothing leaked (a rewritten report, a TCP connection to the test's
  server, a canary file written by the grader, a fake line on the terminal, a file written
  through a symlinked report path); the submission file is unchanged.

At the end, the untouched student version and the solution of A1 are graded again and
must still get 0 and full marks.

Files are compared by content before and after each grading; other people edit this
working tree concurrently, so a change is blamed on the attack only if the file carries
the attack's marker (every payload does); such files are restored from the copy taken
before the grading (or deleted if they are new) and the test fails. Processes carrying the
marker are killed by pid (they can only come from this test's gradings).

DAMAGING attacks (they write into the checkout, the venv or $HOME, leave processes,
signal the grader, or take 4 GB of memory, 1 GB of disk or 500 processes) run only when
``cw.sandbox_available()`` and the baseline's report says it was graded under bubblewrap;
unsandboxed they would really damage the checkout and the machine, so they are skipped.
Even so they are bounded (4 GB on a 24 GB machine, checked first; 1 GB on a disk with
room, checked first; 500 sleeping processes; signals to at most 3 ancestors, and the
grader runs under two throwaway wrapper processes, so a leak cannot reach pytest).

Runtime: one grading per attack (A1: about 4 s). The module-scoped fixture grades only the attacks
selected (``-k``), in SHARDS parts (xdist groups, so several workers share the gallery), each part
when a test first needs one of its attacks, then the two final gradings of that part.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import site
import socket
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tools import coursework as cw

ROOT = Path(__file__).resolve().parent.parent


def _load_hostile():
    spec = importlib.util.spec_from_file_location(
        "rnn_course_hostile_submissions", ROOT / "tests" / "fixtures" / "submissions" / "hostile.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hostile = _load_hostile()

PYTHON = sys.executable
TOOL = Path(cw.__file__).resolve()  # the command line of the grader under test
SOURCES = {"A1": cw.SOURCE_DIR / "A1_rnn_step.ipynb", "A2": cw.SOURCE_DIR / "A2_stacked_forward.ipynb"}
CELL_TIMEOUT = 20
GALLERY_THREADS = 3  # gradings of the gallery run side by side: most of a grading is waiting on its kernel
TOTAL_TIMEOUT = 90
HOME = Path.home()
SITE_PACKAGES = [Path(p) for p in site.getsitepackages()]
NBGRADER_DIR = Path(importlib.util.find_spec("nbgrader").origin).parent
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")  # anything but \t and \n

pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in SOURCES.values()), reason="no A1/A2 coursework notebooks in chapters/coursework"
)

NEVER_UNSANDBOXED = (
    "damaging attack, run only under the grader's bubblewrap sandbox (cw.sandbox_available() "
    "and the baseline report's sandbox starting with 'bubblewrap'); unsandboxed it would really "
    "damage the checkout, the venv, $HOME or the machine"
)


# --------------------------------------------------------------------------------------
# The attacks
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable
    assignment: str = "A1"
    damaging: bool = False
    cli: bool = False  # graded through the command line (--json, terminal output, the grader's own process)
    words: tuple[str, ...] = ()  # feedback that names the problem (counts as flagged)
    linger: float = 0.0  # seconds to wait after grading before looking for traces
    isolation: bool = False  # only a sandbox can stop it (reading the checkout, the network): skipped without one


ATTACKS = [
    Attack("patch_allclose_A1", hostile.patch_allclose),
    Attack("patch_allclose_A2", hostile.patch_allclose, "A2"),
    Attack("frame_inspection", hostile.read_expected_from_frames),
    Attack("torch_rnn_zeros", hostile.patch_torch_rnn),
    Attack("input_transformer_A1", hostile.input_transformer),
    Attack("input_transformer_A2", hostile.input_transformer, "A2"),
    Attack("meta_path_checks", hostile.meta_path_checks),
    Attack("exec_instructor_solutions", hostile.exec_instructor_solutions),
    Attack("detached_report_rewriter", hostile.detached_report_rewriter, damaging=True, cli=True, linger=6),
    Attack("append_to_checks", hostile.append_to_checks, damaging=True),
    Attack("forged_pyc", hostile.forged_pyc, damaging=True),
    Attack("pth_file", hostile.pth_file, damaging=True),
    Attack("ipython_startup", hostile.ipython_startup, damaging=True),
    Attack("rewrite_instructor_notebook", hostile.rewrite_instructor_notebook, damaging=True),
    Attack("append_to_nbgrader", hostile.append_to_nbgrader, damaging=True, cli=True),
    Attack("locked_cell_hook", hostile.locked_cell_hook),
    Attack("fake_terminal_output", hostile.fake_terminal_output, cli=True),
    Attack("allocate_4gb", hostile.allocate_4gb, damaging=True, words=("memory", "died", "killed")),
    Attack(
        "write_1gb_home",
        hostile.write_1gb_home,
        damaging=True,
        words=("file too large", "no space", "quota", "read-only", "oserror", "permission"),
    ),
    Attack(
        "fork_bomb",
        hostile.fork_bomb,
        damaging=True,
        words=("resource temporarily unavailable", "blockingioerror", "oserror", "process"),
    ),
    Attack("setsid_child", hostile.setsid_child, damaging=True),
    Attack("signal_grader", hostile.signal_grader, damaging=True, cli=True),
    Attack("json_symlink", hostile.json_symlink, cli=True),
    Attack("network", hostile.network, isolation=True),
    Attack("read_outside", hostile.read_outside, isolation=True),
    Attack("background_thread", hostile.background_thread),
    Attack("result_to_dev_zero", hostile.result_to_dev_zero),
    Attack("result_huge", hostile.result_huge),
    Attack("pickled_result", hostile.pickled_result, cli=True),
    Attack("nan_results", hostile.nan_results, words=("nan",)),
    Attack("zeroes_inputs", hostile.zeroes_inputs, words=("in place", "modifies")),
    Attack("calls_library", hostile.calls_library, words=("off-limits",)),
    Attack("calls_torch_op", hostile.calls_torch_op, words=("off-limits",)),
    Attack("copies_library_function", hostile.copies_library_function, words=("off-limits",)),
    Attack("result_json_bomb", hostile.result_json_bomb),
    Attack("rewrite_result_after_probe", hostile.rewrite_result_after_probe, words=("off-limits",)),
    Attack("obfuscated_answer_patch", hostile.obfuscated_answer_patch),
    Attack("obfuscated_result_bomb", hostile.obfuscated_result_bomb),
]
BY_NAME = {a.name: a for a in ATTACKS}

# (test, attack) -> why it is expected to fail against the grader in this checkout (strict: a fix shows
# up as XPASS, and the entry goes).
XFAIL: dict[tuple[str, str], str] = {}
# Fixed since the gallery was written: torch.rnn_tanh_cell and copied library functions (the NumPy-only
# rule read from the code; tampering withholds the points), the 4 GB allocation (3 GiB address space,
# MemoryError flagged), the JSON bombs (wire.load refuses them), the result rewritten after its probe
# cell (tampering: IPython events, rnnlib.coursework.engine._off_limits reassigned), the obfuscated answer patch
# (code built at run time: exec/eval/compile/__import__ withhold the points).


# The gallery is graded in SHARDS parts, each an xdist group of its own (conftest.py: groups), so that
# several workers share it; each part grades its attacks GALLERY_THREADS at a time.
SHARDS = 3


def shard_of(name: str) -> int:
    return [a.name for a in ATTACKS].index(name) % SHARDS


def in_shard(k: int) -> pytest.MarkDecorator:
    return pytest.mark.xdist_group(f"security-{k}")


def attack_params(test: str) -> list:
    return [
        pytest.param(
            a.name,
            id=a.name,
            marks=[in_shard(shard_of(a.name))]
            + ([pytest.mark.xfail(strict=True, reason=XFAIL[test, a.name])] if (test, a.name) in XFAIL else []),
        )
        for a in ATTACKS
    ]


# --------------------------------------------------------------------------------------
# What the grader relies on, and what an attack could leave
# --------------------------------------------------------------------------------------

MAX_KEEP = 4 << 20  # files up to this size are kept (compared and restorable) by content


def watched_files() -> set[Path]:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True).stdout.decode()
    files = {ROOT / p for p in tracked.split("\0") if p}
    for folder in (ROOT / "rnnlib", ROOT / "tools", ROOT / "chapters", HOME / ".ipython"):
        if folder.is_dir():
            files |= {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    for sp in SITE_PACKAGES:
        files |= set(sp.glob("*.pth"))
    files |= set(NBGRADER_DIR.glob("*.py"))
    files |= {p for p in HOME.iterdir() if p.is_file() or p.is_symlink()}
    if os.environ.get("IPYTHONDIR") and Path(os.environ["IPYTHONDIR"]).is_dir():
        files |= {p for p in Path(os.environ["IPYTHONDIR"]).rglob("*") if p.is_file()}
    return files


def snapshot() -> dict[Path, Any]:
    """Each watched file's bytes (or (size, mtime) for big files and $HOME's top level)."""
    snap: dict[Path, Any] = {}
    for path in watched_files():
        try:
            st = path.lstat()
            if path.parent == HOME or st.st_size > MAX_KEEP or path.is_symlink():
                snap[path] = ("stat", st.st_size, st.st_mtime_ns, os.readlink(path) if path.is_symlink() else "")
            else:
                snap[path] = path.read_bytes()
        except OSError:
            continue
    return snap


def carries(path: Path, marker: str) -> bool:
    if marker in path.name:
        return True
    try:
        if path.is_symlink() or path.stat().st_size > 64 << 20:
            return False
        return marker.encode() in path.read_bytes()
    except OSError:
        return False


def compare_and_restore(before: dict[Path, Any], marker: str) -> tuple[list[str], list[str]]:
    """(files the attack changed: restored or deleted; other changes, left alone)."""
    after = snapshot()
    marked, other = [], []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path):
            continue
        rel = str(path)
        if path in after and carries(path, marker):
            old = before.get(path)
            try:
                if isinstance(old, bytes):
                    path.write_bytes(old)
                    rel += " (restored)"
                elif old is None:
                    path.unlink()
                    rel += " (deleted)"
                else:
                    rel += " (could not restore: too big to keep)"
            except OSError as err:
                rel += f" (could not restore: {err})"
            marked.append(rel)
        else:
            other.append(rel + (" (new)" if path not in before else " (gone)" if path not in after else ""))
    return marked, other


def processes_with(marker: str) -> list[tuple[int, str]]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if marker in args and pid.isdigit() and int(pid) != os.getpid():
            rows.append((int(pid), args[:120]))
    return rows


def kill_leftovers(marker: str) -> list[str]:
    """Processes whose argv carries the marker (started by this test's grading): recorded, then SIGKILLed."""
    found = processes_with(marker)
    if found:
        time.sleep(1.0)  # a sandbox tearing down may still be at work
        found = processes_with(marker)
    for pid, _ in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return [f"pid {pid}: {args}" for pid, args in found]


def mem_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


# --------------------------------------------------------------------------------------
# Running one grading
# --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    attack: str
    skipped: str = ""
    error: str = ""
    points: dict[str, float] = field(default_factory=dict)
    max_points: dict[str, float] = field(default_factory=dict)
    feedback: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sandbox: str = ""
    table: str = ""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    tty: str = ""
    leftovers: list[str] = field(default_factory=list)
    marked_files: list[str] = field(default_factory=list)
    other_changes: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    submission_modified: bool = False
    refused_symlink: bool = False
    elapsed: float = 0.0

    def describe(self) -> str:
        parts = [self.table or "(no report table)"]
        if self.flags:
            parts.append("flags: " + "; ".join(self.flags))
        if self.error:
            parts.append("error: " + self.error)
        if self.stderr.strip():
            parts.append("grader stderr (tail): " + self.stderr.strip()[-600:])
        return "\n".join(parts)


def from_report(outcome: Outcome, report: cw.Report) -> None:
    outcome.points = {t.grade_id: float(t.points) for t in report.tasks}
    outcome.max_points = {t.grade_id: float(t.max_points) for t in report.tasks}
    outcome.feedback = {t.grade_id: f"{t.feedback} {t.message}" for t in report.tasks}
    outcome.flags = [str(f) for f in (getattr(report, "flags", None) or [])]
    outcome.notes = list(report.notes)
    outcome.sandbox = str(getattr(report, "sandbox", "(no report.sandbox)"))
    outcome.table = report.table()


def from_json(outcome: Outcome, data: dict) -> None:
    tasks = data.get("tasks", [])
    outcome.points = {t["grade_id"]: float(t["points"]) for t in tasks}
    outcome.max_points = {t["grade_id"]: float(t["max_points"]) for t in tasks}
    outcome.feedback = {t["grade_id"]: f"{t.get('feedback', '')} {t.get('message', '')}" for t in tasks}
    outcome.flags = [str(f) for f in (data.get("flags") or [])]
    outcome.notes = list(data.get("notes") or [])
    outcome.sandbox = str(data.get("sandbox", "(no sandbox in the JSON report)"))
    outcome.table = outcome.table or json.dumps(data, indent=1)[:3000]


WRAPPER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def run_cli(outcome: Outcome, submission: Path, report: Path, workdir: Path, with_tty: bool = False) -> None:
    """The CLI under two throwaway wrapper processes, in its own session (optionally with a pty as its
    controlling terminal, read back into ``outcome.tty``); stdout/stderr to files."""
    cmd = [
        PYTHON,
        "-c",
        WRAPPER,
        PYTHON,
        "-c",
        WRAPPER,
        PYTHON,
        str(TOOL),
        "grade",
        str(submission),
        "--json",
        str(report),
        "--timeout",
        str(CELL_TIMEOUT),
        "--total-timeout",
        str(TOTAL_TIMEOUT),
    ]
    master = slave = None
    tty_chunks: list[bytes] = []
    reader = None
    if with_tty:
        master, slave = os.openpty()

        def read_tty():
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                tty_chunks.append(data)

        reader = threading.Thread(target=read_tty, daemon=True)
        reader.start()
    out_path, err_path = workdir / "cli.stdout", workdir / "cli.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        kwargs: dict[str, Any] = dict(stdout=out, stderr=err, cwd=workdir, start_new_session=True)
        if with_tty:
            kwargs.update(stdin=slave, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        else:
            kwargs.update(stdin=subprocess.DEVNULL)
        proc = subprocess.Popen(cmd, **kwargs)
        try:
            outcome.returncode = proc.wait(timeout=TOTAL_TIMEOUT + 90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            outcome.leaks.append(f"the grader did not finish within {TOTAL_TIMEOUT + 90} s (stopped or hung); killed")
    if with_tty:
        os.close(slave)
        time.sleep(0.2)
        os.close(master)
        reader.join(timeout=2)
        outcome.tty = b"".join(tty_chunks).decode(errors="replace")
    outcome.stdout = out_path.read_text(errors="replace")
    outcome.stderr = err_path.read_text(errors="replace")
    outcome.table = outcome.stdout


class AnswerServer:
    """A TCP server on 127.0.0.1 that hands out correct A1 code to whoever connects (and counts them)."""

    def __init__(self, code: str):
        self.code = code.encode()
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            try:
                conn.settimeout(2)
                conn.recv(1024)  # the request line (unread data would make close() reset the connection)
                conn.sendall(self.code)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.stopped = True
        self.thread.join(timeout=2)
        self.sock.close()


def solution_code(source: Path) -> str:
    nb = cw.read_notebook(source)
    return "\n\n".join(c.source for c in nb.cells if cw.is_solution(c) and c.cell_type == "code")


def grade_attack(attack: Attack, student: nbformat.NotebookNode, root: Path, attempt: int = 0) -> Outcome:
    outcome = Outcome(attack.name)
    workdir = root / (attack.name + (f"-retry{attempt}" if attempt else ""))
    workdir.mkdir()
    source = SOURCES[attack.assignment]
    submission = workdir / source.name
    report_json = workdir / "report.json"
    peer = workdir / "peer" / source.name  # another student's (correct) submission
    peer.parent.mkdir()
    shutil.copy(source, peer)
    marker = f"rnnhostile{secrets.token_hex(5)}"
    server = AnswerServer(solution_code(SOURCES["A1"])) if attack.name == "network" else None
    ctx = hostile.Context(
        marker=marker,
        repo=str(ROOT),
        tcp_port=server.port if server else 0,
        report_dir=str(workdir),
        own_path=str(submission),
        peer_paths=(str(peer),),
        canary=str(workdir / "canary.txt"),
    )
    nb = nbformat.from_dict(json.loads(json.dumps(student)))
    attack.build(nb, ctx)
    nbformat.write(nb, submission)
    submitted = submission.read_bytes()
    readme_copy = workdir / "README.md"
    if attack.name == "json_symlink":
        shutil.copy(ROOT / "README.md", readme_copy)
        report_json.symlink_to(readme_copy)
    readme_bytes = readme_copy.read_bytes() if readme_copy.exists() else b""
    before = snapshot()
    t0 = time.monotonic()
    try:
        if attack.cli:
            run_cli(outcome, submission, report_json, workdir, with_tty=attack.name == "fake_terminal_output")
            if attack.linger:
                time.sleep(attack.linger)
            if attack.name == "json_symlink":
                outcome.refused_symlink = (report_json.is_symlink() is False and report_json.is_file()) or (
                    outcome.returncode not in (0, None) and bool(outcome.stderr.strip())
                )
                try:  # the report itself, or what was written through the link
                    from_json(outcome, json.loads(report_json.read_text()))
                except (OSError, ValueError):
                    pass
            elif report_json.is_file():
                from_json(outcome, json.loads(report_json.read_text()))
            else:
                outcome.error = f"no JSON report (exit code {outcome.returncode})"
            if outcome.returncode != 0 and attack.name != "json_symlink":
                outcome.error = (outcome.error + f"; exit code {outcome.returncode}").lstrip("; ")
        else:
            report = cw.grade(submission, timeout=CELL_TIMEOUT, total_timeout=TOTAL_TIMEOUT)
            if attack.linger:
                time.sleep(attack.linger)
            from_report(outcome, report)
    except Exception as err:  # noqa: BLE001 - the test reports it
        outcome.error = f"{type(err).__name__}: {err}"
    outcome.elapsed = time.monotonic() - t0
    # what it left
    outcome.leftovers = kill_leftovers(marker)
    outcome.marked_files, outcome.other_changes = compare_and_restore(before, marker)
    outcome.submission_modified = submission.read_bytes() != submitted
    if server is not None:
        server.close()
        if server.connections:
            outcome.leaks.append(f"{server.connections} connection(s) reached the test's server on 127.0.0.1")
    if Path(ctx.canary).exists():
        outcome.leaks.append(f"the grader ran code from a result: {Path(ctx.canary).read_text()!r}")
    if readme_bytes and readme_copy.read_bytes() != readme_bytes:
        outcome.leaks.append("the report was written through the --json symlink (the README copy was overwritten)")
    if report_json.is_file() and not report_json.is_symlink() and marker in report_json.read_text(errors="replace"):
        outcome.leaks.append("the JSON report was rewritten after grading (by a process the kernel left)")
    if attack.name == "fake_terminal_output":
        # The learner's text may appear inside a feedback line; what must not happen is a line of
        # its own that looks like the grader's, or control characters reaching a terminal.
        streams = (("stdout", outcome.stdout), ("stderr", outcome.stderr), ("the terminal", outcome.tty))
        for where, text in streams:
            found = CONTROL.findall(text)
            if found:
                outcome.leaks.append(f"control characters reached {where}: {found[:6]!r}")
            fake = [ln for ln in text.splitlines() if re.match(r"^\W*total\s+10 / 10", ln)]
            if fake:
                outcome.leaks.append(f"a fake total line reached {where}: {fake[:2]!r}")
        totals = re.findall(r"^\s*total\s.*$", outcome.stdout, flags=re.M)
        if len(totals) != 1:
            outcome.leaks.append(f"{len(totals)} 'total' lines on stdout: {totals!r}")
        if report_json.is_file():
            data = json.loads(report_json.read_text())
            shown = (
                [t.get("feedback", "") for t in data.get("tasks", [])]
                + list(data.get("flags") or [])
                + list(data.get("notes") or [])
            )
            found = [c for text in shown for c in CONTROL.findall(str(text))]
            if found:
                outcome.leaks.append(f"control characters in the JSON report's feedback/flags/notes: {found[:6]!r}")
    return outcome


# --------------------------------------------------------------------------------------
# The gallery: every selected attack graded once, in order, then the two final gradings
# --------------------------------------------------------------------------------------


class Baselines(dict):
    """The untouched student versions' outcomes, by assignment, each graded when first asked for."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, key: str) -> Outcome:
        self[key] = plain(self.root / f"baseline_{key}" / SOURCES[key].name, f"baseline {key}")
        return self[key]


@dataclass
class Gallery:
    """The selected attacks' outcomes, graded one shard at a time, when a test first asks for one."""

    sandboxed: bool
    baseline: dict[str, Outcome]
    students: dict[str, nbformat.NotebookNode]
    root: Path
    todo: dict[int, list[Attack]]  # per shard: the attacks to grade (the skipped ones have their outcome)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    graded: set[int] = field(default_factory=set)

    def shard(self, k: int) -> None:
        """Grade shard ``k``'s attacks (once): several at once, each in its own sandbox, every trace an
        attack leaves carrying its own marker. Unsandboxed, one at a time: then the grader sweeps its
        process's descendants."""
        if k in self.graded:
            return
        self.graded.add(k)
        todo = self.todo.get(k, [])

        def run(attack: Attack) -> Outcome:
            for attempt in range(RETRIES + 1):
                outcome = grade_attack(attack, self.students[attack.assignment], self.root, attempt)
                if not refused_for_others(outcome):
                    break
            return outcome

        with ThreadPoolExecutor(max_workers=GALLERY_THREADS if self.sandboxed else 1) as pool:
            for attack, outcome in zip(todo, pool.map(run, todo), strict=True):
                self.outcomes[attack.name] = outcome
        lines = [f"{'attack':<28} {'points':>8} {'wall s':>7}  flags/leaks"]
        for attack in todo:
            o = self.outcomes[attack.name]
            got = "skip" if o.skipped else f"{sum(o.points.values()):g}/{sum(o.max_points.values()):g}"
            lines.append(
                f"{attack.name:<28} {got:>8} {o.elapsed:7.1f}  {o.error[:80]} "
                f"{o.leaks + o.marked_files + o.leftovers} flags: {' | '.join(o.flags)}"[:400]
            )
        print("\n".join(lines))

    def outcome(self, name: str) -> Outcome:
        self.shard(shard_of(name))
        return self.outcomes[name]


def refused_for_others(outcome: Outcome) -> bool:
    """The grader refused to report because files it relies on changed, and not by the attack's doing:
    other people edit this working tree while the tests run."""
    refused = "IntegrityError" in outcome.error or (outcome.returncode == 3 and "REFUSED" in outcome.stderr)
    return refused and not outcome.marked_files


RETRIES = 2


def plain(path: Path, name: str) -> Outcome:
    for _ in range(RETRIES + 1):
        outcome = Outcome(name)
        t0 = time.monotonic()
        try:
            from_report(outcome, cw.grade(path, timeout=CELL_TIMEOUT, total_timeout=TOTAL_TIMEOUT))
        except Exception as err:  # noqa: BLE001
            outcome.error = f"{type(err).__name__}: {err}"
        outcome.elapsed = time.monotonic() - t0
        if not refused_for_others(outcome):
            break
    return outcome


@pytest.fixture(scope="module")
def gallery(request, tmp_path_factory) -> Gallery:
    selected = {
        item.callspec.params["attack"]
        for item in request.session.items
        if getattr(item, "callspec", None) is not None
        and "attack" in item.callspec.params
        and item.module.__name__ == __name__
    }
    root = tmp_path_factory.mktemp("hostile")
    students = {}
    for key in sorted({BY_NAME[n].assignment for n in selected} | {"A1"}):
        students[key] = cw.make_student(SOURCES[key])
        path = root / f"baseline_{key}" / SOURCES[key].name
        path.parent.mkdir()
        nbformat.write(students[key], path)
    baseline = Baselines(root)
    available = bool(getattr(cw, "sandbox_available", lambda: False)())
    sandboxed = available and baseline["A1"].sandbox.startswith("bubblewrap")
    gallery = Gallery(sandboxed, baseline, students, root, todo={})
    for attack in ATTACKS:
        if attack.name not in selected:
            continue
        if attack.isolation and not sandboxed:
            gallery.outcomes[attack.name] = Outcome(
                attack.name,
                skipped=(
                    "without a sandbox the kernel can read and connect to what the grader's user can (the report "
                    f"says so); baseline sandbox = {baseline['A1'].sandbox!r}"
                ),
            )
            continue
        if attack.damaging and not sandboxed:
            gallery.outcomes[attack.name] = Outcome(
                attack.name,
                skipped=NEVER_UNSANDBOXED
                + (f" (sandbox_available() = {available}, baseline sandbox = {baseline['A1'].sandbox!r})"),
            )
            continue
        if attack.name == "allocate_4gb" and mem_available_gb() < 10:
            gallery.outcomes[attack.name] = Outcome(attack.name, skipped=f"only {mem_available_gb():.1f} GB available")
            continue
        if attack.name == "write_1gb_home" and shutil.disk_usage(HOME).free < 8 << 30:
            gallery.outcomes[attack.name] = Outcome(attack.name, skipped="less than 8 GB free under $HOME")
            continue
        gallery.todo.setdefault(shard_of(attack.name), []).append(attack)
    return gallery


def outcome_of(gallery: Gallery, name: str) -> Outcome:
    outcome = gallery.outcome(name)
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    return outcome


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


@in_shard(0)
def test_baseline_scores_zero_and_is_not_flagged(gallery):
    for key in SOURCES:
        outcome = gallery.baseline[key]
        assert not outcome.error, outcome.describe()
        assert outcome.points and set(outcome.points.values()) == {0.0}, outcome.describe()
        assert outcome.flags == [], outcome.describe()


@in_shard(0)
def test_reports_say_whether_they_were_sandboxed(gallery):
    sandbox = gallery.baseline["A1"].sandbox
    assert sandbox.startswith(("bubblewrap", "none")), sandbox
    if getattr(cw, "sandbox_available", lambda: False)():
        assert sandbox.startswith("bubblewrap"), sandbox


@pytest.mark.parametrize("attack", attack_params("score"))
def test_attack_scores_no_more_than_the_honest_wrong_baseline(gallery, attack):
    outcome = outcome_of(gallery, attack)
    base = gallery.baseline[BY_NAME[attack].assignment]
    if attack == "json_symlink" and outcome.refused_symlink and not outcome.points:
        pytest.skip("no report to score: the grader refused the symlinked --json path")
    assert not outcome.error, outcome.describe()
    assert list(outcome.points) == list(base.points), outcome.describe()
    assert outcome.max_points == base.max_points, outcome.describe()
    above = {gid: p for gid, p in outcome.points.items() if p > base.points[gid]}
    assert not above, f"points above the honest-wrong baseline: {above}\n{outcome.describe()}"


@pytest.mark.parametrize("attack", attack_params("flag"))
def test_attack_is_flagged(gallery, attack):
    outcome = outcome_of(gallery, attack)
    if attack == "json_symlink":
        assert outcome.refused_symlink, (
            "the grader neither refused the symlinked --json path nor replaced "
            f"the link by a file\n{outcome.describe()}"
        )
        return
    words = BY_NAME[attack].words
    named = [fb for fb in outcome.feedback.values() if any(w in fb.lower() for w in words)]
    assert outcome.flags or named, f"neither report.flags nor the feedback names the problem\n{outcome.describe()}"


@pytest.mark.parametrize("attack", attack_params("trace"))
def test_attack_leaves_no_trace(gallery, attack):
    outcome = outcome_of(gallery, attack)
    problems = []
    if outcome.marked_files:
        problems.append(f"files the attack changed (now restored/deleted): {outcome.marked_files}")
    if outcome.leftovers:
        problems.append(f"processes left behind (now killed): {outcome.leftovers}")
    if outcome.submission_modified:
        problems.append("the submission file was modified")
    problems += outcome.leaks
    note = (
        f"\n(other changes in the working tree, not blamed: {outcome.other_changes})" if outcome.other_changes else ""
    )
    assert not problems, "\n".join(problems) + "\n" + outcome.describe() + note


@pytest.mark.parametrize("shard", [pytest.param(k, marks=in_shard(k)) for k in range(SHARDS)])
def test_baseline_and_solution_still_grade_right_afterwards(gallery, shard):
    """After a shard's attacks, the untouched student version and the solution still grade right."""
    gallery.shard(shard)
    student = plain(gallery.root / "baseline_A1" / SOURCES["A1"].name, "student A1 afterwards")
    solution = plain(SOURCES["A1"], "solution A1 afterwards")
    assert not student.error and set(student.points.values()) == {0.0}, student.describe()
    assert not solution.error and solution.points == solution.max_points, solution.describe()
    assert sum(solution.points.values()) == 10, solution.describe()
