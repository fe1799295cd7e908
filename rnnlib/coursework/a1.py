"""A1 (chapters/coursework/A1_rnn_step.ipynb): one step, a layer over time, the parameter count.

The checks of ``rnn_step`` (:func:`check_rnn_step`), ``rnn_forward`` (:func:`check_rnn_forward`)
and ``num_parameters`` (:func:`check_num_parameters`), each with its ``diagnose_*`` twin; their
classic mistakes and known-wrong variants (the one-step and one-layer variants are reused by
A2's stack). The machinery is :mod:`rnnlib.coursework.engine`'s; the notebook imports these
through :mod:`rnnlib.coursework.checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .engine import (
    FORWARD_IMPLEMENTATIONS,
    Array,
    Mistake,
    Probe,
    Task,
    _diagnose,
    _layer_params,
    _layer_weights,
    _raise,
    _rng,
    _safe,
    _stack_params,
    _torch_forward,
    _Unpack,
    _unpack_array,
    _unpack_tuple,
    add_mistakes,
    register,
)

__all__ = [
    "check_num_parameters",
    "check_rnn_forward",
    "check_rnn_step",
    "diagnose_num_parameters",
    "diagnose_rnn_forward",
    "diagnose_rnn_step",
]


# --------------------------------------------------------------------------------------
# The classic mistakes of one step, one layer and the parameter count
# --------------------------------------------------------------------------------------

add_mistakes(
    {
        # ---- one step (A1, and inside every loop) ----
        "swapped_weights": Mistake(
            "W_ih and W_hh are swapped (x_t is multiplied by W_hh and h_prev by W_ih)",
            "x_t goes with W_ih (input-to-hidden, shape (H, D)) and h_prev with W_hh (hidden-to-hidden, "
            "shape (H, H)): x @ W_ih.T + h_prev @ W_hh.T.",
        ),
        "w_ih_not_transposed": Mistake(
            "W_ih is not transposed (x @ W_ih instead of x @ W_ih.T)",
            "PyTorch stores W_ih as (H, D), one row per hidden unit; a batch of row vectors x (N, D) is "
            "multiplied as x @ W_ih.T, which is (N, H).",
        ),
        "w_hh_not_transposed": Mistake(
            "W_hh is not transposed (h_prev @ W_hh instead of h_prev @ W_hh.T)",
            "W_hh is square, so h_prev @ W_hh runs, but it applies the transpose of the recurrent "
            "matrix. Use h_prev @ W_hh.T.",
        ),
        "weights_not_transposed": Mistake(
            "neither weight matrix is transposed (x @ W_ih + h_prev @ W_hh)",
            "PyTorch stores weights as (out, in): use x @ W_ih.T and h_prev @ W_hh.T.",
        ),
        "missing_b_hh": Mistake(
            "b_hh is left out (only b_ih is added)",
            "PyTorch's cell has two bias vectors and adds both: x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh.",
        ),
        "missing_b_ih": Mistake(
            "b_ih is left out (only b_hh is added)",
            "PyTorch's cell has two bias vectors and adds both: x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh.",
        ),
        "no_bias": Mistake("both biases are left out", "add b_ih and b_hh inside the tanh."),
        "no_tanh": Mistake("the tanh is left out (the pre-activation is returned)", "h = np.tanh(pre-activation)."),
        "relu_instead_of_tanh": Mistake(
            "ReLU is used instead of tanh", "nn.RNN's default nonlinearity is tanh: np.tanh(...)."
        ),
        "sigmoid_instead_of_tanh": Mistake(
            "the logistic sigmoid is used instead of tanh", "nn.RNN's default nonlinearity is tanh: np.tanh(...)."
        ),
        "no_recurrence": Mistake(
            "h_prev is ignored (there is no h_prev @ W_hh.T term)",
            "the new state depends on the previous one: add h_prev @ W_hh.T.",
        ),
        # ---- one layer over time (A1) ----
        "h0_ignored": Mistake(
            "the initial state h0 is ignored (the loop starts from zeros)",
            "start the loop from h0 (and use zeros only when h0 is None).",
        ),
        "state_not_carried": Mistake(
            "every step reads h0 instead of the previous step's state (the state is not carried through the loop)",
            "update the variable that holds the state at every step: h = rnn_step(x[t], h, ...).",
        ),
        "outputs_shifted": Mistake(
            "each state is stored before it is computed: output[t] holds h_{t-1} (output[0] is h0)",
            "compute h for step t first, then append it: output[t] is the state after reading x[t].",
        ),
        "h_n_first_step": Mistake(
            "h_n is the state after the first step instead of the last",
            "h_n is the state after the last step, which is also output[-1].",
        ),
        "h_n_no_layer_axis": Mistake(
            "h_n has no leading num_layers axis: (N, H) instead of (1, N, H)",
            "h_n always has shape (num_layers * num_directions, N, H), also for one layer: return h[None].",
        ),
        "time_reversed": Mistake(
            "the loop runs backwards in time (t = T-1 down to 0)",
            "a (forward) RNN reads x[0] first: for t in range(T).",
        ),
        # ---- parameter count (A1) ----
        "one_bias": Mistake(
            "only one bias vector is counted (PyTorch's layer has two, b_ih and b_hh)",
            "count H*D + H*H + 2*H with biases.",
        ),
        "bias_flag_ignored": Mistake(
            "the biases are counted even when bias=False", "with bias=False there are no bias vectors: H*D + H*H."
        ),
        "biases_not_counted": Mistake("the biases are not counted", "with bias=True add 2*H (b_ih and b_hh)."),
        "w_hh_as_h_by_d": Mistake("W_hh is counted as (H, D); it is (H, H)", "W_ih is (H, D) and W_hh is (H, H)."),
        "w_ih_as_h_by_h": Mistake("W_ih is counted as (H, H); it is (H, D)", "W_ih is (H, D) and W_hh is (H, H)."),
        "missing_w_hh": Mistake("W_hh is not counted", "a layer has W_ih (H, D) and W_hh (H, H)."),
    }
)


# --------------------------------------------------------------------------------------
# Known-wrong variants of one step and one layer
# --------------------------------------------------------------------------------------

STEP_MISTAKES = (
    "swapped_weights",
    "w_ih_not_transposed",
    "w_hh_not_transposed",
    "weights_not_transposed",
    "missing_b_hh",
    "missing_b_ih",
    "no_bias",
    "no_tanh",
    "relu_instead_of_tanh",
    "sigmoid_instead_of_tanh",
    "no_recurrence",
)
# Step mistakes also looked for inside the loops of the layer and stack tasks.
LOOP_STEP_MISTAKES = (
    "swapped_weights",
    "w_ih_not_transposed",
    "w_hh_not_transposed",
    "missing_b_hh",
    "missing_b_ih",
    "no_bias",
    "no_tanh",
)


def _step_variant(
    x: Array, h: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array, mistake: str | None = None
) -> Array:
    """One step, ``(N, D), (N, H) -> (N, H)``, correct or with one mistake of :data:`STEP_MISTAKES`."""
    xi, hh, b = x @ W_ih.T, h @ W_hh.T, b_ih + b_hh
    act: Callable[[Array], Array] = np.tanh
    if mistake == "swapped_weights":
        xi, hh = x @ W_hh.T, h @ W_ih.T
    elif mistake == "w_ih_not_transposed":
        xi = x @ W_ih
    elif mistake == "w_hh_not_transposed":
        hh = h @ W_hh
    elif mistake == "weights_not_transposed":
        xi, hh = x @ W_ih, h @ W_hh
    elif mistake == "missing_b_hh":
        b = b_ih
    elif mistake == "missing_b_ih":
        b = b_hh
    elif mistake == "no_bias":
        b = np.zeros_like(b)
    elif mistake == "no_tanh":
        act = lambda a: a  # noqa: E731
    elif mistake == "relu_instead_of_tanh":
        act = lambda a: np.maximum(a, 0.0)  # noqa: E731
    elif mistake == "sigmoid_instead_of_tanh":
        act = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    elif mistake == "no_recurrence":
        hh = np.zeros_like(xi)
    elif mistake is not None:
        raise ValueError(mistake)
    return act(xi + hh + b)


LAYER_MISTAKES = ("h0_ignored", "state_not_carried", "outputs_shifted", "h_n_first_step", "time_reversed")


def _layer_variant(
    x: Array,
    h0: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array,
    b_hh: Array,
    mistake: str | None = None,
    step_mistake: str | None = None,
) -> tuple[Array, Array]:
    """One layer, ``x (T, N, D), h0 (N, H) -> output (T, N, H), h_last (N, H)``."""
    T = x.shape[0]
    h = np.zeros_like(h0) if mistake == "h0_ignored" else h0
    start = h
    outs: list[Any] = [None] * T
    order = range(T - 1, -1, -1) if mistake == "time_reversed" else range(T)
    for t in order:
        prev = start if mistake == "state_not_carried" else h
        new = _step_variant(x[t], prev, W_ih, W_hh, b_ih, b_hh, step_mistake)
        outs[t] = prev if mistake == "outputs_shifted" else new
        h = new
    output = np.stack(outs)
    h_last = output[0] if mistake == "h_n_first_step" else h
    return output, h_last


# --------------------------------------------------------------------------------------
# A1: one step, one layer, parameter count
# --------------------------------------------------------------------------------------

_SQUARE_NOTE = "D == H on purpose: swapped weights and an untransposed W_ih run without a shape error only when D == H"


def _step_probe(seed: int, k: int, N: int, D: int, H: int) -> Probe:
    rng = _rng(seed, 1, k)
    x, h_prev = rng.standard_normal((N, D)), rng.uniform(-0.9, 0.9, (N, H))
    W_ih, W_hh, b_ih, b_hh = _layer_params(rng, D, H)
    cell = nn.RNNCell(D, H, dtype=torch.float64)
    cell.load_state_dict(
        {
            "weight_ih": torch.from_numpy(W_ih),
            "weight_hh": torch.from_numpy(W_hh),
            "bias_ih": torch.from_numpy(b_ih),
            "bias_hh": torch.from_numpy(b_hh),
        }
    )
    with torch.no_grad():
        expected = cell(torch.from_numpy(x), torch.from_numpy(h_prev)).numpy()
    args = (x, h_prev, W_ih, W_hh, b_ih, b_hh)
    variants = {m: _safe(lambda m=m: {"h": _step_variant(*args, mistake=m)}) for m in STEP_MISTAKES}
    return Probe(f"N={N}, D={D}, H={H}", args, {"h": expected}, variants, _SQUARE_NOTE if D == H else "", square=D == H)


_STEP_TASK = Task(
    "rnn_step",
    _unpack_array("h"),
    {"h": "(N, H)"},
    FORWARD_IMPLEMENTATIONS,
    hint="h = tanh(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).",
)


def diagnose_rnn_step(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``rnn_step(x, h_prev, W_ih, W_hh, b_ih, b_hh) -> h (N, H)`` (NumPy, PyTorch's layout)."""
    sizes = [(3, 4, 5), (2, 4, 4)] + ([(1, 6, 2), (5, 3, 3), (4, 1, 7)] if extended else [])
    probes = [_step_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_STEP_TASK, fn, probes, ("x", "h_prev", "W_ih", "W_hh", "b_ih", "b_hh"))


def check_rnn_step(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct ``rnn_step``."""
    _raise(diagnose_rnn_step(fn, seed=seed, extended=extended))


def _forward_probe(seed: int, k: int, T: int, N: int, D: int, H: int, with_h0: bool = True) -> Probe:
    rng = _rng(seed, 2, k)
    params = _stack_params(rng, D, H, 1)
    x = rng.standard_normal((T, N, D))
    h0 = rng.uniform(-0.9, 0.9, (1, N, H)) if with_h0 else None
    out, h_n = _torch_forward(params, x, h0, 1)
    start = np.zeros((N, H)) if h0 is None else h0[0]
    weights = _layer_weights(params, 0)

    def layer(m: str | None = None, sm: str | None = None) -> dict[str, Array]:
        o, h = _layer_variant(x, start, *weights, mistake=m, step_mistake=sm)
        return {"output": o, "h_n": h[None]}

    variants = {m: _safe(lambda m=m: layer(m)) for m in LAYER_MISTAKES}
    variants.update({m: _safe(lambda m=m: layer(sm=m)) for m in LOOP_STEP_MISTAKES})
    variants["h_n_no_layer_axis"] = {"output": out, "h_n": h_n[0]}
    label = f"T={T}, N={N}, D={D}, H={H}" + ("" if with_h0 else ", h0=None")
    return Probe(
        label, (x, h0, params), {"output": out, "h_n": h_n}, variants, _SQUARE_NOTE if D == H else "", square=D == H
    )


_FORWARD_TASK = Task(
    "rnn_forward",
    _unpack_tuple(("output", "h_n")),
    {"output": "(T, N, H)", "h_n": "(1, N, H)"},
    FORWARD_IMPLEMENTATIONS,
)


def diagnose_rnn_forward(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``rnn_forward(x (T, N, D), h0 (1, N, H) or None, params) -> (output (T, N, H), h_n (1, N, H))``."""
    sizes = [(5, 2, 3, 4, True), (4, 3, 4, 4, True), (3, 2, 3, 4, False)]
    if extended:
        sizes += [(1, 1, 2, 3, True), (7, 4, 5, 2, True), (6, 2, 3, 3, True)]
    probes = [_forward_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_FORWARD_TASK, fn, probes, ("x", "h0", "params"))


def check_rnn_forward(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct one-layer ``rnn_forward``."""
    _raise(diagnose_rnn_forward(fn, seed=seed, extended=extended))


COUNT_MISTAKES = (
    "one_bias",
    "bias_flag_ignored",
    "biases_not_counted",
    "w_hh_as_h_by_d",
    "w_ih_as_h_by_h",
    "missing_w_hh",
)


def _count_variant(D: int, H: int, bias: bool, mistake: str | None = None) -> int:
    weights, biases = H * D + H * H, (2 * H if bias else 0)
    if mistake == "one_bias":
        biases = H if bias else 0
    elif mistake == "bias_flag_ignored":
        biases = 2 * H
    elif mistake == "biases_not_counted":
        biases = 0
    elif mistake == "w_hh_as_h_by_d":
        weights = 2 * H * D
    elif mistake == "w_ih_as_h_by_h":
        weights = 2 * H * H
    elif mistake == "missing_w_hh":
        weights = H * D
    return weights + biases


def _unpack_count(result: Any) -> dict[str, Array]:
    if result is None:
        raise _Unpack("it returned None: did you forget `return`?")
    if isinstance(result, bool) or not isinstance(result, (int, np.integer, float, np.floating)):
        if hasattr(result, "item") and getattr(result, "ndim", 1) == 0:
            result = result.item()
        else:
            raise _Unpack(f"expected an int, got {type(result).__name__}")
    if float(result) != int(result):
        raise _Unpack(f"expected a whole number, got {result!r}")
    return {"count": np.asarray(float(result))}


COUNT_IMPLEMENTATIONS: tuple[tuple[str, str], ...] = (
    ("rnnlib.params", "num_parameters"),
    ("rnnlib.params", "param_shapes"),
    ("rnnlib.numpy_rnn", "NumpyRNN.__init__"),
    ("torch.nn.modules.rnn", "RNNBase.__init__"),
    ("rnnlib.coursework.a1", "_count_variant"),
)
"""What a learner's ``num_parameters`` must not call: a library count, or building a model to count."""

_COUNT_TASK = Task("num_parameters", _unpack_count, {"count": ""}, COUNT_IMPLEMENTATIONS)


def diagnose_num_parameters(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``num_parameters(input_size, hidden_size, bias=True) -> int`` for one ``nn.RNN`` layer.

    ``seed`` is accepted for a uniform API; the probes are fixed sizes.
    """
    cases = [(3, 5, True), (3, 5, False), (7, 2, True), (1, 6, True), (4, 4, False), (10, 3, True)]
    if extended:
        cases += [(128, 256, True), (2, 1, False), (1, 1, True)]
    probes = []
    for D, H, bias in cases:
        rnn = nn.RNN(D, H, 1, bias=bias)
        count = float(sum(p.numel() for p in rnn.parameters()))
        variants = {m: {"count": np.asarray(float(_count_variant(D, H, bias, m)))} for m in COUNT_MISTAKES}
        probes.append(
            Probe(f"input_size={D}, hidden_size={H}, bias={bias}", (D, H, bias), {"count": np.asarray(count)}, variants)
        )
    return _diagnose(_COUNT_TASK, fn, probes, ("input_size", "hidden_size", "bias"))


def check_num_parameters(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` counts one layer's parameters right."""
    _raise(diagnose_num_parameters(fn, seed=seed, extended=extended))


register(globals())
