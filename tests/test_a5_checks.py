"""Assignment A5's checks (``rnnlib.coursework.a5``): an LSTM cell, forward and backward.

Claims:

* every classic LSTM mistake, written the way a learner writes it (the functions below), is named
  on the first line of its checker's diagnosis, with its fix, for several probe seeds; every
  mistake A5 declares has such a function;
* correct answers pass, on the hidden tests' extra probes too, for several seeds; so do the
  solution notebook's own functions, and its student version is diagnosed "not implemented yet";
* every declared mistake gives different numbers from the right answer on some probe, and no two
  give the same numbers on every probe;
* the generic problems are reported as for A1-A4: a wrong result form, a cache without its keys,
  a wrong shape, NaN, an input modified in place;
* calling ``nn.LSTMCell``, ``nn.LSTM``, autograd or ``rnnlib``'s LSTM inside a graded function fails,
  and the library works normally afterwards.

In-process only (no grading, no kernel): the notebook's grading is tests/test_coursework.py's.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from fixtures.mistakes import a5 as M  # tests/ is on sys.path (pytest's rootdir insertion)
from torch import nn

import rnnlib
import rnnlib.coursework.a5 as A5
from rnnlib.coursework import engine
from rnnlib.coursework.engine import NOT_IMPLEMENTED, _same

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "chapters" / "coursework" / "A5_lstm_cell.ipynb"
SEEDS = (0, 1, 7)


CASES = M.CASES
CORRECT = {"lstm_step_forward": M.step_forward, "lstm_step_backward": M.step_backward, "lstm_forward": M.lstm_forward}


def diagnose(checker: str, fn, **kw):
    return getattr(A5, f"diagnose_{checker}")(fn, **kw)


# --------------------------------------------------------------------------------------
# Classic mistakes and correct answers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("checker, key, fn", CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_each_classic_lstm_mistake_is_named_on_the_first_line(checker, key, fn, seed):
    diagnosis = diagnose(checker, fn, seed=seed)
    assert diagnosis is not None, f"{fn.__name__} passed {checker}"
    first_line = diagnosis.splitlines()[0]
    assert A5.A5_MISTAKES[key].what in first_line, diagnosis
    assert A5.A5_MISTAKES[key].fix in diagnosis, diagnosis


def test_check_raises_assertion_error_with_the_diagnosis():
    with pytest.raises(AssertionError, match=re.escape(A5.A5_MISTAKES["lstm_dc_prev_without_f"].what)):
        A5.check_lstm_step_backward(M.sb_dc_prev_without_f)
    with pytest.raises(AssertionError, match=re.escape(A5.A5_MISTAKES["lstm_h_c_swapped"].what)):
        A5.check_lstm_step_forward(M.sf_h_c_swapped)


def test_every_a5_mistake_has_a_learner_style_case_and_a_message():
    assert set(A5.A5_MISTAKES) == {key for _, key, _ in CASES}
    for key, mistake in A5.A5_MISTAKES.items():  # registered with the engine, under a key of A5's own
        assert key.startswith("lstm_") and (engine.MISTAKES[key].what, engine.MISTAKES[key].fix) == (
            mistake.what,
            mistake.fix,
        )
    declared = set(A5.STEP_MISTAKES) | set(A5.STEP_BACKWARD_MISTAKES) | set(A5.LAYER_MISTAKES)
    assert declared == set(A5.A5_MISTAKES)


def test_the_brief_lstm_mistakes_are_all_recognised():
    # gate order; sigmoid and tanh swapped; the forget gate missing from dc_prev (and the dh -> dc path);
    # c returned for h, or h and c swapped
    brief = {
        "lstm_gate_order_ifog",
        "lstm_gate_order_figo",
        "lstm_candidate_sigmoid",
        "lstm_gates_tanh",
        "lstm_dc_prev_without_f",
        "lstm_dc_from_h_missing",
        "lstm_c_for_h",
        "lstm_h_c_swapped",
    }
    assert brief <= {key for _, key, _ in CASES}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("checker", sorted(CORRECT))
def test_correct_answers_pass_with_the_hidden_probes(checker, seed):
    assert diagnose(checker, CORRECT[checker], seed=seed, extended=True) is None


def test_every_mistake_is_distinguishable_on_some_probe():
    probes = {
        "lstm_step_forward": (
            [A5._step_forward_probe(0, k, *s) for k, s in enumerate([(3, 4, 5), (2, 6, 3)])],
            A5.STEP_MISTAKES,
        ),
        "lstm_step_backward": (
            [A5._step_backward_probe(0, k, *s) for k, s in enumerate([(3, 4, 5), (2, 6, 3)])],
            A5.STEP_BACKWARD_MISTAKES,
        ),
        "lstm_forward": (
            [A5._forward_probe(0, k, *s) for k, s in enumerate([(4, 2, 3, 5), (3, 3, 5, 2)])],
            A5.LAYER_MISTAKES + A5.LOOP_STEP_MISTAKES,
        ),
    }
    for task, (task_probes, declared) in probes.items():
        for key in declared:
            assert any(key in p.variants for p in task_probes), f"{task}: {key} is invisible on every probe"
        keys = sorted({k for p in task_probes for k in p.variants})
        for i, k1 in enumerate(keys):
            for k2 in keys[i + 1 :]:
                shared = [p for p in task_probes if k1 in p.variants and k2 in p.variants]
                assert not (shared and all(_same(p.variants[k1], p.variants[k2]) for p in shared)), (task, k1, k2)


def test_the_references_are_torch_and_agree_with_the_correct_variant():
    """The expected answers come from nn.LSTMCell / nn.LSTM / autograd; the module's own correct variant
    (from which every mistake is derived) agrees with them to float64 rounding."""
    p = A5._step_forward_probe(3, 0, 3, 4, 5)
    h, c, _ = A5._step_variant(*p.args)
    assert np.abs(h - p.expected["h"]).max() < 1e-13 and np.abs(c - p.expected["c"]).max() < 1e-13
    p = A5._step_backward_probe(3, 0, 3, 4, 5)
    grads = A5._step_backward_variant(*p.args)
    assert max(np.abs(grads[k] - p.expected[k]).max() for k in A5.STEP_GRAD_KEYS) < 1e-12
    p = A5._forward_probe(3, 0, 4, 2, 3, 5)
    ours = A5._layer_variant(p.args[0], *p.args[1], p.args[2])
    assert max(np.abs(ours[k] - p.expected[k]).max() for k in ("output", "h_n", "c_n")) < 1e-13


# --------------------------------------------------------------------------------------
# Generic problems
# --------------------------------------------------------------------------------------


def not_implemented(*args):
    raise NotImplementedError()


@pytest.mark.parametrize("checker", sorted(CORRECT))
def test_not_implemented_is_reported_as_such(checker):
    assert NOT_IMPLEMENTED in diagnose(checker, not_implemented).splitlines()[0]


def test_wrong_result_forms_are_reported():
    assert "did you forget `return h, c, cache`" in A5.diagnose_lstm_step_forward(lambda *a: None)
    assert "expected a tuple (h, c, cache)" in A5.diagnose_lstm_step_forward(lambda *a: M.step_forward(*a)[:2])
    no_gates = A5.diagnose_lstm_step_forward(
        lambda *a: (lambda h, c, cache: (h, c, {k: v for k, v in cache.items() if k != "g"}))(*M.step_forward(*a))
    )
    assert "the cache has no key(s) ['g']" in no_gates
    three = A5.diagnose_lstm_forward(lambda x, s, p: (lambda out, hc: (out, *hc))(*M.lstm_forward(x, s, p)))
    assert "got 3: nn.LSTM returns the final state as one tuple" in three
    assert "expected a dict" in A5.diagnose_lstm_step_backward(lambda *a: tuple(M.step_backward(*a).values()))


def test_a_cache_with_extra_keys_is_fine():
    def extra(*a):
        h, c, cache = M.step_forward(*a)
        return h, c, {**cache, "tanh_c": np.tanh(c)}

    assert A5.diagnose_lstm_step_forward(extra, extended=True) is None


def test_wrong_shape_and_nan_are_reported():
    def transposed(*a):
        grads = M.step_backward(*a)
        return {**grads, "dW_ih": grads["dW_ih"].T}

    diagnosis = A5.diagnose_lstm_step_backward(transposed)
    assert "dW_ih has shape (4, 20), expected (4H, D) = (20, 4). It is the transpose" in diagnosis

    def nan(*a):
        grads = M.step_backward(*a)
        return {**grads, "db_ih": grads["db_ih"] * np.nan}

    diagnosis = A5.diagnose_lstm_step_backward(nan)
    assert "db_ih contains NaN" in diagnosis


def test_modifying_an_input_in_place_is_reported():
    def in_place(dh, dc, cache):
        dc += dh * cache["o"] * (1 - np.tanh(cache["c"]) ** 2)  # the caller's dc
        return M.backward(dh, dc, cache, h_path=False)

    assert "modifies its input `dc` in place" in A5.diagnose_lstm_step_backward(in_place)


# --------------------------------------------------------------------------------------
# The library is off-limits inside graded functions
# --------------------------------------------------------------------------------------


def test_calling_an_lstm_or_autograd_is_refused():
    def via_cell(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
        cell = nn.LSTMCell(x.shape[1], h_prev.shape[1], dtype=torch.float64)
        h, c = cell(torch.from_numpy(x), (torch.from_numpy(h_prev), torch.from_numpy(c_prev)))
        return h.detach().numpy(), c.detach().numpy(), {}

    def via_numpy_lstm(x, state, params):
        model = rnnlib.NumpyLSTM(x.shape[-1], params["weight_hh_l0"].shape[1])
        model.load_state_dict(params)
        return model(x, state)

    def via_autograd(dh, dc, cache):
        torch.autograd.grad(torch.zeros(1, requires_grad=True).sum(), [])
        return {}

    assert "uses `nn`, `torch` inside the graded code" in A5.diagnose_lstm_step_forward(via_cell)
    assert "uses `rnnlib` inside the graded code" in A5.diagnose_lstm_forward(via_numpy_lstm)
    assert "uses `torch` inside the graded code" in A5.diagnose_lstm_step_backward(via_autograd)


def test_a_library_call_through_an_imported_name_is_caught_by_the_stubs():
    from rnnlib.lstm import lstm_layer_backward, lstm_layer_forward

    forward, backward_ = lstm_layer_forward, lstm_layer_backward  # names the source rule does not know

    def via_layer(x, state, params):
        W = [params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
        out, h, c, _ = forward(x, state[0][0], state[1][0], *W)
        return out, (h[None], c[None])

    def via_layer_backward(dh, dc, cache):
        backward_(dh[None], np.zeros_like(dh), dc, {})
        return {}

    assert "calls `rnnlib.lstm.lstm_layer_forward`, which is off-limits" in A5.diagnose_lstm_forward(via_layer)
    assert "calls `rnnlib.lstm.lstm_layer_backward`, which is off-limits" in A5.diagnose_lstm_step_backward(
        via_layer_backward
    )
    # and the library works again afterwards
    rng = np.random.default_rng(0)
    W = [rng.standard_normal(s) for s in ((8, 3), (8, 2), (8,), (8,))]
    out, h, c, cache = lstm_layer_forward(rng.standard_normal((2, 1, 3)), np.zeros((1, 2)), np.zeros((1, 2)), *W)
    assert out.shape == (2, 1, 2) and lstm_layer_backward(np.ones_like(out), np.zeros((1, 2)), np.zeros((1, 2)), cache)[
        0
    ].shape == (2, 1, 3)
    cell = nn.LSTMCell(3, 2)
    cell(torch.zeros(1, 3))[0].sum().backward()
    assert cell.weight_hh.grad is not None


# --------------------------------------------------------------------------------------
# The solution notebook
# --------------------------------------------------------------------------------------


def _definitions(nb) -> dict:
    """Execute the notebook's setup and solution cells (not the tests, not the Try-it cells)."""
    namespace: dict = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta and not meta.get("grade"):
            exec(compile(cell.source, meta["grade_id"], "exec"), namespace)  # noqa: S102
    return namespace


def _student(nb):
    import copy

    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb, resources = copy.deepcopy(nb), {}
    for pre in (ClearSolutions(), ClearHiddenTests()):
        nb, resources = pre.preprocess(nb, resources)
    return nb


@pytest.mark.skipif(not NOTEBOOK.exists(), reason="no A5 notebook")
def test_the_solution_notebook_passes_and_its_student_version_is_not_implemented():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    solution, student = _definitions(nb), _definitions(_student(nb))
    for checker in CORRECT:
        assert diagnose(checker, solution[checker], seed=3, extended=True) is None
        assert NOT_IMPLEMENTED in diagnose(checker, student[checker])
