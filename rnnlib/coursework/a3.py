"""A3 (chapters/coursework/A3_bptt.ipynb): backpropagation through one step, one layer, a stack.

The checks of ``rnn_step_backward`` (:func:`check_step_backward`), ``rnn_backward``
(:func:`check_rnn_backward`) and ``stacked_rnn_backward`` (:func:`check_stacked_backward`),
each with its ``diagnose_*`` twin; their classic mistakes and known-wrong variants (the
backward-pass mistakes of :mod:`rnnlib.coursework.mistakes` are reused as they are). The
machinery is :mod:`rnnlib.coursework.engine`'s; the notebook imports these through
:mod:`rnnlib.coursework.checks`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .engine import (
    BACKWARD_IMPLEMENTATIONS,
    Array,
    Mistake,
    Probe,
    Task,
    _diagnose,
    _layer_params,
    _raise,
    _rng,
    _run,
    _safe,
    _stack_params,
    _to_array,
    _torch_rnn,
    _Unpack,
    _unpack_dict,
    add_mistakes,
    register,
)

__all__ = [
    "check_rnn_backward",
    "check_stacked_backward",
    "check_step_backward",
    "diagnose_rnn_backward",
    "diagnose_stacked_backward",
    "diagnose_step_backward",
]


# --------------------------------------------------------------------------------------
# The classic mistakes of backpropagation through time
# --------------------------------------------------------------------------------------

add_mistakes(
    {
        # ---- backward through one step (A3) ----
        "no_tanh_derivative": Mistake(
            "the tanh derivative is left out (da = dh instead of da = dh * (1 - h**2))",
            "the gradient passes through the tanh first: da = dh * (1 - h**2), with h the state this step computed.",
        ),
        "tanh_applied_twice": Mistake(
            "the derivative is computed as 1 - tanh(h)**2; h is already tanh(a), so tanh'(a) = 1 - h**2",
            "da = dh * (1 - h**2).",
        ),
        "derivative_at_h_prev": Mistake(
            "the tanh derivative is taken at h_prev (1 - h_prev**2) instead of at this step's h",
            "da = dh * (1 - h**2) with cache['h'], the output of this step.",
        ),
        "dW_hh_uses_h": Mistake(
            "dW_hh is built from this step's h instead of h_prev", "W_hh multiplies h_prev, so dW_hh = da.T @ h_prev."
        ),
        "dh_prev_transposed": Mistake(
            "dh_prev uses W_hh.T (da @ W_hh.T)", "a = h_prev @ W_hh.T + ..., so dh_prev = da @ W_hh."
        ),
        "dx_transposed": Mistake(
            "dx uses W_ih.T (da @ W_ih.T)", "a = x @ W_ih.T + ..., so dx = da @ W_ih, shape (N, D)."
        ),
        "dW_transposed": Mistake(
            "dW_ih and dW_hh are transposed (x.T @ da instead of da.T @ x)",
            "a gradient has the shape of its weight: dW_ih = da.T @ x is (H, D), dW_hh = da.T @ h_prev is (H, H).",
        ),
        "db_not_summed": Mistake(
            "the bias gradients are not summed over the batch: (N, H) instead of (H,)",
            "the same bias is added to every sequence of the batch: db = da.sum(axis=0).",
        ),
        "db_mean": Mistake(
            "the bias gradients are the mean over the batch instead of the sum",
            "db = da.sum(axis=0): every sequence of the batch contributes its whole gradient.",
        ),
        # ---- BPTT over one layer and a stack (A3) ----
        "no_dh_next": Mistake(
            "the gradient from the next time step is dropped (dh = d_out[t] instead of d_out[t] + dh_next)",
            "h_t reaches the loss through output[t] and through h_{t+1}: dh = d_out[t] + dh_next, with dh_next "
            "the dh_prev of step t+1 (and dh_n at the last step).",
        ),
        "dh_n_ignored": Mistake(
            "the gradient arriving at the final state is ignored (dh_next starts at zero instead of dh_n)",
            "start the backward loop with dh_next = dh_n (d_h_n[l] for layer l).",
        ),
        "grads_not_accumulated": Mistake(
            "the weight gradients are overwritten at every step instead of summed over time (only step 0's "
            "contribution is left)",
            "the same weights act at every step: dW_ih += step['dW_ih'], and so on, starting from zeros.",
        ),
        "forward_in_time": Mistake(
            "the backward loop runs forward in time (t = 0, 1, ...)",
            "BPTT starts at the last step: for t in reversed(range(T)).",
        ),
        "dh0_not_through_cell": Mistake(
            "dh0 is the gradient with respect to the state after step 0, not the initial state h0",
            "push step 0's total gradient through its cell: dh0 is step 0's dh_prev.",
        ),
        "dx_reversed": Mistake(
            "dx is in reverse time order (the per-step list filled while looping backward was not reversed)",
            "store dx for step t in slot t (or reverse the list) before stacking.",
        ),
        "only_last_output": Mistake(
            "only the last step's output gradient d_out[T-1] is used",
            "every step's output has a gradient: dh = d_out[t] + dh_next at every t.",
        ),
        "dh_sent_down": Mistake(
            "layer l-1 receives layer l's dh_t (the gradient with respect to its state) instead of its dx_t (the "
            "gradient with respect to its input)",
            "the output of layer l-1 is the input of layer l: its upstream gradient is layer l's dx.",
        ),
        "d_output_to_every_layer": Mistake(
            "every layer receives the loss gradient d_output, as if every layer's states were outputs",
            "only the top layer gets d_output; layer l-1 gets layer l's dx.",
        ),
    }
)


# --------------------------------------------------------------------------------------
# A3: backpropagation through one step, one layer, a stack
# --------------------------------------------------------------------------------------

STEP_GRAD_KEYS = ("dx", "dh_prev", "dW_ih", "dW_hh", "db_ih", "db_hh")
LAYER_GRAD_KEYS = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")
STEP_BACKWARD_MISTAKES = (
    "no_tanh_derivative",
    "tanh_applied_twice",
    "derivative_at_h_prev",
    "dW_hh_uses_h",
    "dh_prev_transposed",
    "dx_transposed",
    "dW_transposed",
    "db_not_summed",
    "db_mean",
)
LOOP_STEP_BACKWARD_MISTAKES = (
    "no_tanh_derivative",
    "tanh_applied_twice",
    "derivative_at_h_prev",
    "dW_hh_uses_h",
    "dh_prev_transposed",
    "db_mean",
)


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
        da = dh * (1.0 - h_prev**2)
    else:
        da = dh * (1.0 - h**2)
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
    expected = {k_: g.numpy() for k_, g in zip(STEP_GRAD_KEYS, grads, strict=True)}
    variants = {m: _safe(lambda m=m: _step_backward_variant(dh, cache, m)) for m in STEP_BACKWARD_MISTAKES}
    return Probe(
        f"N={N}, D={D}, H={H}",
        (dh, cache),
        expected,
        variants,
        "D == H on purpose: dx = da @ W_ih.T runs without a shape error only when D == H" if D == H else "",
        square=D == H,
    )


_STEP_BACKWARD_TASK = Task(
    "rnn_step_backward",
    _unpack_dict(STEP_GRAD_KEYS),
    {"dx": "(N, D)", "dh_prev": "(N, H)", "dW_ih": "(H, D)", "dW_hh": "(H, H)", "db_ih": "(H,)", "db_hh": "(H,)"},
    BACKWARD_IMPLEMENTATIONS,
)


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


LAYER_BACKWARD_MISTAKES = (
    "no_tanh_derivative",
    "no_dh_next",
    "dh_n_ignored",
    "grads_not_accumulated",
    "forward_in_time",
    "dh0_not_through_cell",
    "dx_reversed",
    "only_last_output",
)


def _layer_backward_variant(
    d_out: Array,
    dh_n: Array,
    caches: Sequence[Mapping[str, Any]],
    mistake: str | None = None,
    step_mistake: str | None = None,
) -> dict[str, Array]:
    """BPTT through one layer, ``-> {dx (T, N, D), dh0 (N, H), dW_ih, dW_hh, db_ih, db_hh}``, with one mistake."""
    if mistake in ("no_tanh_derivative", "no_dh_next"):
        fn = _mistakes_module().MISTAKES[
            "no activation derivative" if mistake == "no_tanh_derivative" else "no dh_next"
        ]
        d_input, d_h0, grads = fn([list(caches)], d_out, dh_n[None])[:3]
        return {
            "dx": d_input,
            "dh0": d_h0[0],
            "dW_ih": grads["weight_ih_l0"],
            "dW_hh": grads["weight_hh_l0"],
            "db_ih": grads["bias_ih_l0"],
            "db_hh": grads["bias_hh_l0"],
        }
    T = len(caches)
    dh_next = np.zeros_like(dh_n) if mistake == "dh_n_ignored" else dh_n
    total: dict[str, Array] = {}
    dxs: list[Any] = [None] * T
    dh_at_0 = dh_next
    for t in range(T) if mistake == "forward_in_time" else range(T - 1, -1, -1):
        upstream = d_out[t] if (mistake != "only_last_output" or t == T - 1) else np.zeros_like(d_out[t])
        dh = upstream + dh_next
        if t == 0:
            dh_at_0 = dh
        step = _step_backward_variant(dh, caches[t], step_mistake)
        for key in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
            total[key] = (
                step[key] if (key not in total or mistake == "grads_not_accumulated") else total[key] + step[key]
            )
        dh_next = step["dh_prev"]
        dxs[t] = step["dx"]
    dx = np.stack(dxs)
    return {
        "dx": dx[::-1] if mistake == "dx_reversed" else dx,
        "dh0": dh_at_0 if mistake == "dh0_not_through_cell" else dh_next,
        **total,
    }


def _torch_layer_grads(
    x: Array, h0: Array, weights: tuple[Array, Array, Array, Array], d_out: Array, dh_n: Array
) -> dict[str, Array]:
    tx, th0, tWi, tWh, tbi, tbh = map(_t, (x, h0, *weights))
    h, outs = th0, []
    for t in range(x.shape[0]):
        h = torch.tanh(tx[t] @ tWi.T + tbi + h @ tWh.T + tbh)
        outs.append(h)
    loss = (torch.stack(outs) * torch.from_numpy(d_out)).sum() + (h * torch.from_numpy(dh_n)).sum()
    grads = torch.autograd.grad(loss, (tx, th0, tWi, tWh, tbi, tbh))
    return {k: g.numpy() for k, g in zip(LAYER_GRAD_KEYS, grads, strict=True)}


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
    variants.update(
        {
            f"{m}#loop": _safe(lambda m=m: _layer_backward_variant(d_out, dh_n, caches, step_mistake=m))
            for m in LOOP_STEP_BACKWARD_MISTAKES
            if m != "no_tanh_derivative"
        }
    )
    return Probe(f"T={T}, N={N}, D={D}, H={H}", (d_out, dh_n, caches), expected, variants)


_LAYER_BACKWARD_TASK = Task(
    "rnn_backward",
    _unpack_dict(LAYER_GRAD_KEYS),
    {"dx": "(T, N, D)", "dh0": "(N, H)", "dW_ih": "(H, D)", "dW_hh": "(H, H)", "db_ih": "(H,)", "db_hh": "(H,)"},
    BACKWARD_IMPLEMENTATIONS,
    hint="if check_step_backward fails too, fix rnn_step_backward first.",
)


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


STACK_BACKWARD_MISTAKES = (
    "no_tanh_derivative",
    "no_dh_next",
    "dh_sent_down",
    "d_output_to_every_layer",
    "dh_n_ignored",
    "grads_not_accumulated",
    "dx_reversed",
    "dh0_not_through_cell",
)
_FROM_RNNLIB_MISTAKES = {
    "no_tanh_derivative": "no activation derivative",
    "no_dh_next": "no dh_next",
    "dh_sent_down": "dh sent down instead of dx",
    "d_output_to_every_layer": "d_output sent to every layer",
}


def _flatten_stack(dx: Array, dh0: Array, grads: Mapping[str, Array]) -> dict[str, Array]:
    return {"dx": dx, "dh0": dh0, **{f"grads[{k!r}]": v for k, v in grads.items()}}


def _stack_backward_variant(
    d_output: Array, d_h_n: Array, caches: Sequence[Sequence[Mapping[str, Any]]], mistake: str | None = None
) -> dict[str, Array]:
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
    expected = _flatten_stack(
        grads[0].numpy(), grads[1].numpy(), {n: g.numpy() for n, g in zip(names, grads[2:], strict=True)}
    )
    variants = {
        m: _safe(lambda m=m: _stack_backward_variant(d_output, d_h_n, caches, m)) for m in STACK_BACKWARD_MISTAKES
    }
    return Probe(f"T={T}, N={N}, D={D}, H={H}, L={L}", (d_output, d_h_n, caches), expected, variants)


def _unpack_stack_grads(result: Any) -> dict[str, Array]:
    if result is None:
        raise _Unpack("it returned None: did you forget `return dx, dh0, grads`?")
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise _Unpack(
            "expected a tuple (dx, dh0, grads) with grads a dict keyed like the state dict "
            f"('weight_ih_l0', ...), got {type(result).__name__}"
            + (f" of {len(result)} elements" if isinstance(result, (tuple, list)) else "")
        )
    dx, dh0, grads = result
    if not isinstance(grads, Mapping):
        raise _Unpack(
            f"grads should be a dict keyed like the state dict ('weight_ih_l0', ...), got {type(grads).__name__}"
        )
    return _flatten_stack(
        _to_array(dx, "dx"), _to_array(dh0, "dh0"), {str(k): _to_array(v, f"grads[{k!r}]") for k, v in grads.items()}
    )


_STACK_BACKWARD_TASK = Task(
    "stacked_rnn_backward",
    _unpack_stack_grads,
    {"dx": "(T, N, D)", "dh0": "(L, N, H)"},
    BACKWARD_IMPLEMENTATIONS,
    hint="if check_rnn_backward fails too, fix rnn_backward first.",
)


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
            return (
                f"`stacked_rnn_backward` returned grads with the wrong keys: missing {missing}, unexpected "
                f"{extra}.\n  grads should be keyed like the state dict: {[k[7:-2] for k in want]}."
            )
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


register(globals())
