"""Chapter 11's implementations of one stacked forward pass, from the slowest to the fastest, and its figures.

Every function here computes what ``torch.nn.RNN`` (tanh, with biases, time-major) computes, from an
``nn.RNN``-style state dict of NumPy arrays ``params``, an input ``x (T, N, D)`` and ``h0 (L, N, H)``, and
returns ``output (T, N, H)`` and ``h_n (L, N, H)``. They differ only in how the work is arranged:

* :func:`naive_forward`: chapter 2's double loop, time-major, both products at every step, new arrays;
* :func:`hoisted_forward`: layer by layer, so that a layer's input products of all steps become one
  matrix product before its time loop ("hoisting"); still new arrays at every step;
* :func:`inplace_forward`: the same, the states written into the array of the hoisted products, the
  activation applied in place;
* :func:`layered_forward`: ``rnnlib``'s :func:`~rnnlib.layer_forward` layer by layer, which also
  transposes ``W_hh`` once instead of reading it transposed at every step;
* :func:`wavefront_forward`: chapter 4's wavefronts, each one batched into one product over the layers.

The loops take a ``matmul`` argument (``np.matmul`` by default), so that a :class:`FlopCounter` can count
the work they do. :func:`autograd_saved_bytes` measures what autograd keeps for the backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..numpy_rnn import layer_forward
from .dataflow import layer_params, num_layers_of

Array = np.ndarray
Params = dict[str, Array]
MatMul = Callable[..., Array]


class FlopCounter:
    """A stand-in for ``np.matmul`` that counts the FLOPs of every product it computes.

    ``(..., m, k) @ (..., k, n)`` counts ``2*m*k*n`` per matrix of the (broadcast) batch.

    Attributes:
        flops: FLOPs counted so far.
        calls: products computed so far (one batched call counts once).
    """

    def __init__(self) -> None:
        self.flops = 0
        self.calls = 0

    def __call__(self, a: Array, b: Array, out: Array | None = None) -> Array:
        batch = math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        self.flops += batch * 2 * a.shape[-2] * a.shape[-1] * b.shape[-1]
        self.calls += 1
        return np.matmul(a, b) if out is None else np.matmul(a, b, out=out)


def _sizes(params: Params, x: Array) -> tuple[int, int, int, int, int]:
    T, N, D = x.shape
    return T, N, D, params["weight_hh_l0"].shape[0], num_layers_of(params)


# --------------------------------------------------------------------------------------
# The ladder of implementations
# --------------------------------------------------------------------------------------


def naive_forward(params: Params, x: Array, h0: Array, matmul: MatMul = np.matmul) -> tuple[Array, Array]:
    """Chapter 2's loop: for every step, for every layer, both products, a new state array.

    Args:
        params: ``weight_ih_l{l}`` ``(H, D_in)``, ``weight_hh_l{l}`` ``(H, H)``, ``bias_ih_l{l}``,
            ``bias_hh_l{l}`` ``(H,)``.
        x: ``(T, N, D)``; h0: ``(L, N, H)``.

    Returns:
        ``output (T, N, H)``, ``h_n (L, N, H)``.
    """
    L = num_layers_of(params)
    h = [h0[l] for l in range(L)]
    output = []
    for t in range(x.shape[0]):
        below = x[t]
        for l in range(L):
            W_ih, W_hh, b_ih, b_hh = layer_params(params, l + 1)
            h[l] = np.tanh(matmul(below, W_ih.T) + b_ih + matmul(h[l], W_hh.T) + b_hh)
            below = h[l]
        output.append(h[-1])
    return np.stack(output), np.stack(h)


def _by_layer(layer: Callable[..., Array], params: Params, x: Array, h0: Array, matmul: MatMul) -> tuple[Array, Array]:
    """Run ``layer(x, h0, W_ih, W_hh, b_ih, b_hh, matmul) -> states (T, N, H)`` bottom to top."""
    L = num_layers_of(params)
    h_n = np.empty_like(h0)
    for l in range(L):
        x = layer(x, h0[l], *layer_params(params, l + 1), matmul)
        h_n[l] = x[-1]
    return x, h_n


def _hoisted_layer(x: Array, h0: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array, matmul: MatMul) -> Array:
    T, N, D_in = x.shape
    H = W_hh.shape[0]
    pre = matmul(x.reshape(T * N, D_in), W_ih.T).reshape(T, N, H) + (b_ih + b_hh)  # all steps' input products
    h, states = h0, []
    for t in range(T):
        h = np.tanh(pre[t] + matmul(h, W_hh.T))  # two new (N, H) arrays per step
        states.append(h)
    return np.stack(states)


def hoisted_forward(params: Params, x: Array, h0: Array, matmul: MatMul = np.matmul) -> tuple[Array, Array]:
    """Layer by layer, each layer's input products hoisted out of the time loop into one product.

    Shapes as :func:`naive_forward`.
    """
    return _by_layer(_hoisted_layer, params, x, h0, matmul)


def _inplace_layer(x: Array, h0: Array, W_ih: Array, W_hh: Array, b_ih: Array, b_hh: Array, matmul: MatMul) -> Array:
    T, N, D_in = x.shape
    H = W_hh.shape[0]
    states = matmul(x.reshape(T * N, D_in), W_ih.T).reshape(T, N, H)
    states += b_ih + b_hh
    h = h0
    for t in range(T):
        a = states[t]  # a view: step t's input part, overwritten by the state h_t
        a += matmul(h, W_hh.T)
        np.tanh(a, out=a)
        h = a
    return states


def inplace_forward(params: Params, x: Array, h0: Array, matmul: MatMul = np.matmul) -> tuple[Array, Array]:
    """As :func:`hoisted_forward`, with the states written in place into the hoisted products' array.

    Shapes as :func:`naive_forward`.
    """
    return _by_layer(_inplace_layer, params, x, h0, matmul)


def layered_forward(params: Params, x: Array, h0: Array) -> tuple[Array, Array]:
    """``rnnlib``'s :func:`~rnnlib.layer_forward` layer by layer (what :class:`~rnnlib.NumpyRNN` runs).

    Shapes as :func:`naive_forward`.
    """
    L = num_layers_of(params)
    h_n = np.empty_like(h0)
    for l in range(L):
        x, h_n[l], _ = layer_forward(x, h0[l], *layer_params(params, l + 1))
    return x, h_n


def wavefront_forward(params: Params, x: Array, h0: Array, matmul: MatMul = np.matmul) -> tuple[Array, Array]:
    """The stack by wavefronts: on wavefront ``k`` every layer ``l`` computes its step ``t = k - l`` (0-based).

    The cells of one wavefront are independent (chapter 4), so each wavefront is one batched product
    ``(n, N, H) @ (n, H, H)`` over its ``n <= L`` layers for the recurrent part, and one for the input
    part of layers 2 and up; layer 1's input products are hoisted, as in :func:`layered_forward`.
    ``T + L - 1`` wavefronts in all, against ``T * L`` steps layer by layer.

    Shapes as :func:`naive_forward`; the sums are formed in the same order as in :func:`~rnnlib.layer_forward`
    (input part, plus both biases, plus recurrent part).
    """
    T, N, D, H, L = _sizes(params, x)
    W_hh_T = np.stack([np.ascontiguousarray(params[f"weight_hh_l{l}"].T) for l in range(L)])  # (L, H, H)
    W_ih_T = np.stack(
        [np.ascontiguousarray(params[f"weight_ih_l{l}"].T) for l in range(1, L)] or [np.empty((H, H), x.dtype)]
    )  # (L-1, H, H): layers 2..L
    bias = np.stack([params[f"bias_ih_l{l}"] + params[f"bias_hh_l{l}"] for l in range(L)])[:, None, :]  # (L, 1, H)
    pre = matmul(x.reshape(T * N, D), params["weight_ih_l0"].T).reshape(T, N, H)  # layer 1's, hoisted
    state = np.array(h0, dtype=x.dtype, copy=True)  # state[l]: layer l's latest state
    a = np.empty((L, N, H), dtype=x.dtype)
    output = np.empty((T, N, H), dtype=x.dtype)
    for k in range(T + L - 1):
        lo, hi = max(0, k - T + 1), min(L - 1, k)  # the layers on wavefront k: lo..hi
        w = a[lo : hi + 1]
        if lo == 0:
            w[0] = pre[k]
        up = max(lo, 1)  # layers up..hi read the state of the layer below, computed on wavefront k-1
        if up <= hi:
            matmul(state[up - 1 : hi], W_ih_T[up - 1 : hi], out=w[up - lo :])
        w += bias[lo : hi + 1]
        w += matmul(state[lo : hi + 1], W_hh_T[lo : hi + 1])  # every recurrent product of the wavefront at once
        np.tanh(w, out=state[lo : hi + 1])  # written only now: every read above saw wavefront k-1
        if hi == L - 1:
            output[k - L + 1] = state[L - 1]
    return output, state


# --------------------------------------------------------------------------------------
# Memory kept for the backward pass
# --------------------------------------------------------------------------------------


def layer_forward_stored_bytes(params: Params, x: Array, h0: Array) -> int:
    """Bytes of the state arrays :func:`~rnnlib.layer_forward` keeps in its caches, over the stack.

    Each layer keeps its ``(T, N, H)`` states (which are also the next layer's input): ``T*N*H`` numbers.
    """
    L = num_layers_of(params)
    total = 0
    for l in range(L):
        x, _, cache = layer_forward(x, h0[l], *layer_params(params, l + 1))
        total += cache["states"].nbytes
    return total


def autograd_saved_bytes(run: Callable[[], Any], exclude: Sequence[torch.Tensor] = ()) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``run()`` builds its graph.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``; a tensor saved by several
    operations counts once, and tensors sharing storage with one of ``exclude`` (the parameters,
    the input) are not counted: they exist anyway.
    """
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in excluded:
            seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(seen.values())


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def plot_roofline(
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    peak: float,
    ceiling: tuple[Sequence[float], Sequence[float]],
    overhead_seconds: float,
):
    """Achieved GFLOP/s against the work of one step, with the machine's ceilings (log-log).

    Args:
        points: ``{implementation: (FLOPs per step, GFLOP/s)}``, one line each.
        peak: the large matrix product's GFLOP/s: a flat roof.
        ceiling: ``(FLOPs per product, GFLOP/s)`` of the small ``(N, H) @ (H, H)`` products alone.
        overhead_seconds: the fixed cost of one step (its calls' overhead): the slanted roof
            ``work / overhead_seconds``, what a step could reach if its products took no time.

    Returns:
        The figure; ``fig.axes[0].lines``: the implementations, then the small products, then the two roofs.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    fig.patch.set_facecolor("white")
    for label, (work, rate) in points.items():
        ax.loglog(work, rate, marker="o", markersize=4, label=label)
    ax.loglog(*ceiling, color="black", linestyle="--", marker="s", markersize=3, label="(N,H)@(H,H) products alone")
    all_work = np.concatenate([np.asarray(w, dtype=float) for w, _ in [*points.values(), ceiling]])
    span = np.geomspace(all_work.min() / 2, all_work.max() * 2, 50)
    ax.loglog(span, np.full_like(span, peak), color="gray", linewidth=2, label="large GEMM (peak)")
    ax.loglog(span, span / overhead_seconds / 1e9, color="gray", linestyle=":", linewidth=2, label="call overhead only")
    ax.set_ylim(top=peak * 2, bottom=min(min(r) for _, r in [*points.values(), ceiling]) / 3)
    ax.set_xlabel("FLOPs per step of one layer")
    ax.set_ylabel("GFLOP/s")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_scaling(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    slopes: Mapping[str, Mapping[str, float]] | None = None,
):
    """Time against one size per panel (log-log), one line per implementation.

    Args:
        panels: ``{size name: {implementation: (sizes, seconds)}}``.
        slopes: the fitted slopes, ``{size name: {implementation: slope}}``, shown in the legends.

    Returns:
        The figure; ``fig.axes[i].lines[j]`` is panel ``i``'s implementation ``j`` (times in ms).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, NullLocator

    ncols = min(len(panels), 2)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    fig.patch.set_facecolor("white")
    for ax, (size, curves) in zip(axes.ravel(), panels.items(), strict=False):  # an odd count leaves a spare axis
        for label, (sizes, seconds) in curves.items():
            if slopes is not None:
                label = f"{label} (slope {slopes[size][label]:.2f})"
            ax.loglog(sizes, 1e3 * np.asarray(seconds), marker="o", markersize=4, label=label)
        sizes = sorted({v for sizes, _ in curves.values() for v in sizes})
        ax.xaxis.set_minor_locator(NullLocator())  # label the sizes measured, nothing else
        ax.set_xticks(sizes, [str(v) for v in sizes])
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(size)
        ax.set_ylabel("time (ms)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels) :]:
        fig.delaxes(ax)
    fig.tight_layout()
    return fig
