"""A referee process for the notebooks' hidden tests: plan and judge outside the learner's kernel.

Under nbgrader, a test cell runs in the learner's kernel, where the learner's code can
patch NumPy, PyTorch or the checks, or read a checker's local variables. A hidden test
that calls ``check_x(..., refereed=True)`` keeps the correct answers out of that kernel:

1. the kernel starts ``python -I -m rnnlib.referee FOLDER`` (a fresh, isolated interpreter:
   no ``PYTHONPATH``, no user site, none of the kernel's patches);
2. the referee reads ``FOLDER/spec.json`` (which check, with which options), plans the
   probes with a seed of its own drawing, writes their inputs to ``FOLDER/request`` and
   says ``ready``;
3. the kernel runs the learner's code on them (``rnnlib.checks.collect``) and writes
   ``FOLDER/result``; the referee judges that data and prints the diagnosis as JSON.

This is as far as the notebook format goes: code in the kernel can still stop a test cell
from running at all (an IPython input transformer, a patched ``subprocess``). The local
grader (tools/coursework.py) does not depend on the kernel for its verdict; see the
instructor guide.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    spec = json.loads((folder / "spec.json").read_text(encoding="utf8"))
    from rnnlib import checks, wire

    plan = checks.plan(spec["check"], seed=secrets.randbelow(2**31 - 1), **spec["kwargs"])
    wire.save(folder / "request", plan.request)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    diagnosis, caught = checks.judge(plan, wire.load(folder / "result"))
    print(json.dumps({"diagnosis": diagnosis, "warnings": caught}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
