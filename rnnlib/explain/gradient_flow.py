"""Where the gradient goes in a stacked RNN: BPTT one cell at a time, and measurements of its size.

Shapes: ``T`` steps, ``N`` sequences, ``D`` input features, ``H`` hidden units, ``L`` layers.
Everything here is for unidirectional, time-major, dropout-free stacks (the setting of the
chapters on BPTT and on vanishing/exploding gradients).

* :func:`stack_forward` / :func:`stack_backward`: the stack written as a loop over layers and
  steps calling :func:`~rnnlib.rnn_cell_forward` / :func:`~rnnlib.rnn_cell_backward`; the
  backward also returns every ``dL/dh_t^(l)`` so that its size can be measured.
* :func:`hidden_state_jacobians` / :func:`hidden_state_jacobian_norms`: ``dh_T/dh_t`` (the last
  state w.r.t. an earlier one) within one layer, computed with the same hand-written backward, and
  :func:`torch_hidden_state_jacobians`, the same by autograd; :func:`power_norms`, the linear case.
* :func:`per_layer_gradient_norms`: ``||dL/dh_t^(l)||`` for every layer and step.
* :func:`activation_derivative_stats`: the mean (and RMS) of ``act'`` along a trajectory.
* :func:`fit_log_slope`: the per-step growth rate of a norm curve.
* ``plot_*``: figures of these measurements (each returns the ``Figure``).
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import numpy as np

from ..numpy_rnn import NumpyRNN, get_activation, rnn_cell_backward, rnn_cell_forward
from ..params import param_name

Array = np.ndarray
Cache = dict[str, Any]


def _check_plain_stack(model: NumpyRNN) -> None:
    if model.bidirectional or model.batch_first or (model.dropout > 0 and model.training):
        raise ValueError(
            "gradient_flow handles unidirectional, time-major stacks without active dropout "
            f"(got {model!r}, training={model.training})"
        )


# --------------------------------------------------------------------------------------
# BPTT one cell at a time
# --------------------------------------------------------------------------------------


_GRAD_KEYS = {"dW_ih": "weight_ih", "dW_hh": "weight_hh", "db_ih": "bias_ih", "db_hh": "bias_hh"}


def initial_states(model: NumpyRNN, x: Array, h0: Array | None) -> Array:
    """Check that ``model`` is a plain stack and return ``h0`` ``(L, N, H)``, zeros if ``None``."""
    _check_plain_stack(model)
    if h0 is None:
        h0 = np.zeros((model.num_layers, x.shape[1], model.hidden_size), dtype=model.dtype)
    return h0


def layer_forward_steps(
    model: NumpyRNN, layer: int, layer_input: Array, h_start: Array
) -> tuple[Array, Array, list[Cache]]:
    """One layer of the stack, step by step with :func:`rnn_cell_forward` (keeping every cache).

    Args:
        layer_input: ``(T, N, D_in)``; h_start: ``(N, H)``, the layer's initial state.

    Returns:
        The layer's states ``(T, N, H)``, its last state ``(N, H)`` and the ``T`` caches.
    """
    p = {kind: model.params.get(param_name(kind, layer)) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    h, states, caches = h_start, [], []
    for t in range(layer_input.shape[0]):
        h, cache = rnn_cell_forward(
            layer_input[t],
            h,
            cast(Array, p["weight_ih"]),
            cast(Array, p["weight_hh"]),
            p["bias_ih"],
            p["bias_hh"],
            model.nonlinearity,
        )
        states.append(h)
        caches.append(cache)
    return np.stack(states), h, caches


def layer_backward_steps(
    layer: int, caches: list[Cache], upstream: Array, dh_last: Array, grads: dict[str, Array], d_states: Array
) -> tuple[Array, Array]:
    """One layer swept backward in time with :func:`rnn_cell_backward`.

    Args:
        caches: the layer's ``T`` caches; upstream: ``(T, N, H)``, dL/d(the layer's states)
            from above; dh_last: ``(N, H)``, dL/dh_T from ``h_n``.
        grads: the weight gradients, summed over steps into it (keyed like ``NumpyRNN.params``).
        d_states: ``(T, N, H)``, filled with everything that reaches the state at each step.

    Returns:
        ``dx (T, N, D_in)``, the gradient w.r.t. the layer's input, and ``dh0 (N, H)``.
    """
    dh_next, dx = dh_last, []
    for t in range(len(caches) - 1, -1, -1):
        dh = upstream[t] + dh_next  # the two ways h_t reaches the loss
        d_states[t] = dh
        step = rnn_cell_backward(dh, caches[t])
        for key, kind in _GRAD_KEYS.items():  # the same weights act at every step: sum over t
            if step[key] is not None:
                name = param_name(kind, layer)
                grads[name] = grads[name] + step[key] if name in grads else step[key]
        dh_next = step["dh_prev"]
        dx.append(step["dx"])
    return np.stack(dx[::-1]), dh_next


def stack_forward(model: NumpyRNN, x: Array, h0: Array | None = None) -> tuple[Array, Array, list[list[Cache]]]:
    """The stack's forward pass as a double loop (layers outside, steps inside) of cells.

    Args:
        model: supplies ``params``, ``num_layers`` and ``nonlinearity``.
        x: ``(T, N, D)``; h0: ``(L, N, H)`` or ``None`` (zeros).

    Returns:
        ``output (T, N, H)`` (the top layer's states), ``h_n (L, N, H)`` and
        ``caches[l][t]``, the cache of :func:`rnn_cell_forward` for layer ``l`` at step ``t``.
    """
    h0 = initial_states(model, x, h0)
    caches: list[list[Cache]] = []
    h_n = np.empty_like(h0)
    layer_input = x
    for layer in range(model.num_layers):
        layer_input, h_n[layer], layer_caches = layer_forward_steps(model, layer, layer_input, h0[layer])
        caches.append(layer_caches)  # layer_input is now this layer's states: the next layer's input
    return layer_input, h_n, caches


class StackGradients(NamedTuple):
    """What :func:`stack_backward` returns."""

    d_input: Array  #: ``(T, N, D)``
    d_h0: Array  #: ``(L, N, H)``
    grads: dict[str, Array]  #: keyed like ``NumpyRNN.params``
    d_states: Array  #: ``(L, T, N, H)``: ``dL/dh_t^(l)``, everything that reaches layer l's state at step t


def stack_backward(caches: list[list[Cache]], d_output: Array, d_h_n: Array | None = None) -> StackGradients:
    """Backpropagation through time and through the stack, one :func:`rnn_cell_backward` at a time.

    Top layer first: each layer is swept backward in time, and the ``dx`` of all its steps
    becomes the upstream gradient of the layer below (its output *is* this layer's input).

    Args:
        caches: from :func:`stack_forward`.
        d_output: ``(T, N, H)`` gradient of the loss w.r.t. ``output``.
        d_h_n: ``(L, N, H)`` gradient w.r.t. ``h_n``, or ``None`` (zeros).
    """
    L, T = len(caches), len(caches[0])
    N, H = d_output.shape[1], d_output.shape[2]
    if d_h_n is None:
        d_h_n = np.zeros((L, N, H), dtype=d_output.dtype)
    grads: dict[str, Array] = {}
    d_h0 = np.empty((L, N, H), dtype=d_output.dtype)
    d_states = np.empty((L, T, N, H), dtype=d_output.dtype)
    upstream = d_output  # (T, N, H): dL/d(this layer's output), from above (or from the loss)
    for layer in range(L - 1, -1, -1):
        # at t = T-1 the step after sends back dL/dh_n; the layer's dx is the layer below's d output
        upstream, d_h0[layer] = layer_backward_steps(
            layer, caches[layer], upstream, d_h_n[layer], grads, d_states[layer]
        )
    order = [param_name(k, layer) for layer in range(L) for k in _GRAD_KEYS.values()]
    return StackGradients(upstream, d_h0, {k: grads[k] for k in order if k in grads}, d_states)


# --------------------------------------------------------------------------------------
# Jacobians through time
# --------------------------------------------------------------------------------------


def hidden_state_jacobians(model: NumpyRNN, x: Array, layer: int = -1, h0: Array | None = None) -> Array:
    """``J[t, n] = dh_{T-1}/dh_t`` for one layer of the stack (lower layers' outputs held fixed).

    Computed by the hand-written backward: the sequences are repeated ``H`` times in the
    batch and the last step receives the ``H`` unit vectors ``e_i`` as ``dh``; sending them back
    with :func:`rnn_cell_backward` gives, at step ``t``, the rows ``e_i^T dh_{T-1}/dh_t``.

    Args:
        x: ``(T, N, D)``; layer: which layer (negative counts from the top).

    Returns:
        ``(T, N, H, H)``; ``J[t, n, i, j] = d h_{T-1}[n, i] / d h_t[n, j]`` (``J[T-1]`` is ``I``).
    """
    _, _, caches = stack_forward(model, x, h0)
    layer_caches = caches[layer]
    T, N, H = len(layer_caches), x.shape[1], model.hidden_size
    J = np.empty((T, N, H, H), dtype=model.dtype)
    dh = np.tile(np.eye(H, dtype=model.dtype), (N, 1))  # (N*H, H): row n*H+i is e_i for sequence n
    J[T - 1] = dh.reshape(N, H, H)
    for t in range(T - 1, 0, -1):
        c = layer_caches[t]
        rep = {
            **c,
            "x": np.repeat(c["x"], H, axis=0),
            "h_prev": np.repeat(c["h_prev"], H, axis=0),
            "h": np.repeat(c["h"], H, axis=0),
        }
        dh = rnn_cell_backward(dh, rep)["dh_prev"]  # now e_i^T dh_{T-1}/dh_{t-1}
        J[t - 1] = dh.reshape(N, H, H)
    return J


def hidden_state_jacobian_norms(model: NumpyRNN, x: Array, layer: int = -1, h0: Array | None = None) -> Array:
    """``||dh_T/dh_{T-k}||_2`` (spectral norm: the largest singular value) for ``k = 0..T-1``, mean over the batch.

    Indexed by the *distance* ``k`` in steps (entry 0 is ``||I|| = 1``), like :func:`power_norms`,
    so that ``fit_log_slope(norms)`` is the log of the per-step factor.

    Returns:
        ``(T,)``.
    """
    J = hidden_state_jacobians(model, x, layer, h0)  # J[t] = dh_T/dh_t, t = 0..T-1 (code indices)
    return np.linalg.norm(J, ord=2, axis=(2, 3)).mean(axis=1)[::-1].copy()


def torch_hidden_state_jacobians(model: NumpyRNN, x: Array, layer: int = -1, h0: Array | None = None) -> Array:
    """:func:`hidden_state_jacobians` by ``torch.autograd.functional.jacobian``, for checking it.

    For each step ``t`` and sequence ``n``, differentiates the map "state at ``t`` -> state at
    ``T-1``" (the rest of the layer's recurrence, run by :func:`rnnlib.torch_rnn.torch_layer_forward`
    on the layer's actual inputs). Slow: ``T * N`` Jacobians; meant for small checks.

    Returns:
        ``(T, N, H, H)``, same layout as :func:`hidden_state_jacobians`.
    """
    import torch

    from ..torch_rnn import torch_layer_forward

    _, _, caches = stack_forward(model, x, h0)
    layer = layer % model.num_layers
    lc = caches[layer]
    T, N, H = len(lc), x.shape[1], model.hidden_size
    inputs = torch.from_numpy(np.stack([c["x"] for c in lc]))  # (T, N, D_in): what this layer read
    states = torch.from_numpy(np.stack([c["h"] for c in lc]))  # (T, N, H)
    p = [
        None if model.params.get(param_name(k, layer)) is None else torch.from_numpy(model.params[param_name(k, layer)])
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    J = np.empty((T, N, H, H))
    for t in range(T):
        for n in range(N):

            def rest(h: torch.Tensor, t: int = t, n: int = n) -> torch.Tensor:
                if t == T - 1:
                    return h
                _, h_last = torch_layer_forward(
                    inputs[t + 1 :, n : n + 1],
                    h[None],
                    *p,  # type: ignore[call-arg, arg-type]  # *p is W_ih, W_hh, b_ih, b_hh
                    model.nonlinearity,
                )
                return h_last[0]

            J[t, n] = torch.autograd.functional.jacobian(rest, states[t, n]).numpy()
    return J


def power_norms(W: Array, K: int) -> Array:
    """``||W^k||_2`` for ``k = 0..K``: the Jacobian norms of the *linear* recurrence ``h_t = W h_{t-1} + ...``.

    Returns:
        ``(K+1,)``, starting at ``||I|| = 1``.
    """
    out = np.empty(K + 1)
    P = np.eye(W.shape[0])
    for k in range(K + 1):
        out[k] = np.linalg.norm(P, ord=2)
        P = W @ P
    return out


def activation_derivative_stats(
    model: NumpyRNN, x: Array, layer: int = -1, h0: Array | None = None
) -> dict[str, float]:
    """Statistics of ``act'(a_t)`` over one layer's whole trajectory (every step, sequence and unit).

    Returns:
        ``{'mean': E|act'|, 'rms': sqrt(E[act'^2]), 'max': max |act'|}``. For tanh,
        ``act' = 1 - h^2``; for relu, ``[h > 0]`` (so ``mean`` is the fraction of active units).
    """
    _, _, caches = stack_forward(model, x, h0)
    deriv = get_activation(model.nonlinearity).derivative_from_output
    d = np.abs(np.stack([deriv(c["h"]) for c in caches[layer]]))
    return {"mean": float(d.mean()), "rms": float(np.sqrt(np.mean(d * d))), "max": float(d.max())}


def per_layer_gradient_norms(
    model: NumpyRNN, x: Array, d_output: Array, d_h_n: Array | None = None, h0: Array | None = None
) -> Array:
    """``||dL/dh_t^(l)||`` (over the batch and units, Frobenius) for every layer and step.

    Args:
        d_output: ``(T, N, H)`` the loss's gradient w.r.t. the top layer's output.

    Returns:
        ``(L, T)``; row ``l`` is layer ``l`` (0 = the bottom).
    """
    _, _, caches = stack_forward(model, x, h0)
    d_states = stack_backward(caches, d_output, d_h_n).d_states  # (L, T, N, H)
    return np.sqrt(np.sum(d_states**2, axis=(2, 3)))


def fit_log_slope(norms: Array, distances: Array | None = None) -> float:
    """Least-squares slope of ``log(norms)`` against ``distances``: the log of the per-step factor.

    Args:
        norms: ``(K,)`` positive.
        distances: ``(K,)``; by default ``0..K-1``.

    Returns:
        ``s`` with ``norms ~ C * exp(s * distance)``; ``exp(s)`` is the factor per step.
    """
    norms = np.asarray(norms, dtype=np.float64)
    k = np.arange(len(norms), dtype=np.float64) if distances is None else np.asarray(distances, dtype=np.float64)
    slope, _ = np.polyfit(k, np.log(norms), 1)
    return float(slope)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def _new_axes(npanels: int = 1, width: float = 4.6, height: float = 3.4):
    """A white figure with ``npanels`` axes, two per row at most; returns ``(fig, [axes])``."""
    import matplotlib.pyplot as plt

    ncols = min(npanels, 2)
    nrows = -(-npanels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    fig.patch.set_facecolor("white")
    flat = list(axes.ravel())
    for ax in flat[npanels:]:
        fig.delaxes(ax)
    return fig, flat[:npanels]


def plot_norm_curves(
    panels: dict[str, dict[str, Array]],
    xlabel: str = "distance $k = T - t$ (steps)",
    ylabel: str = r"$\|\partial h_T / \partial h_{T-k}\|_2$",
    x: Array | None = None,
):
    """One log-scale panel per entry of ``panels``, one line per entry of each ``{label: (K,) array}``.

    Args:
        panels: ``{panel title: {line label: values}}``; values are plotted at ``x`` (default ``0..K-1``).

    Returns:
        The ``matplotlib.figure.Figure``; ``fig.axes[i].lines[j]`` holds panel ``i``'s line ``j``.
    """
    fig, axes = _new_axes(len(panels))
    for ax, (title, curves) in zip(axes, panels.items(), strict=True):
        for label, values in curves.items():
            xs = np.arange(len(values)) if x is None else x
            ax.semilogy(xs, values, marker="o", markersize=2.5, label=label)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_jacobian_norms(panels: dict[str, dict[str, Array]]):
    """``||dh_T/dh_{T-k}||`` against the distance ``k``, log scale: one panel per entry, one line per curve.

    Args:
        panels: ``{panel title: {line label: (K,) norms indexed by distance}}``, as
            :func:`hidden_state_jacobian_norms` and :func:`power_norms` return them.
    """
    return plot_norm_curves(panels)


def plot_per_layer_gradient_norms(norms: Array, title: str = ""):
    """``||dL/dh_t^(l)||`` against the step ``t = 1..T``, one line per layer (``norms (L, T)``, log scale)."""
    curves = {f"layer {layer + 1}": norms[layer] for layer in range(norms.shape[0])}
    return plot_norm_curves(
        {title: curves},
        xlabel="time step $t$",
        ylabel=r"$\|\partial \mathcal{L} / \partial h_t^{(l)}\|$",
        x=np.arange(1, norms.shape[1] + 1),
    )


def plot_depth_gradient_norms(panels: dict[str, dict[int, Array]], ylabel: str = "gradient norm"):
    """Per-layer gradient norms against the layer ``l = 1..L``, one line per stack depth ``L``, log scale.

    Args:
        panels: ``{panel title: {depth L: (L,) values, bottom layer first}}``.
    """
    fig, axes = _new_axes(len(panels))
    for ax, (title, by_depth) in zip(axes, panels.items(), strict=True):
        for depth, values in by_depth.items():
            ax.semilogy(np.arange(1, depth + 1), values, marker="o", markersize=4, label=f"L = {depth}")
        ax.set_xlabel("layer $l$ (1 = bottom)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
