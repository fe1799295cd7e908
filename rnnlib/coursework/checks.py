"""Diagnostic checkers for the coursework (assignments A1 to A4): say *how* an answer is wrong.

Every ``check_*`` function runs a learner's function on a few probe inputs and either
returns ``None`` (correct) or raises ``AssertionError`` whose message is a diagnosis.
Every ``diagnose_*`` function does the same work and returns the diagnosis as a string
(``None`` when the function is correct), which is what the unit tests inspect.

How a diagnosis is made:

1. The correct answer for each probe is computed here, from ``torch`` in float64
   (``nn.RNNCell``, ``nn.RNN``, autograd), never from anything the learner can redefine.
2. Each *known-wrong variant* of the function (the classic mistakes: ``W_ih`` and ``W_hh``
   swapped, a weight not transposed, a bias missing, ``x_t`` fed to every layer, the
   bottom layer's state taken as the final one, the reverse direction not re-aligned in
   time, the tanh derivative forgotten, the gradient from the next step dropped, ...) is
   computed on the same probe. The backward-pass mistakes of :mod:`rnnlib.coursework.mistakes` are
   reused as they are.
3. The learner's output is compared with the correct answer and with every variant. A
   match with a variant names the mistake ("your output matches what you get when W_ih
   and W_hh are swapped"); otherwise the message says which part is wrong and by how much.
   Generic problems are reported first: not implemented yet (``NotImplementedError``),
   ``None`` returned, wrong type, wrong shape (expected versus got, with a hint), NaN,
   an input array modified in place, an exception (with a hint for shape errors in ``@``).

Probe sizes are all different (``T``, ``N``, ``D``, ``H``, ``L``) so that a shape names the
axis that is wrong, and the values are random and distinct so that mistakes give
different numbers. Some mistakes only run without a shape error when ``D == H`` (swapped
weights, an untransposed ``W_ih``, ``x_t`` fed to upper layers); those are caught by an
extra probe with ``D == H``, and the diagnosis says so.

Library call-through: while the learner's function runs, the RNN implementations of
``rnnlib`` and ``torch.nn.RNN``/``nn.RNNCell`` (forward tasks), or the backward passes of
``rnnlib``, its finite-difference helpers and ``torch.autograd`` (backward tasks), are
replaced by stubs that record the call; a function that calls them fails with a message
saying so. Outside the learner's function nothing is changed.

Public API (each ``check_x`` has a ``diagnose_x`` twin with the same arguments):

* A1: :func:`check_rnn_step`, :func:`check_rnn_forward`, :func:`check_num_parameters`.
* A2: :func:`check_stacked_forward`, :func:`check_batch_first`, :func:`check_bidirectional`,
  :func:`check_top_layer_states`.
* A3: :func:`check_step_backward`, :func:`check_rnn_backward`, :func:`check_stacked_backward`.
* A4: :func:`check_adding_model`, :func:`check_train_step`, :func:`check_trained_adding_model`.

``seed`` changes the probe values; ``extended=True`` adds edge-case probes (one step,
one sequence, one layer, more layers), used by the hidden tests.
"""

from __future__ import annotations

import copy
import importlib
import math
import threading
import traceback
import types
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

Array = np.ndarray

__all__ = [
    "MISTAKES",
    "Mistake",
    "check_adding_model",
    "check_batch_first",
    "check_bidirectional",
    "check_num_parameters",
    "check_rnn_backward",
    "check_rnn_forward",
    "check_rnn_step",
    "check_stacked_backward",
    "check_stacked_forward",
    "check_step_backward",
    "check_top_layer_states",
    "check_train_step",
    "check_trained_adding_model",
    "diagnose_adding_model",
    "diagnose_batch_first",
    "diagnose_bidirectional",
    "diagnose_num_parameters",
    "diagnose_rnn_backward",
    "diagnose_rnn_forward",
    "diagnose_rnn_step",
    "diagnose_stacked_backward",
    "diagnose_stacked_forward",
    "diagnose_step_backward",
    "diagnose_top_layer_states",
    "diagnose_train_step",
    "diagnose_trained_adding_model",
]

# Two float64 implementations of the same formula agree to ~1e-15; 1e-9 leaves room for
# any summation order while rejecting float32 arithmetic (~1e-7) and finite differences.
RTOL, ATOL = 1e-9, 1e-10
NOT_IMPLEMENTED = "is not implemented yet"


# --------------------------------------------------------------------------------------
# The classic mistakes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A classic mistake: ``what`` completes "your output matches what you get when ..."."""

    what: str
    fix: str


MISTAKES: dict[str, Mistake] = {
    # ---- one step (A1, and inside every loop) ----
    "swapped_weights": Mistake(
        "W_ih and W_hh are swapped (x_t is multiplied by W_hh and h_prev by W_ih)",
        "x_t goes with W_ih (input-to-hidden, shape (H, D)) and h_prev with W_hh (hidden-to-hidden, "
        "shape (H, H)): x @ W_ih.T + h_prev @ W_hh.T."),
    "w_ih_not_transposed": Mistake(
        "W_ih is not transposed (x @ W_ih instead of x @ W_ih.T)",
        "PyTorch stores W_ih as (H, D), one row per hidden unit; a batch of row vectors x (N, D) is "
        "multiplied as x @ W_ih.T, which is (N, H)."),
    "w_hh_not_transposed": Mistake(
        "W_hh is not transposed (h_prev @ W_hh instead of h_prev @ W_hh.T)",
        "W_hh is square, so h_prev @ W_hh runs, but it applies the transpose of the recurrent "
        "matrix. Use h_prev @ W_hh.T."),
    "weights_not_transposed": Mistake(
        "neither weight matrix is transposed (x @ W_ih + h_prev @ W_hh)",
        "PyTorch stores weights as (out, in): use x @ W_ih.T and h_prev @ W_hh.T."),
    "missing_b_hh": Mistake(
        "b_hh is left out (only b_ih is added)",
        "PyTorch's cell has two bias vectors and adds both: x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh."),
    "missing_b_ih": Mistake(
        "b_ih is left out (only b_hh is added)",
        "PyTorch's cell has two bias vectors and adds both: x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh."),
    "no_bias": Mistake(
        "both biases are left out",
        "add b_ih and b_hh inside the tanh."),
    "no_tanh": Mistake(
        "the tanh is left out (the pre-activation is returned)",
        "h = np.tanh(pre-activation)."),
    "relu_instead_of_tanh": Mistake(
        "ReLU is used instead of tanh",
        "nn.RNN's default nonlinearity is tanh: np.tanh(...)."),
    "sigmoid_instead_of_tanh": Mistake(
        "the logistic sigmoid is used instead of tanh",
        "nn.RNN's default nonlinearity is tanh: np.tanh(...)."),
    "no_recurrence": Mistake(
        "h_prev is ignored (there is no h_prev @ W_hh.T term)",
        "the new state depends on the previous one: add h_prev @ W_hh.T."),
    # ---- one layer over time (A1) ----
    "h0_ignored": Mistake(
        "the initial state h0 is ignored (the loop starts from zeros)",
        "start the loop from h0 (and use zeros only when h0 is None)."),
    "state_not_carried": Mistake(
        "every step reads h0 instead of the previous step's state (the state is not carried through the loop)",
        "update the variable that holds the state at every step: h = rnn_step(x[t], h, ...)."),
    "outputs_shifted": Mistake(
        "each state is stored before it is computed: output[t] holds h_{t-1} (output[0] is h0)",
        "compute h for step t first, then append it: output[t] is the state after reading x[t]."),
    "h_n_first_step": Mistake(
        "h_n is the state after the first step instead of the last",
        "h_n is the state after the last step, which is also output[-1]."),
    "h_n_no_layer_axis": Mistake(
        "h_n has no leading num_layers axis: (N, H) instead of (1, N, H)",
        "h_n always has shape (num_layers * num_directions, N, H), also for one layer: return h[None]."),
    "time_reversed": Mistake(
        "the loop runs backwards in time (t = T-1 down to 0)",
        "a (forward) RNN reads x[0] first: for t in range(T)."),
    # ---- the stack (A2) ----
    "x_to_every_layer": Mistake(
        "every layer reads the input x_t (layer l >= 1 must read the output of layer l-1 at the same step)",
        "feed layer l the states of layer l-1: layer_input = output_of_previous_layer."),
    "layer0_weights_everywhere": Mistake(
        "every layer uses layer 0's weights (weight_ih_l0, ...) instead of its own",
        "layer l uses weight_ih_l{l}, weight_hh_l{l}, bias_ih_l{l}, bias_hh_l{l}."),
    "h0_first_layer_only": Mistake(
        "every layer starts from h0[0] instead of its own initial state h0[l]",
        "layer l starts from h0[l]."),
    "state_passed_between_layers": Mistake(
        "layer l starts from the final state of layer l-1 instead of h0[l]",
        "each layer has its own initial state h0[l]; only outputs go up the stack."),
    "output_bottom_layer": Mistake(
        "output holds the states of the bottom layer (layer 0) instead of the top layer",
        "output is the top layer's states at every step (the last layer's outputs)."),
    "output_all_layers": Mistake(
        "output concatenates every layer's states, (T, N, L*H), instead of only the top layer's (T, N, H)",
        "return only the top layer's states as output; the other layers appear only in h_n."),
    "h_n_reversed_layers": Mistake(
        "h_n lists the layers top first (h_n[0] is the top layer)",
        "h_n[l] is layer l, bottom first: h_n[-1] is the top layer."),
    "h_n_top_only": Mistake(
        "h_n holds only the top layer's final state",
        "h_n holds the final state of every layer: shape (num_layers, N, H)."),
    # ---- batch_first (A2) ----
    "input_reshaped": Mistake(
        "the (N, T, D) input is reshaped to (T, N, D) instead of transposed",
        "reshape keeps the memory order and mixes sequences and steps; swap the axes with "
        "x.transpose(1, 0, 2) (np.swapaxes(x, 0, 1))."),
    "output_reshaped": Mistake(
        "the (T, N, H) output is reshaped to (N, T, H) instead of transposed",
        "use output.transpose(1, 0, 2), not reshape."),
    "output_not_transposed": Mistake(
        "the output is returned time-major, (T, N, H)",
        "with batch_first the output is (N, T, H): transpose it back."),
    "h_n_batch_first": Mistake(
        "h_n is transposed to (N, L, H)",
        "h_n is (num_layers, N, H) whatever batch_first says (h0 too): leave it alone."),
    "batch_first_ignored": Mistake(
        "the batch-first input is fed as if it were time-major (its batch axis read as time)",
        "transpose x to (T, N, D) before the stacked forward pass and the output back after it."),
    # ---- bidirectional (A2) ----
    "reverse_not_realigned": Mistake(
        "the reverse direction's outputs are not flipped back in time: output[t] pairs the forward state of "
        "step t with the backward state of step T-1-t",
        "store the reverse direction's state computed at step t in slot t (or flip its outputs back with "
        "[::-1]) before concatenating."),
    "directions_swapped_in_output": Mistake(
        "the two halves of the output are [backward, forward] instead of [forward, backward]",
        "concatenate the forward states first: np.concatenate([fwd, bwd], axis=-1)."),
    "reverse_uses_forward_weights": Mistake(
        "the reverse direction uses the forward weights instead of the *_reverse ones",
        "the reverse direction of layer l uses weight_ih_l{l}_reverse, weight_hh_l{l}_reverse, "
        "bias_ih_l{l}_reverse, bias_hh_l{l}_reverse."),
    "reverse_not_reversed": Mistake(
        "the reverse direction reads the sequence left to right",
        "the reverse direction starts at t = T-1 and ends at t = 0."),
    "h0_direction_major": Mistake(
        "h0 is indexed direction-major, h0[d*L + l], instead of h0[2*l + d]",
        "the first axis of h0 and h_n is layer * num_directions + direction."),
    "h_n_direction_major": Mistake(
        "h_n is ordered direction-major (all forward layers, then all backward layers)",
        "h_n[2*l + d] is layer l, direction d (0 forward, 1 backward)."),
    "h_n_reverse_at_last_step": Mistake(
        "the reverse direction's final state is taken at t = T-1, where it has read one step, instead of "
        "t = 0",
        "the reverse direction finishes at t = 0: its final state is its state at step 0."),
    # ---- the top layer's final states (A2) ----
    "bottom_layer_state": Mistake(
        "the bottom layer's final state (h_n[0], or h_n[0] and h_n[1] bidirectional) is taken instead of "
        "the top layer's",
        "h_n is bottom first: the top layer is h_n[-1] (unidirectional) or h_n[-2] and h_n[-1] "
        "(bidirectional)."),
    "backward_only": Mistake(
        "only h_n[-1] is taken: for a bidirectional RNN that is only the top layer's backward direction",
        "concatenate both directions of the top layer: np.concatenate([h_n[-2], h_n[-1]], axis=-1)."),
    "forward_only": Mistake(
        "only the top layer's forward direction, h_n[-2], is taken",
        "concatenate both directions of the top layer: np.concatenate([h_n[-2], h_n[-1]], axis=-1)."),
    "top_directions_swapped": Mistake(
        "the top layer's two directions are concatenated as [backward, forward]",
        "forward first: np.concatenate([h_n[-2], h_n[-1]], axis=-1)."),
    "h_n_view_misread": Mistake(
        "h_n is split as (num_directions, num_layers, N, H); its first axis is layer * num_directions + "
        "direction, so the right split is (num_layers, num_directions, N, H)",
        "h_n.reshape(num_layers, num_directions, N, H)[-1] is the top layer."),
    "directions_stacked": Mistake(
        "the two directions are stacked, (2, N, H), instead of concatenated, (N, 2H)",
        "np.concatenate([h_n[-2], h_n[-1]], axis=-1)."),
    # ---- parameter count (A1) ----
    "one_bias": Mistake(
        "only one bias vector is counted (PyTorch's layer has two, b_ih and b_hh)",
        "count H*D + H*H + 2*H with biases."),
    "bias_flag_ignored": Mistake(
        "the biases are counted even when bias=False",
        "with bias=False there are no bias vectors: H*D + H*H."),
    "biases_not_counted": Mistake(
        "the biases are not counted",
        "with bias=True add 2*H (b_ih and b_hh)."),
    "w_hh_as_h_by_d": Mistake(
        "W_hh is counted as (H, D); it is (H, H)",
        "W_ih is (H, D) and W_hh is (H, H)."),
    "w_ih_as_h_by_h": Mistake(
        "W_ih is counted as (H, H); it is (H, D)",
        "W_ih is (H, D) and W_hh is (H, H)."),
    "missing_w_hh": Mistake(
        "W_hh is not counted",
        "a layer has W_ih (H, D) and W_hh (H, H)."),
    # ---- backward through one step (A3) ----
    "no_tanh_derivative": Mistake(
        "the tanh derivative is left out (da = dh instead of da = dh * (1 - h**2))",
        "the gradient passes through the tanh first: da = dh * (1 - h**2), with h the state this step "
        "computed."),
    "tanh_applied_twice": Mistake(
        "the derivative is computed as 1 - tanh(h)**2; h is already tanh(a), so tanh'(a) = 1 - h**2",
        "da = dh * (1 - h**2)."),
    "derivative_at_h_prev": Mistake(
        "the tanh derivative is taken at h_prev (1 - h_prev**2) instead of at this step's h",
        "da = dh * (1 - h**2) with cache['h'], the output of this step."),
    "dW_hh_uses_h": Mistake(
        "dW_hh is built from this step's h instead of h_prev",
        "W_hh multiplies h_prev, so dW_hh = da.T @ h_prev."),
    "dh_prev_transposed": Mistake(
        "dh_prev uses W_hh.T (da @ W_hh.T)",
        "a = h_prev @ W_hh.T + ..., so dh_prev = da @ W_hh."),
    "dx_transposed": Mistake(
        "dx uses W_ih.T (da @ W_ih.T)",
        "a = x @ W_ih.T + ..., so dx = da @ W_ih, shape (N, D)."),
    "dW_transposed": Mistake(
        "dW_ih and dW_hh are transposed (x.T @ da instead of da.T @ x)",
        "a gradient has the shape of its weight: dW_ih = da.T @ x is (H, D), dW_hh = da.T @ h_prev is (H, H)."),
    "db_not_summed": Mistake(
        "the bias gradients are not summed over the batch: (N, H) instead of (H,)",
        "the same bias is added to every sequence of the batch: db = da.sum(axis=0)."),
    "db_mean": Mistake(
        "the bias gradients are the mean over the batch instead of the sum",
        "db = da.sum(axis=0): every sequence of the batch contributes its whole gradient."),
    # ---- BPTT over one layer and a stack (A3) ----
    "no_dh_next": Mistake(
        "the gradient from the next time step is dropped (dh = d_out[t] instead of d_out[t] + dh_next)",
        "h_t reaches the loss through output[t] and through h_{t+1}: dh = d_out[t] + dh_next, with dh_next "
        "the dh_prev of step t+1 (and dh_n at the last step)."),
    "dh_n_ignored": Mistake(
        "the gradient arriving at the final state is ignored (dh_next starts at zero instead of dh_n)",
        "start the backward loop with dh_next = dh_n (d_h_n[l] for layer l)."),
    "grads_not_accumulated": Mistake(
        "the weight gradients are overwritten at every step instead of summed over time (only step 0's "
        "contribution is left)",
        "the same weights act at every step: dW_ih += step['dW_ih'], and so on, starting from zeros."),
    "forward_in_time": Mistake(
        "the backward loop runs forward in time (t = 0, 1, ...)",
        "BPTT starts at the last step: for t in reversed(range(T))."),
    "dh0_not_through_cell": Mistake(
        "dh0 is the gradient with respect to the state after step 0, not the initial state h0",
        "push step 0's total gradient through its cell: dh0 is step 0's dh_prev."),
    "dx_reversed": Mistake(
        "dx is in reverse time order (the per-step list filled while looping backward was not reversed)",
        "store dx for step t in slot t (or reverse the list) before stacking."),
    "only_last_output": Mistake(
        "only the last step's output gradient d_out[T-1] is used",
        "every step's output has a gradient: dh = d_out[t] + dh_next at every t."),
    "dh_sent_down": Mistake(
        "layer l-1 receives layer l's dh_t (the gradient with respect to its state) instead of its dx_t (the "
        "gradient with respect to its input)",
        "the output of layer l-1 is the input of layer l: its upstream gradient is layer l's dx."),
    "d_output_to_every_layer": Mistake(
        "every layer receives the loss gradient d_output, as if every layer's states were outputs",
        "only the top layer gets d_output; layer l-1 gets layer l's dx."),
}
"""Every classic mistake the checkers recognise, by key."""


def _mistake(key: str) -> Mistake:
    return MISTAKES[key.split("#", 1)[0]]


# --------------------------------------------------------------------------------------
# Library call-through detection
# --------------------------------------------------------------------------------------

FORWARD_IMPLEMENTATIONS: tuple[tuple[str, str], ...] = (
    ("rnnlib.numpy_rnn", "rnn_cell_forward"),
    ("rnnlib.numpy_rnn", "layer_forward"),
    ("rnnlib.numpy_rnn", "NumpyRNN.forward"),
    ("rnnlib.torch_rnn", "torch_layer_forward"),
    ("rnnlib.torch_rnn", "TorchRNN.forward"),
    ("rnnlib.explain.dataflow", "run_schedule"),
    ("rnnlib.explain.gradient_flow", "stack_forward"),
    ("rnnlib.coursework.checks", "_step_variant"),
    ("rnnlib.coursework.checks", "_layer_variant"),
    ("rnnlib.coursework.checks", "_stack_variant"),
    ("rnnlib.coursework.checks", "_bidirectional_variant"),
    ("torch.nn.modules.rnn", "RNN.forward"),
    ("torch.nn.modules.rnn", "RNNCell.forward"),
)
"""The forward implementations a learner's A1/A2 function must not call."""

BACKWARD_IMPLEMENTATIONS: tuple[tuple[str, str], ...] = (
    ("rnnlib.numpy_rnn", "rnn_cell_backward"),
    ("rnnlib.numpy_rnn", "layer_backward"),
    ("rnnlib.numpy_rnn", "NumpyRNN.backward"),
    ("rnnlib.explain.gradient_flow", "stack_backward"),
    ("rnnlib.training.models", "NumpyRNNLM.backward"),
    ("rnnlib.training.tbptt", "truncated_bptt_gradients"),
    ("rnnlib.gradcheck", "numerical_gradient"),
    ("rnnlib.gradcheck", "numerical_gradient_array"),
    ("rnnlib.gradcheck", "check_rnn_gradients"),
    ("rnnlib.coursework.checks", "_step_backward_variant"),
    ("rnnlib.coursework.checks", "_layer_backward_variant"),
    ("rnnlib.coursework.checks", "_stack_backward_variant"),
    ("torch.autograd", "backward"),
    ("torch.autograd", "grad"),
)
"""The backward implementations (and gradient machinery) a learner's A3 function must not call."""

_OFF_LIMITS_CALLS: list[str] = []


def _record_off_limits(name: str) -> None:
    """Called by the stubs installed by :func:`_off_limits` (looked up through ``sys.modules``)."""
    _OFF_LIMITS_CALLS.append(name)


def _stub(name: str) -> types.FunctionType:
    # The stub's code may run with the *original* function's globals (see _off_limits), so it
    # reaches this module through __import__ (a builtin), which returns the current rnnlib.coursework.checks.
    source = (
        "def _off_limits_stub(*args, **kwargs):\n"
        f"    __import__('rnnlib.coursework.checks', fromlist=['_record_off_limits'])._record_off_limits({name!r})\n"
        f"    raise RuntimeError({name + ' is off-limits inside the function being graded'!r})\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - a fixed template
    return namespace["_off_limits_stub"]


@contextmanager
def _off_limits(entries: tuple[tuple[str, str], ...]) -> Iterator[list[str]]:
    """Replace each listed function by a recording stub, for the duration of the block.

    A plain function gets the stub's ``__code__``: that also catches names the learner
    imported earlier (``from rnnlib import rnn_cell_backward``), which are the same function
    object. A function with a closure (a method using ``super()``) cannot take foreign code;
    it is replaced on its class instead. Yields the list of names called, in call order.
    """
    global _OFF_LIMITS_CALLS
    calls: list[str] = []
    _OFF_LIMITS_CALLS = calls
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    replaced: list[tuple[Any, str, Any]] = []
    try:
        for module_name, qualname in entries:
            try:
                owner: Any = importlib.import_module(module_name)
                *path, attr = qualname.split(".")
                for part in path:
                    owner = getattr(owner, part)
                obj = getattr(owner, attr)
            except (ImportError, AttributeError):
                continue
            if not isinstance(obj, types.FunctionType):
                continue
            stub = _stub(f"{module_name}.{qualname}")
            if obj.__closure__:
                if isinstance(owner, type) and attr in owner.__dict__:
                    replaced.append((owner, attr, owner.__dict__[attr]))
                    setattr(owner, attr, stub)
                continue
            swapped.append((obj, obj.__code__))
            obj.__code__ = stub.__code__
        yield calls
    finally:
        for func, code in reversed(swapped):
            func.__code__ = code
        for owner, attr, original in reversed(replaced):
            setattr(owner, attr, original)


# --------------------------------------------------------------------------------------
# Running a learner's function and describing what came back
# --------------------------------------------------------------------------------------


@dataclass
class Probe:
    """One probe input with the correct answer and each known-wrong variant's answer.

    Attributes:
        label: the sizes, e.g. ``"N=3, D=4, H=5"``.
        args: positional arguments for the learner's function.
        expected: the correct result, as named parts (``{"output": ..., "h_n": ...}``).
        variants: ``{mistake key: named parts}``; variants equal to ``expected`` are dropped.
        note: why this probe exists (printed with a diagnosis made on it).
        square: ``D == H`` (a probe on which some shape errors cannot happen).
    """

    label: str
    args: tuple
    expected: dict[str, Array]
    variants: dict[str, dict[str, Array]] = field(default_factory=dict)
    note: str = ""
    square: bool = False

    def __post_init__(self) -> None:
        self.variants = {k: v for k, v in self.variants.items() if v is not None and not _same(v, self.expected)}


@dataclass
class Outcome:
    """What the learner's function did on one probe: ``parts`` (unpacked result) or ``problem``."""

    parts: dict[str, Array] | None = None
    problem: str | None = None
    kind: str = "ok"  # ok | not_implemented | off_limits | exception | unpack | mutated | not_callable
    warnings: list[str] = field(default_factory=list)


@dataclass
class Task:
    """How to call and read one learner function.

    Attributes:
        name: the function's name in the notebook.
        unpack: ``result -> named parts`` (raises ``_Unpack`` with a message when the
            result has the wrong form).
        shapes: ``{part: symbolic shape}`` such as ``"(T, N, H)"``, for messages.
        forbid: library functions the learner's function must not call.
    """

    name: str
    unpack: Callable[[Any], dict[str, Array]]
    shapes: dict[str, str]
    forbid: tuple[tuple[str, str], ...] = ()
    hint: str = ""


class _Unpack(Exception):
    """The learner's result does not have the documented form."""


def _to_array(value: Any, what: str) -> Array:
    if value is None:
        raise _Unpack(f"{what} is None: did you forget a `return` statement?")
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic objects
        raise _Unpack(f"{what} cannot be read as an array ({type(value).__name__}): {err}") from None
    if arr.dtype.kind not in "fiub":
        raise _Unpack(f"{what} should be a NumPy array of numbers, got {type(value).__name__} "
                      f"(dtype {arr.dtype})")
    return arr


def _unpack_array(name: str) -> Callable[[Any], dict[str, Array]]:
    def unpack(result: Any) -> dict[str, Array]:
        if isinstance(result, tuple):
            raise _Unpack(f"expected one array, got a tuple of {len(result)} elements")
        return {name: _to_array(result, "the result")}
    return unpack


def _unpack_tuple(names: tuple[str, ...]) -> Callable[[Any], dict[str, Array]]:
    def unpack(result: Any) -> dict[str, Array]:
        form = "(" + ", ".join(names) + ")"
        if result is None:
            raise _Unpack(f"it returned None: did you forget `return {', '.join(names)}`?")
        if not isinstance(result, (tuple, list)):
            raise _Unpack(f"expected a tuple {form}, got a single {type(result).__name__}")
        if len(result) != len(names):
            raise _Unpack(f"expected a tuple {form} of {len(names)} elements, got {len(result)} elements")
        return {n: _to_array(v, n) for n, v in zip(names, result)}
    return unpack


def _unpack_dict(keys: tuple[str, ...]) -> Callable[[Any], dict[str, Array]]:
    def unpack(result: Any) -> dict[str, Array]:
        if result is None:
            raise _Unpack("it returned None: did you forget to `return` the dict of gradients?")
        if not isinstance(result, Mapping):
            raise _Unpack(f"expected a dict with keys {list(keys)}, got a {type(result).__name__}")
        missing = [k for k in keys if k not in result]
        if missing:
            raise _Unpack(f"the returned dict has no key(s) {missing} (expected keys {list(keys)}, "
                          f"got {sorted(map(str, result))})")
        return {k: _to_array(result[k], f"result[{k!r}]") for k in keys}
    return unpack


def _user_frame(err: BaseException) -> str:
    """The last source line of the traceback outside numpy/torch/this module, for messages."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        path = frame.filename.replace("\\", "/")
        if "site-packages" in path or "/numpy/" in path or "/torch/" in path or path.endswith("rnnlib/coursework/checks.py"):
            continue
        if frame.line:
            return frame.line.strip()
    return ""


def _not_implemented_message(name: str, err: BaseException, own_name: str = "") -> str:
    frames = traceback.extract_tb(err.__traceback__)
    raiser = frames[-1].name if frames else name
    if raiser not in (name, own_name, "<module>", "<lambda>") and raiser.isidentifier():
        return (f"`{name}` {NOT_IMPLEMENTED}: it calls `{raiser}`, which raises NotImplementedError. "
                f"Implement `{raiser}` first (and run its cell again).")
    return (f"`{name}` {NOT_IMPLEMENTED}: it raises NotImplementedError. Replace the line "
            "`raise NotImplementedError()` with your code, and run the cell again.")


def _exception_message(task: Task, probe: Probe, err: BaseException) -> str:
    line = _user_frame(err)
    where = f"\n  at: {line}" if line else ""
    text = str(err)
    if "matmul" in text and "is different from" in text:  # numpy's gufunc wording, shortened
        text = "matmul: the inner sizes of a matrix product do not match (" + text.rsplit("(", 1)[-1]
    msg = f"`{task.name}` raised {type(err).__name__} on the probe with {probe.label}: {text}{where}"
    hints = []
    if isinstance(err, ValueError) and ("matmul" in text or "not aligned" in text or "mismatch" in text):
        hints.append("A shape error in a matrix product usually means a weight is used untransposed. PyTorch "
                     "stores W_ih as (H, D) and W_hh as (H, H), so a batch of rows x (N, D) is multiplied as "
                     "x @ W_ih.T and h (N, H) as h @ W_hh.T.")
        if task.name in ("stacked_rnn_forward", "stacked_rnn_forward_batch_first", "bidirectional_rnn_forward"):
            hints.append("In a stack, layer l >= 1 reads the layer below (width H, or 2H when bidirectional), "
                         "not x (width D).")
    elif isinstance(err, ValueError) and "broadcast" in text:
        hints.append("Arrays of incompatible shapes were combined: print the shape of each term.")
    if isinstance(err, (TypeError, AttributeError)) and "NoneType" in text:
        hints.append("An argument was None: h0=None means a zero initial state, as in nn.RNN (np.zeros((L, N, H))).")
    if isinstance(err, KeyError):
        hints.append("The parameter dict uses PyTorch's names with layers counted from 0: weight_ih_l0, "
                     "weight_hh_l0, bias_ih_l0, bias_hh_l0, ..., and *_reverse for the backward direction.")
    if isinstance(err, IndexError):
        hints.append("Check the index ranges: layers 0..L-1, steps 0..T-1, and h0/h_n have L*num_directions "
                     "rows.")
    return msg + "".join(f"\n  Hint: {h}" for h in hints)


def _copy_args(args: tuple) -> tuple:
    return copy.deepcopy(args)


def _same_inputs(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, Mapping):
        return all(_same_inputs(a[k], b.get(k)) for k in a if isinstance(a[k], (np.ndarray, Mapping, list)))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_inputs(x, y) for x, y in zip(a, b))
    return True


def _mutated_arg(args: tuple, after: tuple, arg_names: tuple[str, ...]) -> str | None:
    for name, before, now in zip(arg_names, args, after):
        if not _same_inputs(before, now):
            return name
    return None


def _run(task: Task, fn: Callable, probe: Probe, arg_names: tuple[str, ...]) -> Outcome:
    session = _current_session()
    if session is not None:  # planning or judging across the trust boundary: fn is not called here
        return session.outcome(probe)
    outcome = _call(task, fn, probe, arg_names)
    return outcome


def _caught(caught: list[warnings.WarningMessage]) -> list[str]:
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {_first_line(str(w.message))}"
        if text not in seen:
            seen.append(text)
    return seen[:5]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


LIBRARY_NAMES = frozenset({"torch", "rnnlib", "nn", "_VF", "autograd"})
"""Names whose use inside A1-A3's graded code breaks the rule "NumPy only inside your functions"."""


def library_uses(source: str) -> list[str]:
    """The references to torch or the course library in ``source`` (by its syntax tree; comments and
    strings do not count). Decided from the code, not by watching it run, so that a call the
    stubs cannot catch (``torch.rnn_tanh_cell``, a builtin) is caught too."""
    import ast
    import textwrap

    text = "\n".join(l for l in textwrap.dedent(source).splitlines() if not l.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in LIBRARY_NAMES:
            found.append(node.id)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in ("torch", "rnnlib")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("torch", "rnnlib"):
            found.append(f"from {node.module} import ...")
    return list(dict.fromkeys(found))


def library_problem(name: str, uses: list[str]) -> str:
    return (f"`{name}` uses {', '.join(f'`{u}`' for u in uses)} inside the graded code, which is off-limits in this "
            "assignment: inside your functions, use NumPy only (the point is to write this computation yourself). "
            "Use torch or rnnlib in a separate cell to compare results.")


def _source_problem(task: Task, fn: Callable) -> str | None:
    """The NumPy-only rule, read from the function's own source where Python can find it."""
    import inspect

    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return None
    uses = library_uses(source)
    return library_problem(task.name, uses) if uses else None


def _call(task: Task, fn: Callable, probe: Probe, arg_names: tuple[str, ...]) -> Outcome:
    """Call the learner's function on one probe and describe what came back (warnings caught and kept)."""
    problem = _source_problem(task, fn)
    if problem:
        return Outcome(problem=problem, kind="off_limits")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = _call_inner(task, fn, probe, arg_names)
    outcome.warnings = _caught(caught)
    return outcome


def _call_inner(task: Task, fn: Callable, probe: Probe, arg_names: tuple[str, ...]) -> Outcome:
    call_args = _copy_args(probe.args)
    try:
        with _off_limits(task.forbid) as calls:
            result = fn(*call_args)
    except NotImplementedError as err:
        return Outcome(problem=_not_implemented_message(task.name, err, getattr(fn, "__name__", "")),
                       kind="not_implemented")
    except Exception as err:  # noqa: BLE001 - any failure is reported
        if _OFF_LIMITS_CALLS:
            calls = _OFF_LIMITS_CALLS
        else:
            return Outcome(problem=_exception_message(task, probe, err), kind="exception")
    if calls:
        lib = calls[0]
        return Outcome(problem=(
            f"`{task.name}` calls `{lib}`, which is off-limits in this assignment: the point is to write "
            f"this computation yourself (rnnlib and PyTorch already have it). You may use the library in a "
            f"separate cell to compare results, but not inside `{task.name}`."), kind="off_limits")
    mutated = _mutated_arg(probe.args, call_args, arg_names)
    if mutated is not None:
        return Outcome(problem=(
            f"`{task.name}` modifies its input `{mutated}` in place (e.g. `h += ...` or `dh *= ...` on an array "
            f"it was given, or on a view of one). The caller still needs that array: work on a copy "
            f"(`h = h + ...`, `arr.copy()`)."), kind="mutated")
    try:
        parts = task.unpack(result)
    except _Unpack as err:
        return Outcome(problem=f"`{task.name}` returned the wrong kind of result: {err}", kind="unpack")
    return Outcome(parts=parts)


def _close(a: Array, b: Array, rtol: float = RTOL, atol: float = ATOL) -> bool:
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and np.allclose(a, b, rtol=rtol, atol=atol)


def _same(a: dict[str, Array], b: dict[str, Array]) -> bool:
    return a.keys() == b.keys() and all(_close(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def _shape_hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if len(got) == len(expected) == 2 and got == expected[::-1]:
        return " It is the transpose of the expected shape."
    if len(got) == len(expected) and sorted(got) == sorted(expected):
        return " Same sizes in another order: an axis mix-up (transpose, or reshape where a transpose is needed)?"
    if got == expected[1:]:
        return f" The leading axis of size {expected[0]} is missing."
    if got == (1,) + expected:
        return " There is an extra leading axis of size 1."
    if got == expected + (1,):
        return " There is an extra trailing axis of size 1."
    if len(got) == len(expected) and math.prod(got) == math.prod(expected):
        return " Same number of entries, another layout: reshape where a transpose is needed?"
    return ""


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def _matching(parts: dict[str, Array], variants: dict[str, dict[str, Array]], names: list[str] | None = None
              ) -> list[str]:
    keys = []
    for key, v in variants.items():
        use = names if names is not None else list(v)
        if all(n in parts and n in v and _close(parts[n], np.asarray(v[n])) for n in use):
            keys.append(key)
    return keys


def _describe(keys: list[str]) -> list[str]:
    seen: list[str] = []
    for k in keys:
        base = k.split("#", 1)[0]
        if base not in seen:
            seen.append(base)
    return seen


def _mistake_lines(keys: list[str]) -> tuple[str, str]:
    """``(what, details)``: the clause completing "matches ...", and the indented fix line(s)."""
    bases = _describe(keys)
    if len(bases) == 1:
        m = MISTAKES[bases[0]]
        return f"what you get when {m.what}.", f"\n  Fix: {m.fix}"
    what = ("what you get with any of these mistakes (they give the same numbers here): "
            + "; or ".join(MISTAKES[b].what for b in bases) + ".")
    return what, "".join(f"\n  Fix ({i + 1}): {MISTAKES[b].fix}" for i, b in enumerate(bases))


def _consistent(keys: list[str], outcomes: list[Outcome], probes: list[Probe], skip: int,
                names: list[str] | None = None) -> list[str]:
    """Drop candidate mistakes that another probe contradicts."""
    kept = []
    for key in keys:
        ok = True
        for i, (o, p) in enumerate(zip(outcomes, probes)):
            if i == skip or o.parts is None:
                continue
            target = p.variants.get(key)
            if target is None:
                continue
            use = names if names is not None else list(target)
            if not all(n in o.parts and n in target and _close(o.parts[n], np.asarray(target[n])) for n in use):
                ok = False
                break
        if ok:
            kept.append(key)
    return kept or keys


def _probe_line(probe: Probe) -> str:
    return f"\n  Probe: {probe.label}" + (f" ({probe.note})" if probe.note else "") + "."


def _explain_wrong(task: Task, probes: list[Probe], outcomes: list[Outcome], i: int) -> str:
    """The diagnosis of a wrong result; its first line is the finding, the next ones the details."""
    probe, got = probes[i], outcomes[i].parts
    assert got is not None
    exp = probe.expected
    full = _consistent(_matching(got, probe.variants), outcomes, probes, i)
    if full:
        what, details = _mistake_lines(full)
        return f"`{task.name}` is wrong: its result matches {what}{details}{_probe_line(probe)}"
    findings: list[tuple[str, str]] = []  # (one-line finding, details)
    right: list[str] = []
    for name, e in exp.items():
        label = name if len(exp) > 1 else "the result"
        if name not in got:
            findings.append((f"{label} is missing.", ""))
            continue
        g = got[name]
        sym = task.shapes.get(name, "")
        if g.shape != e.shape:
            per = _consistent(_matching(got, probe.variants, [name]), outcomes, probes, i, [name])
            text = (f"{label} has shape {_fmt_shape(g.shape)}, expected {sym + ' = ' if sym else ''}"
                    f"{_fmt_shape(e.shape)}.{_shape_hint(g.shape, e.shape)}")
            if per:
                what, details = _mistake_lines(per)
                findings.append((f"{text} It matches {what}", details))
            else:
                findings.append((text, ""))
        elif not np.all(np.isfinite(g)):
            findings.append((f"{label} contains NaN or inf ({int(np.sum(~np.isfinite(g)))} entries): an overflow, "
                             "a division by zero, or an array made with np.empty that is never filled?", ""))
        elif not _close(g, e):
            per = _consistent(_matching(got, probe.variants, [name]), outcomes, probes, i, [name])
            diff = float(np.max(np.abs(g.astype(np.float64) - e)))
            if per:
                what, details = _mistake_lines(per)
                findings.append((f"{label} matches {what}", details))
            elif np.allclose(g, e, rtol=1e-4, atol=1e-6):
                findings.append((f"{label} is close to the right values but not equal to float64 precision "
                                 f"(max |yours - expected| = {diff:.1e}): float32 somewhere (np.float32, torch's "
                                 "default dtype), or an approximation such as finite differences?",
                                 f"\n  The tests compare with a relative tolerance of {RTOL:.0e}."))
            else:
                idx = np.unravel_index(int(np.argmax(np.abs(g.astype(np.float64) - e))), e.shape)
                findings.append((f"{label} has wrong values (max |yours - expected| = {diff:.1e}); none of the "
                                 "classic mistakes the checker knows gives these numbers.",
                                 f"\n  E.g. at index {tuple(int(j) for j in idx)}: yours {float(g[idx]):.6f}, "
                                 f"expected {float(e[idx]):.6f}."))
        else:
            right.append(name)
    first, details = findings[0]
    rest = "".join(f"\n  Also: {f}{d}" for f, d in findings[1:])
    extra = f"\n  Right: {', '.join(right)}." if right else ""
    hint = f"\n  Hint: {task.hint}" if task.hint and not any("matches" in f for f, _ in findings) else ""
    return f"`{task.name}` is wrong: {first}{details}{rest}{extra}{hint}{_probe_line(probe)}"


def _diagnose(task: Task, fn: Any, probes: list[Probe], arg_names: tuple[str, ...]) -> str | None:
    session = _current_session()
    if session is not None and session.mode == "plan":
        session.planned(task, probes, arg_names)
    if not callable(fn):
        return f"`{task.name}` should be a function, got {type(fn).__name__}: did you overwrite its name?"
    outcomes: list[Outcome] = []
    for probe in probes:
        o = _run(task, fn, probe, arg_names)
        if o.kind in ("not_implemented", "off_limits", "mutated", "not_callable"):
            return o.problem
        outcomes.append(o)
    _note_warnings(task.name, [w for o in outcomes for w in o.warnings])
    for i, (probe, o) in enumerate(zip(probes, outcomes)):
        if o.kind == "exception":
            # Does another probe explain the error? A D == H probe first: there the usual shape
            # errors (a weight used untransposed, x fed to an upper layer) cannot happen.
            order = sorted(range(len(probes)), key=lambda j: not probes[j].square)
            for j in order:
                oj = outcomes[j]
                if oj.parts is None or _same(oj.parts, probes[j].expected):
                    continue
                keys = _consistent(_matching(oj.parts, probes[j].variants), outcomes, probes, j)
                if keys:
                    what, details = _mistake_lines(keys)
                    first_error = (o.problem or "").split("\n", 1)[0]
                    where = "where D == H" if probes[j].square else "on another probe"
                    elsewhere = "where D != H" if probes[j].square else "on the other probe"
                    return (f"`{task.name}` is wrong: {where} its result matches {what}{details}"
                            f"\n  {elsewhere[0].upper() + elsewhere[1:]} it fails instead: {first_error}{_probe_line(probes[j])}")
            return o.problem
        if o.kind == "unpack":
            return o.problem
        assert o.parts is not None
        if not _same(o.parts, probe.expected):
            return _explain_wrong(task, probes, outcomes, i)
    return None


def _raise(diagnosis: str | None) -> None:
    if diagnosis is not None:
        raise AssertionError(diagnosis)


# --------------------------------------------------------------------------------------
# Probe data
# --------------------------------------------------------------------------------------


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, *salt])


def _layer_params(rng: np.random.Generator, D: int, H: int) -> tuple[Array, Array, Array, Array]:
    # Weights a bit larger than PyTorch's init, so that tanh is clearly nonlinear (1 - h**2 far from 1).
    return (rng.uniform(-0.7, 0.7, (H, D)), rng.uniform(-0.7, 0.7, (H, H)),
            rng.uniform(-0.5, 0.5, H), rng.uniform(-0.5, 0.5, H))


def _stack_params(rng: np.random.Generator, D: int, H: int, L: int, bidirectional: bool = False
                  ) -> dict[str, Array]:
    dirs = 2 if bidirectional else 1
    params: dict[str, Array] = {}
    for layer in range(L):
        d_in = D if layer == 0 else H * dirs
        for d in range(dirs):
            sfx = "_reverse" if d else ""
            W_ih, W_hh, b_ih, b_hh = _layer_params(rng, d_in, H)
            params.update({f"weight_ih_l{layer}{sfx}": W_ih, f"weight_hh_l{layer}{sfx}": W_hh,
                           f"bias_ih_l{layer}{sfx}": b_ih, f"bias_hh_l{layer}{sfx}": b_hh})
    return params


def _torch_rnn(params: Mapping[str, Array], D: int, H: int, L: int, bidirectional: bool = False) -> nn.RNN:
    rnn = nn.RNN(D, H, L, bidirectional=bidirectional, dtype=torch.float64)
    rnn.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in params.items()})
    return rnn.eval()


def _torch_forward(params: Mapping[str, Array], x: Array, h0: Array | None, L: int,
                   bidirectional: bool = False) -> tuple[Array, Array]:
    D, H = x.shape[-1], params["weight_hh_l0"].shape[0]
    rnn = _torch_rnn(params, D, H, L, bidirectional)
    with torch.no_grad():
        out, h_n = rnn(torch.from_numpy(x), None if h0 is None else torch.from_numpy(h0))
    return out.numpy(), h_n.numpy()


def _safe(fn: Callable[..., Any]) -> Any:  # ``...``: mypy can't match ``lambda m=m: ...`` to ``Callable[[], Any]``
    """A variant that raises (a shape error on this probe) is simply not available on it."""
    try:
        return fn()
    except (ValueError, IndexError, KeyError):
        return None


# --------------------------------------------------------------------------------------
# Known-wrong forward variants
# --------------------------------------------------------------------------------------

STEP_MISTAKES = ("swapped_weights", "w_ih_not_transposed", "w_hh_not_transposed", "weights_not_transposed",
                 "missing_b_hh", "missing_b_ih", "no_bias", "no_tanh", "relu_instead_of_tanh",
                 "sigmoid_instead_of_tanh", "no_recurrence")
# Step mistakes also looked for inside the loops of the layer and stack tasks.
LOOP_STEP_MISTAKES = ("swapped_weights", "w_ih_not_transposed", "w_hh_not_transposed", "missing_b_hh",
                      "missing_b_ih", "no_bias", "no_tanh")


def _step_variant(x: Array, h: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array,
                  mistake: str | None = None) -> Array:
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


def _layer_variant(x: Array, h0: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array,
                   mistake: str | None = None, step_mistake: str | None = None) -> tuple[Array, Array]:
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


STACK_MISTAKES = ("x_to_every_layer", "layer0_weights_everywhere", "h0_first_layer_only",
                  "state_passed_between_layers", "output_bottom_layer", "output_all_layers", "h_n_reversed_layers",
                  "h_n_top_only", "h_n_top_only#3d", "h0_ignored")


def _layer_weights(params: Mapping[str, Array], layer: int, suffix: str = "") -> tuple[Array, Array, Array, Array]:
    return cast("tuple[Array, Array, Array, Array]",  # mypy can't count a tuple built from a generator
                tuple(params[f"{k}_l{layer}{suffix}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))


def _stack_variant(x: Array, h0: Array | None, params: Mapping[str, Array], L: int, mistake: str | None = None,
                   step_mistake: str | None = None) -> tuple[Array, Array]:
    """The stack, ``x (T, N, D), h0 (L, N, H) -> output (T, N, H), h_n (L, N, H)``, with one mistake."""
    N, H = x.shape[1], params["weight_hh_l0"].shape[0]
    if h0 is None or mistake == "h0_ignored":
        h0 = np.zeros((L, N, H))
    finals: list[Array]
    layer_input, outs, finals = x, [], []
    for layer in range(L):
        weights = _layer_weights(params, 0 if mistake == "layer0_weights_everywhere" else layer)
        if mistake == "h0_first_layer_only":
            start = h0[0]
        elif mistake == "state_passed_between_layers" and layer > 0:
            start = finals[-1]
        else:
            start = h0[layer]
        source = x if mistake == "x_to_every_layer" else layer_input
        out, h_last = _layer_variant(source, start, *weights, step_mistake=step_mistake)
        outs.append(out)
        finals.append(h_last)
        layer_input = out
    output, h_n = outs[-1], np.stack(finals)
    if mistake == "output_bottom_layer":
        output = outs[0]
    elif mistake == "output_all_layers":
        output = np.concatenate(outs, axis=-1)
    elif mistake == "h_n_reversed_layers":
        h_n = h_n[::-1]
    elif mistake == "h_n_top_only":
        h_n = h_n[-1]
    elif mistake == "h_n_top_only#3d":
        h_n = h_n[-1:]
    return output, h_n


BIDIRECTIONAL_MISTAKES = ("reverse_not_realigned", "directions_swapped_in_output", "reverse_uses_forward_weights",
                          "reverse_not_reversed", "h0_direction_major", "h_n_direction_major",
                          "h_n_reverse_at_last_step", "h0_ignored")


def _bidirectional_variant(x: Array, h0: Array | None, params: Mapping[str, Array], L: int,
                           mistake: str | None = None) -> tuple[Array, Array]:
    """A bidirectional stack, ``-> output (T, N, 2H), h_n (2L, N, H)``, with one mistake."""
    N, H = x.shape[1], params["weight_hh_l0"].shape[0]
    if h0 is None or mistake == "h0_ignored":
        h0 = np.zeros((2 * L, N, H))
    layer_input, finals = x, []
    for layer in range(L):
        def index(d: int) -> int:
            return d * L + layer if mistake == "h0_direction_major" else 2 * layer + d
        fwd, h_f = _layer_variant(layer_input, h0[index(0)], *_layer_weights(params, layer))
        rev_w = _layer_weights(params, layer, "" if mistake == "reverse_uses_forward_weights" else "_reverse")
        if mistake == "reverse_not_reversed":
            bwd, h_b = _layer_variant(layer_input, h0[index(1)], *rev_w)
        else:
            run, h_b = _layer_variant(layer_input[::-1], h0[index(1)], *rev_w)  # run[s] is step T-1-s
            bwd = run if mistake == "reverse_not_realigned" else run[::-1]
            if mistake == "h_n_reverse_at_last_step":
                h_b = run[0]
        halves = [bwd, fwd] if mistake == "directions_swapped_in_output" else [fwd, bwd]
        layer_input = np.concatenate(halves, axis=-1)
        finals += [h_f, h_b]
    h_n = np.stack(finals[0::2] + finals[1::2]) if mistake == "h_n_direction_major" else np.stack(finals)
    return layer_input, h_n


TOP_MISTAKES = ("bottom_layer_state", "backward_only", "forward_only", "top_directions_swapped",
                "h_n_view_misread", "directions_stacked")


def _top_variant(h_n: Array, L: int, bidirectional: bool, mistake: str | None = None) -> Array | None:
    if not bidirectional:
        if mistake is None:
            return h_n[-1]
        if mistake == "bottom_layer_state":
            return h_n[0]
        return None
    cat = lambda a, b: np.concatenate([a, b], axis=-1)  # noqa: E731
    if mistake is None:
        return cat(h_n[-2], h_n[-1])
    if mistake == "bottom_layer_state":
        return cat(h_n[0], h_n[1])
    if mistake == "backward_only":
        return h_n[-1]
    if mistake == "forward_only":
        return h_n[-2]
    if mistake == "top_directions_swapped":
        return cat(h_n[-1], h_n[-2])
    if mistake == "h_n_view_misread":
        v = h_n.reshape(2, L, *h_n.shape[1:])
        return cat(v[0, -1], v[1, -1])
    if mistake == "directions_stacked":
        return np.stack([h_n[-2], h_n[-1]])
    raise ValueError(mistake)


# --------------------------------------------------------------------------------------
# A1: one step, one layer, parameter count
# --------------------------------------------------------------------------------------

_SQUARE_NOTE = ("D == H on purpose: swapped weights and an untransposed W_ih run without a shape error only "
                "when D == H")
_SQUARE_STACK_NOTE = ("D == H on purpose: swapped weights, an untransposed W_ih, x_t fed to every layer and layer 0's "
                      "weights reused run without a shape error only when D == H")


def _step_probe(seed: int, k: int, N: int, D: int, H: int) -> Probe:
    rng = _rng(seed, 1, k)
    x, h_prev = rng.standard_normal((N, D)), rng.uniform(-0.9, 0.9, (N, H))
    W_ih, W_hh, b_ih, b_hh = _layer_params(rng, D, H)
    cell = nn.RNNCell(D, H, dtype=torch.float64)
    cell.load_state_dict({"weight_ih": torch.from_numpy(W_ih), "weight_hh": torch.from_numpy(W_hh),
                          "bias_ih": torch.from_numpy(b_ih), "bias_hh": torch.from_numpy(b_hh)})
    with torch.no_grad():
        expected = cell(torch.from_numpy(x), torch.from_numpy(h_prev)).numpy()
    args = (x, h_prev, W_ih, W_hh, b_ih, b_hh)
    variants = {m: _safe(lambda m=m: {"h": _step_variant(*args, mistake=m)}) for m in STEP_MISTAKES}
    return Probe(f"N={N}, D={D}, H={H}", args, {"h": expected}, variants,
                 _SQUARE_NOTE if D == H else "", square=D == H)


_STEP_TASK = Task("rnn_step", _unpack_array("h"), {"h": "(N, H)"}, FORWARD_IMPLEMENTATIONS,
                  hint="h = tanh(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).")


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
    return Probe(label, (x, h0, params), {"output": out, "h_n": h_n}, variants,
                 _SQUARE_NOTE if D == H else "", square=D == H)


_FORWARD_TASK = Task("rnn_forward", _unpack_tuple(("output", "h_n")), {"output": "(T, N, H)", "h_n": "(1, N, H)"},
                     FORWARD_IMPLEMENTATIONS)


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


COUNT_MISTAKES = ("one_bias", "bias_flag_ignored", "biases_not_counted", "w_hh_as_h_by_d", "w_ih_as_h_by_h",
                  "missing_w_hh")


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
    ("rnnlib.coursework.checks", "_count_variant"),
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
        probes.append(Probe(f"input_size={D}, hidden_size={H}, bias={bias}", (D, H, bias),
                            {"count": np.asarray(count)}, variants))
    return _diagnose(_COUNT_TASK, fn, probes, ("input_size", "hidden_size", "bias"))


def check_num_parameters(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` counts one layer's parameters right."""
    _raise(diagnose_num_parameters(fn, seed=seed, extended=extended))


# --------------------------------------------------------------------------------------
# A2: the stack, batch_first, bidirectional, the top layer's final states
# --------------------------------------------------------------------------------------


def _stack_probe(seed: int, k: int, T: int, N: int, D: int, H: int, L: int, with_h0: bool = True) -> Probe:
    rng = _rng(seed, 3, k)
    params = _stack_params(rng, D, H, L)
    x = rng.standard_normal((T, N, D))
    h0 = rng.uniform(-0.9, 0.9, (L, N, H)) if with_h0 else None
    out, h_n = _torch_forward(params, x, h0, L)

    def stack(m: str | None = None, sm: str | None = None) -> dict[str, Array]:
        o, h = _stack_variant(x, h0, params, L, mistake=m, step_mistake=sm)
        return {"output": o, "h_n": h}

    variants = {m: _safe(lambda m=m: stack(m)) for m in STACK_MISTAKES}
    variants.update({m: _safe(lambda m=m: stack(sm=m)) for m in LOOP_STEP_MISTAKES})
    label = f"T={T}, N={N}, D={D}, H={H}, num_layers={L}" + ("" if with_h0 else ", h0=None")
    return Probe(label, (x, h0, params, L), {"output": out, "h_n": h_n}, variants,
                 _SQUARE_STACK_NOTE if D == H else "", square=D == H)


_STACKED_TASK = Task("stacked_rnn_forward", _unpack_tuple(("output", "h_n")),
                     {"output": "(T, N, H)", "h_n": "(num_layers, N, H)"}, FORWARD_IMPLEMENTATIONS)


def diagnose_stacked_forward(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``stacked_rnn_forward(x (T, N, D), h0 (L, N, H) or None, params, num_layers)``.

    Returns the diagnosis of ``-> (output (T, N, H), h_n (L, N, H))`` against ``nn.RNN``.
    """
    sizes = [(5, 2, 6, 4, 3, True), (4, 3, 4, 4, 2, True), (3, 2, 3, 4, 2, False)]
    if extended:
        sizes += [(4, 2, 3, 5, 1, True), (1, 3, 2, 3, 4, True), (6, 1, 5, 2, 2, True)]
    probes = [_stack_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_STACKED_TASK, fn, probes, ("x", "h0", "params", "num_layers"))


def check_stacked_forward(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct ``stacked_rnn_forward``."""
    _raise(diagnose_stacked_forward(fn, seed=seed, extended=extended))


BATCH_FIRST_MISTAKES = ("input_reshaped", "input_reshaped#both", "output_reshaped", "output_not_transposed",
                        "h_n_batch_first", "batch_first_ignored")


def _batch_first_probe(seed: int, k: int, N: int, T: int, D: int, H: int, L: int, with_h0: bool = True) -> Probe:
    rng = _rng(seed, 4, k)
    params = _stack_params(rng, D, H, L)
    x_bf = rng.standard_normal((N, T, D))
    h0 = rng.uniform(-0.9, 0.9, (L, N, H)) if with_h0 else None
    out_tm, h_n = _torch_forward(params, np.ascontiguousarray(x_bf.transpose(1, 0, 2)), h0, L)
    expected = {"output": out_tm.transpose(1, 0, 2), "h_n": h_n}

    def run(x_tm: Array) -> tuple[Array, Array]:
        return _stack_variant(x_tm, h0, params, L)

    variants: dict[str, Any] = {}
    o, h = run(x_bf.reshape(T, N, D))
    variants["input_reshaped"] = {"output": o.transpose(1, 0, 2), "h_n": h}
    variants["input_reshaped#both"] = {"output": o.reshape(N, T, H), "h_n": h}
    variants["output_reshaped"] = {"output": out_tm.reshape(N, T, H), "h_n": h_n}
    variants["output_not_transposed"] = {"output": out_tm, "h_n": h_n}
    variants["h_n_batch_first"] = {"output": expected["output"], "h_n": h_n.transpose(1, 0, 2)}
    if h0 is None or N == T:
        o, h = run(x_bf)
        variants["batch_first_ignored"] = {"output": o, "h_n": h}
    label = f"N={N}, T={T}, D={D}, H={H}, num_layers={L}" + ("" if with_h0 else ", h0=None")
    return Probe(label, (x_bf, h0, params, L), expected, variants)


_BATCH_FIRST_TASK = Task("stacked_rnn_forward_batch_first", _unpack_tuple(("output", "h_n")),
                         {"output": "(N, T, H)", "h_n": "(num_layers, N, H)"}, FORWARD_IMPLEMENTATIONS,
                         hint="if check_stacked_forward fails too, fix stacked_rnn_forward first.")


def diagnose_batch_first(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``stacked_rnn_forward_batch_first(x (N, T, D), h0 (L, N, H) or None, params, num_layers)``.

    Expected: ``(output (N, T, H), h_n (L, N, H))``, as ``nn.RNN(..., batch_first=True)``.
    """
    sizes = [(3, 5, 2, 4, 2, True), (2, 4, 3, 3, 3, False)]
    if extended:
        sizes += [(1, 6, 2, 3, 2, True), (4, 1, 3, 2, 1, True)]
    probes = [_batch_first_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_BATCH_FIRST_TASK, fn, probes, ("x", "h0", "params", "num_layers"))


def check_batch_first(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct batch-first stacked forward."""
    _raise(diagnose_batch_first(fn, seed=seed, extended=extended))


def _bidirectional_probe(seed: int, k: int, T: int, N: int, D: int, H: int, L: int, with_h0: bool = True) -> Probe:
    rng = _rng(seed, 5, k)
    params = _stack_params(rng, D, H, L, bidirectional=True)
    x = rng.standard_normal((T, N, D))
    h0 = rng.uniform(-0.9, 0.9, (2 * L, N, H)) if with_h0 else None
    out, h_n = _torch_forward(params, x, h0, L, bidirectional=True)

    def run(m: str) -> dict[str, Array]:
        o, h = _bidirectional_variant(x, h0, params, L, m)
        return {"output": o, "h_n": h}

    variants = {m: _safe(lambda m=m: run(m)) for m in BIDIRECTIONAL_MISTAKES}
    label = f"T={T}, N={N}, D={D}, H={H}, num_layers={L}" + ("" if with_h0 else ", h0=None")
    return Probe(label, (x, h0, params, L), {"output": out, "h_n": h_n}, variants)


_BIDIRECTIONAL_TASK = Task("bidirectional_rnn_forward", _unpack_tuple(("output", "h_n")),
                           {"output": "(T, N, 2H)", "h_n": "(2 * num_layers, N, H)"}, FORWARD_IMPLEMENTATIONS)


def diagnose_bidirectional(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``bidirectional_rnn_forward(x (T, N, D), h0 (2L, N, H) or None, params, num_layers)``.

    Expected: ``(output (T, N, 2H), h_n (2L, N, H))``, as ``nn.RNN(..., bidirectional=True)``.
    """
    sizes = [(4, 2, 3, 5, 2, True), (5, 3, 2, 3, 3, True), (3, 2, 3, 4, 1, False)]
    if extended:
        sizes += [(1, 2, 3, 2, 2, True), (6, 1, 2, 4, 2, True)]
    probes = [_bidirectional_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_BIDIRECTIONAL_TASK, fn, probes, ("x", "h0", "params", "num_layers"))


def check_bidirectional(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct bidirectional stacked forward."""
    _raise(diagnose_bidirectional(fn, seed=seed, extended=extended))


def _top_probe(seed: int, k: int, L: int, bidirectional: bool, N: int, H: int) -> Probe:
    rng = _rng(seed, 6, k)
    dirs = 2 if bidirectional else 1
    h_n = rng.uniform(-1, 1, (L * dirs, N, H))
    expected = h_n.reshape(L, dirs, N, H)[-1].transpose(1, 0, 2).reshape(N, dirs * H)  # from the layout rule
    variants = {m: _safe(lambda m=m: {"features": _top_variant(h_n, L, bidirectional, m)}) for m in TOP_MISTAKES}
    variants = {m: v for m, v in variants.items() if v is not None and v["features"] is not None}
    return Probe(f"num_layers={L}, bidirectional={bidirectional}, N={N}, H={H}", (h_n, L, bidirectional),
                 {"features": expected}, variants)


_TOP_TASK = Task("top_layer_final_states", _unpack_array("features"), {"features": "(N, num_directions * H)"})


def diagnose_top_layer_states(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``top_layer_final_states(h_n (L*dirs, N, H), num_layers, bidirectional) -> (N, dirs*H)``."""
    cases = [(3, False, 2, 4), (3, True, 2, 4), (2, True, 2, 4), (1, True, 2, 4), (2, False, 2, 4)]
    if extended:
        cases += [(4, True, 5, 3), (4, False, 5, 3), (1, False, 3, 2)]
    probes = [_top_probe(seed, k, *c) for k, c in enumerate(cases)]
    return _diagnose(_TOP_TASK, fn, probes, ("h_n", "num_layers", "bidirectional"))


def check_top_layer_states(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` picks the top layer's final state(s) right."""
    _raise(diagnose_top_layer_states(fn, seed=seed, extended=extended))


# --------------------------------------------------------------------------------------
# A3: backpropagation through one step, one layer, a stack
# --------------------------------------------------------------------------------------

STEP_GRAD_KEYS = ("dx", "dh_prev", "dW_ih", "dW_hh", "db_ih", "db_hh")
LAYER_GRAD_KEYS = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")
STEP_BACKWARD_MISTAKES = ("no_tanh_derivative", "tanh_applied_twice", "derivative_at_h_prev", "dW_hh_uses_h",
                          "dh_prev_transposed", "dx_transposed", "dW_transposed", "db_not_summed", "db_mean")
LOOP_STEP_BACKWARD_MISTAKES = ("no_tanh_derivative", "tanh_applied_twice", "derivative_at_h_prev", "dW_hh_uses_h",
                               "dh_prev_transposed", "db_mean")


def _mistakes_module() -> Any:
    return importlib.import_module("rnnlib.coursework.mistakes")


def _step_backward_variant(dh: Array, cache: Mapping[str, Any], mistake: str | None = None) -> dict[str, Array]:
    """``rnn_step_backward`` with one mistake of :data:`STEP_BACKWARD_MISTAKES` (tanh only)."""
    if mistake == "no_tanh_derivative":
        return dict(_mistakes_module().cell_backward_without_activation_derivative(dh, dict(cache)))
    x, h_prev, h, W_ih, W_hh = (cache[k] for k in ("x", "h_prev", "h", "W_ih", "W_hh"))
    if mistake == "tanh_applied_twice":
        da = dh * (1.0 - np.tanh(h) ** 2)
    elif mistake == "derivative_at_h_prev":
        da = dh * (1.0 - h_prev ** 2)
    else:
        da = dh * (1.0 - h ** 2)
    dx = da @ W_ih.T if mistake == "dx_transposed" else da @ W_ih
    dh_prev = da @ W_hh.T if mistake == "dh_prev_transposed" else da @ W_hh
    if mistake == "dW_transposed":
        dW_ih, dW_hh = x.T @ da, h_prev.T @ da
    else:
        dW_ih, dW_hh = da.T @ x, da.T @ (h if mistake == "dW_hh_uses_h" else h_prev)
    db = da if mistake == "db_not_summed" else da.mean(axis=0) if mistake == "db_mean" else da.sum(axis=0)
    return {"dx": dx, "dh_prev": dh_prev, "dW_ih": dW_ih, "dW_hh": dW_hh, "db_ih": db, "db_hh": db.copy()}


def _cell_cache(x: Array, h_prev: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array) -> dict[str, Any]:
    from ..numpy_rnn import rnn_cell_forward

    return rnn_cell_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh)[1]


def _t(a: Array) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64)).requires_grad_(True)


def _step_backward_probe(seed: int, k: int, N: int, D: int, H: int) -> Probe:
    rng = _rng(seed, 7, k)
    x, h_prev = rng.standard_normal((N, D)), rng.uniform(-0.9, 0.9, (N, H))
    W_ih, W_hh, b_ih, b_hh = _layer_params(rng, D, H)
    dh = rng.standard_normal((N, H))
    cache = _cell_cache(x, h_prev, W_ih, W_hh, b_ih, b_hh)
    tx, th, tWi, tWh, tbi, tbh = map(_t, (x, h_prev, W_ih, W_hh, b_ih, b_hh))
    h = torch.tanh(tx @ tWi.T + tbi + th @ tWh.T + tbh)
    grads = torch.autograd.grad((h * torch.from_numpy(dh)).sum(), (tx, th, tWi, tWh, tbi, tbh))
    expected = {k_: g.numpy() for k_, g in zip(STEP_GRAD_KEYS, grads)}
    variants = {m: _safe(lambda m=m: _step_backward_variant(dh, cache, m)) for m in STEP_BACKWARD_MISTAKES}
    return Probe(f"N={N}, D={D}, H={H}", (dh, cache), expected, variants,
                 "D == H on purpose: dx = da @ W_ih.T runs without a shape error only when D == H" if D == H else "",
                 square=D == H)


_STEP_BACKWARD_TASK = Task("rnn_step_backward", _unpack_dict(STEP_GRAD_KEYS),
                           {"dx": "(N, D)", "dh_prev": "(N, H)", "dW_ih": "(H, D)", "dW_hh": "(H, H)",
                            "db_ih": "(H,)", "db_hh": "(H,)"}, BACKWARD_IMPLEMENTATIONS)


def diagnose_step_backward(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``rnn_step_backward(dh (N, H), cache) -> {dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh}``.

    ``cache`` is the dict of :func:`rnnlib.rnn_cell_forward` (keys ``x``, ``h_prev``, ``h``,
    ``W_ih``, ``W_hh``, ...). Reference: ``torch.autograd`` on the same step.
    """
    sizes = [(3, 4, 5), (2, 3, 3)] + ([(1, 2, 6), (4, 5, 5), (5, 1, 2)] if extended else [])
    probes = [_step_backward_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_STEP_BACKWARD_TASK, fn, probes, ("dh", "cache"))


def check_step_backward(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct ``rnn_step_backward``."""
    _raise(diagnose_step_backward(fn, seed=seed, extended=extended))


LAYER_BACKWARD_MISTAKES = ("no_tanh_derivative", "no_dh_next", "dh_n_ignored", "grads_not_accumulated",
                           "forward_in_time", "dh0_not_through_cell", "dx_reversed", "only_last_output")


def _layer_backward_variant(d_out: Array, dh_n: Array, caches: Sequence[Mapping[str, Any]], mistake: str | None = None,
                            step_mistake: str | None = None) -> dict[str, Array]:
    """BPTT through one layer, ``-> {dx (T, N, D), dh0 (N, H), dW_ih, dW_hh, db_ih, db_hh}``, with one mistake."""
    if mistake in ("no_tanh_derivative", "no_dh_next"):
        fn = _mistakes_module().MISTAKES["no activation derivative" if mistake == "no_tanh_derivative" else "no dh_next"]
        d_input, d_h0, grads = fn([list(caches)], d_out, dh_n[None])[:3]
        return {"dx": d_input, "dh0": d_h0[0], "dW_ih": grads["weight_ih_l0"], "dW_hh": grads["weight_hh_l0"],
                "db_ih": grads["bias_ih_l0"], "db_hh": grads["bias_hh_l0"]}
    T = len(caches)
    dh_next = np.zeros_like(dh_n) if mistake == "dh_n_ignored" else dh_n
    total: dict[str, Array] = {}
    dxs: list[Any] = [None] * T
    dh_at_0 = dh_next
    for t in (range(T) if mistake == "forward_in_time" else range(T - 1, -1, -1)):
        upstream = d_out[t] if (mistake != "only_last_output" or t == T - 1) else np.zeros_like(d_out[t])
        dh = upstream + dh_next
        if t == 0:
            dh_at_0 = dh
        step = _step_backward_variant(dh, caches[t], step_mistake)
        for key in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
            total[key] = step[key] if (key not in total or mistake == "grads_not_accumulated") else total[key] + step[key]
        dh_next = step["dh_prev"]
        dxs[t] = step["dx"]
    dx = np.stack(dxs)
    return {"dx": dx[::-1] if mistake == "dx_reversed" else dx,
            "dh0": dh_at_0 if mistake == "dh0_not_through_cell" else dh_next, **total}


def _torch_layer_grads(x: Array, h0: Array, weights: tuple[Array, Array, Array, Array], d_out: Array, dh_n: Array
                       ) -> dict[str, Array]:
    tx, th0, tWi, tWh, tbi, tbh = map(_t, (x, h0, *weights))
    h, outs = th0, []
    for t in range(x.shape[0]):
        h = torch.tanh(tx[t] @ tWi.T + tbi + h @ tWh.T + tbh)
        outs.append(h)
    loss = (torch.stack(outs) * torch.from_numpy(d_out)).sum() + (h * torch.from_numpy(dh_n)).sum()
    grads = torch.autograd.grad(loss, (tx, th0, tWi, tWh, tbi, tbh))
    return {k: g.numpy() for k, g in zip(LAYER_GRAD_KEYS, grads)}


def _layer_caches(x: Array, h0: Array, weights: tuple[Array, Array, Array, Array]) -> list[dict[str, Any]]:
    from ..numpy_rnn import rnn_cell_forward

    h, caches = h0, []
    for t in range(x.shape[0]):
        h, cache = rnn_cell_forward(x[t], h, *weights)
        caches.append(cache)
    return caches


def _layer_backward_probe(seed: int, k: int, T: int, N: int, D: int, H: int) -> Probe:
    rng = _rng(seed, 8, k)
    weights = _layer_params(rng, D, H)
    x, h0 = rng.standard_normal((T, N, D)), rng.uniform(-0.9, 0.9, (N, H))
    d_out, dh_n = rng.standard_normal((T, N, H)), rng.standard_normal((N, H))
    caches = _layer_caches(x, h0, weights)
    expected = _torch_layer_grads(x, h0, weights, d_out, dh_n)
    variants = {m: _safe(lambda m=m: _layer_backward_variant(d_out, dh_n, caches, m)) for m in LAYER_BACKWARD_MISTAKES}
    variants.update({f"{m}#loop": _safe(lambda m=m: _layer_backward_variant(d_out, dh_n, caches, step_mistake=m))
                     for m in LOOP_STEP_BACKWARD_MISTAKES if m != "no_tanh_derivative"})
    return Probe(f"T={T}, N={N}, D={D}, H={H}", (d_out, dh_n, caches), expected, variants)


_LAYER_BACKWARD_TASK = Task("rnn_backward", _unpack_dict(LAYER_GRAD_KEYS),
                            {"dx": "(T, N, D)", "dh0": "(N, H)", "dW_ih": "(H, D)", "dW_hh": "(H, H)",
                             "db_ih": "(H,)", "db_hh": "(H,)"}, BACKWARD_IMPLEMENTATIONS,
                            hint="if check_step_backward fails too, fix rnn_step_backward first.")


def diagnose_rnn_backward(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``rnn_backward(d_out (T, N, H), dh_n (N, H), caches) -> {dx, dh0, dW_ih, dW_hh, db_ih, db_hh}``.

    ``caches[t]`` is the :func:`rnnlib.rnn_cell_forward` cache of step ``t`` of one layer.
    Reference: ``torch.autograd`` through the same loop.
    """
    sizes = [(4, 2, 3, 5), (3, 3, 4, 4)] + ([(1, 2, 3, 2), (6, 1, 2, 3)] if extended else [])
    probes = [_layer_backward_probe(seed, k, *s) for k, s in enumerate(sizes)]
    return _diagnose(_LAYER_BACKWARD_TASK, fn, probes, ("d_out", "dh_n", "caches"))


def check_rnn_backward(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct one-layer ``rnn_backward``."""
    _raise(diagnose_rnn_backward(fn, seed=seed, extended=extended))


STACK_BACKWARD_MISTAKES = ("no_tanh_derivative", "no_dh_next", "dh_sent_down", "d_output_to_every_layer",
                           "dh_n_ignored", "grads_not_accumulated", "dx_reversed", "dh0_not_through_cell")
_FROM_RNNLIB_MISTAKES = {"no_tanh_derivative": "no activation derivative", "no_dh_next": "no dh_next",
                         "dh_sent_down": "dh sent down instead of dx",
                         "d_output_to_every_layer": "d_output sent to every layer"}


def _flatten_stack(dx: Array, dh0: Array, grads: Mapping[str, Array]) -> dict[str, Array]:
    return {"dx": dx, "dh0": dh0, **{f"grads[{k!r}]": v for k, v in grads.items()}}


def _stack_backward_variant(d_output: Array, d_h_n: Array, caches: Sequence[Sequence[Mapping[str, Any]]],
                            mistake: str | None = None) -> dict[str, Array]:
    """BPTT through a stack, flattened to ``{dx, dh0, grads['weight_ih_l0'], ...}``, with one mistake."""
    if mistake in _FROM_RNNLIB_MISTAKES:
        fn = _mistakes_module().MISTAKES[_FROM_RNNLIB_MISTAKES[mistake]]
        d_input, d_h0, grads = fn([list(c) for c in caches], d_output, d_h_n)[:3]
        return _flatten_stack(d_input, d_h0, grads)
    L = len(caches)
    upstream, d_h0, grads = d_output, [None] * L, {}
    for layer in range(L - 1, -1, -1):
        g = _layer_backward_variant(upstream, d_h_n[layer], caches[layer], mistake)
        d_h0[layer] = g["dh0"]
        for key, kind in (("dW_ih", "weight_ih"), ("dW_hh", "weight_hh"), ("db_ih", "bias_ih"), ("db_hh", "bias_hh")):
            grads[f"{kind}_l{layer}"] = g[key]
        upstream = g["dx"]
    order = [f"{k}_l{layer}" for layer in range(L) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return _flatten_stack(upstream, np.stack(d_h0), {k: grads[k] for k in order})


def _stack_backward_probe(seed: int, k: int, T: int, N: int, D: int, H: int, L: int) -> Probe:
    from ..explain.gradient_flow import stack_forward
    from ..numpy_rnn import NumpyRNN

    rng = _rng(seed, 9, k)
    params = _stack_params(rng, D, H, L)
    x, h0 = rng.standard_normal((T, N, D)), rng.uniform(-0.9, 0.9, (L, N, H))
    d_output, d_h_n = rng.standard_normal((T, N, H)), rng.standard_normal((L, N, H))
    model = NumpyRNN(D, H, L)
    model.load_state_dict(params)
    _, _, caches = stack_forward(model, x, h0)
    rnn = _torch_rnn(params, D, H, L).train()
    tx, th0 = _t(x), _t(h0)
    out, h_n = rnn(tx, th0)
    loss = (out * torch.from_numpy(d_output)).sum() + (h_n * torch.from_numpy(d_h_n)).sum()
    names = list(params)
    grads = torch.autograd.grad(loss, [tx, th0] + [getattr(rnn, n) for n in names])
    expected = _flatten_stack(grads[0].numpy(), grads[1].numpy(), {n: g.numpy() for n, g in zip(names, grads[2:])})
    variants = {m: _safe(lambda m=m: _stack_backward_variant(d_output, d_h_n, caches, m))
                for m in STACK_BACKWARD_MISTAKES}
    return Probe(f"T={T}, N={N}, D={D}, H={H}, L={L}", (d_output, d_h_n, caches), expected, variants)


def _unpack_stack_grads(result: Any) -> dict[str, Array]:
    if result is None:
        raise _Unpack("it returned None: did you forget `return dx, dh0, grads`?")
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise _Unpack("expected a tuple (dx, dh0, grads) with grads a dict keyed like the state dict "
                      f"('weight_ih_l0', ...), got {type(result).__name__}"
                      + (f" of {len(result)} elements" if isinstance(result, (tuple, list)) else ""))
    dx, dh0, grads = result
    if not isinstance(grads, Mapping):
        raise _Unpack(f"grads should be a dict keyed like the state dict ('weight_ih_l0', ...), "
                      f"got {type(grads).__name__}")
    return _flatten_stack(_to_array(dx, "dx"), _to_array(dh0, "dh0"),
                          {str(k): _to_array(v, f"grads[{k!r}]") for k, v in grads.items()})


_STACK_BACKWARD_TASK = Task("stacked_rnn_backward", _unpack_stack_grads,
                            {"dx": "(T, N, D)", "dh0": "(L, N, H)"}, BACKWARD_IMPLEMENTATIONS,
                            hint="if check_rnn_backward fails too, fix rnn_backward first.")


def diagnose_stacked_backward(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``stacked_rnn_backward(d_output (T, N, H), d_h_n (L, N, H), caches) -> (dx, dh0, grads)``.

    ``caches[l][t]`` is the cell cache of layer ``l`` at step ``t`` (as
    :func:`rnnlib.explain.gradient_flow.stack_forward` returns them); ``grads`` is keyed like the
    state dict. Reference: ``torch.autograd`` through ``nn.RNN``.
    """
    sizes = [(4, 2, 3, 5, 2), (3, 3, 4, 4, 2)] + ([(3, 2, 2, 3, 3), (1, 2, 3, 2, 2)] if extended else [])
    probes = [_stack_backward_probe(seed, k, *s) for k, s in enumerate(sizes)]

    def check_keys(outcome_parts: dict[str, Array], probe: Probe) -> str | None:
        want = [k for k in probe.expected if k.startswith("grads[")]
        have = [k for k in outcome_parts if k.startswith("grads[")]
        missing, extra = [k[7:-2] for k in want if k not in have], [k[7:-2] for k in have if k not in want]
        if missing or extra:
            return (f"`stacked_rnn_backward` returned grads with the wrong keys: missing {missing}, unexpected "
                    f"{extra}.\n  grads should be keyed like the state dict: {[k[7:-2] for k in want]}.")
        return None

    if not callable(fn):
        return f"`stacked_rnn_backward` should be a function, got {type(fn).__name__}"
    first = _run(_STACK_BACKWARD_TASK, fn, probes[0], ("d_output", "d_h_n", "caches"))
    if first.parts is not None:
        problem = check_keys(first.parts, probes[0])
        if problem:
            return problem
    return _diagnose(_STACK_BACKWARD_TASK, fn, probes, ("d_output", "d_h_n", "caches"))


def check_stacked_backward(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct ``stacked_rnn_backward``."""
    _raise(diagnose_stacked_backward(fn, seed=seed, extended=extended))


# --------------------------------------------------------------------------------------
# A4: a stacked RNN regressor for the adding problem
# --------------------------------------------------------------------------------------


def _adding_batch(T: int, N: int, seed: int, dtype: Any = np.float32) -> tuple[torch.Tensor, torch.Tensor]:
    from ..training.data import adding_problem

    x, y = adding_problem(T, N, np.random.default_rng(seed), dtype=dtype)
    return torch.from_numpy(x), torch.from_numpy(y)


def _structure_of(model: Any) -> dict[str, Any]:
    """What the A4 checks need to know of a model's structure, as plain data (collected in the kernel)."""
    info: dict[str, Any] = {"type": f"{type(model).__module__}.{type(model).__qualname__}",
                            "type_name": type(model).__name__, "is_module": isinstance(model, nn.Module)}
    rnn, fc = getattr(model, "rnn", None), getattr(model, "fc", None)
    info["rnn_type"], info["fc_type"] = type(rnn).__name__, type(fc).__name__
    if isinstance(rnn, nn.RNN):
        info["rnn"] = {"input_size": int(rnn.input_size), "hidden_size": int(rnn.hidden_size),
                       "num_layers": int(rnn.num_layers), "batch_first": bool(rnn.batch_first),
                       "bidirectional": bool(rnn.bidirectional), "nonlinearity": str(rnn.nonlinearity),
                       "bias": bool(rnn.bias)}
    if isinstance(fc, nn.Linear):
        info["fc"] = {"in_features": int(fc.in_features), "out_features": int(fc.out_features),
                      "bias": fc.bias is not None}
    if isinstance(model, nn.Module):
        params = list(model.parameters())
        info["dtype"] = str(params[0].dtype) if params else ""
    return info


def _state_of(model: Any) -> dict[str, Array]:
    """The ``rnn`` and ``fc`` weights of a model, as arrays (collected in the kernel)."""
    state: dict[str, Array] = {}
    for part in ("rnn", "fc"):
        module = getattr(model, part, None)
        if isinstance(module, nn.Module):
            for key, value in module.state_dict().items():
                if isinstance(value, torch.Tensor):
                    state[f"{part}.{key}"] = value.detach().cpu().numpy().copy()
    return state


def _structure_problem(info: dict[str, Any], name: str, *, input_size: int = 2, hidden_size: int | None = None,
                       num_layers: int | None = None, min_layers: int = 1) -> str | None:
    if not info.get("is_module"):
        return f"{name} should be an nn.Module, got {info.get('type_name')}"
    rnn, fc = info.get("rnn"), info.get("fc")
    if not isinstance(rnn, dict):
        return (f"{name} should keep its recurrent stack in an attribute `rnn` that is an nn.RNN "
                f"(got {info.get('rnn_type')}): the tests read it to check what the prediction is computed from")
    if not isinstance(fc, dict):
        return f"{name} should keep its output layer in an attribute `fc` that is an nn.Linear (got {info.get('fc_type')})"
    if rnn["input_size"] != input_size:
        return f"{name}.rnn has input_size={rnn['input_size']}; the adding problem has {input_size} features per step"
    if hidden_size is not None and rnn["hidden_size"] != hidden_size:
        return f"{name}.rnn has hidden_size={rnn['hidden_size']}, expected {hidden_size} (the hidden_size argument)"
    if num_layers is not None and rnn["num_layers"] != num_layers:
        return (f"{name}.rnn has num_layers={rnn['num_layers']}, expected {num_layers}: pass the num_layers argument "
                f"on to nn.RNN")
    if rnn["num_layers"] < min_layers:
        return (f"{name}.rnn has num_layers={rnn['num_layers']}; this assignment asks for a stacked RNN (at least "
                f"{min_layers})")
    if rnn["batch_first"]:
        return (f"{name}.rnn was built with batch_first=True, but the adding-problem batches are time-major "
                f"(T, N, 2): leave batch_first=False")
    if rnn["bidirectional"]:
        return f"{name}.rnn is bidirectional; this assignment uses a unidirectional stack"
    if fc["in_features"] != rnn["hidden_size"] or fc["out_features"] != 1:
        return (f"{name}.fc maps {fc['in_features']} -> {fc['out_features']} features; it should map the top layer's "
                f"state ({rnn['hidden_size']} features) to 1 number: nn.Linear(hidden_size, 1)")
    return None


_DTYPES = {"torch.float32": torch.float32, "torch.float64": torch.float64}


def _rebuild(info: dict[str, Any], state: Any) -> tuple[nn.RNN, nn.Linear]:
    """The model's ``rnn`` and ``fc``, rebuilt from its reported structure and weights (trusted side).

    Raises ``ValueError`` when they do not describe an ``nn.RNN`` and an ``nn.Linear`` of sane sizes.
    """
    rnn_info, fc_info, dtype = info.get("rnn"), info.get("fc"), _DTYPES.get(info.get("dtype", ""))
    if not isinstance(rnn_info, dict) or not isinstance(fc_info, dict) or dtype is None or not isinstance(state, dict):
        raise ValueError("not an nn.RNN and an nn.Linear in float32 or float64")
    sizes = [rnn_info.get(k) for k in ("input_size", "hidden_size", "num_layers")] + [fc_info.get("out_features")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in sizes) or sizes[2] > 16:
        raise ValueError(f"implausible sizes {sizes}")
    if rnn_info.get("nonlinearity") not in ("tanh", "relu"):
        raise ValueError("unknown nonlinearity")
    rnn = nn.RNN(sizes[0], sizes[1], sizes[2], nonlinearity=rnn_info["nonlinearity"], bias=bool(rnn_info.get("bias")),
                 dtype=dtype)
    fc = nn.Linear(sizes[1], sizes[3], bias=bool(fc_info.get("bias")), dtype=dtype)
    for module, prefix in ((rnn, "rnn."), (fc, "fc.")):
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not all(isinstance(v, np.ndarray) for v in own.values()):
            raise ValueError("weights are not arrays")
        module.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64)).to(dtype) for k, v in own.items()})
    return rnn.eval(), fc.eval()


def _predict(model: Any, x: Array, name: str) -> Array | str:
    """Kernel side: ``model(x)`` in the model's own dtype, as an array, or what went wrong."""
    try:
        params = list(model.parameters())
        dtype = params[0].dtype if params else torch.float32
    except Exception:  # noqa: BLE001
        dtype = torch.float32
    xt = torch.from_numpy(np.asarray(x)).to(dtype)
    try:
        with torch.no_grad():
            pred = model(xt)
    except NotImplementedError:
        return f"`{name}.forward` {NOT_IMPLEMENTED}: it raises NotImplementedError"
    except Exception as err:  # noqa: BLE001
        line = _user_frame(err)
        return f"calling {name}(x) with x of shape {tuple(xt.shape)} (T, N, 2) raised {type(err).__name__}: {err}" + (
            f"\n  at: {line}" if line else "")
    if not isinstance(pred, torch.Tensor):
        return f"{name}(x) should return a tensor of shape (N,), got {type(pred).__name__}"
    return pred.detach().cpu().numpy().copy()


def _forward_problem(pred: Any, info: dict[str, Any], state: Any, x: Array, name: str) -> str | None:
    """Is ``pred`` (what ``model(x)`` returned) ``fc(top layer's last state)``, computed here from the
    model's own weights? Names the mistake if not."""
    if isinstance(pred, str):
        return pred[:MAX_MESSAGE]
    if not isinstance(pred, np.ndarray) or pred.dtype.kind != "f":
        return f"{name}(x) should return a tensor of shape (N,)"
    try:
        rnn, fc = _rebuild(info, state)
    except (ValueError, RuntimeError, KeyError) as err:
        return f"the grader could not rebuild {name}'s rnn and fc from its weights ({_first_line(str(err))})"
    T, N = x.shape[0], x.shape[1]
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64)).to(next(rnn.parameters()).dtype)
    with torch.no_grad():
        out, h_n = rnn(xt)
        expected = fc(out[-1]).squeeze(-1).numpy()
        variants = {
            "the bottom layer's final state h_n[0] is read instead of the top layer's (h_n[-1] or output[-1])":
                fc(h_n[0]).squeeze(-1).numpy(),
            "the first step's output (output[0]) is read instead of the last one's (output[-1])":
                fc(out[0]).squeeze(-1).numpy(),
            "the outputs are averaged over time instead of reading the last step": fc(out.mean(0)).squeeze(-1).numpy(),
        }
    if tuple(pred.shape) != (N,):
        hint = ""
        if tuple(pred.shape) == (N, 1):
            hint = " Remove the trailing axis: .squeeze(-1)."
        elif tuple(pred.shape[:2]) == (T, N):
            hint = (" You apply fc at every step: the prediction is made once, after the last step "
                    "(fc(output[-1])).")
        return f"{name}(x) returned shape {tuple(pred.shape)}; expected (N,) = ({N},), one number per sequence.{hint}"

    def close(a: Array, b: Array) -> bool:
        return bool(np.all(np.isfinite(a))) and np.allclose(a, b, rtol=1e-5, atol=1e-6)

    if close(pred, expected):
        return None
    for what, value in variants.items():
        if close(pred, value):
            return f"{name}(x) is wrong: it matches what you get when {what}."
    return (f"{name}(x) is not fc(rnn(x)[0][-1]).squeeze(-1): the prediction must be the output layer applied "
            f"to the top layer's state after the last step (max |yours - expected| = "
            f"{float(np.max(np.abs(pred.astype(np.float64) - expected))):.1e})")


def _adding_model_plan(*, seed: int, extended: bool = False) -> tuple[dict[str, Any], Any]:
    configs = [(2, 8, 2), (2, 5, 3)] + ([(2, 3, 1), (2, 16, 4)] if extended else [])
    xs = [_adding_batch(6 + k, 3 + k, seed + 100 + k)[0].numpy() for k in range(len(configs))]
    return {"configs": [list(c) for c in configs], "torch_seed": seed, "xs": xs}, None


def _adding_model_collect(request: dict[str, Any], model_cls: Any) -> dict[str, Any]:
    name = getattr(model_cls, "__name__", "the model class")
    results = []
    for (D, H, L), x in zip(request["configs"], request["xs"]):
        entry: dict[str, Any] = {"name": f"{name}({D}, {H}, {L})"}
        results.append(entry)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                torch.manual_seed(request["torch_seed"])
                model = model_cls(D, H, L)
            except NotImplementedError:
                entry["problem"] = f"`{name}` {NOT_IMPLEMENTED}: building {name}({D}, {H}, {L}) raises NotImplementedError"
            except Exception as err:  # noqa: BLE001
                entry["problem"] = f"{name}(input_size={D}, hidden_size={H}, num_layers={L}) raised {type(err).__name__}: {err}"
            else:
                entry["info"] = _structure_of(model)
                entry["state"] = _state_of(model)
                if isinstance(model, nn.Module):
                    entry["pred"] = _predict(copy.deepcopy(model).eval(), x, entry["name"])
        entry["warnings"] = _caught(caught)
        if "problem" in entry:
            break
    return {"models": results}


def _adding_model_judge(plan_: Plan, result: Any) -> tuple[str | None, list[str]]:
    models = result.get("models") if isinstance(result, dict) else None
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        return "the grader could not read the result of the probes (malformed data)", []
    caught = list(dict.fromkeys(_text(w) for m in models for w in (m.get("warnings") or [])))[:5]
    for k, (D, H, L) in enumerate(plan_.request["configs"]):
        if k >= len(models):
            return "the grader received no result for some of the probes", caught
        m = models[k]
        name = _text(m.get("name"), f"AddingRegressor({D}, {H}, {L})")
        if "problem" in m:
            return _text(m["problem"]), caught
        info = m.get("info") if isinstance(m.get("info"), dict) else {}
        if info.get("type") == "rnnlib.training.models.TorchRNNRegressor":
            return f"{name} is rnnlib's TorchRNNRegressor; write the model yourself", caught
        problem = _structure_problem(info, name, input_size=D, hidden_size=H, num_layers=L)
        if problem:
            return problem, caught
        problem = _forward_problem(m.get("pred"), info, m.get("state"), plan_.request["xs"][k], name)
        if problem:
            return problem, caught
    return None, caught


def diagnose_adding_model(model_cls: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose an ``nn.Module`` class ``model_cls(input_size, hidden_size, num_layers)`` for the adding problem.

    Its instances must hold ``rnn`` (an ``nn.RNN``, time-major) and ``fc`` (``nn.Linear(H, 1)``),
    and ``forward(x (T, N, 2)) -> (N,)`` must be ``fc(output[-1]).squeeze(-1)``, computed here
    from the model's own weights (in the model's dtype).
    """
    p = plan("adding_model", seed=seed, extended=extended)
    diagnosis, caught = judge(p, collect(p.request, model_cls))
    _note_warnings(getattr(model_cls, "__name__", "the model class"), caught)
    return diagnosis


def check_adding_model(model_cls: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``model_cls`` builds a correct regressor."""
    _raise(diagnose_adding_model(model_cls, seed=seed, extended=extended))


def _reference_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                          max_norm: float, mistake: str | None = None) -> float:
    if mistake != "no_zero_grad":
        optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y, reduction="sum" if mistake == "sum_loss" else "mean")
    loss.backward()
    if mistake == "zero_grad_after_backward":
        optimizer.zero_grad()
    if mistake != "no_clipping":
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return float(loss.item())


TRAIN_STEP_MISTAKES: dict[str, str] = {
    "no_zero_grad": "optimizer.zero_grad() is never called, so each step adds its gradients to the previous "
                    "steps' (PyTorch accumulates .grad)",
    "no_clipping": "the gradient is not clipped before optimizer.step() (or is clipped after it, which is too "
                   "late): call nn.utils.clip_grad_norm_(model.parameters(), max_norm) between backward() and step()",
    "sum_loss": "the loss is the sum of squared errors instead of the mean (use nn.functional.mse_loss with its "
                "default reduction='mean')",
    "zero_grad_after_backward": "optimizer.zero_grad() is called after loss.backward(), which wipes the gradients "
                                "before the step (call it before the forward pass)",
}


def _params_vector(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def _train_step_model(state: Mapping[str, Array], lr: float) -> tuple[nn.Module, torch.optim.Optimizer]:
    from ..training.models import TorchRNNRegressor

    model = TorchRNNRegressor(2, 6, 2, dtype=torch.float64)
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in state.items()})
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def _train_step_plan(*, seed: int, extended: bool = False) -> tuple[dict[str, Any], Any]:
    from ..training.models import TorchRNNRegressor

    steps = 4 if extended else 3
    batches = [tuple(t.numpy() for t in _adding_batch(5, 4, seed + 200 + s, np.float64)) for s in range(steps)]
    torch.manual_seed(seed)
    model = TorchRNNRegressor(2, 6, 2, dtype=torch.float64)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    # max_norm far below the gradient norms of these batches: clipping always acts
    return {"state": state, "batches": batches, "max_norm": 0.05, "lr": 0.5}, None


def _train_step_collect(request: dict[str, Any], fn: Any) -> dict[str, Any]:
    if not callable(fn):
        return {"problem": f"`train_step` should be a function, got {type(fn).__name__}"}
    model, opt = _train_step_model(request["state"], request["lr"])
    losses: list[Any] = []
    params: list[Array] = []
    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for x, y in request["batches"]:
                loss = fn(model, opt, torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y)), request["max_norm"])
                if isinstance(loss, torch.Tensor):
                    losses.append({"tensor": True})
                elif isinstance(loss, bool) or not isinstance(loss, (float, int, np.floating)):
                    losses.append({"type": type(loss).__name__})
                else:
                    losses.append(float(loss))
                params.append(_params_vector(model))
        except NotImplementedError:
            out["problem"] = f"`train_step` {NOT_IMPLEMENTED}: it raises NotImplementedError"
        except Exception as err:  # noqa: BLE001
            line = _user_frame(err)
            out["problem"] = f"`train_step` raised {type(err).__name__}: {err}" + (f"\n  at: {line}" if line else "")
    out.update(losses=losses, params=params, warnings=_caught(caught))
    return out


def _train_step_judge(plan_: Plan, result: Any) -> tuple[str | None, list[str]]:
    if not isinstance(result, dict):
        return "the grader could not read the result of the probes (malformed data)", []
    caught = [_text(w) for w in (result.get("warnings") or [])][:5]
    if "problem" in result:
        return _text(result["problem"]), caught
    req = plan_.request
    steps, max_norm = len(req["batches"]), req["max_norm"]
    losses, params = result.get("losses"), result.get("params")
    if not isinstance(losses, list) or not isinstance(params, list) or len(losses) != steps or len(params) != steps:
        return "the grader could not read the result of the probes (malformed data)", caught
    for loss in losses:
        if isinstance(loss, dict) and loss.get("tensor"):
            return ("`train_step` returns a tensor; return the loss as a Python float with loss.item() (a tensor "
                    "would keep the whole autograd graph alive)"), caught
        if isinstance(loss, dict):
            return f"`train_step` should return the loss as a float, got {_text(loss.get('type'), '?')}", caught
        if not isinstance(loss, (int, float)):
            return "the grader could not read the result of the probes (malformed data)", caught
    if not all(isinstance(p, np.ndarray) and p.dtype.kind == "f" for p in params):
        return "the grader could not read the result of the probes (malformed data)", caught

    def trajectory(mistake: str | None) -> tuple[list[float], list[np.ndarray]]:
        model, opt = _train_step_model(req["state"], req["lr"])
        ls, ps = [], []
        for x, y in req["batches"]:
            ls.append(_reference_train_step(model, opt, torch.from_numpy(x), torch.from_numpy(y), max_norm, mistake))
            ps.append(_params_vector(model))
        return ls, ps

    ref_losses, ref_params = trajectory(None)
    variants = {m: trajectory(m) for m in TRAIN_STEP_MISTAKES}

    def same_params(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=1e-12))

    def matches(trace: tuple[list[float], list[np.ndarray]], upto: int) -> bool:
        ls, ps = trace
        return all(math.isclose(float(losses[i]), ls[i], rel_tol=1e-9, abs_tol=1e-12)
                   and same_params(params[i], ps[i]) for i in range(upto))

    initial = _params_vector(_train_step_model(req["state"], req["lr"])[0])
    for s in range(steps):
        loss_ok = math.isclose(float(losses[s]), ref_losses[s], rel_tol=1e-9, abs_tol=1e-12)
        params_ok = same_params(params[s], ref_params[s])
        if loss_ok and params_ok:
            continue
        found = [m for m, trace in variants.items() if matches(trace, s + 1)]
        where = f"on step {s + 1} of {steps} consecutive calls"
        if found:
            return (f"`train_step` is wrong {where}: it behaves as if "
                    + "; or ".join(TRAIN_STEP_MISTAKES[m] for m in found) + "."), caught
        if not loss_ok:
            return (f"`train_step` returns the loss {float(losses[s]):.6f} {where}; expected {ref_losses[s]:.6f}, the "
                    "mean squared error of model(x) against y before the update"), caught
        if same_params(params[s], params[s - 1] if s else initial):
            return (f"`train_step` does not change the parameters {where}: call loss.backward() and "
                    "optimizer.step()"), caught
        return (f"`train_step` updates the parameters differently from zero_grad -> mse_loss -> backward -> "
                f"clip_grad_norm_(max_norm) -> step {where} (max |yours - expected| = "
                f"{float(np.max(np.abs(params[s] - ref_params[s]))) if params[s].shape == ref_params[s].shape else float('nan'):.1e})"), caught
    return None, caught


def diagnose_train_step(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``train_step(model, optimizer, x (T, N, 2), y (N,), max_norm) -> float``.

    One step: zero the gradients, mean squared error of ``model(x)`` against ``y``,
    backward, clip the global gradient norm to ``max_norm``, optimizer step; returns the
    loss (a Python float, before the update). Checked on rnnlib's ``TorchRNNRegressor``
    in float64 with SGD, over ``3`` consecutive steps, against the same steps done here.
    Warnings the function raises are caught (and shown), not failures.
    """
    p = plan("train_step", seed=seed, extended=extended)
    diagnosis, caught = judge(p, collect(p.request, fn))
    _note_warnings("train_step", caught)
    return diagnosis


def check_train_step(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct ``train_step``."""
    _raise(diagnose_train_step(fn, seed=seed, extended=extended))


def heldout_adding_mse(model: nn.Module, *, seq_len: int, num: int = 2000, seed: int = 2024) -> float:
    """Mean squared error of a copy of ``model`` (eval mode, no gradients) on fresh adding-problem data."""
    dtype = next(model.parameters()).dtype
    x, y = _adding_batch(seq_len, num, seed, np.float64 if dtype == torch.float64 else np.float32)
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        return float(nn.functional.mse_loss(probe(x), y))


def _trained_plan(*, seed: int = 2024, extended: bool = False, seq_len: int = 20, threshold: float = 0.05,
                  num: int = 2000) -> tuple[dict[str, Any], Any]:
    x, y = _adding_batch(seq_len, num, seed, np.float64)
    x_small = _adding_batch(seq_len, 8, seed + 1, np.float64)[0].numpy()
    # The held-out sequences stay here: the error is measured on a model rebuilt from the learner's
    # weights, so the kernel needs none of them (and the adding problem's targets follow from its
    # inputs, so held-out inputs in the kernel could be trained on).
    return {"x_small": x_small}, {"x": x.numpy(), "y": y.numpy(), "seq_len": seq_len, "threshold": threshold,
                                                   "num": num}


def _trained_collect(request: dict[str, Any], model: Any, reported_val_mse: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"info": _structure_of(model)}
    if isinstance(reported_val_mse, torch.Tensor) and reported_val_mse.numel() == 1:
        reported_val_mse = reported_val_mse.item()
    if isinstance(reported_val_mse, bool) or not isinstance(reported_val_mse, (float, int, np.floating)):
        out["reported"] = {"type": type(reported_val_mse).__name__, "repr": repr(reported_val_mse)[:80]}
    else:
        out["reported"] = float(reported_val_mse)
    if isinstance(model, nn.Module):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["state"] = _state_of(model)
            probe = copy.deepcopy(model).eval()
            out["pred_small"] = _predict(probe, request["x_small"], "trained_model")
        out["warnings"] = _caught(caught)
    return out


def _trained_judge(plan_: Plan, result: Any) -> tuple[str | None, list[str]]:
    if not isinstance(result, dict) or not isinstance(result.get("info"), dict):
        return "the grader could not read the result of the probes (malformed data)", []
    caught = [_text(w) for w in (result.get("warnings") or [])][:5]
    info, private = result["info"], plan_.private
    problem = _structure_problem(info, "trained_model", min_layers=2)
    if problem:
        return problem, caught
    reported = result.get("reported")
    if not isinstance(reported, (int, float)) or isinstance(reported, bool) or not math.isfinite(float(reported)):
        what = reported if isinstance(reported, dict) else {}
        return (f"final_val_mse should be your validation mean squared error as a float, got "
                f"{_text(what.get('type'), type(reported).__name__)} ({_text(what.get('repr'), repr(reported))})"), caught
    problem = _forward_problem(result.get("pred_small"), info, result.get("state"), plan_.request["x_small"],
                               "trained_model")
    if problem:
        return problem, caught
    # The error is measured on a model rebuilt here from the learner's weights: the kernel's own
    # predictions are never used for it.
    rnn, fc = _rebuild(info, result.get("state"))
    dtype = next(rnn.parameters()).dtype
    x = torch.from_numpy(private["x"]).to(dtype)
    y = torch.from_numpy(private["y"]).to(dtype)
    with torch.no_grad():
        out, _ = rnn(x)
        mse = float(nn.functional.mse_loss(fc(out[-1]).squeeze(-1), y))
    num, seq_len, threshold = private["num"], private["seq_len"], private["threshold"]
    if not math.isfinite(mse):
        return "trained_model predicts NaN or inf on held-out data: the training diverged (lower the learning rate?)", caught
    if mse >= threshold:
        return (f"On {num} fresh held-out sequences of length {seq_len}, trained_model's mean squared error is "
                f"{mse:.4f}, not below the threshold {threshold} (you reported final_val_mse = "
                f"{float(reported):.4f}). For scale: always answering 1.0 scores 1/6 = 0.1667. Train longer "
                "or with a larger learning rate, keep gradient clipping, and evaluate on data the model has not "
                "trained on."), caught
    return None, caught


def diagnose_trained_adding_model(model: Any, reported_val_mse: Any, *, seq_len: int = 20, threshold: float = 0.05,
                                  num: int = 2000, seed: int = 2024) -> str | None:
    """Diagnose a trained adding-problem model: a stacked ``nn.RNN`` whose held-out MSE is below ``threshold``.

    The MSE is recomputed here on ``num`` fresh sequences of length ``seq_len`` drawn with
    ``seed`` (data the model has never seen), by an ``nn.RNN`` and ``nn.Linear`` rebuilt from
    the model's weights; ``reported_val_mse`` (the learner's own number) only appears in the
    message.
    """
    p = plan("trained_adding_model", seed=seed, seq_len=seq_len, threshold=threshold, num=num)
    diagnosis, caught = judge(p, collect(p.request, model, reported_val_mse))
    _note_warnings("trained_model", caught)
    return diagnosis


def check_trained_adding_model(model: Any, reported_val_mse: Any, *, seq_len: int = 20, threshold: float = 0.05,
                               num: int = 2000, seed: int = 2024) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``model`` beats ``threshold`` on held-out data."""
    _raise(diagnose_trained_adding_model(model, reported_val_mse, seq_len=seq_len, threshold=threshold, num=num,
                                         seed=seed))


_CUSTOM: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    "adding_model": (_adding_model_plan, _adding_model_collect, _adding_model_judge),
    "train_step": (_train_step_plan, _train_step_collect, _train_step_judge),
    "trained_adding_model": (_trained_plan, _trained_collect, _trained_judge),
}


# --------------------------------------------------------------------------------------
# Across the grader's trust boundary: plan (trusted), collect (the submission's kernel), judge (trusted)
# --------------------------------------------------------------------------------------
#
# Every check above can run in one process (the notebooks' visible tests do that). The
# local grader splits it: the trusted grader *plans* the probes (from a seed the notebook
# cannot know) and keeps the correct answers and the mistakes' answers to itself; the
# submission's kernel *collects* what the learner's code returns on the probe inputs, as
# plain data (rnnlib.coursework.wire); the trusted grader *judges* that data with the same diagnosis
# code. The kernel never sees an expected value, and nothing it patches can reach the
# judgement. ``plan``/``judge`` replay the ``diagnose_*`` functions unchanged: in planning
# mode ``_diagnose`` records the probes instead of calling the learner's function, and in
# judging mode ``_run`` returns the outcome the kernel reported for each probe.

_OUTCOME_KINDS = ("ok", "not_implemented", "off_limits", "exception", "unpack", "mutated", "not_callable")
MAX_MESSAGE = 4000  # characters of a message coming back from the kernel


class _Planned(Exception):
    """Raised by ``_diagnose`` in planning mode, once the probes are recorded."""


@dataclass
class _Session:
    mode: str  # "plan" | "replay"
    task: Task | None = None
    probes: list[Probe] = field(default_factory=list)
    arg_names: tuple[str, ...] = ()
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def planned(self, task: Task, probes: list[Probe], arg_names: tuple[str, ...]) -> None:
        labels = [p.label for p in probes]
        assert len(set(labels)) == len(labels), f"probe labels must be unique: {labels}"
        self.task, self.probes, self.arg_names = task, probes, arg_names
        raise _Planned

    def outcome(self, probe: Probe) -> Outcome:
        if self.mode == "plan":  # a check that peeks at one outcome before _diagnose (stacked_backward)
            return Outcome(kind="exception", problem="")
        o = self.outcomes.get(probe.label)
        if o is None:
            return Outcome(kind="exception", problem=(
                f"the grader received no result for the probe with {probe.label} (the submission's kernel "
                "did not report it)"))
        return copy.copy(o)


_LOCAL = threading.local()  # one planning/judging session per thread: graders may run several at once


def _current_session() -> _Session | None:
    return getattr(_LOCAL, "session", None)


@contextmanager
def _in_session(session: _Session) -> Iterator[_Session]:
    previous = _current_session()
    _LOCAL.session = session
    try:
        yield session
    finally:
        _LOCAL.session = previous


def _placeholder(*args: Any, **kwargs: Any) -> Any:
    """Stands in for the learner's function on the trusted side; it is never called."""
    raise AssertionError("the trusted side never calls learner code")


def _note_warnings(name: str, caught: list[str]) -> None:
    """In the notebook, tell the learner about warnings their function raised (they do not fail a test).

    Printed to stdout on purpose: nbgrader fails a test cell that writes to stderr, and a
    warning such as torch's "Converting a tensor with requires_grad=True to a scalar" is not
    a wrong answer.
    """
    if _current_session() is not None or not caught:
        return
    seen = list(dict.fromkeys(caught))
    print(f"note: `{name}` raised {'a warning' if len(seen) == 1 else 'warnings'} while the tests called it "
          "(this does not fail the test, but read it):")
    for text in seen[:5]:
        print(f"  {text}")


@dataclass
class Plan:
    """One check's probes, planned on the trusted side.

    Attributes:
        check: the check's name (``"rnn_step"`` for :func:`check_rnn_step`).
        request: plain data for the kernel (the probe inputs; no expected values).
        private: what only the trusted side keeps (probes with answers, targets).
    """

    check: str
    seed: int
    extended: bool
    kwargs: dict[str, Any]
    request: dict[str, Any]
    private: Any = None


def checks_available() -> list[str]:
    """The names ``x`` of every ``check_x`` the grader can plan and judge."""
    return sorted(n[len("check_"):] for n in __all__ if n.startswith("check_"))


def _diagnose_fn(check: str) -> Callable[..., str | None]:
    if check not in checks_available():
        raise KeyError(f"unknown check {check!r}; known: {checks_available()}")
    return cast(Callable[..., "str | None"], globals()[f"diagnose_{check}"])


def plan(check: str, *, seed: int, extended: bool = False, **kwargs: Any) -> Plan:
    """Plan the probes of ``check_<check>`` (trusted side): inputs for the kernel, answers kept here."""
    if check in _CUSTOM:
        request, private = _CUSTOM[check][0](seed=seed, extended=extended, **kwargs)
        return Plan(check, seed, extended, dict(kwargs), {"check": check, **request}, private)
    session = _Session("plan")
    with _in_session(session):
        try:
            _diagnose_fn(check)(_placeholder, seed=seed, extended=extended, **kwargs)
        except _Planned:
            pass
    assert session.task is not None, f"check {check!r} did not plan any probe"
    request = {"check": check, "task": session.task.name, "arg_names": list(session.arg_names),
               "probes": [{"label": p.label, "args": p.args} for p in session.probes]}
    return Plan(check, seed, extended, dict(kwargs), request, session.probes)


_TASKS: dict[str, Task] = {}  # filled below: every Task object of this module, by name


def collect(request: dict[str, Any], *objects: Any) -> dict[str, Any]:
    """Kernel side: run the learner's ``objects`` (a function, a class, a model) on the probe inputs.

    Returns plain data (arrays, numbers, strings) for :func:`judge`; nothing of it is trusted.
    """
    check = request["check"]
    if check in _CUSTOM:
        return _CUSTOM[check][1](request, *objects)
    task = _TASKS[request["task"]]
    fn = objects[0]
    if not callable(fn):
        return {"not_callable": f"`{task.name}` should be a function, got {type(fn).__name__}: did you overwrite "
                                f"its name?"}
    outcomes = {}
    for p in request["probes"]:
        probe = Probe(p["label"], tuple(p["args"]), {})
        o = _call(task, fn, probe, tuple(request["arg_names"]))
        outcomes[p["label"]] = {"kind": o.kind, "problem": o.problem, "parts": o.parts, "warnings": o.warnings}
        if o.kind in ("not_implemented", "off_limits", "mutated"):
            break  # the diagnosis stops there too
    return {"outcomes": outcomes}


def _text(value: Any, default: str = "") -> str:
    return value[:MAX_MESSAGE] if isinstance(value, str) else default


def _outcome_from(data: Any) -> Outcome:
    """An :class:`Outcome` from the kernel's data, validated (anything malformed is reported as such)."""
    if not isinstance(data, dict) or data.get("kind") not in _OUTCOME_KINDS:
        return Outcome(kind="unpack", problem="the grader could not read this result (malformed data)")
    parts = data.get("parts")
    if data["kind"] == "ok":
        if not isinstance(parts, dict) or not parts or not all(
                isinstance(k, str) and isinstance(v, np.ndarray) for k, v in parts.items()):
            return Outcome(kind="unpack", problem="the grader could not read this result (malformed data)")
        return Outcome(parts=dict(parts), warnings=[_text(w) for w in data.get("warnings") or []][:5])
    return Outcome(problem=_text(data.get("problem"), "(no message)"), kind=data["kind"],
                   warnings=[_text(w) for w in data.get("warnings") or []][:5])


def judge(plan_: Plan, result: Any) -> tuple[str | None, list[str]]:
    """Trusted side: the diagnosis of the kernel's ``result`` for ``plan_`` (``None`` when correct),
    and the warnings the learner's code raised."""
    if plan_.check in _CUSTOM:
        return _CUSTOM[plan_.check][2](plan_, result)
    if isinstance(result, dict) and isinstance(result.get("not_callable"), str):
        return _text(result["not_callable"]), []
    raw = result.get("outcomes") if isinstance(result, dict) else None
    if not isinstance(raw, dict):
        return "the grader could not read the result of the probes (malformed data)", []
    outcomes = {str(k): _outcome_from(v) for k, v in raw.items()}
    with _in_session(_Session("replay", outcomes=outcomes)):
        diagnosis = _diagnose_fn(plan_.check)(_placeholder, seed=plan_.seed, extended=plan_.extended, **plan_.kwargs)
    caught = list(dict.fromkeys(w for o in outcomes.values() for w in o.warnings))
    return diagnosis, caught[:5]


for _name, _value in list(globals().items()):
    if isinstance(_value, Task):
        _TASKS[_value.name] = _value


# --------------------------------------------------------------------------------------
# Refereed checks: the hidden tests plan and judge in a separate, isolated process
# --------------------------------------------------------------------------------------


def _refereed(check: str, objects: tuple, kwargs: dict[str, Any]) -> str | None:
    """Diagnose in the referee process (rnnlib/coursework/referee.py): only ``collect`` runs in this process.

    The referee lives in rnnlib.coursework.referee, which the notebooks do not reload, so one referee serves
    every hidden test of a kernel."""
    import json
    import tempfile
    from pathlib import Path

    from .referee import referee_check

    kwargs = {k: v for k, v in kwargs.items() if k != "seed"}  # the referee draws its own
    with tempfile.TemporaryDirectory(prefix="rnn-referee-") as tmp:
        folder = Path(tmp)
        (folder / "spec.json").write_text(json.dumps({"check": check, "kwargs": kwargs}), encoding="utf8")
        verdict = referee_check(folder, lambda request: collect(request, *objects))
    _note_warnings(check, verdict.get("warnings") or [])
    return verdict.get("diagnosis")


def _with_referee(name: str) -> None:
    original = globals()[name]
    check = name[len("check_"):]

    def refereed_check(*objects: Any, refereed: bool = False, **kwargs: Any) -> None:
        if not refereed:
            return original(*objects, **kwargs)
        _raise(_refereed(check, objects, kwargs))

    refereed_check.__name__ = refereed_check.__qualname__ = name
    refereed_check.__doc__ = (original.__doc__ or "") + (
        "\n\n    With ``refereed=True`` (the hidden tests), the probes are planned and judged in a separate "
        "\n    process with a seed of its own (rnnlib/coursework/referee.py); only the learner's code runs here.")
    globals()[name] = refereed_check


for _name in [n for n in __all__ if n.startswith("check_")]:
    _with_referee(_name)
