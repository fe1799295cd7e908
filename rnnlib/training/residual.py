"""Residual (skip) connections between stacked layers, forward and backward, for measuring the gradient.

In a plain stack layer ``l+1`` reads :math:`h_t^{(l)}` and hands up its own state. With a residual
connection (Graves 2013; Wu et al. 2016, GNMT) what a layer hands up is its state **plus** what it
read, whenever the two have the same width ``H``:

.. math::

    u_t^{(0)} = x_t, \\qquad
    h_t^{(l)} = \\tanh\\big(W_{ih}^{(l)} u_t^{(l-1)} + b_{ih}^{(l)} + W_{hh}^{(l)} h_{t-1}^{(l)} + b_{hh}^{(l)}\\big),
    \\qquad
    u_t^{(l)} = h_t^{(l)} + u_t^{(l-1)} \\ \\text{(if the widths agree; else } u_t^{(l)} = h_t^{(l)}\\text{)}.

The recurrence inside each layer is unchanged (it carries :math:`h^{(l)}`, not :math:`u^{(l)}`), and the
stack's ``output`` is :math:`u^{(L)}`. Backward, the skip adds an identity path down the stack:

.. math::

    \\frac{\\partial\\mathcal L}{\\partial u_t^{(l-1)}}
    = \\underbrace{\\frac{\\partial\\mathcal L}{\\partial u_t^{(l)}}}_{\\text{skip}}
    + \\underbrace{\\delta_t^{(l)} W_{ih}^{(l)}}_{\\text{through layer } l},

so one layer down no longer *multiplies* the gradient by :math:`\\operatorname{diag}(\\phi') W_{ih}`: it adds
that product to the gradient itself.

Shapes: ``T`` steps, ``N`` sequences, ``D`` input features, ``H`` hidden units, ``L`` layers;
unidirectional, time-major, no dropout. The weights are a :class:`~rnnlib.NumpyRNN`'s.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..explain.gradient_flow import initial_states, layer_backward_steps, layer_forward_steps
from ..numpy_rnn import NumpyRNN
from ..params import param_name

__all__ = ["ResidualForward", "ResidualGradients", "residual_backward", "residual_forward"]

Array = np.ndarray
Cache = dict[str, Any]


class ResidualForward(NamedTuple):
    """What :func:`residual_forward` returns."""

    output: Array  #: ``(T, N, H)``: :math:`u_t^{(L)}`, what the top layer hands up
    h_n: Array  #: ``(L, N, H)``: each layer's last recurrent state :math:`h_T^{(l)}`
    caches: list[list[Cache]]  #: ``caches[l][t]`` of :func:`~rnnlib.rnn_cell_forward`
    skips: list[bool]  #: ``skips[l]``: layer ``l+1`` adds its input to its state


class ResidualGradients(NamedTuple):
    """What :func:`residual_backward` returns."""

    d_input: Array  #: ``(T, N, D)``
    grads: dict[str, Array]  #: keyed and ordered like ``NumpyRNN.params``
    d_states: Array  #: ``(L, T, N, H)``: :math:`\\partial\\mathcal L/\\partial h_t^{(l)}`, all that reaches it
    d_up: Array  #: ``(L, T, N, H)``: :math:`\\partial\\mathcal L/\\partial u_t^{(l)}`, what layer ``l`` hands up


def residual_forward(model: NumpyRNN, x: Array, h0: Array | None = None) -> ResidualForward:
    """The stack of ``model`` with residual connections wherever a layer's input has width ``H``.

    Args:
        model: supplies the weights, ``num_layers`` and ``nonlinearity`` (unidirectional,
            time-major, no active dropout).
        x: ``(T, N, D)``; h0: ``(L, N, H)`` or ``None`` (zeros).
    """
    h0 = initial_states(model, x, h0)
    L, H = model.num_layers, model.hidden_size
    caches: list[list[Cache]] = []
    skips: list[bool] = []
    h_n = np.empty_like(h0)
    below = x
    for layer in range(L):
        states, h_n[layer], layer_caches = layer_forward_steps(model, layer, below, h0[layer])
        caches.append(layer_caches)
        skip = below.shape[-1] == H
        skips.append(skip)
        below = states + below if skip else states  # u^(l), (T, N, H)
    return ResidualForward(below, h_n, caches, skips)


def residual_backward(forward: ResidualForward, d_output: Array, d_h_n: Array | None = None) -> ResidualGradients:
    """Backpropagation through time and down the residual stack.

    Args:
        forward: from :func:`residual_forward`.
        d_output: ``(T, N, H)``, the gradient w.r.t. ``output`` (:math:`u^{(L)}`).
        d_h_n: ``(L, N, H)`` w.r.t. ``h_n``, or ``None`` (zeros).
    """
    caches, skips = forward.caches, forward.skips
    L, T = len(caches), len(caches[0])
    N, H = d_output.shape[1], d_output.shape[2]
    if d_h_n is None:
        d_h_n = np.zeros((L, N, H), dtype=d_output.dtype)
    grads: dict[str, Array] = {}
    d_states = np.empty((L, T, N, H), dtype=d_output.dtype)
    d_up = np.empty((L, T, N, H), dtype=d_output.dtype)
    upstream = d_output  # dL/du^(l), (T, N, H)
    for layer in range(L - 1, -1, -1):
        d_up[layer] = upstream
        # u^(l) = h^(l) (+ u^(l-1)): dL/du^(l) reaches h^(l) unchanged
        through, _ = layer_backward_steps(layer, caches[layer], upstream, d_h_n[layer], grads, d_states[layer])
        upstream = through + upstream if skips[layer] else through  # plus the identity path of the skip
    order = [param_name(k, layer) for layer in range(L) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return ResidualGradients(upstream, {k: grads[k] for k in order if k in grads}, d_states, d_up)
