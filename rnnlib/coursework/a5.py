"""A5 (chapters/coursework/A5_lstm_cell.ipynb): an LSTM cell, forward and backward, and one layer over time.

Three learner functions, in NumPy, in PyTorch's convention (``W_ih (4H, D)``, ``W_hh (4H, H)``,
``b_ih, b_hh (4H,)``, gate blocks in the row order ``i, f, g, o``):

* ``lstm_step_forward(x (N, D), h_prev (N, H), c_prev (N, H), W_ih, W_hh, b_ih, b_hh) -> (h, c, cache)``,
  checked against ``torch.nn.LSTMCell`` (float64); the cache must hold :data:`STEP_CACHE_KEYS`, and its
  gates and cell (:data:`COMPUTED_CACHE_KEYS`) are checked too.
* ``lstm_step_backward(dh (N, H), dc (N, H), cache) -> {dx, dh_prev, dc_prev, dW_ih, dW_hh, db_ih, db_hh}``,
  checked against ``torch.autograd`` through ``nn.LSTMCell`` (float64), on caches this module builds.
* ``lstm_forward(x (T, N, D), (h0, c0), params) -> (output (T, N, H), (h_n, c_n))`` with ``h0, c0, h_n,
  c_n`` of shape ``(1, N, H)`` and ``params`` keyed like ``nn.LSTM``'s state dict (one layer),
  checked against ``nn.LSTM``.

The machinery is :mod:`rnnlib.coursework.engine`'s (the notebook imports these checks through
:mod:`rnnlib.coursework.checks`): every classic mistake of :data:`A5_MISTAKES` is a
deliberately wrong variant computed on the same probes (gates read in another order, sigmoid and
tanh swapped, the forget gate left out of ``dc_prev``, ``c`` returned for ``h``, ...), and the
learner's answer is compared with the right one and with each variant. Inside the graded functions
the LSTMs of ``torch`` and of ``rnnlib``, autograd and the finite-difference helpers are off-limits
(recording stubs, and the NumPy-only rule read from the source), as in A1 to A3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .engine import (
    Array,
    Mistake,
    Probe,
    Task,
    _diagnose,
    _raise,
    _rng,
    _safe,
    _to_array,
    _Unpack,
    _unpack_dict,
    add_mistakes,
    register,
)

__all__ = [
    "A5_MISTAKES",
    "check_lstm_forward",
    "check_lstm_step_backward",
    "check_lstm_step_forward",
    "diagnose_lstm_forward",
    "diagnose_lstm_step_backward",
    "diagnose_lstm_step_forward",
]

# --------------------------------------------------------------------------------------
# The classic mistakes
# --------------------------------------------------------------------------------------

_GATE_ORDER_FIX = (
    "PyTorch stacks the four blocks in the rows of W_ih, W_hh and the biases in the order i, f, g, o: "
    "i, f, g, o = np.split(a, 4, axis=1), with rows 0:H for i, H:2H for f, 2H:3H for g, 3H:4H for o."
)

A5_MISTAKES: dict[str, Mistake] = {
    # ---- one step forward ----
    "lstm_gate_order_ifog": Mistake(
        "the gate blocks are read in the order i, f, o, g (the candidate g and the output gate o swap rows)",
        _GATE_ORDER_FIX,
    ),
    "lstm_gate_order_figo": Mistake(
        "the gate blocks are read in the order f, i, g, o (the input and forget gates swap rows)", _GATE_ORDER_FIX
    ),
    "lstm_gate_order_iofg": Mistake(
        "the gate blocks are read in the order i, o, f, g (ONNX's order i, o, f, c)", _GATE_ORDER_FIX
    ),
    "lstm_candidate_sigmoid": Mistake(
        "the candidate g goes through the sigmoid instead of tanh",
        "i, f and o are gates, squashed into (0, 1) by the sigmoid; the candidate g is a value to write, in "
        "(-1, 1): g = np.tanh(a_g).",
    ),
    "lstm_gates_tanh": Mistake(
        "the gates i, f and o go through tanh instead of the sigmoid",
        "a gate is a share between 0 and 1: i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o); only g uses tanh.",
    ),
    "lstm_activations_swapped": Mistake(
        "sigmoid and tanh are swapped everywhere (g through the sigmoid, i, f and o through tanh)",
        "i, f, o = sigmoid(...) (gates, in (0, 1)); g = np.tanh(...) (the candidate, in (-1, 1)).",
    ),
    "lstm_no_tanh_on_cell": Mistake(
        "the tanh on the cell is left out (h = o * c instead of o * tanh(c))",
        "h = o * np.tanh(c): the cell is squashed before the output gate scales it.",
    ),
    "lstm_cell_forgets_all": Mistake(
        "the old cell is dropped: c = i * g, without the f * c_prev term",
        "c = f * c_prev + i * g: the forget gate decides how much of the old cell is kept.",
    ),
    "lstm_h_c_swapped": Mistake(
        "h and c are returned in the wrong order: (c, h, cache) instead of (h, c, cache)",
        "return h, c, cache: the hidden state first, then the cell (the order of nn.LSTMCell's (h, c)).",
    ),
    "lstm_c_for_h": Mistake(
        "the cell c is returned as the hidden state h",
        "h = o * np.tanh(c) is the hidden state; c is the cell. Return both: h, c, cache.",
    ),
    # ---- one step backward ----
    "lstm_dc_prev_without_f": Mistake(
        "dc_prev is the total cell gradient itself: the forget gate factor is missing (dc_prev = dc_total instead "
        "of dc_total * f)",
        "c = f * c_prev + i * g, so dc_prev = dc_total * f, where dc_total = dc + dh * o * (1 - tanh(c)**2).",
    ),
    "lstm_dc_from_h_missing": Mistake(
        "the path from h to c is left out: dc_total = dc, without dh * o * (1 - tanh(c)**2)",
        "h = o * tanh(c) depends on c, so the cell's total gradient is dc_total = dc + dh * o * (1 - tanh(c)**2); "
        "use dc_total for di, df, dg and dc_prev.",
    ),
    "lstm_dc_in_ignored": Mistake(
        "the incoming cell gradient dc is ignored: dc_total = dh * o * (1 - tanh(c)**2) only",
        "the cell reaches the loss directly too (in a sequence, through the next step): "
        "dc_total = dc + dh * o * (1 - tanh(c)**2).",
    ),
    "lstm_tanh_derivative_at_c": Mistake(
        "the derivative of tanh(c) is taken as 1 - c**2 instead of 1 - tanh(c)**2",
        "c is not a tanh output (h is o * tanh(c)): the derivative of tanh at c is 1 - np.tanh(c)**2.",
    ),
    "lstm_candidate_sigmoid_derivative": Mistake(
        "the candidate's derivative is the sigmoid's, g * (1 - g), instead of tanh's, 1 - g**2",
        "g = tanh(a_g), so da_g = dg * (1 - g**2); i, f and o are sigmoids: da_i = di * i * (1 - i), and so on.",
    ),
    "lstm_gate_derivatives_missing": Mistake(
        "the activation derivatives are left out: the gradients of i, f, g, o are used as those of their "
        "pre-activations",
        "go through each activation: da_i = di * i * (1 - i), da_f = df * f * (1 - f), da_g = dg * (1 - g**2), "
        "da_o = do * o * (1 - o).",
    ),
    "lstm_df_uses_c": Mistake(
        "df uses this step's cell c instead of c_prev (df = dc_total * c)",
        "f multiplies the previous cell: c = f * c_prev + i * g, so df = dc_total * c_prev.",
    ),
    "lstm_backward_gate_order": Mistake(
        "the four pre-activation gradients are concatenated in the order i, f, o, g instead of i, f, g, o",
        "da = np.concatenate([da_i, da_f, da_g, da_o], axis=1): the same row order as W_ih, so that dW_ih = da.T @ x "
        "puts each gate's gradient in its own rows.",
    ),
    # ---- one layer over time ----
    "lstm_cell_not_carried": Mistake(
        "the cell is not carried through the loop: every step reads c0 (only h is carried)",
        "carry both states: h, c, _ = lstm_step_forward(x[t], h, c, ...), starting from h0[0] and c0[0].",
    ),
    "lstm_c0_ignored": Mistake(
        "the initial cell c0 is ignored (the loop starts from c = 0)", "start the loop from c0[0] (and h0[0])."
    ),
    "lstm_state_ignored": Mistake(
        "the initial state is ignored: the loop starts from h = 0 and c = 0", "start the loop from h0[0] and c0[0]."
    ),
    "lstm_state_read_swapped": Mistake(
        "the initial state is read as (c0, h0): h starts from c0 and c from h0",
        "nn.LSTM's state is the tuple (h0, c0), hidden state first: h0, c0 = state.",
    ),
    "lstm_state_n_swapped": Mistake(
        "the final state is returned as (c_n, h_n) instead of (h_n, c_n)",
        "return output, (h_n, c_n): the hidden state first, as nn.LSTM does.",
    ),
    "lstm_output_holds_c": Mistake(
        "output holds the cells c_t instead of the hidden states h_t",
        "output[t] is h_t, the hidden state after step t; the cell stays inside the layer (only c_n leaves it).",
    ),
    "lstm_state_n_no_layer_axis": Mistake(
        "h_n and c_n have no leading num_layers axis: (N, H) instead of (1, N, H)",
        "nn.LSTM's h_n and c_n are (num_layers * num_directions, N, H), also for one layer: return h[None], c[None].",
    ),
}
"""The classic LSTM mistakes A5's checks recognise, by key (keys prefixed ``lstm_``: one namespace with A1-A4's)."""

add_mistakes(A5_MISTAKES)

# --------------------------------------------------------------------------------------
# Library call-through: what a learner's A5 function must not call
# --------------------------------------------------------------------------------------

LSTM_FORWARD_IMPLEMENTATIONS: tuple[tuple[str, str], ...] = (
    ("rnnlib.lstm", "lstm_layer_forward"),
    ("rnnlib.lstm", "NumpyLSTM._layer_forward"),
    ("rnnlib.stack", "NumpyStack.forward"),
    ("rnnlib.torch_lstm", "torch_lstm_layer_forward"),
    ("rnnlib.torch_stack", "run_over_time"),
    ("rnnlib.torch_stack", "TorchStack.forward"),
    ("rnnlib.training.gated_study", "lstm_step"),
    ("rnnlib.training.gated_study", "stack_from_scratch"),
    ("rnnlib.training.gated_study", "chunked_lstm_forward"),
    ("rnnlib.coursework.a5", "_step_variant"),
    ("rnnlib.coursework.a5", "_layer_variant"),
    ("torch.nn.modules.rnn", "LSTM.forward"),
    ("torch.nn.modules.rnn", "LSTMCell.forward"),
)
"""The LSTM forward implementations a learner's A5 function must not call."""

LSTM_BACKWARD_IMPLEMENTATIONS: tuple[tuple[str, str], ...] = LSTM_FORWARD_IMPLEMENTATIONS + (
    ("rnnlib.lstm", "lstm_layer_backward"),
    ("rnnlib.lstm", "NumpyLSTM._layer_backward"),
    ("rnnlib.stack", "NumpyStack.backward"),
    ("rnnlib.gradcheck", "numerical_gradient"),
    ("rnnlib.gradcheck", "numerical_gradient_array"),
    ("rnnlib.gradcheck", "check_rnn_gradients"),
    ("rnnlib.coursework.a5", "_step_backward_variant"),
    ("torch.autograd", "backward"),
    ("torch.autograd", "grad"),
)
"""The backward passes (and gradient machinery) a learner's A5 backward must not call."""

# --------------------------------------------------------------------------------------
# Known-wrong variants
# --------------------------------------------------------------------------------------

STEP_CACHE_KEYS = ("x", "h_prev", "c_prev", "W_ih", "W_hh", "i", "f", "g", "o", "c")
"""The keys the cache of ``lstm_step_forward`` must have (the gates are their activations, each ``(N, H)``)."""
COMPUTED_CACHE_KEYS = ("i", "f", "g", "o", "c")
"""The cache entries the check compares: what the step computes. The others only hold the step's inputs, and
an expected value equal to an input would tell the kernel nothing it does not have, but the grader's rule is
that no expected value crosses into it (tests/test_trust_boundary.py)."""

STEP_GRAD_KEYS = ("dx", "dh_prev", "dc_prev", "dW_ih", "dW_hh", "db_ih", "db_hh")

STEP_MISTAKES = (
    "lstm_gate_order_ifog",
    "lstm_gate_order_figo",
    "lstm_gate_order_iofg",
    "lstm_candidate_sigmoid",
    "lstm_gates_tanh",
    "lstm_activations_swapped",
    "lstm_no_tanh_on_cell",
    "lstm_cell_forgets_all",
    "lstm_h_c_swapped",
    "lstm_c_for_h",
)
# Step mistakes also looked for inside the loop of lstm_forward: all but the two about what the step returns
# (inside the loop, returning (c, h) or c is a mistake of the layer, in LAYER_MISTAKES).
LOOP_STEP_MISTAKES = tuple(m for m in STEP_MISTAKES if m not in ("lstm_h_c_swapped", "lstm_c_for_h"))
STEP_BACKWARD_MISTAKES = (
    "lstm_dc_prev_without_f",
    "lstm_dc_from_h_missing",
    "lstm_dc_in_ignored",
    "lstm_tanh_derivative_at_c",
    "lstm_candidate_sigmoid_derivative",
    "lstm_gate_derivatives_missing",
    "lstm_df_uses_c",
    "lstm_backward_gate_order",
)
LAYER_MISTAKES = (
    "lstm_cell_not_carried",
    "lstm_c0_ignored",
    "lstm_state_ignored",
    "lstm_state_read_swapped",
    "lstm_state_n_swapped",
    "lstm_output_holds_c",
    "lstm_state_n_no_layer_axis",
)

_ORDERS = {"lstm_gate_order_ifog": "ifog", "lstm_gate_order_figo": "figo", "lstm_gate_order_iofg": "iofg"}


def _sigmoid(a: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-a))


def _step_variant(
    x: Array,
    h_prev: Array,
    c_prev: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array,
    b_hh: Array,
    mistake: str | None = None,
) -> tuple[Array, Array, dict[str, Array]]:
    """One LSTM step, ``x (N, D), h_prev (N, H), c_prev (N, H) -> h (N, H), c (N, H), cache``,
    correct or with one mistake of :data:`STEP_MISTAKES`."""
    a = x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh  # (N, 4H)
    order = _ORDERS.get(mistake or "", "ifgo")  # the gates the four row blocks are read as
    blocks = dict(zip(order, np.split(a, 4, axis=1), strict=True))
    gate: Callable[[Array], Array] = _sigmoid
    candidate: Callable[[Array], Array] = np.tanh
    if mistake in ("lstm_gates_tanh", "lstm_activations_swapped"):
        gate = np.tanh
    if mistake in ("lstm_candidate_sigmoid", "lstm_activations_swapped"):
        candidate = _sigmoid
    i, f, g, o = gate(blocks["i"]), gate(blocks["f"]), candidate(blocks["g"]), gate(blocks["o"])
    c = i * g if mistake == "lstm_cell_forgets_all" else f * c_prev + i * g
    h = o * c if mistake == "lstm_no_tanh_on_cell" else o * np.tanh(c)
    cache = {
        "x": x,
        "h_prev": h_prev,
        "c_prev": c_prev,
        "W_ih": W_ih,
        "W_hh": W_hh,
        "i": i,
        "f": f,
        "g": g,
        "o": o,
        "c": c,
    }
    if mistake == "lstm_h_c_swapped":
        return c, h, cache
    if mistake == "lstm_c_for_h":
        return c, c, cache
    return h, c, cache


def _step_backward_variant(
    dh: Array, dc: Array, cache: Mapping[str, Array], mistake: str | None = None
) -> dict[str, Array]:
    """``lstm_step_backward``, ``-> {dx (N, D), dh_prev (N, H), dc_prev (N, H), dW_ih (4H, D), dW_hh (4H, H),
    db_ih (4H,), db_hh (4H,)}``, correct or with one mistake of :data:`STEP_BACKWARD_MISTAKES`."""
    x, h_prev, c_prev, W_ih, W_hh = (cache[k] for k in ("x", "h_prev", "c_prev", "W_ih", "W_hh"))
    i, f, g, o, c = (cache[k] for k in ("i", "f", "g", "o", "c"))
    tanh_c = np.tanh(c)
    d_tanh = 1.0 - c**2 if mistake == "lstm_tanh_derivative_at_c" else 1.0 - tanh_c**2
    if mistake == "lstm_dc_from_h_missing":
        dc_total = dc
    elif mistake == "lstm_dc_in_ignored":
        dc_total = dh * o * d_tanh
    else:
        dc_total = dc + dh * o * d_tanh
    do = dh * tanh_c
    di, dg = dc_total * g, dc_total * i
    df = dc_total * (c if mistake == "lstm_df_uses_c" else c_prev)
    if mistake == "lstm_gate_derivatives_missing":
        da_i, da_f, da_g, da_o = di, df, dg, do
    else:
        da_i, da_f, da_o = di * i * (1.0 - i), df * f * (1.0 - f), do * o * (1.0 - o)
        da_g = dg * g * (1.0 - g) if mistake == "lstm_candidate_sigmoid_derivative" else dg * (1.0 - g**2)
    blocks = [da_i, da_f, da_o, da_g] if mistake == "lstm_backward_gate_order" else [da_i, da_f, da_g, da_o]
    da = np.concatenate(blocks, axis=1)  # (N, 4H)
    db = da.sum(axis=0)
    return {
        "dx": da @ W_ih,
        "dh_prev": da @ W_hh,
        "dc_prev": dc_total if mistake == "lstm_dc_prev_without_f" else dc_total * f,
        "dW_ih": da.T @ x,
        "dW_hh": da.T @ h_prev,
        "db_ih": db,
        "db_hh": db.copy(),
    }


def _layer_variant(
    x: Array,
    h0: Array,
    c0: Array,
    params: Mapping[str, Array],
    mistake: str | None = None,
    step_mistake: str | None = None,
) -> dict[str, Array]:
    """One LSTM layer, ``x (T, N, D), h0 (1, N, H), c0 (1, N, H) -> {output (T, N, H), h_n, c_n (1, N, H)}``,
    correct or with one mistake of :data:`LAYER_MISTAKES` (or a step mistake in every step)."""
    W_ih, W_hh, b_ih, b_hh = (params[f"{k}_l0"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    h, c = h0[0], c0[0]
    if mistake == "lstm_state_read_swapped":
        h, c = c, h
    if mistake in ("lstm_c0_ignored", "lstm_state_ignored"):
        c = np.zeros_like(c)
    if mistake == "lstm_state_ignored":
        h = np.zeros_like(h)
    start_c = c
    outs = []
    for t in range(x.shape[0]):
        h, c, _ = _step_variant(
            x[t], h, start_c if mistake == "lstm_cell_not_carried" else c, W_ih, W_hh, b_ih, b_hh, mistake=step_mistake
        )
        outs.append(c if mistake == "lstm_output_holds_c" else h)
    if mistake == "lstm_state_n_swapped":
        h, c = c, h
    if mistake == "lstm_state_n_no_layer_axis":
        return {"output": np.stack(outs), "h_n": h, "c_n": c}
    return {"output": np.stack(outs), "h_n": h[None], "c_n": c[None]}


# --------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------


def _lstm_params(rng: np.random.Generator, D: int, H: int) -> tuple[Array, Array, Array, Array]:
    """``W_ih (4H, D), W_hh (4H, H), b_ih (4H,), b_hh (4H,)``: larger than PyTorch's init, so that every
    activation is clearly nonlinear and every mistake changes the numbers."""
    return (
        rng.uniform(-0.8, 0.8, (4 * H, D)),
        rng.uniform(-0.8, 0.8, (4 * H, H)),
        rng.uniform(-0.5, 0.5, 4 * H),
        rng.uniform(-0.5, 0.5, 4 * H),
    )


def _state_dict(W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array, suffix: str = "") -> dict[str, torch.Tensor]:
    return {
        f"weight_ih{suffix}": torch.from_numpy(W_ih),
        f"weight_hh{suffix}": torch.from_numpy(W_hh),
        f"bias_ih{suffix}": torch.from_numpy(b_ih),
        f"bias_hh{suffix}": torch.from_numpy(b_hh),
    }


def _cell(W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array) -> nn.LSTMCell:
    H, D = W_hh.shape[1], W_ih.shape[1]
    cell = nn.LSTMCell(D, H, dtype=torch.float64)
    cell.load_state_dict(_state_dict(W_ih, W_hh, b_ih, b_hh))
    return cell


_StepArgs = tuple[Array, Array, Array, Array, Array, Array, Array]
"""``x (N, D), h_prev (N, H), c_prev (N, H), W_ih (4H, D), W_hh (4H, H), b_ih (4H,), b_hh (4H,)``."""


def _step_inputs(rng: np.random.Generator, N: int, D: int, H: int) -> _StepArgs:
    x, h_prev = rng.standard_normal((N, D)), rng.uniform(-0.9, 0.9, (N, H))
    c_prev = rng.uniform(-1.5, 1.5, (N, H))
    W_ih, W_hh, b_ih, b_hh = _lstm_params(rng, D, H)
    return x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh


def _flatten_step(h: Array, c: Array, cache: Mapping[str, Array]) -> dict[str, Array]:
    return {"h": h, "c": c, **{f"cache[{k!r}]": cache[k] for k in COMPUTED_CACHE_KEYS}}


def _step_forward_probe(seed: int, k: int, N: int, D: int, H: int) -> Probe:
    rng = _rng(seed, 51, k)
    args = _step_inputs(rng, N, D, H)
    x, h_prev, c_prev = args[:3]
    with torch.no_grad():
        h, c = _cell(*args[3:7])(torch.from_numpy(x), (torch.from_numpy(h_prev), torch.from_numpy(c_prev)))
    _, _, cache = _step_variant(*args)
    expected = _flatten_step(h.numpy(), c.numpy(), cache)
    variants = {m: _safe(lambda m=m: _flatten_step(*_step_variant(*args, mistake=m))) for m in STEP_MISTAKES}
    return Probe(f"N={N}, D={D}, H={H}", args, expected, variants)


def _unpack_step_forward(result: Any) -> dict[str, Array]:
    if result is None:
        raise _Unpack("it returned None: did you forget `return h, c, cache`?")
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise _Unpack(
            f"expected a tuple (h, c, cache), got {type(result).__name__}"
            + (f" of {len(result)} elements" if isinstance(result, (tuple, list)) else "")
        )
    h, c, cache = result
    if not isinstance(cache, Mapping):
        raise _Unpack(
            f"the cache should be a dict with (at least) the keys {list(STEP_CACHE_KEYS)}, got {type(cache).__name__}"
        )
    missing = [k for k in STEP_CACHE_KEYS if k not in cache]
    if missing:
        raise _Unpack(
            f"the cache has no key(s) {missing}: it needs (at least) {list(STEP_CACHE_KEYS)}, the gates "
            "i, f, g, o being their activations (after sigmoid or tanh)"
        )
    return _flatten_step(
        _to_array(h, "h"), _to_array(c, "c"), {k: _to_array(cache[k], f"cache[{k!r}]") for k in COMPUTED_CACHE_KEYS}
    )


_GATE_SHAPE = "(N, H)"
_STEP_FORWARD_TASK = Task(
    "lstm_step_forward",
    _unpack_step_forward,
    {
        "h": "(N, H)",
        "c": "(N, H)",
        "cache['i']": _GATE_SHAPE,
        "cache['f']": _GATE_SHAPE,
        "cache['g']": _GATE_SHAPE,
        "cache['o']": _GATE_SHAPE,
        "cache['c']": "(N, H)",
    },
    LSTM_FORWARD_IMPLEMENTATIONS,
    hint="a = x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh; i, f, g, o = np.split(a, 4, axis=1); "
    "i, f, o through the sigmoid, g through tanh; c = f * c_prev + i * g; h = o * tanh(c).",
)


def diagnose_lstm_step_forward(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``lstm_step_forward(x (N, D), h_prev (N, H), c_prev (N, H), W_ih (4H, D), W_hh (4H, H), b_ih (4H,),
    b_hh (4H,)) -> (h (N, H), c (N, H), cache)``. Reference: ``torch.nn.LSTMCell`` in float64."""
    sizes = [(3, 4, 5), (2, 6, 3)] + ([(1, 2, 4), (4, 3, 2), (5, 1, 3)] if extended else [])
    probes = [_step_forward_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_STEP_FORWARD_TASK, fn, probes, ("x", "h_prev", "c_prev", "W_ih", "W_hh", "b_ih", "b_hh"))


def check_lstm_step_forward(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct ``lstm_step_forward``."""
    _raise(diagnose_lstm_step_forward(fn, seed=seed, extended=extended))


def _t(a: Array) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64)).requires_grad_(True)


def _step_backward_probe(seed: int, k: int, N: int, D: int, H: int) -> Probe:
    rng = _rng(seed, 52, k)
    args = _step_inputs(rng, N, D, H)
    dh, dc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    _, _, cache = _step_variant(*args)
    cell = _cell(*args[3:7])
    tx, th, tc = map(_t, args[:3])
    h, c = cell(tx, (th, tc))
    loss = (h * torch.from_numpy(dh)).sum() + (c * torch.from_numpy(dc)).sum()
    grads = torch.autograd.grad(loss, (tx, th, tc, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh))
    expected = {key: g.numpy() for key, g in zip(STEP_GRAD_KEYS, grads, strict=True)}
    variants = {m: _safe(lambda m=m: _step_backward_variant(dh, dc, cache, m)) for m in STEP_BACKWARD_MISTAKES}
    return Probe(f"N={N}, D={D}, H={H}", (dh, dc, cache), expected, variants)


_STEP_BACKWARD_TASK = Task(
    "lstm_step_backward",
    _unpack_dict(STEP_GRAD_KEYS),
    {
        "dx": "(N, D)",
        "dh_prev": "(N, H)",
        "dc_prev": "(N, H)",
        "dW_ih": "(4H, D)",
        "dW_hh": "(4H, H)",
        "db_ih": "(4H,)",
        "db_hh": "(4H,)",
    },
    LSTM_BACKWARD_IMPLEMENTATIONS,
    hint="dc_total = dc + dh * o * (1 - tanh(c)**2); then the gates' gradients, each through its activation, "
    "concatenated in the order i, f, g, o into da (N, 4H); dx = da @ W_ih, dh_prev = da @ W_hh, "
    "dc_prev = dc_total * f.",
)


def diagnose_lstm_step_backward(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``lstm_step_backward(dh (N, H), dc (N, H), cache) -> {dx, dh_prev, dc_prev, dW_ih, dW_hh, db_ih,
    db_hh}`` (each the shape of what it is the gradient of). ``cache`` has the keys :data:`STEP_CACHE_KEYS`.
    Reference: ``torch.autograd`` through ``nn.LSTMCell``, float64, loss ``sum(h * dh) + sum(c * dc)``."""
    sizes = [(3, 4, 5), (2, 6, 3)] + ([(1, 2, 4), (4, 3, 2), (5, 1, 3)] if extended else [])
    probes = [_step_backward_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_STEP_BACKWARD_TASK, fn, probes, ("dh", "dc", "cache"))


def check_lstm_step_backward(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct ``lstm_step_backward``."""
    _raise(diagnose_lstm_step_backward(fn, seed=seed, extended=extended))


def _forward_probe(seed: int, k: int, T: int, N: int, D: int, H: int) -> Probe:
    rng = _rng(seed, 53, k)
    W_ih, W_hh, b_ih, b_hh = _lstm_params(rng, D, H)
    params = {"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    x = rng.standard_normal((T, N, D))
    h0, c0 = rng.uniform(-0.9, 0.9, (1, N, H)), rng.uniform(-1.5, 1.5, (1, N, H))
    lstm = nn.LSTM(D, H, 1, dtype=torch.float64)
    lstm.load_state_dict(_state_dict(W_ih, W_hh, b_ih, b_hh, "_l0"))
    with torch.no_grad():
        out, (h_n, c_n) = lstm(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    expected = {"output": out.numpy(), "h_n": h_n.numpy(), "c_n": c_n.numpy()}
    variants = {m: _safe(lambda m=m: _layer_variant(x, h0, c0, params, m)) for m in LAYER_MISTAKES}
    variants.update(
        {m: _safe(lambda m=m: _layer_variant(x, h0, c0, params, step_mistake=m)) for m in LOOP_STEP_MISTAKES}
    )
    return Probe(f"T={T}, N={N}, D={D}, H={H}", (x, (h0, c0), params), expected, variants)


def _unpack_forward(result: Any) -> dict[str, Array]:
    form = "(output, (h_n, c_n))"
    if result is None:
        raise _Unpack("it returned None: did you forget `return output, (h_n, c_n)`?")
    if not isinstance(result, (tuple, list)):
        raise _Unpack(f"expected a tuple {form}, got a single {type(result).__name__}")
    if len(result) == 3:
        raise _Unpack(
            f"expected a tuple {form} of 2 elements, got 3: nn.LSTM returns the final state as one tuple, "
            "`return output, (h_n, c_n)`"
        )
    if len(result) != 2:
        raise _Unpack(f"expected a tuple {form} of 2 elements, got {len(result)} elements")
    output, state = result
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise _Unpack(
            f"expected a tuple {form}: its second element should be the pair (h_n, c_n), got "
            f"{type(state).__name__}" + (f" of {len(state)} elements" if isinstance(state, (tuple, list)) else "")
        )
    return {"output": _to_array(output, "output"), "h_n": _to_array(state[0], "h_n"), "c_n": _to_array(state[1], "c_n")}


_FORWARD_TASK = Task(
    "lstm_forward",
    _unpack_forward,
    {"output": "(T, N, H)", "h_n": "(1, N, H)", "c_n": "(1, N, H)"},
    LSTM_FORWARD_IMPLEMENTATIONS,
    hint="if check_lstm_step_forward fails too, fix lstm_step_forward first.",
)


def diagnose_lstm_forward(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``lstm_forward(x (T, N, D), (h0, c0), params) -> (output (T, N, H), (h_n, c_n))``, with
    ``h0, c0, h_n, c_n`` of shape ``(1, N, H)`` and ``params`` one layer of ``nn.LSTM``'s state dict
    (``weight_ih_l0 (4H, D)``, ``weight_hh_l0 (4H, H)``, ``bias_ih_l0``, ``bias_hh_l0 (4H,)``).
    Reference: ``torch.nn.LSTM`` in float64."""
    sizes = [(4, 2, 3, 5), (3, 3, 5, 2)] + ([(1, 2, 3, 4), (6, 1, 2, 3)] if extended else [])
    probes = [_forward_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_FORWARD_TASK, fn, probes, ("x", "state", "params"))


def check_lstm_forward(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct one-layer ``lstm_forward``."""
    _raise(diagnose_lstm_forward(fn, seed=seed, extended=extended))


register(globals())
