"""A stacked GRU in pure NumPy, forward and hand-written backward, at parity with ``torch.nn.GRU``.

One step, PyTorch's equations and gate order ``r, z, n`` (rows of ``W_ih``, ``W_hh``, biases)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))      # b_hn inside the reset gate's product
    h' = (1 - z) * n + z * h

Shapes: ``T`` steps, ``N`` batch, ``D_in`` the layer's input width, ``H`` hidden size.
Weights are stored PyTorch's way: ``W_ih (3H, D_in)``, ``W_hh (3H, H)``.

* :func:`gru_layer_forward` / :func:`gru_layer_backward`: one layer in one direction over the
  whole sequence; the input projection of every step is one matrix product before the loop.
* :class:`NumpyGRU`: the stack (:class:`rnnlib.stack.NumpyStack`) with this cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cell_config import GRUConfig
from .gate_math import previous_states, sigmoid_scale
from .params import param_name, refuse_proj_size
from .stack import NumpyStack, States

Array = np.ndarray

GRU_GATES = "sst"  # r, z: sigmoid; n: tanh
"""The activation of each gate block in row order (``s`` sigmoid, ``t`` tanh)."""


def gru_layer_forward(
    x: Array,
    h0: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array | None = None,
    b_hh: Array | None = None,
    reverse: bool = False,
    mask: Array | None = None,
) -> tuple[Array, Array, dict[str, Any]]:
    """Run one GRU layer in one direction over a sequence.

    Args:
        x: ``(T, N, D_in)``. h0: ``(N, H)``.
        W_ih: ``(3H, D_in)``; W_hh: ``(3H, H)``; b_ih, b_hh: ``(3H,)`` or ``None``.
        reverse: read from ``t = T-1`` down to 0; ``out[t]`` stays the state after reading ``x[t]``.
        mask: ``(T, N)`` booleans, ``True`` inside each sequence; outside, the state is held and
            the output is 0 (what ``pack_padded_sequence`` + ``nn.GRU`` give).

    Returns:
        ``out (T, N, H)``, ``h_last (N, H)`` and a cache for :func:`gru_layer_backward`.
    """
    T, N, D_in = x.shape
    H = W_hh.shape[1]
    half = sigmoid_scale(GRU_GATES, H, x.dtype)  # see rnnlib.gate_math: sigmoid(a) = 0.5 tanh(a/2) + 0.5
    # Every step's input projection in one (T*N, D_in) @ (D_in, 3H) product, r and z rows pre-halved.
    gates = (x.reshape(T * N, D_in) @ (W_ih * half[:, None]).T).reshape(T, N, 3 * H)
    if b_ih is not None:
        gates += b_ih * half
    W_hh_T = np.ascontiguousarray((W_hh * half[:, None]).T)  # (H, 3H); n's rows unscaled: W_hn h is kept whole
    b_hh_half = None if b_hh is None else b_hh * half
    hidden = np.empty((T, N, 3 * H), dtype=x.dtype)  # W_hh h + b_hh of each step (r, z halved); backward reads n's
    states = np.empty((T, N, H), dtype=x.dtype)  # h after each step
    h = h0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        a = gates[t]  # a view: gates[t] becomes this step's r, z, n (what backward needs)
        gh = hidden[t]
        np.matmul(h, W_hh_T, out=gh)  # the only product that must wait for the previous step
        if b_hh_half is not None:
            gh += b_hh_half
        rz = a[:, : 2 * H]
        rz += gh[:, : 2 * H]
        np.tanh(rz, out=rz)
        rz *= 0.5  # r, z = 0.5 * tanh(a/2) + 0.5
        rz += 0.5
        n = a[:, 2 * H :]
        n += rz[:, :H] * gh[:, 2 * H :]
        np.tanh(n, out=n)
        h_new = states[t]
        np.subtract(h, n, out=h_new)  # h' = (1 - z) n + z h = n + z (h - n): one product fewer
        h_new *= rz[:, H:]
        h_new += n
        if mask is not None:  # past a sequence's end: hold its state
            h_new[...] = np.where(mask[t, :, None], h_new, h)
        h = h_new
    out = states if mask is None else states * mask[:, :, None]
    cache = {
        "x": x,
        "h0": h0,
        "gates": gates,
        "hidden_n": hidden[..., 2 * H :],
        "states": states,
        "W_ih": W_ih,
        "W_hh": W_hh,
        "bias": b_ih is not None,
        "reverse": reverse,
        "mask": mask,
    }
    return out, h.copy(), cache


def gru_layer_backward(d_out: Array, d_h_last: Array, cache: dict[str, Any]) -> tuple[Array, Array, dict[str, Array]]:
    """Backpropagation through time for :func:`gru_layer_forward`.

    Args:
        d_out: ``(T, N, H)`` gradient w.r.t. ``out``. d_h_last: ``(N, H)``.

    Returns:
        ``dx (T, N, D_in)``, ``dh0 (N, H)`` and the parameter gradients keyed
        ``weight_ih``, ``weight_hh`` (and ``bias_ih``, ``bias_hh`` with bias).
    """
    x, gates, hidden_n, states = cache["x"], cache["gates"], cache["hidden_n"], cache["states"]
    W_ih, W_hh, reverse, mask = cache["W_ih"], cache["W_hh"], cache["reverse"], cache["mask"]
    T, N, D_in = x.shape
    H = states.shape[-1]
    r, z, n = gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H :]
    h_prev = previous_states(states, cache["h0"], reverse)
    # Everything that does not depend on the incoming gradient dL/dh', for all steps at once:
    #   dL/d(n's pre-activation)  = dL/dh' * (1 - z) (1 - n^2)                  -> d_n = dh * n_factor
    #   dL/d(r's pre-activation)  = d_n * (W_hn h + b_hn) * r (1 - r)
    #   dL/d(z's pre-activation)  = dL/dh' * (h - n) * z (1 - z)
    #   dL/d(W_hn h + b_hn)       = d_n * r
    # d_hidden[t] (gradient w.r.t. W_hh h + b_hh) starts as those factors and is multiplied in the loop.
    n_factor = (1.0 - z) * (1.0 - np.square(n))
    d_hidden = np.empty((T, N, 3 * H), dtype=x.dtype)
    blocks = d_hidden.reshape(T, N, 3, H)  # a view: blocks[t, :, k] is gate k's slice of d_hidden[t]
    np.multiply(hidden_n, r * (1.0 - r), out=blocks[:, :, 0])
    np.multiply(h_prev - n, z * (1.0 - z), out=blocks[:, :, 1])
    blocks[:, :, 2] = r
    d_n = np.empty((T, N, H), dtype=x.dtype)  # gradient w.r.t. n's pre-activation (the input side's n block)
    dh = d_h_last.copy()  # dL/dh_t: from the step read after this one, then plus this step's output's
    for t in range(T) if reverse else range(T - 1, -1, -1):
        if mask is None:
            dh += d_out[t]
            np.multiply(dh, n_factor[t], out=d_n[t])
            blocks[t, :, 0] *= d_n[t]
            blocks[t, :, 1] *= dh
            blocks[t, :, 2] *= d_n[t]
            dh *= z[t]  # h' = ... + z h: the direct path to the state read before this step
            dh += d_hidden[t] @ W_hh  # and the path through the gates
        else:
            m = mask[t, :, None]
            dh_t = dh + np.where(m, d_out[t], 0.0)
            d_n[t] = np.where(m, dh_t * n_factor[t], 0.0)  # a held step has no gates
            blocks[t, :, 0] *= d_n[t]
            blocks[t, :, 1] *= np.where(m, dh_t, 0.0)
            blocks[t, :, 2] *= d_n[t]
            dh = d_hidden[t] @ W_hh + np.where(m, dh_t * z[t], dh_t)  # a held state passes its gradient on
    d_input_side = d_hidden.copy()  # W_ih x + b_ih: the same r and z gradients, but n's pre-activation whole
    d_input_side[..., 2 * H :] = d_n
    flat_in = d_input_side.reshape(T * N, 3 * H)
    flat_hidden = d_hidden.reshape(T * N, 3 * H)
    grads = {"weight_ih": flat_in.T @ x.reshape(T * N, D_in), "weight_hh": flat_hidden.T @ h_prev.reshape(T * N, H)}
    if cache["bias"]:
        grads["bias_ih"] = flat_in.sum(axis=0)
        grads["bias_hh"] = flat_hidden.sum(axis=0)  # differs from bias_ih in the n block (b_hn is inside r *)
    dx = (flat_in @ W_ih).reshape(T, N, D_in)
    return dx, dh, grads


class NumpyGRU(NumpyStack, GRUConfig):
    """A stacked GRU in NumPy with ``torch.nn.GRU``'s constructor, names and semantics.

    Args:
        input_size: ``D``. hidden_size: ``H``. num_layers: ``L``.
        bias: with ``False``, no ``bias_ih_*``/``bias_hh_*``.
        batch_first: input and output ``(N, T, ·)``; ``h0``/``h_n`` are never batch-first.
        dropout: on the outputs of every layer but the last, in training mode.
        bidirectional: a reverse direction per layer; outputs ``[forward, backward]``.
        proj_size: only 0; anything else raises ``torch.nn.GRU``'s ``ValueError`` (projections are LSTM-only).
        dtype: of parameters and computations; inputs must match it.
        seed: seeds the ``np.random.Generator`` used for initialisation and dropout.

    ``forward(x, h0)`` returns ``(output (T, N, H*dirs), h_n (L*dirs, N, H))``, like ``nn.GRU``.
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
        *,
        proj_size: int = 0,
        dtype: Any = np.float64,
        seed: int | None = None,
    ) -> None:
        refuse_proj_size(proj_size)
        self._setup(input_size, hidden_size, num_layers, "tanh", bias, batch_first, dropout, bidirectional, dtype, seed)

    def _layer_forward(
        self, x: Array, state0: States, layer: int, reverse: bool, mask: Array | None
    ) -> tuple[Array, States, dict[str, Any]]:
        """:func:`gru_layer_forward` with this layer's parameters: ``x (T, N, D_in)``, ``(h0 (N, H),)``."""
        out, h_last, cache = gru_layer_forward(
            x,
            state0[0],
            self.params[param_name("weight_ih", layer, reverse)],
            self.params[param_name("weight_hh", layer, reverse)],
            self._param("bias_ih", layer, reverse),
            self._param("bias_hh", layer, reverse),
            reverse,
            mask,
        )
        return out, (h_last,), cache

    def _layer_backward(
        self, d_out: Array, d_state_last: States, cache: dict[str, Any]
    ) -> tuple[Array, States, dict[str, Array]]:
        """:func:`gru_layer_backward`: ``d_out (T, N, H)``, ``(d_h (N, H),)`` -> ``dx``, ``(dh0,)``, grads."""
        dx, dh0, grads = gru_layer_backward(d_out, d_state_last[0], cache)
        return dx, (dh0,), grads
