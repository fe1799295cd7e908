"""The coursework's diagnostic checkers (``rnnlib.coursework.checks``) and the assignment notebooks' nbgrader format.

Claims:

* every classic mistake, written the way a learner writes it (``tests/fixtures/mistakes``),
  is named in the diagnosis of its checker; every mistake the checkers know has such a fixture;
* the reference solutions in ``chapters/coursework/A*.ipynb`` pass every checker, with the
  hidden tests' extra probes; the student versions made by nbgrader's own ``ClearSolutions``
  are diagnosed "not implemented yet";
* generic problems get their own message: ``None``, wrong type, wrong shape (expected vs got),
  NaN, float32 precision, an input modified in place, an exception (with a hint);
* calling the library's implementation from inside a graded function is detected (also
  through a name imported beforehand), and the library works normally afterwards;
* every known mistake gives different numbers from the correct answer on some probe;
* the notebooks follow nbgrader's schema-3 conventions (metadata, markers, locked tests,
  unique ids, points), and test cells re-import the checkers.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from fixtures.mistakes import a1, a2, a3, a4, a5  # tests/ is on sys.path (pytest's rootdir insertion)
from torch import nn

import rnnlib
import rnnlib.coursework.checks as C
from rnnlib.coursework import a1 as checks_a1
from rnnlib.coursework import a2 as checks_a2
from rnnlib.coursework import a3 as checks_a3
from rnnlib.coursework import a4 as checks_a4
from rnnlib.coursework import engine
from rnnlib.numpy_rnn import rnn_cell_backward, rnn_cell_forward

ROOT = Path(__file__).resolve().parent.parent
COURSEWORK = ROOT / "chapters" / "coursework"
NOTEBOOKS = {
    "A1": COURSEWORK / "A1_rnn_step.ipynb",
    "A2": COURSEWORK / "A2_stacked_forward.ipynb",
    "A3": COURSEWORK / "A3_bptt.ipynb",
    "A4": COURSEWORK / "A4_training.ipynb",
    "A5": COURSEWORK / "A5_lstm_cell.ipynb",
}
# grade_id of each autograded test cell -> points (the list the grader and the instructor guide use).
TASKS = {
    "A1": {"a1_step_tests": 3, "a1_forward_tests": 4, "a1_count_tests": 3},
    "A2": {"a2_stacked_tests": 4, "a2_batch_first_tests": 2, "a2_bidirectional_tests": 3, "a2_top_tests": 3},
    "A3": {"a3_step_tests": 3, "a3_backward_tests": 4, "a3_stacked_tests": 4},
    "A4": {"a4_model_tests": 3, "a4_step_tests": 3, "a4_train_tests": 4},
    "A5": {"a5_step_tests": 3, "a5_backward_tests": 4, "a5_forward_tests": 3},
}
# Which checker grades which learner function.
GRADED = {
    "rnn_step": ("A1", "rnn_step"),
    "rnn_forward": ("A1", "rnn_forward"),
    "num_parameters": ("A1", "num_parameters"),
    "stacked_forward": ("A2", "stacked_rnn_forward"),
    "batch_first": ("A2", "stacked_rnn_forward_batch_first"),
    "bidirectional": ("A2", "bidirectional_rnn_forward"),
    "top_layer_states": ("A2", "top_layer_final_states"),
    "step_backward": ("A3", "rnn_step_backward"),
    "rnn_backward": ("A3", "rnn_backward"),
    "stacked_backward": ("A3", "stacked_rnn_backward"),
    "adding_model": ("A4", "AddingRegressor"),
    "train_step": ("A4", "train_step"),
    "lstm_step_forward": ("A5", "lstm_step_forward"),
    "lstm_step_backward": ("A5", "lstm_step_backward"),
    "lstm_forward": ("A5", "lstm_forward"),
}
SLOW_SOLUTION_CELLS = {"a4_train"}  # trains for ~15 s; the notebook run (nbval) covers it

CASES = a1.CASES + a2.CASES + a3.CASES + a5.CASES


def diagnose(checker: str, fn, **kw):
    return getattr(C, f"diagnose_{checker}")(fn, **kw)


# --------------------------------------------------------------------------------------
# Notebook helpers
# --------------------------------------------------------------------------------------


def nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def read(name: str):
    return nbformat.read(NOTEBOOKS[name], as_version=4)


def student_version(nb):
    """What learners get: nbgrader's own ClearSolutions and ClearHiddenTests."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb = copy.deepcopy(nb)
    resources: dict = {}
    for pre in (ClearSolutions(), ClearHiddenTests()):
        nb, resources = pre.preprocess(nb, resources)
    return nb


def definitions(nb) -> dict:
    """Execute a notebook's locked code cells and solution cells (not tests, not the slow training)."""
    namespace: dict = {}
    threads = torch.get_num_threads()
    try:
        for cell in nb.cells:
            meta = nbg(cell)
            if cell.cell_type != "code" or not meta or meta.get("grade") or meta["grade_id"] in SLOW_SOLUTION_CELLS:
                continue
            exec(compile(cell.source, meta["grade_id"], "exec"), namespace)  # noqa: S102
    finally:
        torch.set_num_threads(threads)  # A4's setup cell sets one thread; do not leak it into the test run
    return namespace


@pytest.fixture(scope="module")
def solutions() -> dict[str, dict]:
    return {name: definitions(read(name)) for name in NOTEBOOKS}


@pytest.fixture(scope="module")
def students() -> dict[str, dict]:
    return {name: definitions(student_version(read(name))) for name in NOTEBOOKS}


# --------------------------------------------------------------------------------------
# Classic mistakes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("checker, key, fn", CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_each_classic_mistake_is_named_in_the_diagnosis(checker, key, fn):
    diagnosis = diagnose(checker, fn)
    assert diagnosis is not None, f"{fn.__name__} passed {checker}"
    assert C.MISTAKES[key].what in diagnosis, diagnosis
    assert C.MISTAKES[key].fix in diagnosis, diagnosis
    first_line = diagnosis.splitlines()[0]
    assert C.MISTAKES[key].what in first_line, "graders show the first line: it must carry the finding"


@pytest.mark.parametrize("checker, key, fn", CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_check_raises_assertion_error_with_the_diagnosis(checker, key, fn):
    with pytest.raises(AssertionError, match=re.escape(C.MISTAKES[key].what)):
        getattr(C, f"check_{checker}")(fn)


def test_every_known_mistake_has_a_fixture():
    assert set(C.MISTAKES) == {key for _, key, _ in CASES}


def test_the_brief_classic_mistakes_are_all_recognised():
    # W_ih/W_hh swapped; weights not transposed; a bias missing; x_t fed to upper layers; h_n[0] taken for the
    # top layer; the reverse direction not re-aligned; the tanh derivative forgotten; the next step's gradient dropped.
    brief = {
        ("rnn_step", "swapped_weights"),
        ("rnn_step", "w_ih_not_transposed"),
        ("rnn_step", "missing_b_hh"),
        ("stacked_forward", "x_to_every_layer"),
        ("top_layer_states", "bottom_layer_state"),
        ("bidirectional", "reverse_not_realigned"),
        ("step_backward", "no_tanh_derivative"),
        ("rnn_backward", "no_dh_next"),
        ("stacked_backward", "no_dh_next"),
    }
    assert brief <= {(c, k) for c, k, _ in CASES}


@pytest.mark.parametrize("model_cls, phrase", a4.MODEL_CASES, ids=[c.__name__ for c, _ in a4.MODEL_CASES])
def test_adding_model_mistakes_are_named(model_cls, phrase):
    diagnosis = C.diagnose_adding_model(model_cls)
    assert diagnosis is not None and phrase in diagnosis, diagnosis


@pytest.mark.parametrize("fn, phrase", a4.STEP_CASES, ids=[f.__name__ for f, _ in a4.STEP_CASES])
def test_train_step_mistakes_are_named(fn, phrase):
    diagnosis = C.diagnose_train_step(fn)
    assert diagnosis is not None and phrase in diagnosis, diagnosis


def test_correct_fixtures_pass():
    assert C.diagnose_rnn_step(a1.correct_step, extended=True) is None
    assert C.diagnose_rnn_forward(a1.correct_forward, extended=True) is None
    assert C.diagnose_stacked_forward(a2.stacked, extended=True) is None
    assert C.diagnose_bidirectional(a2.bidir, extended=True) is None
    assert C.diagnose_step_backward(a3.step_backward, extended=True) is None
    assert C.diagnose_rnn_backward(a3.layer_backward, extended=True) is None
    assert C.diagnose_stacked_backward(a3.stack_backward, extended=True) is None
    assert C.diagnose_adding_model(a4.Correct, extended=True) is None
    assert C.diagnose_train_step(a4.step_correct, extended=True) is None


# --------------------------------------------------------------------------------------
# Probes: every mistake is visible somewhere
# --------------------------------------------------------------------------------------


def _probes() -> dict[str, list]:
    return {
        "rnn_step": [checks_a1._step_probe(0, k, *s) for k, s in enumerate([(3, 4, 5), (2, 4, 4)])],
        "rnn_forward": [
            checks_a1._forward_probe(0, k, *s) for k, s in enumerate([(5, 2, 3, 4, True), (4, 3, 4, 4, True)])
        ],
        "stacked_forward": [
            checks_a2._stack_probe(0, k, *s) for k, s in enumerate([(5, 2, 6, 4, 3, True), (4, 3, 4, 4, 2, True)])
        ],
        "bidirectional": [checks_a2._bidirectional_probe(0, 0, 4, 2, 3, 5, 2, True)],
        "top_layer_states": [checks_a2._top_probe(0, k, *c) for k, c in enumerate([(3, False, 2, 4), (3, True, 2, 4)])],
        "step_backward": [checks_a3._step_backward_probe(0, k, *s) for k, s in enumerate([(3, 4, 5), (2, 3, 3)])],
        "rnn_backward": [checks_a3._layer_backward_probe(0, 0, 4, 2, 3, 5)],
        "stacked_backward": [checks_a3._stack_backward_probe(0, 0, 4, 2, 3, 5, 2)],
    }


def test_every_known_mistake_is_distinguishable_on_some_probe():
    # Probe drops any variant that equals the correct answer, so a mistake whose variant survives on some probe
    # gives different numbers there; and two mistakes never give the same numbers on every probe.
    declared = {
        "rnn_step": checks_a1.STEP_MISTAKES,
        "rnn_forward": checks_a1.LAYER_MISTAKES + checks_a1.LOOP_STEP_MISTAKES,
        "stacked_forward": checks_a2.STACK_MISTAKES + checks_a1.LOOP_STEP_MISTAKES,
        "bidirectional": checks_a2.BIDIRECTIONAL_MISTAKES,
        "top_layer_states": checks_a2.TOP_MISTAKES,
        "step_backward": checks_a3.STEP_BACKWARD_MISTAKES,
        "rnn_backward": checks_a3.LAYER_BACKWARD_MISTAKES,
        "stacked_backward": checks_a3.STACK_BACKWARD_MISTAKES,
    }
    for task, probes in _probes().items():
        for key in declared[task]:
            assert any(key in p.variants for p in probes), f"{task}: {key} is invisible on every probe"
        keys = sorted({k for p in probes for k in p.variants})
        for i, k1 in enumerate(keys):
            for k2 in keys[i + 1 :]:
                if k1.split("#")[0] == k2.split("#")[0]:
                    continue
                same_everywhere = all(
                    engine._same(p.variants[k1], p.variants[k2])
                    for p in probes
                    if k1 in p.variants and k2 in p.variants
                )
                shared = [p for p in probes if k1 in p.variants and k2 in p.variants]
                assert not (shared and same_everywhere), f"{task}: {k1} and {k2} give the same numbers on every probe"


def test_probe_sizes_differ_so_shapes_name_the_axis():
    p = checks_a2._stack_probe(0, 0, 5, 2, 6, 4, 3)
    x, h0, params, L = p.args
    assert len({*x.shape, params["weight_hh_l0"].shape[0], L}) == 5  # T, N, D, H, L all different


def test_count_mistakes_are_told_apart_across_probes():
    cases = [(3, 5, True), (3, 5, False), (7, 2, True), (1, 6, True), (4, 4, False), (10, 3, True)]
    vectors = {m: tuple(checks_a1._count_variant(*c, m) for c in cases) for m in checks_a1.COUNT_MISTAKES}
    correct = tuple(checks_a1._count_variant(*c) for c in cases)
    assert correct not in vectors.values() and len(set(vectors.values())) == len(vectors)


# --------------------------------------------------------------------------------------
# Generic problems
# --------------------------------------------------------------------------------------


def not_implemented(*args):
    raise NotImplementedError()


@pytest.mark.parametrize("checker", sorted(GRADED))
def test_not_implemented_is_reported_as_such(checker):
    if checker == "adding_model":
        diagnosis = C.diagnose_adding_model(a4.NotImplementedModel)
    else:
        diagnosis = diagnose(checker, not_implemented)
    assert diagnosis is not None and C.NOT_IMPLEMENTED in diagnosis.splitlines()[0]


def test_a_function_calling_an_unfinished_helper_names_the_helper():
    def stacked_rnn_forward(x, h0, params, num_layers):
        raise NotImplementedError()

    def wrapper(x, h0, params, num_layers):
        return stacked_rnn_forward(x, h0, params, num_layers)

    diagnosis = C.diagnose_batch_first(wrapper)
    assert C.NOT_IMPLEMENTED in diagnosis and "it calls `stacked_rnn_forward`" in diagnosis


def test_returning_none_is_reported():
    assert "None" in C.diagnose_rnn_step(lambda *a: None)
    assert "None" in C.diagnose_rnn_forward(lambda *a: None)
    assert "None" in C.diagnose_step_backward(lambda *a: None)


def test_wrong_result_type_is_reported():
    assert "expected a tuple (output, h_n)" in C.diagnose_rnn_forward(lambda x, h0, p: a1.correct_forward(x, h0, p)[0])
    assert "expected a dict" in C.diagnose_step_backward(lambda dh, c: tuple(a3.step_backward(dh, c).values()))
    assert "missing" in C.diagnose_stacked_backward(
        lambda d, dn, c: (lambda r: (r[0], r[1], {k: v for k, v in r[2].items() if "bias" not in k}))(
            a3.stack_backward(d, dn, c)
        )
    )
    assert "expected an int" in C.diagnose_num_parameters(lambda D, H, bias=True: "50")


def test_wrong_shape_says_expected_and_got():
    diagnosis = C.diagnose_rnn_step(lambda *a: a1.correct_step(*a).T)
    assert "has shape (5, 3), expected (N, H) = (3, 5)" in diagnosis and "transpose" in diagnosis


def test_nan_is_reported():
    diagnosis = C.diagnose_rnn_step(lambda x, h, Wi, Wh, bi, bh: np.full((x.shape[0], Wh.shape[0]), np.nan))
    assert "NaN" in diagnosis


def test_float32_precision_is_reported_as_close_but_not_exact():
    diagnosis = C.diagnose_rnn_step(lambda *a: a1.correct_step(*[v.astype(np.float32) for v in a]))
    assert "close to the right values but not equal to float64 precision" in diagnosis


def test_modifying_an_input_in_place_is_reported():
    assert "modifies its input `dh` in place" in C.diagnose_step_backward(a3.sb_in_place)

    def forward_in_place(x, h0, params):
        h = h0[0]
        outs = []
        for t in range(x.shape[0]):
            h[...] = a1.correct_step(x[t], h, *a1._weights(params))  # writes into h0
            outs.append(h.copy())
        return np.stack(outs), h0

    assert "modifies its input `h0` in place" in C.diagnose_rnn_forward(forward_in_place)


def test_shape_errors_in_matrix_products_get_a_layout_hint():
    diagnosis = C.diagnose_bidirectional(a2.bidir_upper_reads_forward_half)
    assert "raised ValueError" in diagnosis and "x @ W_ih.T" in diagnosis and "2H when bidirectional" in diagnosis


def test_unknown_wrong_values_report_the_size_of_the_error():
    diagnosis = C.diagnose_rnn_forward(
        lambda x, h0, p: (1.1 * a1.correct_forward(x, h0, p)[0], a1.correct_forward(x, h0, p)[1])
    )
    assert "output has wrong values" in diagnosis and "none of the classic mistakes" in diagnosis
    assert "Right: h_n." in diagnosis


def test_a_name_that_is_not_a_function_is_reported():
    assert "should be a function" in C.diagnose_rnn_step(3)


# --------------------------------------------------------------------------------------
# The library is off-limits inside graded functions
# --------------------------------------------------------------------------------------


def test_calling_the_library_forward_is_detected():
    def via_cell(x, h, W_ih, W_hh, b_ih, b_hh):
        return rnn_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh)[0]

    def via_torch(x, h0, params, num_layers):
        rnn = nn.RNN(x.shape[-1], params["weight_hh_l0"].shape[0], num_layers, dtype=torch.float64)
        rnn.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        out, h_n = rnn(torch.from_numpy(x), None if h0 is None else torch.from_numpy(h0))
        return out.detach().numpy(), h_n.detach().numpy()

    def via_numpy_rnn(x, h0, params, num_layers):
        model = rnnlib.NumpyRNN(x.shape[-1], params["weight_hh_l0"].shape[0], num_layers)
        model.load_state_dict(params)
        return model.forward(x, h0)

    assert "calls `rnnlib.numpy_rnn.rnn_cell_forward`, which is off-limits" in C.diagnose_rnn_step(via_cell)
    # torch inside the graded code is caught from the function's source first (NumPy only), before any call
    diagnosis = C.diagnose_stacked_forward(via_torch)
    assert "uses `nn`, `torch` inside the graded code, which is off-limits" in diagnosis, diagnosis
    assert "uses `rnnlib` inside the graded code" in C.diagnose_stacked_forward(via_numpy_rnn)


def test_calling_the_library_backward_is_detected_also_through_an_imported_name():
    # `rnn_cell_backward` was imported at the top of this module, before the checker ran.
    assert "calls `rnnlib.numpy_rnn.rnn_cell_backward`" in C.diagnose_step_backward(
        lambda dh, c: rnn_cell_backward(dh, c)
    )

    def via_autograd(dh, cache):
        x = torch.tensor(cache["x"], requires_grad=True)
        h = torch.tanh(x @ torch.from_numpy(cache["W_ih"]).T + torch.from_numpy(cache["h_prev"] @ cache["W_hh"].T))
        (h * torch.from_numpy(dh)).sum().backward()
        return {"dx": x.grad.numpy()}

    def via_finite_differences(d_out, dh_n, caches):
        rnnlib.numerical_gradient(lambda: 0.0, np.zeros(1))
        return {}

    # torch or rnnlib named inside the graded code: caught from the source (NumPy only), whatever is called
    assert "uses `torch` inside the graded code, which is off-limits" in C.diagnose_step_backward(via_autograd)
    assert "uses `rnnlib` inside the graded code" in C.diagnose_rnn_backward(via_finite_differences)


def test_a_library_builtin_the_stubs_cannot_replace_is_caught_from_the_source():
    """torch.rnn_tanh_cell is a builtin: no stub can record a call to it, the source rule still sees it."""

    def via_builtin(x, h_prev, W_ih, W_hh, b_ih, b_hh):
        t = torch.from_numpy
        return torch.rnn_tanh_cell(t(x), t(h_prev), t(W_ih), t(W_hh), t(b_ih), t(b_hh)).numpy()

    assert "uses `torch` inside the graded code, which is off-limits" in C.diagnose_rnn_step(via_builtin)


def test_counting_by_building_a_model_is_detected():
    def by_model(input_size, hidden_size, bias=True):
        return sum(p.numel() for p in nn.RNN(input_size, hidden_size, bias=bias).parameters())

    assert "off-limits" in C.diagnose_num_parameters(by_model)
    assert "off-limits" in C.diagnose_num_parameters(lambda D, H, bias=True: rnnlib.num_parameters(D, H, 1, bias))


def test_the_library_works_again_after_a_check():
    C.diagnose_step_backward(lambda dh, c: rnn_cell_backward(dh, c))
    C.diagnose_stacked_forward(lambda *a: None)
    C.diagnose_num_parameters(lambda D, H, bias=True: sum(p.numel() for p in nn.RNN(D, H).parameters()))
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    W_ih, W_hh, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 4)), rng.standard_normal(4)
    out, cache = rnn_cell_forward(x, h, W_ih, W_hh, b, b)
    grads = rnn_cell_backward(np.ones_like(out), cache)
    assert np.allclose(grads["dh_prev"], (1 - out**2) @ W_hh)
    rnn = nn.RNN(3, 4)
    rnn(torch.zeros(2, 1, 3))[0].sum().backward()
    assert rnn.weight_hh_l0.grad is not None


# --------------------------------------------------------------------------------------
# The solution notebooks and their student versions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("checker", sorted(GRADED))
def test_solution_notebooks_pass_their_checks_with_hidden_probes(checker, solutions):
    name, fn_name = GRADED[checker]
    fn = solutions[name][fn_name]
    assert diagnose(checker, fn) is None
    assert diagnose(checker, fn, seed=1, extended=True) is None


@pytest.mark.parametrize("checker", sorted(GRADED))
def test_student_versions_are_diagnosed_not_implemented(checker, students):
    name, fn_name = GRADED[checker]
    diagnosis = diagnose(checker, students[name][fn_name])
    assert diagnosis is not None and C.NOT_IMPLEMENTED in diagnosis


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebooks_follow_nbgrader_schema_3(name):
    nb = read(name)
    ids, points = [], {}
    for cell in nb.cells:
        meta = nbg(cell)
        if not meta:
            assert cell.cell_type == "code", f"{name}: every instruction (markdown) cell is read-only"
            continue  # an ungraded "Try it" cell
        assert meta["schema_version"] == 3 and meta["task"] is False
        assert set(meta) <= {"grade", "grade_id", "locked", "schema_version", "solution", "task", "points"}
        assert re.fullmatch(r"[a-z0-9_]+", meta["grade_id"]) and meta["grade_id"].startswith(name.lower() + "_")
        ids.append(meta["grade_id"])
        if meta["solution"]:
            assert cell.cell_type == "code" and not meta["grade"] and not meta["locked"]
            assert cell.source.count("### BEGIN SOLUTION") == cell.source.count("### END SOLUTION") >= 1
        elif meta["grade"]:
            assert cell.cell_type == "code" and meta["locked"]
            points[meta["grade_id"]] = meta["points"]
            src = cell.source
            assert (
                src.index("importlib.reload") < src.index("### BEGIN HIDDEN TESTS") < src.index("### END HIDDEN TESTS")
            )
            assert "_checks.check_" in src.split("### BEGIN HIDDEN TESTS")[0], "visible tests come first"
        else:
            assert meta["locked"], f"{meta['grade_id']}: instruction and setup cells are read-only"
    assert len(ids) == len(set(ids)), f"{name}: duplicate grade_ids"
    assert points == TASKS[name]
    assert 8 <= sum(points.values()) <= 12


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_student_versions_keep_signatures_and_docstrings_and_hide_solutions(name):
    student = student_version(read(name))
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    for _, (nb_name, fn_name) in GRADED.items():
        if nb_name == name:
            assert re.search(rf"^(def|class) {fn_name}\(", text, re.M), fn_name
    for cell in student.cells:
        if nbg(cell).get("solution") and "def " in cell.source:
            assert '"""' in cell.source and "raise NotImplementedError()" in cell.source


def test_trained_model_check_recomputes_the_error_on_held_out_data():
    torch.manual_seed(0)
    untrained = a4.Correct(2, 8, 2)
    diagnosis = C.diagnose_trained_adding_model(untrained, 0.001, seq_len=10, num=200)
    assert "not below the threshold 0.05" in diagnosis and "you reported final_val_mse = 0.0010" in diagnosis
    assert C.diagnose_trained_adding_model(untrained, 0.5, seq_len=10, num=200, threshold=10.0) is None
    one_layer = a4.Correct(2, 8, 1)
    assert "stacked RNN" in C.diagnose_trained_adding_model(one_layer, 0.01, seq_len=10, num=200, threshold=10.0)
    assert "final_val_mse should be" in C.diagnose_trained_adding_model(untrained, None, seq_len=10, threshold=10.0)


def test_trained_model_check_rejects_a_forward_that_bypasses_the_rnn():
    class Oracle(a4.Correct):
        def forward(self, x):  # the exact answer, computed without the RNN
            return (x[..., 0] * x[..., 1]).sum(0)

    torch.manual_seed(0)
    diagnosis = C.diagnose_trained_adding_model(Oracle(2, 8, 2), 0.0, seq_len=10, num=200)
    assert "is not fc(rnn(x)[0][-1])" in diagnosis


def test_train_step_probe_clips():
    # The train_step check only tells "no clipping" apart if clipping acts on its batches.
    from rnnlib.training.models import TorchRNNRegressor

    torch.manual_seed(0)
    model = TorchRNNRegressor(2, 6, 2, dtype=torch.float64)
    x, y = checks_a4._adding_batch(5, 4, 200, np.float64)
    nn.functional.mse_loss(model(x), y).backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm > 10 * 0.05
