"""A stacked LSTM in pure NumPy, forward and hand-written backward, at parity with ``torch.nn.LSTM``.

One step, PyTorch's equations and gate order ``i, f, g, o`` (rows of ``W_ih``, ``W_hh``, biases)::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)        f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)           o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c' = f * c + i * g                                h' = o * tanh(c')    (then h' = W_hr h' with proj_size)

Shapes: ``T`` steps, ``N`` batch, ``D_in`` the layer's input width, ``H`` hidden size, ``P``
``proj_size`` and ``S`` the width of ``h`` (``P`` with a projection, else ``H``). Weights are
stored PyTorch's way: ``W_ih (4H, D_in)``, ``W_hh (4H, S)``, ``W_hr (P, H)``.

* :func:`lstm_layer_forward` / :func:`lstm_layer_backward`: one layer in one direction over the
  whole sequence; the input projection of every step is one matrix product before the loop.
* :class:`NumpyLSTM`: the stack (:class:`rnnlib.stack.NumpyStack`) with this cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cell_config import LSTMConfig
from .gate_math import previous_states, sigmoid_scale
from .params import param_name
from .stack import NumpyStack, States

Array = np.ndarray

LSTM_GATES = "ssts"  # i, f: sigmoid; g: tanh; o: sigmoid
"""The activation of each gate block in row order (``s`` sigmoid, ``t`` tanh): ``"ssts"``."""


def lstm_layer_forward(
    x: Array,
    h0: Array,
    c0: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array | None = None,
    b_hh: Array | None = None,
    W_hr: Array | None = None,
    reverse: bool = False,
    mask: Array | None = None,
) -> tuple[Array, Array, Array, dict[str, Any]]:
    """Run one LSTM layer in one direction over a sequence.

    Args:
        x: ``(T, N, D_in)``. h0: ``(N, S)``. c0: ``(N, H)``.
        W_ih: ``(4H, D_in)``; W_hh: ``(4H, S)``; b_ih, b_hh: ``(4H,)`` or ``None``; W_hr: ``(P, H)`` or ``None``.
        reverse: read from ``t = T-1`` down to 0; ``out[t]`` stays the state after reading ``x[t]``.
        mask: ``(T, N)`` booleans, ``True`` inside each sequence; outside, ``h`` and ``c`` are held
            and the output is 0 (what ``pack_padded_sequence`` + ``nn.LSTM`` give).

    Returns:
        ``out (T, N, S)``, ``h_last (N, S)``, ``c_last (N, H)`` and a cache for :func:`lstm_layer_backward`.
    """
    T, N, D_in = x.shape
    H = W_ih.shape[0] // 4
    S = W_hh.shape[1]
    half = sigmoid_scale(LSTM_GATES, H, x.dtype)  # see rnnlib.gate_math: sigmoid(a) = 0.5 tanh(a/2) + 0.5
    shift = (1.0 - half).astype(x.dtype)  # (4H,): 0.5 on the sigmoid rows, 0 on g's
    # Every step's input projection in one (T*N, D_in) @ (D_in, 4H) product, the sigmoid rows pre-halved.
    gates = (x.reshape(T * N, D_in) @ (W_ih * half[:, None]).T).reshape(T, N, 4 * H)
    if b_ih is not None:
        gates += (b_ih + b_hh) * half
    W_hh_T = np.ascontiguousarray((W_hh * half[:, None]).T)  # (S, 4H), transposed once
    W_hr_T = None if W_hr is None else np.ascontiguousarray(W_hr.T)  # (H, P)
    cells = np.empty((T, N, H), dtype=x.dtype)  # c after each step
    tanh_c = np.empty((T, N, H), dtype=x.dtype)
    states = np.empty((T, N, S), dtype=x.dtype)  # h after each step
    full = None if W_hr is None else np.empty((T, N, H), dtype=x.dtype)  # o * tanh(c), before the projection
    h, c = h0, c0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        a = gates[t]  # a view: gates[t] becomes this step's activations i, f, g, o (what backward needs)
        a += h @ W_hh_T  # the only product that must wait for the previous step
        np.tanh(a, out=a)
        a *= half  # the sigmoid blocks: 0.5 * tanh(a/2) + 0.5; g keeps its tanh
        a += shift
        c_new = cells[t]
        np.multiply(a[:, H : 2 * H], c, out=c_new)
        c_new += a[:, :H] * a[:, 2 * H : 3 * H]
        if mask is not None:  # past a sequence's end: hold its cell
            c_new[...] = np.where(mask[t, :, None], c_new, c)
        np.tanh(c_new, out=tanh_c[t])
        h_new = states[t]
        if full is None or W_hr_T is None:
            np.multiply(a[:, 3 * H :], tanh_c[t], out=h_new)
        else:
            np.multiply(a[:, 3 * H :], tanh_c[t], out=full[t])
            np.matmul(full[t], W_hr_T, out=h_new)
        if mask is not None:  # and its state
            h_new[...] = np.where(mask[t, :, None], h_new, h)
        h, c = h_new, c_new
    out = states if mask is None else states * mask[:, :, None]
    cache = {
        "x": x,
        "h0": h0,
        "c0": c0,
        "gates": gates,
        "cells": cells,
        "tanh_c": tanh_c,
        "states": states,
        "full": full,
        "W_ih": W_ih,
        "W_hh": W_hh,
        "W_hr": W_hr,
        "bias": b_ih is not None,
        "reverse": reverse,
        "mask": mask,
    }
    return out, h.copy(), c.copy(), cache


def lstm_layer_backward(
    d_out: Array, d_h_last: Array, d_c_last: Array, cache: dict[str, Any]
) -> tuple[Array, Array, Array, dict[str, Array]]:
    """Backpropagation through time for :func:`lstm_layer_forward`.

    Args:
        d_out: ``(T, N, S)`` gradient w.r.t. ``out``. d_h_last: ``(N, S)``. d_c_last: ``(N, H)``.

    Returns:
        ``dx (T, N, D_in)``, ``dh0 (N, S)``, ``dc0 (N, H)`` and the parameter gradients keyed
        ``weight_ih``, ``weight_hh`` (``bias_ih``, ``bias_hh`` with bias; ``weight_hr`` with a projection).
    """
    x, gates, cells, tanh_c, states, full = (cache[k] for k in ("x", "gates", "cells", "tanh_c", "states", "full"))
    W_ih, W_hh, W_hr, reverse, mask = cache["W_ih"], cache["W_hh"], cache["W_hr"], cache["reverse"], cache["mask"]
    T, N, D_in = x.shape
    H = cells.shape[-1]
    S = states.shape[-1]
    i, f, g, o = gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H : 3 * H], gates[..., 3 * H :]
    c_prev = previous_states(cells, cache["c0"], reverse)
    # Everything that does not depend on the incoming gradient, for all steps at once, so the loop is
    # left with a few products per step. d_gates[t] starts as the factor that multiplies dL/dc_t
    # (blocks i, f, g) or dL/d(o*tanh c_t) (block o) to give the gradient w.r.t. that gate's pre-activation.
    d_gates = np.empty((T, N, 4 * H), dtype=x.dtype)
    blocks = d_gates.reshape(T, N, 4, H)  # a view: blocks[t, :, k] is gate k's slice of d_gates[t]
    np.multiply(g, i * (1.0 - i), out=blocks[:, :, 0])
    np.multiply(c_prev, f * (1.0 - f), out=blocks[:, :, 1])
    np.multiply(i, 1.0 - np.square(g), out=blocks[:, :, 2])
    np.multiply(tanh_c, o * (1.0 - o), out=blocks[:, :, 3])
    dc_from_h = o * (1.0 - np.square(tanh_c))  # dL/dc_t gets dL/d(o*tanh c_t) times this
    d_states = None if W_hr is None else np.empty((T, N, S), dtype=x.dtype)  # dL/dh_t, for dW_hr
    dh = d_h_last.copy()  # dL/dh_t: from the step read after this one, then plus this step's output's
    dc = d_c_last.copy()
    for t in range(T) if reverse else range(T - 1, -1, -1):
        if mask is None:
            dh += d_out[t]
            if d_states is not None:
                d_states[t] = dh
                d_full = dh @ W_hr  # (N, H): back through the projection
            else:
                d_full = dh
            dc += d_full * dc_from_h[t]
            blocks[t, :, :3] *= dc[:, None, :]
            blocks[t, :, 3] *= d_full
            dc *= f[t]  # on to the cell read before this step
            np.matmul(d_gates[t], W_hh, out=dh)  # and to the state
        else:
            m = mask[t, :, None]
            dh_t = dh + np.where(m, d_out[t], 0.0)
            if d_states is not None:
                d_states[t] = np.where(m, dh_t, 0.0)
                d_full = dh_t @ W_hr
            else:
                d_full = dh_t
            dc_t = dc + d_full * dc_from_h[t]
            blocks[t, :, :3] *= dc_t[:, None, :]
            blocks[t, :, 3] *= d_full
            d_gates[t] = np.where(m, d_gates[t], 0.0)  # a held step has no gates
            dc = np.where(m, dc_t * f[t], dc)  # a held cell passes its gradient on
            dh = d_gates[t] @ W_hh + np.where(m, 0.0, dh_t)
    flat = d_gates.reshape(T * N, 4 * H)
    h_prev = previous_states(states, cache["h0"], reverse)
    grads = {"weight_ih": flat.T @ x.reshape(T * N, D_in), "weight_hh": flat.T @ h_prev.reshape(T * N, S)}
    if cache["bias"]:
        grads["bias_ih"] = flat.sum(axis=0)
        grads["bias_hh"] = grads["bias_ih"].copy()  # both biases enter the same sum
    if d_states is not None:
        assert full is not None
        grads["weight_hr"] = d_states.reshape(T * N, S).T @ full.reshape(T * N, H)
    dx = (flat @ W_ih).reshape(T, N, D_in)
    return dx, dh, dc, grads


class NumpyLSTM(NumpyStack, LSTMConfig):
    """A stacked LSTM in NumPy with ``torch.nn.LSTM``'s constructor, names and semantics.

    Args:
        input_size: ``D``. hidden_size: ``H``. num_layers: ``L``.
        bias: with ``False``, no ``bias_ih_*``/``bias_hh_*``.
        batch_first: input and output ``(N, T, ·)``; ``h0``/``c0``/``h_n``/``c_n`` are never batch-first.
        dropout: on the outputs of every layer but the last, in training mode.
        bidirectional: a reverse direction per layer; outputs ``[forward, backward]``.
        proj_size: ``P`` in ``[0, H)``; with ``P > 0`` each layer projects ``h`` to ``P`` features
            (``weight_hr_l{k}`` of shape ``(P, H)``): ``output`` is ``(T, N, P*dirs)``, ``h_n``
            ``(L*dirs, N, P)``, ``c_n`` ``(L*dirs, N, H)``.
        dtype: of parameters and computations; inputs must match it.
        seed: seeds the ``np.random.Generator`` used for initialisation and dropout.

    ``forward(x, (h0, c0))`` returns ``(output, (h_n, c_n))``, like ``nn.LSTM``;
    ``backward(d_output, (d_h_n, d_c_n))`` returns ``(d_input, (d_h0, d_c0))``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        dtype: Any = np.float64,
        seed: int | None = None,
    ) -> None:
        self._setup(
            input_size,
            hidden_size,
            num_layers,
            "tanh",
            bias,
            batch_first,
            dropout,
            bidirectional,
            dtype,
            seed,
            proj_size,
        )

    def _layer_forward(
        self, x: Array, state0: States, layer: int, reverse: bool, mask: Array | None
    ) -> tuple[Array, States, dict[str, Any]]:
        """:func:`lstm_layer_forward` with this layer's parameters: ``x (T, N, D_in)``, ``(h0 (N, S), c0 (N, H))``."""
        out, h_last, c_last, cache = lstm_layer_forward(
            x,
            state0[0],
            state0[1],
            self.params[param_name("weight_ih", layer, reverse)],
            self.params[param_name("weight_hh", layer, reverse)],
            self._param("bias_ih", layer, reverse),
            self._param("bias_hh", layer, reverse),
            self._param("weight_hr", layer, reverse),
            reverse,
            mask,
        )
        return out, (h_last, c_last), cache

    def _layer_backward(
        self, d_out: Array, d_state_last: States, cache: dict[str, Any]
    ) -> tuple[Array, States, dict[str, Array]]:
        """:func:`lstm_layer_backward`: ``d_out (T, N, S)``, ``(d_h (N, S), d_c (N, H))`` -> ``dx``, ``(dh0, dc0)``."""
        dx, dh0, dc0, grads = lstm_layer_backward(d_out, d_state_last[0], d_state_last[1], cache)
        return dx, (dh0, dc0), grads
