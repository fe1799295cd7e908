"""The copy check for coursework submissions (tools/similarity.py).

Against the real solution notebooks ``chapters/coursework/A*.ipynb``:

* (a) every solution cell, submitted as it is, is flagged - except the cells whose
  region is too short to flag (A1's one-line ``rnn_step``);
* (b) copies with every local name renamed, comments and docstrings removed and the
  layout changed (an AST transform written here, independent of the module's
  normaliser), and four hand-edited copies (renamed by hand, ``+=``, a multiple
  assignment split, extra statements around the copied code), are flagged;
* (c) genuinely different correct implementations of A1's ``rnn_forward``, A2's
  ``stacked_rnn_forward`` and A3's ``rnn_step_backward`` are not flagged (each is first
  checked to compute what the reference computes, so "different" never means "wrong");
* (d) the student version (``raise NotImplementedError()``) is not flagged;
* (e) one-line formula regions are never flagged, even verbatim.

Plus the pieces: :func:`normalise` and :func:`solution_region`. No kernel, no torch:
the whole module runs in well under a second.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tools.similarity import normalise, reference_matches, solution_region

ROOT = Path(__file__).resolve().parent.parent
COURSEWORK = ROOT / "chapters" / "coursework"

# The regions too short to flag under the default rule (one simple statement, or fewer
# than 8 tokens). If a notebook changes, this list is the one place to update.
TOO_SHORT = {"a1_step"}


def _solution_cells() -> dict[str, str]:
    cells: dict[str, str] = {}
    for path in sorted(COURSEWORK.glob("A*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                cells[meta["grade_id"]] = cell.source
    return cells


SOLUTIONS = _solution_cells()
FLAGGABLE = [g for g in SOLUTIONS if g not in TOO_SHORT]


def _flagged(grade_id: str, submitted: str) -> bool:
    return reference_matches({grade_id: submitted}, {grade_id: SOLUTIONS[grade_id]}) == [grade_id]


def test_the_notebooks_have_the_expected_solution_cells():
    assert len(SOLUTIONS) >= 12
    assert TOO_SHORT <= set(SOLUTIONS)
    assert all("### BEGIN SOLUTION" in src for src in SOLUTIONS.values())


# --------------------------------------------------------------------------------------
# (a) the reference itself
# --------------------------------------------------------------------------------------


def test_every_flaggable_reference_cell_matches_itself():
    assert reference_matches(SOLUTIONS, SOLUTIONS) == FLAGGABLE


def test_order_follows_the_solution_cells_and_missing_cells_are_skipped():
    subset = {g: SOLUTIONS[g] for g in reversed(FLAGGABLE[:3])}
    assert reference_matches(subset, SOLUTIONS) == FLAGGABLE[:3]
    assert reference_matches({}, SOLUTIONS) == []


# --------------------------------------------------------------------------------------
# (b) disguised copies
# --------------------------------------------------------------------------------------


class _Disguise(ast.NodeTransformer):
    """Rename every name the cell binds, and drop docstrings (test-side, independent)."""

    def __init__(self, bound: set[str]) -> None:
        self.new = {name: f"my_{i}_{name[::-1].lower()}x" for i, name in enumerate(sorted(bound))}

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self.new.get(node.id, node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self.new.get(node.arg, node.arg)
        return node

    def _named(self, node):
        node.name = self.new.get(node.name, node.name)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            node.body = body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_FunctionDef = visit_ClassDef = _named


def _disguised(source: str) -> str:
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    bound = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {a.arg for a in nodes if isinstance(a, ast.arg)}
    bound |= {d.name for d in nodes if isinstance(d, (ast.FunctionDef, ast.ClassDef))}
    tree = ast.fix_missing_locations(_Disguise(bound).visit(tree))
    # unparse drops the comments and re-lays everything out; wider indentation on top.
    return re.sub(r"^( +)", lambda m: m.group(1) * 2, ast.unparse(tree), flags=re.M) + "\n\n\n"


@pytest.mark.parametrize("grade_id", FLAGGABLE)
def test_a_renamed_reformatted_copy_without_comments_matches(grade_id):
    disguised = _disguised(SOLUTIONS[grade_id])
    assert "#" not in disguised and '"""' not in disguised
    assert normalise(disguised) == normalise(SOLUTIONS[grade_id])
    assert _flagged(grade_id, disguised)


HAND_COPIES = {
    # Names renamed, an annotation, a multiple assignment split, a blank line added.
    "a2_bidirectional": """
def bidirectional_rnn_forward(inp, init, p, n_layers):
    steps, batch, _ = inp.shape
    hid: int = p["weight_hh_l0"].shape[0]
    if init is None:
        init = np.zeros((2 * n_layers, batch, hid))
    cur = inp
    last = []
    for layer in range(n_layers):
        both = []
        for direction, suf in enumerate(("", "_reverse")):
            keys = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            A, B, c, d = (p[f"{k}_l{layer}{suf}"] for k in keys)
            state, seq = init[2 * layer + direction], [None] * steps

            for step in (range(steps) if direction == 0 else reversed(range(steps))):
                state = rnn_step(cur[step], state, A, B, c, d)
                seq[step] = state
            both.append(np.stack(seq))
            last.append(state)
        cur = np.concatenate(both, axis=-1)
    return cur, np.stack(last)
""",
    # `totals[key] += step[key]` for `totals[key] = totals[key] + step[key]`.
    "a3_backward": """
def rnn_backward(g_out, g_last, cs):
    n = len(cs)
    acc = {"dW_ih": 0.0, "dW_hh": 0.0, "db_ih": 0.0, "db_hh": 0.0}
    grads_x = [None] * n
    carry = g_last
    for i in reversed(range(n)):
        s = rnn_step_backward(g_out[i] + carry, cs[i])
        for name in acc:
            acc[name] += s[name]
        grads_x[i] = s["dx"]
        carry = s["dh_prev"]
    return {"dx": np.stack(grads_x), "dh0": carry, **acc}
""",
    # The multiple assignments split into single ones.
    "a3_stacked": """
def stacked_rnn_backward(go, gh, cc):
    depth = len(cc)
    out = {}
    first = [None] * depth
    up = go
    for k in reversed(range(depth)):
        r = rnn_backward(up, gh[k], cc[k])
        out[f"weight_ih_l{k}"] = r["dW_ih"]
        out[f"weight_hh_l{k}"] = r["dW_hh"]
        out[f"bias_ih_l{k}"] = r["db_ih"]
        out[f"bias_hh_l{k}"] = r["db_hh"]
        first[k] = r["dh0"]
        up = r["dx"]
    return up, np.stack(first), out
""",
    # Extra statements before and after the copied lines, names renamed.
    "a4_train": """
print("training...")
torch.manual_seed(0)
m = AddingRegressor(2, 32, 2)
opt = torch.optim.Adam(m.parameters(), lr=3e-3)
g = np.random.default_rng(0)
hist = []
for i in range(2000):
    xb, yb = adding_problem(SEQ_LEN, 64, g)
    xb, yb = torch.from_numpy(xb), torch.from_numpy(yb)
    hist.append(train_step(m, opt, xb, yb, max_norm=1.0))
xv, yv = adding_problem(SEQ_LEN, 1000, np.random.default_rng(1))
m.eval()
with torch.no_grad():
    pv = m(torch.from_numpy(xv))
    final_val_mse = nn.functional.mse_loss(pv, torch.from_numpy(yv)).item()
print(final_val_mse)
""",
}


def test_extra_code_around_a_copy_does_not_hide_it():
    # The whole cells differ; the copied statements are found as a run inside them.
    assert normalise(HAND_COPIES["a4_train"]) != normalise(SOLUTIONS["a4_train"])
    assert _flagged("a4_train", HAND_COPIES["a4_train"])


@pytest.mark.parametrize("grade_id", sorted(HAND_COPIES))
def test_hand_edited_copies_match(grade_id):
    assert _flagged(grade_id, HAND_COPIES[grade_id])


def test_keyword_order_and_a_split_multiple_assignment_are_cosmetic():
    assert normalise("f(b=1, a=2)") == normalise("f(a=2, b=1)")
    assert normalise("a, b = x[0], x[1]") == normalise("a = x[0]\nb = x[1]")
    assert normalise("a, b = b, a") != normalise("a = b\nb = a")  # a swap is not split


# --------------------------------------------------------------------------------------
# (c) genuinely different implementations are not flagged
# --------------------------------------------------------------------------------------

ALTERNATIVES = {
    "a1_forward": {
        "preallocated": """
def rnn_forward(x, h0, params):
    T, N, _ = x.shape
    H = params["weight_hh_l0"].shape[0]
    output = np.empty((T, N, H))
    h = np.zeros((N, H)) if h0 is None else h0[0]
    for t in range(T):
        h = rnn_step(x[t], h, params["weight_ih_l0"], params["weight_hh_l0"],
                     params["bias_ih_l0"], params["bias_hh_l0"])
        output[t] = h
    return output, h[None]
""",
        "comprehension": """
def rnn_forward(x, h0, params):
    weights = [params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    h = np.zeros((x.shape[1], weights[1].shape[0])) if h0 is None else h0[0]
    states = [h := rnn_step(x_t, h, *weights) for x_t in x]
    return np.stack(states), h[None]
""",
    },
    "a2_stacked": {
        "preallocated": """
def stacked_rnn_forward(x, h0, params, num_layers):
    T, N, _ = x.shape
    H = params["weight_hh_l0"].shape[0]
    h_n = np.zeros((num_layers, N, H)) if h0 is None else np.array(h0, dtype=float)
    seq = x
    for l in range(num_layers):
        out = np.empty((T, N, H))
        h = h_n[l]
        for t in range(T):
            h = rnn_step(seq[t], h, params[f"weight_ih_l{l}"], params[f"weight_hh_l{l}"],
                         params[f"bias_ih_l{l}"], params[f"bias_hh_l{l}"])
            out[t] = h
        h_n[l] = h
        seq = out
    return seq, h_n
""",
        "while_loops": """
def stacked_rnn_forward(x, h0, params, num_layers):
    seq, finals, l = x, [], 0
    while l < num_layers:
        w = [params[f"{name}_l{l}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h = np.zeros((x.shape[1], w[1].shape[0])) if h0 is None else h0[l]
        out, t = [], 0
        while t < len(seq):
            h = rnn_step(seq[t], h, *w)
            out.append(h)
            t += 1
        seq = np.stack(out)
        finals.append(h)
        l += 1
    return seq, np.stack(finals)
""",
    },
    "a3_step": {
        "einsum": """
def rnn_step_backward(dh, cache):
    da = dh * (1.0 - cache["h"] ** 2)
    return {
        "dx": np.einsum("nh,hd->nd", da, cache["W_ih"]),
        "dh_prev": np.einsum("nh,hk->nk", da, cache["W_hh"]),
        "dW_ih": np.einsum("nh,nd->hd", da, cache["x"]),
        "dW_hh": np.einsum("nh,nk->hk", da, cache["h_prev"]),
        "db_ih": da.sum(axis=0),
        "db_hh": da.sum(axis=0),
    }
""",
        "step_by_step": """
def rnn_step_backward(dh, cache):
    grads = {}
    da = dh * (1 - np.square(cache["h"]))
    grads["dx"] = np.dot(da, cache["W_ih"])
    grads["dh_prev"] = np.dot(da, cache["W_hh"])
    grads["dW_ih"] = np.dot(da.T, cache["x"])
    grads["dW_hh"] = np.dot(da.T, cache["h_prev"])
    grads["db_ih"] = np.sum(da, axis=0)
    grads["db_hh"] = np.sum(da, axis=0)
    return grads
""",
    },
}

_RNN_STEP = (
    "def rnn_step(x, h_prev, W_ih, W_hh, b_ih, b_hh):\n    return np.tanh(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)\n"
)


def _function(source: str, name: str):
    namespace: dict = {"np": np}
    exec(_RNN_STEP, namespace)  # noqa: S102 - the course's own code
    exec(source, namespace)  # noqa: S102
    return namespace[name]


def _forward_params(rng, layers, D=3, H=4):
    params = {}
    for l in range(layers):
        params[f"weight_ih_l{l}"] = rng.normal(size=(H, D if l == 0 else H))
        params[f"weight_hh_l{l}"] = rng.normal(size=(H, H))
        params[f"bias_ih_l{l}"] = rng.normal(size=H)
        params[f"bias_hh_l{l}"] = rng.normal(size=H)
    return params


def _same_results(grade_id: str, alternative: str) -> bool:
    """Whether the alternative computes what the reference computes, on random inputs."""
    name = re.search(r"def (\w+)", SOLUTIONS[grade_id]).group(1)
    ref, alt = _function(SOLUTIONS[grade_id], name), _function(alternative, name)
    rng = np.random.default_rng(0)
    if grade_id == "a1_forward":
        x, p = rng.normal(size=(5, 2, 3)), _forward_params(rng, 1)
        calls = [(x, None, p), (x, rng.normal(size=(1, 2, 4)), p)]
    elif grade_id == "a2_stacked":
        x, p = rng.normal(size=(5, 2, 3)), _forward_params(rng, 3)
        calls = [(x, None, p, 3), (x, rng.normal(size=(3, 2, 4)), p, 3)]
    else:
        cache = {
            "x": rng.normal(size=(2, 3)),
            "h_prev": rng.normal(size=(2, 4)),
            "h": np.tanh(rng.normal(size=(2, 4))),
            "W_ih": rng.normal(size=(4, 3)),
            "W_hh": rng.normal(size=(4, 4)),
        }
        calls = [(rng.normal(size=(2, 4)), cache)]
    for args in calls:
        want, got = ref(*args), alt(*args)
        if isinstance(want, dict):
            want, got = [want[k] for k in sorted(want)], [got[k] for k in sorted(want)]
        if not all(np.allclose(w, g) for w, g in zip(want, got, strict=True)):
            return False
    return True


@pytest.mark.parametrize(("grade_id", "variant"), [(g, v) for g, variants in ALTERNATIVES.items() for v in variants])
def test_a_genuinely_different_correct_implementation_is_not_flagged(grade_id, variant):
    alternative = ALTERNATIVES[grade_id][variant]
    assert _same_results(grade_id, alternative), "the alternative must be a correct answer"
    assert not _flagged(grade_id, alternative)


def test_the_equivalence_check_is_not_vacuous():
    # A wrong answer (the bias added once instead of twice) fails it.
    wrong = SOLUTIONS["a3_step"].replace('"db_hh": db.copy()', '"db_hh": 2 * db')
    assert _same_results("a3_step", SOLUTIONS["a3_step"])
    assert not _same_results("a3_step", wrong)


def test_one_changed_step_is_not_a_match():
    # A list comprehension where the reference loops and appends.
    changed = SOLUTIONS["a3_backward"].replace(
        "        for key in totals:              # the same weights at every step: sum over time\n"
        "            totals[key] = totals[key] + step[key]\n",
        "        totals = {key: totals[key] + step[key] for key in totals}\n",
    )
    assert changed != SOLUTIONS["a3_backward"]
    assert not _flagged("a3_backward", changed)


# --------------------------------------------------------------------------------------
# (d) the student version, (e) one-line formulas
# --------------------------------------------------------------------------------------


def _student_version(source: str) -> str:
    """nbgrader's replacement of each solution region (ClearSolutions' default stub)."""

    def stub(match: re.Match) -> str:
        indent = match.group(1)
        return f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()"

    region = r"^( *)### BEGIN SOLUTION\n.*?^ *### END SOLUTION"
    return re.sub(region, stub, source, flags=re.M | re.S)


def test_the_student_version_is_not_flagged():
    students = {g: _student_version(src) for g, src in SOLUTIONS.items()}
    for stub in students.values():
        assert "raise NotImplementedError()" in stub and "BEGIN SOLUTION" not in stub
    assert reference_matches(students, SOLUTIONS) == []


def test_a_one_line_formula_region_is_never_flagged():
    assert reference_matches(SOLUTIONS, SOLUTIONS, min_tokens=1).count("a1_step") == 0
    assert not _flagged("a1_step", SOLUTIONS["a1_step"])
    assert not _flagged("a1_step", _disguised(SOLUTIONS["a1_step"]))
    formula = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert reference_matches({"f": formula}, {"f": formula}) == []
    # Two statements of the same total size are a choice of steps, and do count.
    two = (
        "def f(x, w, b):\n    ### BEGIN SOLUTION\n"
        "    z = x @ w.T + b\n    return np.maximum(z, 0)\n    ### END SOLUTION\n"
    )
    assert reference_matches({"f": two}, {"f": two}) == ["f"]
    assert reference_matches({"f": two}, {"f": two}, min_tokens=100) == []


def test_unparseable_or_missing_submissions_are_not_flagged():
    assert reference_matches({"a1_forward": "def rnn_forward(:\n"}, SOLUTIONS) == []
    assert reference_matches({"other": SOLUTIONS["a1_forward"]}, SOLUTIONS) == []


# --------------------------------------------------------------------------------------
# normalise and solution_region
# --------------------------------------------------------------------------------------


def test_normalise_renames_locals_and_keeps_the_api():
    code = '''
import numpy as np
def step(x: np.ndarray, w, *, scale=2.0) -> np.ndarray:
    """Docstring."""
    pass  # nothing
    total: float = 0.0
    for i, row in enumerate(x):
        total += (row @ w.T).sum(axis=0) * scale
    squares = [v * v for v in range(3)]
    return total, len(squares), x.shape
'''
    assert normalise(code) == textwrap.dedent("""\
        import numpy as np
        def v0(v1, v2, *, v3=2.0):
            v4 = 0.0
            for v5, v6 in enumerate(v1):
                v4 = v4 + (v6 @ v2.T).sum(axis=0) * v3
            v7 = [v8 * v8 for v8 in range(3)]
            return (v4, len(v7), v1.shape)""")


def test_normalise_drops_magics_and_reports_syntax_errors():
    assert normalise("%matplotlib inline\n!pip install x\ny = f(1)\n") == "v0 = f(1)"
    assert normalise("def f(:\n") is None
    assert normalise("    return x\n") == "return x"  # a region cut out of a body


def test_solution_region():
    formula = "return np.tanh(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)"
    assert solution_region(SOLUTIONS["a1_step"]) == formula
    region = solution_region(SOLUTIONS["a4_model"])
    assert region.splitlines()[0] == "self.rnn = nn.RNN(input_size, hidden_size, num_layers)"
    assert "output, _ = self.rnn(x)" in region and "super()" not in region
    assert solution_region("x = 1\n") == "x = 1\n"
    assert normalise(solution_region(SOLUTIONS["a4_train"])) is not None
