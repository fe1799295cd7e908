"""The kernel side of the local grader: answer the grader's probe requests with plain data.

The local grader (tools/coursework.py) replaces each test cell of a submission by one
line that calls :func:`answer`. It runs in the submission's kernel, which the grader does
not trust: it only evaluates the names the instructor's test cell passes to its checks
(``rnn_step``, ``trained_model, final_val_mse``), lets the checks' ``collect`` run the
learner's code on the probe inputs, and writes what came back with :mod:`rnnlib.coursework.wire`.
It returns nothing and decides nothing: the correct answers are not in this process, and
the grader judges the data on its own side (``rnnlib.coursework.checks.judge``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from . import wire


def _error(err: BaseException) -> dict[str, str]:
    return {"ename": type(err).__name__, "evalue": str(err)[:2000]}


def answer(stem: str, namespace: dict[str, Any]) -> None:
    """Read ``<stem>.request.{json,npz}``, collect each check's data, write ``<stem>.result.{json,npz}``."""
    request = wire.load(Path(f"{stem}.request"))
    calls = []
    for call in request["calls"]:
        try:
            objects = [eval(compile(src, "<test cell>", "eval"), namespace) for src in call["args"]]  # noqa: S307
        except Exception as err:  # noqa: BLE001 - a name the learner never defined, most often
            calls.append({"error": _error(err)})
            continue
        try:
            module = importlib.import_module(call["module"])
            data = module.collect(call["request"], *objects)
            wire.pack(data)  # fail here, per call, if the learner's code produced something that cannot cross
        except Exception as err:  # noqa: BLE001
            calls.append({"error": _error(err)})
            continue
        calls.append({"data": data})
    wire.save(Path(f"{stem}.result"), {"calls": calls})
