"""Deliberately wrong backward passes: the classic BPTT mistakes, one function per mistake.

Each ``backward_*`` function has the signature of :func:`rnnlib.explain.gradient_flow.stack_backward`,
``(caches, d_output, d_h_n=None) -> StackGradients``, runs without error, returns arrays of
the right shapes, and is wrong. Shapes cannot catch these bugs; a gradient check can:

>>> model = NumpyRNN(3, 5, 2, seed=0)
>>> check_rnn_gradients(with_backward(model, backward_without_dh_next), x)  # doctest: +SKIP

reports relative errors far above ``1e-3`` for the affected parameters. Wrap a correct
backward instead (:func:`rnnlib.explain.gradient_flow.stack_backward`) and every error drops to
about ``1e-9``. The course uses them to show what a failing check looks like; coursework
diagnostics use them as known-bad references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..explain.gradient_flow import _GRAD_KEYS as _KINDS
from ..explain.gradient_flow import Cache, StackGradients, stack_backward, stack_forward
from ..numpy_rnn import NumpyRNN, rnn_cell_backward
from ..params import param_name

Array = np.ndarray
Backward = Callable[..., StackGradients]


def _accumulate(grads: dict[str, Array], step: dict[str, Array | None], layer: int) -> None:
    for key, kind in _KINDS.items():
        g = step[key]
        if g is not None:
            name = param_name(kind, layer)
            grads[name] = grads[name] + g if name in grads else g


def _finish(upstream: Array, d_h0: Array, grads: dict[str, Array], d_states: Array, L: int) -> StackGradients:
    order = [param_name(k, layer) for layer in range(L) for k in _KINDS.values()]
    return StackGradients(upstream, d_h0, {k: grads[k] for k in order if k in grads}, d_states)


def _zeros_like_hn(caches: list[list[Cache]], d_output: Array, d_h_n: Array | None) -> Array:
    L, N, H = len(caches), d_output.shape[1], d_output.shape[2]
    return np.zeros((L, N, H), dtype=d_output.dtype) if d_h_n is None else d_h_n


# --------------------------------------------------------------------------------------
# Mistake 1: no activation derivative
# --------------------------------------------------------------------------------------


def cell_backward_without_activation_derivative(dh: Array, cache: dict[str, Any]) -> dict[str, Any]:
    """WRONG: :func:`rnn_cell_backward` that treats the activation as the identity.

    It uses ``da = dh`` where the chain rule needs ``da = dh * (1 - h**2)`` (tanh) or
    ``dh * [h > 0]`` (relu). Every gradient is then too large wherever units are
    saturated (tanh) or off (relu).
    """
    da = dh  # BUG: should be dh * act'(a), e.g. dh * (1 - h**2)
    db = da.sum(axis=0) if cache["bias"] else None
    return {
        "dx": da @ cache["W_ih"],
        "dh_prev": da @ cache["W_hh"],
        "dW_ih": da.T @ cache["x"],
        "dW_hh": da.T @ cache["h_prev"],
        "db_ih": db,
        "db_hh": None if db is None else db.copy(),
    }


def backward_without_activation_derivative(
    caches: list[list[Cache]], d_output: Array, d_h_n: Array | None = None
) -> StackGradients:
    """WRONG: BPTT whose cell backward forgets the activation's derivative.

    The time and layer bookkeeping is correct; every step uses
    :func:`cell_backward_without_activation_derivative`. All parameters, the input and
    ``h0`` get wrong gradients.
    """
    d_h_n = _zeros_like_hn(caches, d_output, d_h_n)
    L, T = len(caches), len(caches[0])
    grads: dict[str, Array] = {}
    d_h0, d_states = np.empty_like(d_h_n), np.empty((L, T) + d_output.shape[1:])
    upstream = d_output
    for layer in range(L - 1, -1, -1):
        dh_next, dx = d_h_n[layer], []
        for t in range(T - 1, -1, -1):
            dh = upstream[t] + dh_next
            d_states[layer, t] = dh
            step = cell_backward_without_activation_derivative(dh, caches[layer][t])  # BUG inside
            _accumulate(grads, step, layer)
            dh_next = step["dh_prev"]
            dx.append(step["dx"])
        d_h0[layer] = dh_next
        upstream = np.stack(dx[::-1])
    return _finish(upstream, d_h0, grads, d_states, L)


# --------------------------------------------------------------------------------------
# Mistake 2: no gradient from the next time step
# --------------------------------------------------------------------------------------


def backward_without_dh_next(caches: list[list[Cache]], d_output: Array, d_h_n: Array | None = None) -> StackGradients:
    """WRONG: each step's ``dh`` is only the gradient from its own output.

    ``h_t`` reaches the loss twice: through ``output_t`` and through ``h_{t+1}``. This
    version drops the second path (``dh = upstream[t]`` instead of
    ``upstream[t] + dh_next``): truncated BPTT with chunks of one step, which moreover
    loses ``d_h_n`` and returns ``d_h0 = 0``. Each step's gradient keeps what its own
    output contributes and misses everything that the later steps contribute.
    """
    d_h_n = _zeros_like_hn(caches, d_output, d_h_n)
    L, T = len(caches), len(caches[0])
    grads: dict[str, Array] = {}
    d_h0, d_states = np.zeros_like(d_h_n), np.empty((L, T) + d_output.shape[1:])
    upstream = d_output
    for layer in range(L - 1, -1, -1):
        dx = []
        for t in range(T - 1, -1, -1):
            dh = upstream[t]  # BUG: should be upstream[t] + dh_next (starting from d_h_n[layer])
            d_states[layer, t] = dh
            step = rnn_cell_backward(dh, caches[layer][t])
            _accumulate(grads, step, layer)
            dx.append(step["dx"])  # BUG: step["dh_prev"] is computed and thrown away
        upstream = np.stack(dx[::-1])
    return _finish(upstream, d_h0, grads, d_states, L)


# --------------------------------------------------------------------------------------
# Mistake 3: the wrong gradient sent down the stack
# --------------------------------------------------------------------------------------


def backward_passing_dh_down(caches: list[list[Cache]], d_output: Array, d_h_n: Array | None = None) -> StackGradients:
    """WRONG: layer ``l-1`` receives layer ``l``'s ``dh_t`` instead of its ``dx_t``.

    The gradient w.r.t. layer ``l-1``'s output is the gradient w.r.t. layer ``l``'s
    *input*, ``dx_t = da_t @ W_ih^(l)``. This version sends down ``dh_t``, the gradient
    w.r.t. layer ``l``'s own state: it skips layer ``l``'s activation derivative and
    ``W_ih^(l)``. Above layer 0 both are ``(N, H)``, so nothing complains. The top layer's
    gradients are right; every layer below is wrong.
    """
    d_h_n = _zeros_like_hn(caches, d_output, d_h_n)
    L, T = len(caches), len(caches[0])
    grads: dict[str, Array] = {}
    d_h0, d_states = np.empty_like(d_h_n), np.empty((L, T) + d_output.shape[1:])
    upstream = d_output
    for layer in range(L - 1, -1, -1):
        dh_next, dx, dhs = d_h_n[layer], [], []
        for t in range(T - 1, -1, -1):
            dh = upstream[t] + dh_next
            d_states[layer, t] = dh
            step = rnn_cell_backward(dh, caches[layer][t])
            _accumulate(grads, step, layer)
            dh_next = step["dh_prev"]
            dx.append(step["dx"])
            dhs.append(dh)
        d_h0[layer] = dh_next
        # BUG: the layer below should receive dx; at layer 0 dx is the input's gradient, kept right here
        upstream = np.stack(dhs[::-1]) if layer > 0 else np.stack(dx[::-1])
    return _finish(upstream, d_h0, grads, d_states, L)


def backward_sending_loss_gradient_to_every_layer(
    caches: list[list[Cache]], d_output: Array, d_h_n: Array | None = None
) -> StackGradients:
    """WRONG: every layer receives the loss's gradient ``d_output`` as its upstream gradient.

    Only the top layer's states are the RNN's ``output``; a lower layer's output reaches
    the loss only through the layers above it, so its upstream gradient must be the
    ``dx`` of the layer above (the input gradient of the *right* layer). This version
    hands every layer the top's ``d_output`` (same shape ``(T, N, H)``, so it runs), as
    if every layer's states were outputs. The top layer is right; the ones below are wrong.
    """
    d_h_n = _zeros_like_hn(caches, d_output, d_h_n)
    L, T = len(caches), len(caches[0])
    grads: dict[str, Array] = {}
    d_h0, d_states = np.empty_like(d_h_n), np.empty((L, T) + d_output.shape[1:])
    upstream = d_output
    for layer in range(L - 1, -1, -1):
        dh_next, dx = d_h_n[layer], []
        for t in range(T - 1, -1, -1):
            dh = upstream[t] + dh_next
            d_states[layer, t] = dh
            step = rnn_cell_backward(dh, caches[layer][t])
            _accumulate(grads, step, layer)
            dh_next = step["dh_prev"]
            dx.append(step["dx"])
        d_h0[layer] = dh_next
        # BUG: the layer below should receive np.stack(dx[::-1]); at layer 0, dx is the input's gradient
        upstream = d_output if layer > 0 else np.stack(dx[::-1])
    return _finish(upstream, d_h0, grads, d_states, L)


MISTAKES: dict[str, Backward] = {
    "no activation derivative": backward_without_activation_derivative,
    "no dh_next": backward_without_dh_next,
    "dh sent down instead of dx": backward_passing_dh_down,
    "d_output sent to every layer": backward_sending_loss_gradient_to_every_layer,
}
"""Every mistake by a short name, in the order the course presents them."""


# --------------------------------------------------------------------------------------
# Running a gradient check on any backward
# --------------------------------------------------------------------------------------


class _SteppedRNN(NumpyRNN):
    """A :class:`NumpyRNN` whose forward/backward are the step-by-step ones, with a chosen backward."""

    _backward_fn: Backward
    _step_caches: list[list[Cache]] | None

    def forward(
        self, x: Any, h0: Any = None, *, lengths: Any = None, dropout_masks: dict[int, Array] | None = None
    ) -> tuple[Array, Array]:
        if lengths is not None:
            raise ValueError("the step-by-step backward variants do not handle lengths")
        x = self._as_array(x, "input")
        if x.ndim != 3:
            raise ValueError(f"the step-by-step backward variants need batched (T, N, D) input, got shape {x.shape}")
        h0 = None if h0 is None else self._as_array(h0, "h0")
        output, h_n, self._step_caches = stack_forward(self, x, h0)
        self.last_dropout_masks = {}
        return output, h_n

    def backward(self, d_output: Any, d_h_n: Any = None) -> tuple[Array, Array]:
        if self._step_caches is None:
            raise ValueError("backward() needs a forward() first")
        d_input, d_h0, grads = self._backward_fn(
            self._step_caches, np.asarray(d_output), None if d_h_n is None else np.asarray(d_h_n)
        )[:3]
        self.grads = dict(grads)
        return d_input, d_h0


def with_backward(model: NumpyRNN, backward: Backward = stack_backward) -> NumpyRNN:
    """A copy of ``model`` (same configuration and weights) whose ``backward`` is ``backward``.

    Its ``forward`` is :func:`~rnnlib.explain.gradient_flow.stack_forward` (correct), so
    ``check_rnn_gradients(with_backward(model, fn), x)`` tests exactly ``fn``.
    Unidirectional, time-major, batched input, no dropout.

    Args:
        model: a :class:`NumpyRNN`; it is not modified.
        backward: ``(caches, d_output, d_h_n) -> (d_input, d_h0, grads, ...)`` (a
            :class:`~rnnlib.explain.gradient_flow.StackGradients` or any tuple starting with those
            three), e.g. one of :data:`MISTAKES`.
    """
    if model.bidirectional or model.batch_first or model.dropout > 0:
        raise ValueError(f"with_backward needs a unidirectional, time-major RNN without dropout, got {model!r}")
    stepped = _SteppedRNN(
        model.input_size, model.hidden_size, model.num_layers, model.nonlinearity, model.bias, dtype=model.dtype
    )
    stepped.load_state_dict(model.state_dict())
    stepped._backward_fn = backward
    stepped._step_caches = None
    return stepped
