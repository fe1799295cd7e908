"""The checks split across the grader's trust boundary give exactly the in-process diagnosis.

The local grader plans the probes on the trusted side (``rnnlib.coursework.checks.plan``), lets the
submission's kernel collect the learner's outputs as plain data (``collect``, then
``rnnlib.coursework.wire`` to cross), and judges them on the trusted side (``judge``). For every
classic mistake of every task, every correct solution and every student stub, that path
must give the same diagnosis, character for character, as calling ``diagnose_<check>``
in one process; and what crosses to the kernel never holds an expected value.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fixtures.mistakes import a1, a2, a3, a4, a5  # tests/ is on sys.path (pytest's rootdir insertion)
from test_checks import GRADED, definitions, read, student_version  # noqa: F401 - shared helpers

import rnnlib.coursework.checks as C
from rnnlib.coursework import wire

CASES = a1.CASES + a2.CASES + a3.CASES + a5.CASES
A4_CASES = [("adding_model", cls) for cls, _ in a4.MODEL_CASES] + [("train_step", fn) for fn, _ in a4.STEP_CASES]


def across(check: str, *objects, tmp_path, seed: int = 0, extended: bool = False, **kwargs):
    plan = C.plan(check, seed=seed, extended=extended, **kwargs)
    stem = tmp_path / f"{check}-request"
    wire.save(stem, plan.request)
    request = wire.load(stem)  # what the kernel reads
    result = C.collect(request, *objects)  # in the kernel
    wire.save(tmp_path / f"{check}-result", result)
    diagnosis, _ = C.judge(plan, wire.load(tmp_path / f"{check}-result"))  # back on the trusted side
    return diagnosis


@pytest.mark.parametrize("checker, key, fn", CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_every_classic_mistake_gets_the_same_diagnosis_across_the_boundary(checker, key, fn, tmp_path):
    expected = getattr(C, f"diagnose_{checker}")(fn)
    assert expected is not None
    assert across(checker, fn, tmp_path=tmp_path) == expected


@pytest.mark.parametrize("checker, obj", A4_CASES, ids=[f"{c}-{getattr(o, '__name__', o)}" for c, o in A4_CASES])
def test_a4_mistakes_get_the_same_diagnosis_across_the_boundary(checker, obj, tmp_path):
    expected = getattr(C, f"diagnose_{checker}")(obj)
    assert expected is not None
    assert across(checker, obj, tmp_path=tmp_path) == expected


@pytest.fixture(scope="module")
def solutions() -> dict[str, dict]:
    return {name: definitions(read(name)) for name in ("A1", "A2", "A3", "A4", "A5")}


@pytest.fixture(scope="module")
def students() -> dict[str, dict]:
    return {name: definitions(student_version(read(name))) for name in ("A1", "A2", "A3", "A4", "A5")}


@pytest.mark.parametrize("checker", sorted(GRADED))
def test_solutions_pass_and_stubs_fail_alike_across_the_boundary(checker, solutions, students, tmp_path):
    nb, name = GRADED[checker]
    for seed, extended in ((0, False), (12345, True)):
        assert across(checker, solutions[nb][name], tmp_path=tmp_path, seed=seed, extended=extended) is None
    stub = students[nb][name]
    assert across(checker, stub, tmp_path=tmp_path) == getattr(C, f"diagnose_{checker}")(stub)


def _arrays(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _arrays(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _arrays(v)


@pytest.mark.parametrize("check", [c for c in C.checks_available() if c != "trained_adding_model"])
def test_no_expected_value_crosses_into_the_kernel(check):
    """The request holds inputs only: no array in it equals an expected output.

    (A mistake's output may equal an input, e.g. the initial state returned as the final one.)"""
    plan = C.plan(check, seed=7, extended=True)
    sent = list(_arrays(plan.request))
    if isinstance(plan.private, list):  # probes with answers (A1-A3)
        for probe in plan.private:
            answers = list(_arrays(probe.expected))
            for a in answers:
                if a.size > 1:
                    assert not any(s.shape == a.shape and np.array_equal(s, a) for s in sent), (check, probe.label)


def test_the_trained_models_held_out_data_never_cross(tmp_path):
    """Neither the targets nor the held-out inputs (from which the adding problem's targets follow)."""
    plan = C.plan("trained_adding_model", seed=99, num=50)
    for secret in (plan.private["x"], plan.private["y"]):
        assert not any(a.shape == secret.shape and np.array_equal(a, secret) for a in _arrays(plan.request))


def test_a_kernel_that_lies_in_malformed_ways_is_refused_not_trusted():
    plan = C.plan("rnn_step", seed=3)
    for result in (
        None,
        {},
        {"outcomes": None},
        {"outcomes": {"x": {"kind": "ok", "parts": {}}}},
        {"outcomes": {p["label"]: {"kind": "ok", "parts": {"h": "0"}} for p in plan.request["probes"]}},
        {"outcomes": {p["label"]: {"kind": "weird"} for p in plan.request["probes"]}},
    ):
        diagnosis, _ = C.judge(plan, result)
        assert diagnosis is not None, result


def test_a_refereed_check_is_not_fooled_by_patches_in_the_learners_process(monkeypatch):
    """The hidden tests' referee (rnnlib/coursework/referee.py) plans and judges in a fresh interpreter:
    numpy's comparisons and torch's reference patched here change nothing there."""
    import torch

    wrong, right = a1.step_missing_b_ih, a1.correct_step
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch.nn, "RNNCell", None)
    with pytest.raises(AssertionError, match="b_ih is left out"):
        C.check_rnn_step(wrong, extended=True, refereed=True)
    C.check_rnn_step(right, extended=True, refereed=True)


def test_one_referee_serves_every_hidden_test_of_a_kernel_and_a_dead_one_is_replaced(monkeypatch):
    """The referee starts once per kernel (an interpreter with PyTorch costs about 2 s of CPU), is still
    the same process after the notebooks' importlib.reload of the checks, is replaced if it died, and
    ends when the kernel closes the pipe."""
    import importlib.util
    import os

    from rnnlib.coursework import referee

    C.check_rnn_step(a1.correct_step, refereed=True)
    first = referee._referees[os.getpid()]
    # What the notebooks' importlib.reload(_checks) does, on a second copy (reloading C itself would
    # redefine the classes other tests in this process hold instances of).
    spec = importlib.util.spec_from_file_location("rnnlib.coursework._checks_reloaded", C.__file__)
    reloaded = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, reloaded)  # dataclasses look their module up
    spec.loader.exec_module(reloaded)
    reloaded.check_rnn_step(a1.correct_step, refereed=True)
    with pytest.raises(AssertionError, match="b_ih is left out"):
        reloaded.check_rnn_step(a1.step_missing_b_ih, extended=True, refereed=True)
    assert referee._referees[os.getpid()] is first and first.alive()
    first.proc.kill()
    first.proc.wait()
    reloaded.check_rnn_step(a1.correct_step, refereed=True)
    second = referee._referees[os.getpid()]
    assert second is not first and second.alive()
    assert second.proc.stdin is not None
    second.proc.stdin.close()  # what the kernel's exit does
    assert second.proc.wait(timeout=30) == 0


def test_a_check_the_referee_cannot_plan_fails_with_its_reason_and_the_referee_serves_on():
    import os

    from rnnlib.coursework import referee

    with pytest.raises(AssertionError, match="could not plan the check: .*no_such_option"):
        C.check_rnn_step(a1.correct_step, refereed=True, no_such_option=1)
    C.check_rnn_step(a1.correct_step, refereed=True)
    assert referee._referees[os.getpid()].alive()
