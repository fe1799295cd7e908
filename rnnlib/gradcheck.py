"""Finite-difference gradient checks, the CS231n way.

The relative error between an analytic gradient ``a`` and a numerical one ``n`` is
``max |a - n| / max(|a| + |n|, 1e-8)`` over all entries. Rules of thumb in float64
(CS231n): ``> 1e-2`` the gradient is wrong; ``1e-2 .. 1e-4`` uncomfortable;
``< 1e-4`` fine for kinked functions (relu), suspicious for smooth ones (tanh);
``< 1e-7`` right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .numpy_rnn import NumpyRNN
from .params import to_numpy

Array = np.ndarray


def rel_error(analytic: Any, numerical: Any) -> float:
    """CS231n's relative error, ``max |a-n| / max(|a|+|n|, 1e-8)``, for arrays of any (equal) shape."""
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numerical, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"cannot compare gradients of shapes {a.shape} and {n.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))))


def max_abs_difference(a: Any, b: Any) -> float:
    """``max |a - b|`` over all entries, for NumPy arrays and torch tensors alike (0.0 when empty).

    The parity measure the course prints everywhere; shapes must be equal (no broadcasting,
    which would hide a layout mistake).
    """
    a, b = to_numpy(a), to_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def numerical_gradient(f: Callable[[], float], x: Array, h: float = 1e-5) -> Array:
    """Centred differences ``(f(x+h) - f(x-h)) / 2h`` of a scalar function, one entry of ``x`` at a time.

    ``f`` takes no arguments and reads ``x``, which is perturbed in place and restored.

    Args:
        f: the scalar loss.
        x: any shape; the array ``f`` depends on.

    Returns:
        An array of ``x``'s shape.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])  # type: ignore[list-item]  # stubs want the flat form; nested is valid
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        plus = f()
        x[ix] = old - h
        minus = f()
        x[ix] = old
        grad[ix] = (plus - minus) / (2 * h)
        it.iternext()
    return grad


def numerical_gradient_array(f: Callable[[Array], Array], x: Array, df: Array, h: float = 1e-5) -> Array:
    """Numerical gradient of ``sum(f(x) * df)`` w.r.t. ``x``: a vector-Jacobian product, as in CS231n.

    Args:
        f: maps ``x`` (any shape) to an array of ``df``'s shape.
        x: perturbed in place, then restored.
        df: the upstream gradient.
    """
    return numerical_gradient(lambda: float(np.sum(f(x) * df)), x, h)


def check_rnn_gradients(
    model: NumpyRNN,
    x: Array,
    h0: Array | None = None,
    *,
    lengths: Any = None,
    seed: int = 0,
    h: float = 1e-5,
) -> dict[str, float]:
    """Compare :meth:`NumpyRNN.backward` with centred finite differences.

    The loss is ``sum(output * G) + sum(h_n * G_n)`` for random fixed ``G``, ``G_n``,
    so every output and every final state matters. In training mode with dropout the
    masks of one forward pass are held fixed for every perturbed pass.

    Args:
        model: a float64 :class:`NumpyRNN` (float32 is too coarse for finite differences).
        x: input of the shape ``model`` expects; h0: optional initial state.

    Returns:
        ``{name: relative error}`` for every parameter, ``"input"`` and ``"h0"``.
    """
    if model.dtype != np.float64:
        raise TypeError(f"finite differences need float64, the model computes in {model.dtype}")
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    out, h_n = model.forward(x, h0, lengths=lengths)
    masks = dict(model.last_dropout_masks)
    G, G_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    if h0 is None:
        h0 = np.zeros_like(h_n)
    h0 = np.array(h0, dtype=np.float64)
    model.forward(x, h0, lengths=lengths, dropout_masks=masks)
    d_x, d_h0 = model.backward(G, G_n)
    analytic = {**model.grads, "input": d_x, "h0": d_h0}

    def loss() -> float:
        o, hn = model.forward(x, h0, lengths=lengths, dropout_masks=masks)
        return float(np.sum(o * G) + np.sum(hn * G_n))

    targets = {**model.params, "input": x, "h0": h0}
    return {name: rel_error(analytic[name], numerical_gradient(loss, arr, h)) for name, arr in targets.items()}
