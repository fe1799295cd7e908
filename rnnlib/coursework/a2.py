"""A2 (chapters/coursework/A2_stacked_forward.ipynb): the stack, batch_first, bidirectional, the top layer's states.

The checks of ``stacked_rnn_forward`` (:func:`check_stacked_forward`),
``stacked_rnn_forward_batch_first`` (:func:`check_batch_first`), ``bidirectional_rnn_forward``
(:func:`check_bidirectional`) and ``top_layer_final_states`` (:func:`check_top_layer_states`),
each with its ``diagnose_*`` twin; their classic mistakes and known-wrong variants (built on
A1's one-layer variant). The machinery is :mod:`rnnlib.coursework.engine`'s; the notebook
imports these through :mod:`rnnlib.coursework.checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .a1 import LOOP_STEP_MISTAKES, _layer_variant
from .engine import (
    FORWARD_IMPLEMENTATIONS,
    Array,
    Mistake,
    Probe,
    Task,
    _diagnose,
    _layer_weights,
    _raise,
    _rng,
    _safe,
    _stack_params,
    _torch_forward,
    _unpack_array,
    _unpack_tuple,
    add_mistakes,
    register,
)

__all__ = [
    "check_batch_first",
    "check_bidirectional",
    "check_stacked_forward",
    "check_top_layer_states",
    "diagnose_batch_first",
    "diagnose_bidirectional",
    "diagnose_stacked_forward",
    "diagnose_top_layer_states",
]


# --------------------------------------------------------------------------------------
# The classic mistakes of the stack, batch_first, bidirectional and the top layer
# --------------------------------------------------------------------------------------

add_mistakes(
    {
        # ---- the stack (A2) ----
        "x_to_every_layer": Mistake(
            "every layer reads the input x_t (layer l >= 1 must read the output of layer l-1 at the same step)",
            "feed layer l the states of layer l-1: layer_input = output_of_previous_layer.",
        ),
        "layer0_weights_everywhere": Mistake(
            "every layer uses layer 0's weights (weight_ih_l0, ...) instead of its own",
            "layer l uses weight_ih_l{l}, weight_hh_l{l}, bias_ih_l{l}, bias_hh_l{l}.",
        ),
        "h0_first_layer_only": Mistake(
            "every layer starts from h0[0] instead of its own initial state h0[l]", "layer l starts from h0[l]."
        ),
        "state_passed_between_layers": Mistake(
            "layer l starts from the final state of layer l-1 instead of h0[l]",
            "each layer has its own initial state h0[l]; only outputs go up the stack.",
        ),
        "output_bottom_layer": Mistake(
            "output holds the states of the bottom layer (layer 0) instead of the top layer",
            "output is the top layer's states at every step (the last layer's outputs).",
        ),
        "output_all_layers": Mistake(
            "output concatenates every layer's states, (T, N, L*H), instead of only the top layer's (T, N, H)",
            "return only the top layer's states as output; the other layers appear only in h_n.",
        ),
        "h_n_reversed_layers": Mistake(
            "h_n lists the layers top first (h_n[0] is the top layer)",
            "h_n[l] is layer l, bottom first: h_n[-1] is the top layer.",
        ),
        "h_n_top_only": Mistake(
            "h_n holds only the top layer's final state",
            "h_n holds the final state of every layer: shape (num_layers, N, H).",
        ),
        # ---- batch_first (A2) ----
        "input_reshaped": Mistake(
            "the (N, T, D) input is reshaped to (T, N, D) instead of transposed",
            "reshape keeps the memory order and mixes sequences and steps; swap the axes with "
            "x.transpose(1, 0, 2) (np.swapaxes(x, 0, 1)).",
        ),
        "output_reshaped": Mistake(
            "the (T, N, H) output is reshaped to (N, T, H) instead of transposed",
            "use output.transpose(1, 0, 2), not reshape.",
        ),
        "output_not_transposed": Mistake(
            "the output is returned time-major, (T, N, H)",
            "with batch_first the output is (N, T, H): transpose it back.",
        ),
        "h_n_batch_first": Mistake(
            "h_n is transposed to (N, L, H)",
            "h_n is (num_layers, N, H) whatever batch_first says (h0 too): leave it alone.",
        ),
        "batch_first_ignored": Mistake(
            "the batch-first input is fed as if it were time-major (its batch axis read as time)",
            "transpose x to (T, N, D) before the stacked forward pass and the output back after it.",
        ),
        # ---- bidirectional (A2) ----
        "reverse_not_realigned": Mistake(
            "the reverse direction's outputs are not flipped back in time: output[t] pairs the forward state of "
            "step t with the backward state of step T-1-t",
            "store the reverse direction's state computed at step t in slot t (or flip its outputs back with "
            "[::-1]) before concatenating.",
        ),
        "directions_swapped_in_output": Mistake(
            "the two halves of the output are [backward, forward] instead of [forward, backward]",
            "concatenate the forward states first: np.concatenate([fwd, bwd], axis=-1).",
        ),
        "reverse_uses_forward_weights": Mistake(
            "the reverse direction uses the forward weights instead of the *_reverse ones",
            "the reverse direction of layer l uses weight_ih_l{l}_reverse, weight_hh_l{l}_reverse, "
            "bias_ih_l{l}_reverse, bias_hh_l{l}_reverse.",
        ),
        "reverse_not_reversed": Mistake(
            "the reverse direction reads the sequence left to right",
            "the reverse direction starts at t = T-1 and ends at t = 0.",
        ),
        "h0_direction_major": Mistake(
            "h0 is indexed direction-major, h0[d*L + l], instead of h0[2*l + d]",
            "the first axis of h0 and h_n is layer * num_directions + direction.",
        ),
        "h_n_direction_major": Mistake(
            "h_n is ordered direction-major (all forward layers, then all backward layers)",
            "h_n[2*l + d] is layer l, direction d (0 forward, 1 backward).",
        ),
        "h_n_reverse_at_last_step": Mistake(
            "the reverse direction's final state is taken at t = T-1, where it has read one step, instead of t = 0",
            "the reverse direction finishes at t = 0: its final state is its state at step 0.",
        ),
        # ---- the top layer's final states (A2) ----
        "bottom_layer_state": Mistake(
            "the bottom layer's final state (h_n[0], or h_n[0] and h_n[1] bidirectional) is taken instead of "
            "the top layer's",
            "h_n is bottom first: the top layer is h_n[-1] (unidirectional) or h_n[-2] and h_n[-1] (bidirectional).",
        ),
        "backward_only": Mistake(
            "only h_n[-1] is taken: for a bidirectional RNN that is only the top layer's backward direction",
            "concatenate both directions of the top layer: np.concatenate([h_n[-2], h_n[-1]], axis=-1).",
        ),
        "forward_only": Mistake(
            "only the top layer's forward direction, h_n[-2], is taken",
            "concatenate both directions of the top layer: np.concatenate([h_n[-2], h_n[-1]], axis=-1).",
        ),
        "top_directions_swapped": Mistake(
            "the top layer's two directions are concatenated as [backward, forward]",
            "forward first: np.concatenate([h_n[-2], h_n[-1]], axis=-1).",
        ),
        "h_n_view_misread": Mistake(
            "h_n is split as (num_directions, num_layers, N, H); its first axis is layer * num_directions + "
            "direction, so the right split is (num_layers, num_directions, N, H)",
            "h_n.reshape(num_layers, num_directions, N, H)[-1] is the top layer.",
        ),
        "directions_stacked": Mistake(
            "the two directions are stacked, (2, N, H), instead of concatenated, (N, 2H)",
            "np.concatenate([h_n[-2], h_n[-1]], axis=-1).",
        ),
    }
)


# --------------------------------------------------------------------------------------
# Known-wrong variants of the stack, the bidirectional stack and the top layer's states
# --------------------------------------------------------------------------------------

STACK_MISTAKES = (
    "x_to_every_layer",
    "layer0_weights_everywhere",
    "h0_first_layer_only",
    "state_passed_between_layers",
    "output_bottom_layer",
    "output_all_layers",
    "h_n_reversed_layers",
    "h_n_top_only",
    "h_n_top_only#3d",
    "h0_ignored",
)


def _stack_variant(
    x: Array,
    h0: Array | None,
    params: Mapping[str, Array],
    L: int,
    mistake: str | None = None,
    step_mistake: str | None = None,
) -> tuple[Array, Array]:
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


BIDIRECTIONAL_MISTAKES = (
    "reverse_not_realigned",
    "directions_swapped_in_output",
    "reverse_uses_forward_weights",
    "reverse_not_reversed",
    "h0_direction_major",
    "h_n_direction_major",
    "h_n_reverse_at_last_step",
    "h0_ignored",
)


def _bidirectional_variant(
    x: Array, h0: Array | None, params: Mapping[str, Array], L: int, mistake: str | None = None
) -> tuple[Array, Array]:
    """A bidirectional stack, ``-> output (T, N, 2H), h_n (2L, N, H)``, with one mistake."""
    N, H = x.shape[1], params["weight_hh_l0"].shape[0]
    if h0 is None or mistake == "h0_ignored":
        h0 = np.zeros((2 * L, N, H))
    layer_input, finals = x, []
    for layer in range(L):

        def index(d: int, layer: int = layer) -> int:  # layer bound (B023), though index runs in this iteration only
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


TOP_MISTAKES = (
    "bottom_layer_state",
    "backward_only",
    "forward_only",
    "top_directions_swapped",
    "h_n_view_misread",
    "directions_stacked",
)


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
# A2: the stack, batch_first, bidirectional, the top layer's final states
# --------------------------------------------------------------------------------------

_SQUARE_STACK_NOTE = (
    "D == H on purpose: swapped weights, an untransposed W_ih, x_t fed to every layer and layer 0's "
    "weights reused run without a shape error only when D == H"
)


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
    return Probe(
        label,
        (x, h0, params, L),
        {"output": out, "h_n": h_n},
        variants,
        _SQUARE_STACK_NOTE if D == H else "",
        square=D == H,
    )


_STACKED_TASK = Task(
    "stacked_rnn_forward",
    _unpack_tuple(("output", "h_n")),
    {"output": "(T, N, H)", "h_n": "(num_layers, N, H)"},
    FORWARD_IMPLEMENTATIONS,
)


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


BATCH_FIRST_MISTAKES = (
    "input_reshaped",
    "input_reshaped#both",
    "output_reshaped",
    "output_not_transposed",
    "h_n_batch_first",
    "batch_first_ignored",
)


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


_BATCH_FIRST_TASK = Task(
    "stacked_rnn_forward_batch_first",
    _unpack_tuple(("output", "h_n")),
    {"output": "(N, T, H)", "h_n": "(num_layers, N, H)"},
    FORWARD_IMPLEMENTATIONS,
    hint="if check_stacked_forward fails too, fix stacked_rnn_forward first.",
)


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


_BIDIRECTIONAL_TASK = Task(
    "bidirectional_rnn_forward",
    _unpack_tuple(("output", "h_n")),
    {"output": "(T, N, 2H)", "h_n": "(2 * num_layers, N, H)"},
    FORWARD_IMPLEMENTATIONS,
)


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
    return Probe(
        f"num_layers={L}, bidirectional={bidirectional}, N={N}, H={H}",
        (h_n, L, bidirectional),
        {"features": expected},
        variants,
    )


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


register(globals())
