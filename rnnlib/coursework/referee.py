"""A referee process for the notebooks' hidden tests: plan and judge outside the learner's kernel.

Under nbgrader, a test cell runs in the learner's kernel, where the learner's code can
patch NumPy, PyTorch or the checks, or read a checker's local variables. A hidden test
that calls ``check_x(..., refereed=True)`` keeps the correct answers out of that kernel:

1. the kernel starts ``python -I -m rnnlib.coursework.referee`` (a fresh, isolated interpreter: no
   ``PYTHONPATH``, no user site, none of the kernel's patches), once, at its first refereed
   check; later checks reuse it (an interpreter with PyTorch costs about 2 s of CPU to start);
2. for each check, the kernel writes ``FOLDER/spec.json`` (which check, with which options)
   and sends the folder's path; the referee plans the probes with a seed of its own
   drawing, writes their inputs to ``FOLDER/request`` and says ``ready``;
3. the kernel runs the learner's code on them (``rnnlib.coursework.checks.collect``), writes
   ``FOLDER/result`` and says ``go``; the referee judges that data and answers with the
   diagnosis as one line of JSON.

The referee ends when the kernel closes its end of the pipe (the kernel exits, or dies).

This is as far as the notebook format goes: code in the kernel can still stop a test cell
from running at all (an IPython input transformer, a patched ``subprocess``). The local
grader (tools/coursework.py) does not depend on the kernel for its verdict; see the
instructor guide.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

# --------------------------------------------------------------------------------------
# The referee's side
# --------------------------------------------------------------------------------------


def _say(out: TextIO, message: str) -> None:
    out.write(message + "\n")
    out.flush()


def referee_one(folder: Path, read_line: Callable[[], str], out: TextIO) -> None:
    """Plan, wait for ``go``, judge: one check whose files are in ``folder``."""
    from rnnlib.coursework import checks, wire

    spec = json.loads((folder / "spec.json").read_text(encoding="utf8"))
    with contextlib.redirect_stdout(sys.stderr):  # only the protocol's lines go to the kernel
        plan = checks.plan(spec["check"], seed=secrets.randbelow(2**31 - 1), **spec["kwargs"])
        wire.save(folder / "request", plan.request)
    _say(out, "ready")
    if read_line().strip() != "go":
        raise RuntimeError("the kernel did not say 'go'")
    with contextlib.redirect_stdout(sys.stderr):
        diagnosis, caught = checks.judge(plan, wire.load(folder / "result"))
    _say(out, json.dumps({"diagnosis": diagnosis, "warnings": caught}))


def main(argv: list[str]) -> int:
    """Serve checks until stdin ends (one folder per line), or referee the one folder in ``argv``."""
    out = sys.stdout
    if argv:  # one check, the folder on the command line
        referee_one(Path(argv[0]), sys.stdin.readline, out)
        return 0
    while line := sys.stdin.readline():
        if not line.strip():
            continue
        try:
            referee_one(Path(json.loads(line)["folder"]), sys.stdin.readline, out)
        except Exception as err:  # noqa: BLE001 - reported to the kernel, which raises it; serve on
            _say(out, json.dumps({"error": f"{type(err).__name__}: {err}"}))
    return 0


# --------------------------------------------------------------------------------------
# The kernel's side
# --------------------------------------------------------------------------------------


class RefereeError(AssertionError):
    """The referee could not decide (it did not start, died, or failed): the hidden test fails."""


class Referee:
    """A referee process, started once per kernel and reused by every refereed check."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "rnnlib.coursework.referee"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self._buffer = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode("utf8"))
        self.proc.stdin.flush()

    def read_line(self, timeout: float) -> str:
        """The referee's next line; :class:`RefereeError` if it ends or takes longer than ``timeout``."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = end - time.monotonic()
            if left <= 0:
                self.close()
                raise RefereeError(f"the referee process did not answer within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RefereeError("the referee process ended (see the error above)")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf8")

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()

    def referee(self, folder: Path, collect: Callable[[Any], Any], timeout: float = 600) -> dict[str, Any]:
        """Have the check described by ``folder/spec.json`` planned and judged; ``collect(request)``
        runs the learner's code on the probes here. Returns the referee's answer (``diagnosis``,
        ``warnings``)."""
        from rnnlib.coursework import wire

        self.send(json.dumps({"folder": str(folder)}))
        first = self.read_line(timeout)
        if first != "ready":
            raise RefereeError(f"the referee could not plan the check: {json.loads(first).get('error', first)}")
        try:
            result = collect(wire.load(folder / "request"))
            wire.save(folder / "result", result)
        except BaseException:
            self.close()  # it is waiting for 'go' on a check that will not come back
            raise
        self.send("go")
        answer: dict[str, Any] = json.loads(self.read_line(timeout))
        if "error" in answer:
            raise RefereeError(f"the referee could not judge the check: {answer['error']}")
        return answer


_referees: dict[int, Referee] = {}  # by process id: a forked kernel starts its own
_lock = threading.Lock()


def referee_check(folder: Path, collect: Callable[[Any], Any], timeout: float = 600) -> dict[str, Any]:
    """:meth:`Referee.referee` on this process's referee, started on first use (again if it died)."""
    with _lock:
        referee = _referees.get(os.getpid())
        if referee is None or not referee.alive():
            referee = _referees[os.getpid()] = Referee()
        return referee.referee(folder, collect, timeout)


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Nothing is left to clean up (the folders are the kernel's), so skip the interpreter's teardown:
    # with PyTorch loaded it frees every object one by one, about 0.3 s of CPU per referee, and every
    # kernel that runs a refereed hidden test (under nbgrader, for each submission) starts one.
    os._exit(status)
