"""A stacked Elman RNN in pure NumPy, forward and backward, at parity with ``torch.nn.RNN``.

Shapes use ``T`` (time steps), ``N`` (batch), ``D`` (input features), ``H``
(hidden size), ``L`` (layers) and ``dirs`` (1, or 2 when bidirectional).
Weights are stored PyTorch's way, ``W_ih: (H, D)``, and applied as ``x @ W_ih.T``.

Three levels, each usable on its own:

* :func:`rnn_cell_forward` / :func:`rnn_cell_backward`: one time step, with an
  explicit cache (the CS231n style). The readable reference.
* :func:`layer_forward` / :func:`layer_backward`: one layer in one direction over
  the whole sequence. The input projection of all steps is one matrix product
  before the time loop (what cuDNN does); only ``h @ W_hh.T`` stays in the loop.
* :class:`NumpyRNN`: the stack, with ``batch_first``, unbatched input,
  bidirectional layers, dropout between layers and per-sequence lengths; the stack itself
  is :class:`rnnlib.stack.NumpyStack`, shared with the LSTM and the GRU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cell_config import ElmanConfig
from .params import param_name
from .stack import NumpyStack, States, dropout_mask  # noqa: F401  (dropout_mask: importable from here, as before)

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    """A nonlinearity and its derivative written in terms of its *output* ``h = f(a)``.

    Using the output means backward needs no stored pre-activations:
    ``tanh'(a) = 1 - h**2`` and ``relu'(a) = [h > 0]``.
    """

    forward: Callable[..., Array]
    derivative_from_output: Callable[[Array], Array]


def _tanh_derivative_from_output(h: Array) -> Array:
    """``1 - h**2`` in one new array: no temporary ``h*h``, since backward calls it on all ``(T, N, H)`` states."""
    d = np.square(h)
    return np.subtract(1.0, d, out=d)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(np.tanh, _tanh_derivative_from_output),
    "relu": Activation(lambda a, out=None: np.maximum(a, 0.0, out=out), lambda h: (h > 0).astype(h.dtype)),
}


def get_activation(nonlinearity: str) -> Activation:
    """The :class:`Activation` called ``nonlinearity`` (``'tanh'`` or ``'relu'``)."""
    try:
        return ACTIVATIONS[nonlinearity]
    except KeyError:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}: expected one of {tuple(ACTIVATIONS)}") from None


# --------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------


def rnn_cell_forward(
    x: Array,
    h_prev: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array | None = None,
    b_hh: Array | None = None,
    nonlinearity: str = "tanh",
) -> tuple[Array, dict[str, Any]]:
    """One step: ``h = act(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)``.

    Args:
        x: ``(N, D)`` input at this step.
        h_prev: ``(N, H)`` hidden state from the previous step.
        W_ih: ``(H, D)``; W_hh: ``(H, H)``; b_ih, b_hh: ``(H,)`` or ``None`` (``bias=False``).

    Returns:
        ``h``: ``(N, H)``, and the cache that :func:`rnn_cell_backward` needs.
    """
    act = get_activation(nonlinearity)
    a = x @ W_ih.T + h_prev @ W_hh.T
    if b_ih is not None:
        a = a + b_ih + b_hh
    h = act.forward(a)
    cache = {
        "x": x,
        "h_prev": h_prev,
        "h": h,
        "W_ih": W_ih,
        "W_hh": W_hh,
        "bias": b_ih is not None,
        "nonlinearity": nonlinearity,
    }
    return h, cache


def rnn_cell_backward(dh: Array, cache: dict[str, Any]) -> dict[str, Any]:
    """Backward of :func:`rnn_cell_forward`.

    Args:
        dh: ``(N, H)`` gradient of the loss with respect to this step's ``h``
            (from the output at this step *plus* from the next step).

    Returns:
        ``dx (N, D)``, ``dh_prev (N, H)``, ``dW_ih (H, D)``, ``dW_hh (H, H)``,
        ``db_ih (H,)`` and ``db_hh (H,)`` (both ``None`` without bias). The two
        biases get the same gradient: they enter the sum the same way.
    """
    act = get_activation(cache["nonlinearity"])
    da = dh * act.derivative_from_output(cache["h"])  # (N, H): through the nonlinearity
    db = da.sum(axis=0) if cache["bias"] else None
    return {
        "dx": da @ cache["W_ih"],
        "dh_prev": da @ cache["W_hh"],
        "dW_ih": da.T @ cache["x"],
        "dW_hh": da.T @ cache["h_prev"],
        "db_ih": db,
        "db_hh": None if db is None else db.copy(),
    }


# --------------------------------------------------------------------------------------
# One layer, one direction, the whole sequence
# --------------------------------------------------------------------------------------


def layer_forward(
    x: Array,
    h0: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array | None = None,
    b_hh: Array | None = None,
    nonlinearity: str = "tanh",
    reverse: bool = False,
    mask: Array | None = None,
) -> tuple[Array, Array, dict[str, Any]]:
    """Run one layer in one direction over a sequence.

    Args:
        x: ``(T, N, D_in)`` the layer's input (the data, or the layer below's output).
        h0: ``(N, H)`` initial state.
        W_ih: ``(H, D_in)``; W_hh: ``(H, H)``; b_ih, b_hh: ``(H,)`` or ``None``.
        reverse: read the sequence from ``t = T-1`` down to 0. Outputs stay aligned
            with time: ``out[t]`` is the state after reading ``x[t]``.
        mask: ``(T, N)`` booleans, ``True`` where step ``t`` lies inside sequence ``n``
            (per-sequence lengths). Outside, the state is held and the output is 0,
            as ``pack_padded_sequence`` + ``nn.RNN`` + ``pad_packed_sequence`` give.

    Returns:
        ``out (T, N, H)``, ``h_last (N, H)`` (the state after the last step read:
        ``t = length-1`` forward, ``t = 0`` in reverse) and a cache for backward.
    """
    T, N, D_in = x.shape
    H = W_hh.shape[0]
    act = get_activation(nonlinearity)
    # The input projection of every step at once: one (T*N, D_in) @ (D_in, H) product.
    pre = (x.reshape(T * N, D_in) @ W_ih.T).reshape(T, N, H)
    if b_ih is not None:
        pre += b_ih + b_hh
    W_hh_T = np.ascontiguousarray(W_hh.T)  # transposed once, not at every step
    # pre[t] is read only at step t, so the state h_t can overwrite it in place: one (T, N, H) array
    # instead of two, so less fresh memory to page in (a page fault per 4 KiB) and to keep in cache.
    states = pre  # states[t]: a_t's input part before step t, the state h_t after it
    h = h0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        a = states[t]  # a view: the in-place updates below write into `states`
        a += h @ W_hh_T  # the only product that must wait for the previous step
        act.forward(a, out=a)
        if mask is not None:  # past a sequence's end: hold its state
            a[...] = np.where(mask[t, :, None], a, h)
        h = a
    out = states if mask is None else states * mask[:, :, None]
    cache = {
        "x": x,
        "h0": h0,
        "states": states,
        "W_ih": W_ih,
        "W_hh": W_hh,
        "bias": b_ih is not None,
        "nonlinearity": nonlinearity,
        "reverse": reverse,
        "mask": mask,
    }
    return out, h.copy(), cache


def layer_backward(d_out: Array, d_h_last: Array, cache: dict[str, Any]) -> tuple[Array, Array, dict[str, Array]]:
    """Backpropagation through time for :func:`layer_forward`.

    Args:
        d_out: ``(T, N, H)`` gradient with respect to ``out``.
        d_h_last: ``(N, H)`` gradient with respect to ``h_last``.

    Returns:
        ``dx (T, N, D_in)``, ``dh0 (N, H)`` and the parameter gradients keyed
        ``weight_ih``, ``weight_hh`` (and ``bias_ih``, ``bias_hh`` with bias).
    """
    x, h0, states, mask = cache["x"], cache["h0"], cache["states"], cache["mask"]
    W_ih, W_hh, reverse = cache["W_ih"], cache["W_hh"], cache["reverse"]
    T, N, D_in = x.shape
    H = W_hh.shape[0]
    # The activation's derivative at every step in one vectorised call, in a new (T, N, H) array that then
    # becomes d_pre, the gradient w.r.t. each step's pre-activation: d_pre[t] = f'(a_t) * dL/dh_t, in place.
    # As in layer_forward, the loop writes in place and allocates nothing (see benchmarks/rnn_speed.py).
    d_pre = get_activation(cache["nonlinearity"]).derivative_from_output(states)  # f'(a_t) until step t runs
    dh = d_h_last.copy()  # dL/dh_t: from the step read after this one, then plus this step's output's
    for t in range(T) if reverse else range(T - 1, -1, -1):
        if mask is None:
            dh += d_out[t]
            d_pre[t] *= dh
            np.matmul(d_pre[t], W_hh, out=dh)  # on to the state read before this step
        else:
            m = mask[t, :, None]
            g = dh + np.where(m, d_out[t], 0.0)
            d_pre[t] = np.where(m, g * d_pre[t], 0.0)
            dh = d_pre[t] @ W_hh + np.where(m, 0.0, g)  # a held state passes its gradient on
    # dW_hh = sum over t of d_pre[t].T @ (the state read before step t): that is `states` shifted by one
    # step, with h0 for the first step read. Two products, rather than building a shifted copy of `states`.
    if reverse:  # step t read h_{t+1}; step T-1 read h0
        dW_hh = d_pre[:-1].reshape(-1, H).T @ states[1:].reshape(-1, H) + d_pre[-1].T @ h0
    else:  # step t read h_{t-1}; step 0 read h0
        dW_hh = d_pre[1:].reshape(-1, H).T @ states[:-1].reshape(-1, H) + d_pre[0].T @ h0
    flat = d_pre.reshape(T * N, H)
    grads = {"weight_ih": flat.T @ x.reshape(T * N, D_in), "weight_hh": dW_hh}
    if cache["bias"]:
        grads["bias_ih"] = flat.sum(axis=0)
        grads["bias_hh"] = grads["bias_ih"].copy()
    dx = (flat @ W_ih).reshape(T, N, D_in)
    return dx, dh, grads


# --------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------


class NumpyRNN(NumpyStack, ElmanConfig):
    """A stacked Elman RNN in NumPy with ``torch.nn.RNN``'s constructor, names and semantics.

    The stack (layouts, directions, dropout, lengths, checks, backward through the layers) is
    :class:`rnnlib.stack.NumpyStack`'s; this class gives it the Elman cell, :func:`layer_forward`
    and :func:`layer_backward`.

    Args:
        input_size: ``D``, features per time step.
        hidden_size: ``H``.
        num_layers: ``L``; layer ``l > 0`` reads layer ``l-1``'s output at the same step.
        nonlinearity: ``'tanh'`` or ``'relu'``.
        bias: with ``False``, no ``bias_ih_*``/``bias_hh_*``.
        batch_first: input and output are ``(N, T, ·)`` instead of ``(T, N, ·)``.
            ``h0`` and ``h_n`` are ``(L*dirs, N, H)`` either way.
        dropout: probability of zeroing each output of every layer but the last,
            in training mode only, survivors scaled by ``1/(1-p)``. In ``[0, 1)``; may be
            set to 1 afterwards, as in PyTorch (see :func:`dropout_mask`).
        bidirectional: add a reverse direction per layer; outputs ``[forward, backward]``.
        dtype: of parameters and computations; inputs must match it.
        seed: seeds the ``np.random.Generator`` used for initialisation and dropout.

    Attributes:
        params: ``{name: array}`` keyed like ``torch.nn.RNN.state_dict()``.
        grads: the same keys, filled by :meth:`backward`.
        training: ``True`` after :meth:`train` (the default, as in torch), ``False`` after :meth:`eval`.
        last_dropout_masks: the masks of the last forward pass, ``{layer: (T, N, H*dirs)}``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: Any = np.float64,
        seed: int | None = None,
    ) -> None:
        self._setup(
            input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional, dtype, seed
        )
        self.nonlinearity = nonlinearity

    def _layer_forward(
        self, x: Array, state0: States, layer: int, reverse: bool, mask: Array | None
    ) -> tuple[Array, States, dict[str, Any]]:
        """:func:`layer_forward` with this layer's parameters: ``x (T, N, D_in)``, ``(h0 (N, H),)``."""
        out, h_last, cache = layer_forward(
            x,
            state0[0],
            self.params[param_name("weight_ih", layer, reverse)],
            self.params[param_name("weight_hh", layer, reverse)],
            self._bias("bias_ih", layer, reverse),
            self._bias("bias_hh", layer, reverse),
            self.nonlinearity,
            reverse,
            mask,
        )
        return out, (h_last,), cache

    def _layer_backward(
        self, d_out: Array, d_state_last: States, cache: dict[str, Any]
    ) -> tuple[Array, States, dict[str, Array]]:
        """:func:`layer_backward`: ``d_out (T, N, H)``, ``(d_h_last (N, H),)`` -> ``dx``, ``(dh0,)``, grads."""
        dx, dh0, grads = layer_backward(d_out, d_state_last[0], cache)
        return dx, (dh0,), grads
