"""Truncated backpropagation through time (TBPTT).

The sequence is cut into chunks of ``chunk_size`` steps. Each chunk is run forward from the
state the previous chunk ended in, and backpropagated only to its own first step: the
carried state is treated as a constant (``h.detach()`` in PyTorch), so the gradient that
would flow into the previous chunk is dropped. Memory and time per backward pass are those
of one chunk; the price is that no loss can send gradient further back than its own chunk.

The loss is ``sum_t <output_t, d_output_t> + <h_n, d_h_n>`` (any loss is, to first order: its
gradients w.r.t. ``output`` and ``h_n``). Here the chunks' gradients are *summed* without
updating the weights between chunks, so that the result is comparable with full BPTT:
with one chunk it *is* full BPTT. Training code usually takes an optimiser step after each
chunk instead.

Chunks are the simplest scheme, not the only one. The first loss of each chunk gets one step of
backpropagation, the last one ``chunk_size``. Two others, each next to a PyTorch version with ``.detach()``:

* :func:`tbptt_k1k2_gradients`, TBPTT(k1, k2) of Williams & Peng (1990): every ``k1`` steps,
  backpropagate ``k2 >= k1`` steps, so every loss reaches at least ``k2 - k1 + 1`` steps
  (:func:`k1k2_windows`); ``k1 == k2`` is the chunks.
* :func:`randomized_tbptt_gradients`, randomized truncation (Tallec & Ollivier, 2017; "Dive into
  Deep Learning", section 9.7): cuts at random places (:func:`randomized_truncation_factors`), so
  the truncation lengths are random, and the gradient that crosses a kept boundary is multiplied by
  ``1 / keep_prob``, which makes it unbiased.

:func:`reach_k1k2` and :func:`reach_from_factors` say, for each loss step, which earlier steps
receive its gradient; :func:`plot_gradient_reach` draws them.

Shapes: ``x (T, N, D)``, ``d_output (T, N, H)``, ``h0`` and ``d_h_n (L, N, H)``; time-major.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..explain.gradient_flow import _GRAD_KEYS, stack_backward, stack_forward
from ..numpy_rnn import NumpyRNN, rnn_cell_backward
from ..params import param_name

Array = np.ndarray


def chunk_bounds(T: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``0..T`` in chunks of ``chunk_size`` (the last may be shorter)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size}")
    return [(s, min(s + chunk_size, T)) for s in range(0, T, chunk_size)]


class TBPTTResult(NamedTuple):
    """What :func:`truncated_bptt_gradients` returns."""

    grads: dict[str, Array]  #: summed over chunks, keyed like ``NumpyRNN.params``
    d_input: Array  #: ``(T, N, D)``: each step's input gradient, from its own chunk's losses only
    d_h0: Array  #: ``(L, N, H)``: gradient w.r.t. ``h0``, from the first chunk's losses only
    dropped: Array  #: ``(num_chunks - 1, L, N, H)``: the gradient cut off at each chunk boundary


def truncated_bptt_gradients(
    model: NumpyRNN, x: Array, d_output: Array, chunk_size: int, h0: Array | None = None, d_h_n: Array | None = None
) -> TBPTTResult:
    """Gradients of ``sum_t <output_t, d_output_t> + <h_n, d_h_n>`` by truncated BPTT, with a :class:`NumpyRNN`.

    Args:
        model: unidirectional, time-major (dropout, if any, is drawn anew per chunk).
        x: ``(T, N, D)``; d_output: ``(T, N, H)``.
        chunk_size: steps per chunk; ``chunk_size >= T`` is full BPTT.
        h0, d_h_n: ``(L, N, H)`` or ``None`` (zeros). ``d_h_n`` enters the last chunk.

    Returns:
        A :class:`TBPTTResult`. ``model.grads`` is left holding the summed gradients too.
    """
    if model.bidirectional or model.batch_first:
        raise ValueError("truncated BPTT runs forward in time: use a unidirectional, time-major model")
    T = x.shape[0]
    bounds = chunk_bounds(T, chunk_size)
    h = h0
    grads: dict[str, Array] = {}
    d_input = np.empty_like(x)
    d_h0: Array | None = None
    dropped = []
    for i, (start, stop) in enumerate(bounds):
        _, h_n = model.forward(x[start:stop], h)
        last = i == len(bounds) - 1
        dx, dh_first = model.backward(d_output[start:stop], d_h_n if last else None)
        for name, g in model.grads.items():
            grads[name] = grads[name] + g if name in grads else g.copy()
        d_input[start:stop] = dx
        if i == 0:
            d_h0 = dh_first
        else:
            dropped.append(dh_first)  # would flow into the previous chunk: cut (the "detach")
        h = h_n.copy()  # carried forward as a constant
    model.grads = grads
    assert d_h0 is not None
    empty = np.zeros((0,) + d_h0.shape, dtype=d_h0.dtype)
    return TBPTTResult(grads, d_input, d_h0, np.stack(dropped) if dropped else empty)


def torch_truncated_bptt_gradients(
    module: Any, x: Any, d_output: Any, chunk_size: int, h0: Any = None, d_h_n: Any = None
) -> tuple[dict[str, Array], Array]:
    """The same with a torch RNN (``nn.RNN`` or :class:`~rnnlib.TorchRNN`): ``h.detach()`` between chunks.

    Args:
        module: time-major; its ``.grad``s are zeroed first and hold the summed gradients after.
        x: ``(T, N, D)`` tensor; d_output: ``(T, N, H)`` tensor; h0, d_h_n: ``(L, N, H)`` or ``None``.

    Returns:
        ``({name: gradient as a NumPy array}, d_input (T, N, D) as a NumPy array)``.
    """
    import torch

    module.zero_grad(set_to_none=True)
    h = h0
    d_input = []
    bounds = chunk_bounds(x.shape[0], chunk_size)
    for i, (start, stop) in enumerate(bounds):
        xc = x[start:stop].detach().clone().requires_grad_(True)
        out, h_n = module(xc, None if h is None else h.detach())  # detach: the chunk boundary
        loss = (out * d_output[start:stop]).sum()
        if i == len(bounds) - 1 and d_h_n is not None:
            loss = loss + (h_n * d_h_n).sum()
        loss.backward()
        d_input.append(xc.grad)
        h = h_n
    grads = {name: p.grad.detach().numpy().copy() for name, p in module.named_parameters()}
    return grads, torch.cat(d_input).detach().numpy()


# --------------------------------------------------------------------------------------
# TBPTT(k1, k2): every k1 steps, backpropagate k2 steps (Williams & Peng, 1990)
# --------------------------------------------------------------------------------------


def k1k2_windows(T: int, k1: int, k2: int) -> list[tuple[int, int, int]]:
    """The backward passes of TBPTT(k1, k2) over ``T`` steps, as ``[(back, first_loss, stop), ...]``.

    Every ``k1`` steps (after steps ``k1-1, 2*k1-1, ...`` and after the last step), the losses of the
    steps ``first_loss .. stop-1`` read since the previous pass are backpropagated down to step
    ``back = max(0, first_loss - (k2 - k1))``: a full pass covers ``k2`` steps, so its newest loss
    reaches ``k2`` steps and its oldest ``k2 - k1 + 1`` (fewer only where the sequence begins). The
    last pass, when ``k1`` does not divide ``T``, has fewer losses and reaches back as far before its
    first loss as the others. ``k1 == k2`` gives exactly the non-overlapping chunks of
    :func:`truncated_bptt_gradients`; ``k1 >= T`` is full BPTT.
    """
    if not (1 <= k1 <= k2):
        raise ValueError(f"TBPTT(k1, k2) needs 1 <= k1 <= k2, got k1={k1}, k2={k2}")
    return [(max(0, start - (k2 - k1)), start, stop) for start, stop in chunk_bounds(T, k1)]


def tbptt_k1k2_gradients(
    model: NumpyRNN, x: Array, d_output: Array, k1: int, k2: int, h0: Array | None = None, d_h_n: Array | None = None
) -> TBPTTResult:
    """Gradients of ``sum_t <output_t, d_output_t> + <h_n, d_h_n>`` by TBPTT(k1, k2), with a :class:`NumpyRNN`.

    One forward pass over the whole sequence (weights are not updated between passes, so the
    states are those of full BPTT), then one backward pass per window of :func:`k1k2_windows`,
    each :func:`~rnnlib.rnn_cell_backward` by :func:`~rnnlib.explain.gradient_flow.stack_backward` over
    steps ``back .. stop-1`` with the losses of ``first_loss .. stop-1`` only; the gradient that
    would flow into step ``back - 1`` is cut. The passes' gradients are summed; with overlapping
    windows (``k2 > k1``) a step's input gradient is the sum over every pass that reaches it.

    Args:
        model: unidirectional, time-major, no active dropout.
        x: ``(T, N, D)``; d_output: ``(T, N, H)``; h0, d_h_n: ``(L, N, H)`` or ``None`` (zeros).
        k1: steps between backward passes; k2: steps each pass goes back (``k2 >= k1``).

    Returns:
        A :class:`TBPTTResult`: ``grads``, ``d_input (T, N, D)``, ``d_h0 (L, N, H)`` (from the
        passes that reach step 0) and ``dropped (passes with back > 0, L, N, H)``.
    """
    T = x.shape[0]
    windows = k1k2_windows(T, k1, k2)
    _, _, caches = stack_forward(model, x, h0)
    L, N, H = model.num_layers, x.shape[1], model.hidden_size
    grads: dict[str, Array] = {}
    d_input = np.zeros_like(x)
    d_h0 = np.zeros((L, N, H), dtype=d_output.dtype)
    dropped = []
    for back, first_loss, stop in windows:
        d_out = np.zeros_like(d_output[back:stop])  # (stop - back, N, H): this pass's losses only
        d_out[first_loss - back :] = d_output[first_loss:stop]
        last = stop == T
        r = stack_backward([layer[back:stop] for layer in caches], d_out, d_h_n if last else None)
        for name, g in r.grads.items():
            grads[name] = grads[name] + g if name in grads else g.copy()
        d_input[back:stop] += r.d_input
        if back == 0:
            d_h0 += r.d_h0
        else:
            dropped.append(r.d_h0)  # would flow into step back - 1: cut
    model.grads = grads
    empty = np.zeros((0, L, N, H), dtype=d_h0.dtype)
    return TBPTTResult(grads, d_input, d_h0, np.stack(dropped) if dropped else empty)


def torch_tbptt_k1k2_gradients(
    module: Any, x: Any, d_output: Any, k1: int, k2: int, h0: Any = None, d_h_n: Any = None
) -> tuple[dict[str, Array], Array]:
    """TBPTT(k1, k2) with a torch RNN: each pass re-runs its ``k2`` steps from a detached state.

    For each window ``(back, first_loss, stop)`` the state before step ``back`` is computed without
    a graph and ``.detach()``-ed, the module is run over ``x[back:stop]`` from it, and the losses of
    steps ``first_loss .. stop-1`` are backpropagated. Shapes as in :func:`torch_truncated_bptt_gradients`.

    Returns:
        ``({name: gradient as a NumPy array}, d_input (T, N, D) as a NumPy array)``.
    """
    import torch

    module.zero_grad(set_to_none=True)
    T = x.shape[0]
    d_input = torch.zeros_like(x)
    for back, first_loss, stop in k1k2_windows(T, k1, k2):
        if back == 0:
            h_start = h0
        else:
            with torch.no_grad():
                _, h_start = module(x[:back], h0)
            h_start = h_start.detach()  # the cut: nothing flows into step back - 1
        xc = x[back:stop].detach().clone().requires_grad_(True)
        out, h_n = module(xc, h_start)
        loss = (out[first_loss - back :] * d_output[first_loss:stop]).sum()
        if stop == T and d_h_n is not None:
            loss = loss + (h_n * d_h_n).sum()
        loss.backward()
        d_input[back:stop] += xc.grad
    grads = {name: p.grad.detach().numpy().copy() for name, p in module.named_parameters()}
    return grads, d_input.detach().numpy()


# --------------------------------------------------------------------------------------
# Randomized truncation (Tallec & Ollivier, 2017; "Dive into Deep Learning", section 9.7)
# --------------------------------------------------------------------------------------


def randomized_truncation_factors(T: int, keep_prob: float, rng: np.random.Generator, reweight: bool = True) -> Array:
    """Random cuts for randomized truncation: ``(T - 1,)`` factors, ``factors[t-1]`` between steps ``t-1`` and ``t``.

    Each boundary is kept with probability ``keep_prob`` (then the segments between cuts have
    random lengths, geometric with mean ``1 / (1 - keep_prob)``) and cut otherwise (factor 0). A kept
    boundary multiplies the gradient that crosses it by ``1 / keep_prob`` when ``reweight`` (the
    d2l estimator: each factor has expectation 1, so the gradient is unbiased) and by 1 otherwise.
    """
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
    kept = rng.random(T - 1) < keep_prob
    return np.where(kept, 1.0 / keep_prob if reweight else 1.0, 0.0)


def randomized_tbptt_gradients(
    model: NumpyRNN, x: Array, d_output: Array, factors: Array, h0: Array | None = None, d_h_n: Array | None = None
) -> TBPTTResult:
    """Gradients with the gradient from step ``t`` to step ``t-1`` multiplied by ``factors[t-1]`` (0: a cut).

    One forward pass, then Chapter 5's backward one :func:`~rnnlib.rnn_cell_backward` at a time
    (top layer first), where ``dL/dh_{t-1}`` sent back from step ``t`` is scaled by ``factors[t-1]``
    in every layer. Factors from :func:`randomized_truncation_factors` give randomized truncation;
    ones give full BPTT; zeros every ``k`` steps give :func:`truncated_bptt_gradients`.

    Args:
        x: ``(T, N, D)``; d_output: ``(T, N, H)``; factors: ``(T - 1,)``; h0, d_h_n: ``(L, N, H)`` or ``None``.

    Returns:
        A :class:`TBPTTResult`; ``dropped (cuts, L, N, H)`` holds the gradient cut at each zero factor, in time order.
    """
    T, N, _ = x.shape
    factors = np.asarray(factors, dtype=float)
    if factors.shape != (T - 1,):
        raise ValueError(f"factors must have shape (T - 1,) = ({T - 1},), got {factors.shape}")
    L, H = model.num_layers, model.hidden_size
    _, _, caches = stack_forward(model, x, h0)
    if d_h_n is None:
        d_h_n = np.zeros((L, N, H), dtype=d_output.dtype)
    cuts = np.flatnonzero(factors == 0)  # boundary index t-1 of each cut
    dropped = np.zeros((len(cuts), L, N, H), dtype=d_output.dtype)
    grads: dict[str, Array] = {}
    d_h0 = np.empty((L, N, H), dtype=d_output.dtype)
    upstream = d_output
    for layer in range(L - 1, -1, -1):
        dh_next, dx = d_h_n[layer], []
        for t in range(T - 1, -1, -1):
            step = rnn_cell_backward(upstream[t] + dh_next, caches[layer][t])
            for key, kind in _GRAD_KEYS.items():
                if step[key] is not None:
                    name = param_name(kind, layer)
                    grads[name] = grads[name] + step[key] if name in grads else step[key]
            dx.append(step["dx"])
            if t == 0:
                dh_next = step["dh_prev"]
            else:
                if factors[t - 1] == 0:
                    dropped[np.searchsorted(cuts, t - 1), layer] = step["dh_prev"]
                dh_next = factors[t - 1] * step["dh_prev"]
        d_h0[layer] = dh_next
        upstream = np.stack(dx[::-1])
    order = [param_name(k, layer) for layer in range(L) for k in _GRAD_KEYS.values()]
    model.grads = {k: grads[k] for k in order if k in grads}
    return TBPTTResult(model.grads, upstream, d_h0, dropped)


def torch_randomized_tbptt_gradients(
    module: Any, x: Any, d_output: Any, factors: Array, h0: Any = None, d_h_n: Any = None
) -> tuple[dict[str, Array], Array]:
    """The same with a torch RNN run one step at a time: the carried state is ``h.detach()`` at a cut and
    ``h.detach() + f * (h - h.detach())`` otherwise (the same value, its gradient scaled by ``f``).

    Returns:
        ``({name: gradient as a NumPy array}, d_input (T, N, D) as a NumPy array)``.
    """
    module.zero_grad(set_to_none=True)
    xr = x.detach().clone().requires_grad_(True)
    h, loss = h0, x.new_zeros(())
    for t in range(x.shape[0]):
        if t > 0:
            f = float(factors[t - 1])
            h = h.detach() if f == 0 else h.detach() + f * (h - h.detach())
        out, h = module(xr[t : t + 1], h)
        loss = loss + (out[0] * d_output[t]).sum()
    if d_h_n is not None:
        loss = loss + (h * d_h_n).sum()
    loss.backward()
    grads = {name: p.grad.detach().numpy().copy() for name, p in module.named_parameters()}
    return grads, xr.grad.detach().numpy()


# --------------------------------------------------------------------------------------
# Which steps receive gradient from which loss
# --------------------------------------------------------------------------------------


def reach_k1k2(T: int, k1: int, k2: int) -> Array:
    """``(T, T)``: ``reach[s, t] = 1`` where TBPTT(k1, k2) sends the loss at step ``s`` back to step ``t``.

    The loss at ``s`` is backpropagated once, in the window that contains it, down to that
    window's ``back``. ``k1 == k2``: chunks; ``k1 = k2 = T``: full BPTT (the lower triangle).
    """
    reach = np.zeros((T, T))
    for back, first_loss, stop in k1k2_windows(T, k1, k2):
        for s in range(first_loss, stop):
            reach[s, back : s + 1] = 1.0
    return reach


def reach_from_factors(factors: Array) -> Array:
    """``(T, T)``: ``reach[s, t] = factors[t] * ... * factors[s-1]`` for ``t <= s`` (1 on the diagonal), else 0.

    The factor by which the loss at step ``s``'s gradient reaches step ``t``, relative to full BPTT,
    for :func:`randomized_tbptt_gradients` with these ``(T - 1,)`` factors.
    """
    factors = np.asarray(factors, dtype=float)
    T = factors.shape[0] + 1
    reach = np.zeros((T, T))
    for s in range(T):
        w = 1.0
        reach[s, s] = 1.0
        for t in range(s - 1, -1, -1):
            w *= factors[t]
            if w == 0:
                break
            reach[s, t] = w
    return reach


def plot_gradient_reach(panels: dict[str, Array]):
    """One panel per scheme: loss step ``s`` (rows, down) against the step ``t`` it sends gradient to (columns).

    Args:
        panels: ``{title: (T, T) reach}``, as :func:`reach_k1k2` and :func:`reach_from_factors` return;
            a cell is filled where the reach is non-zero.

    Returns:
        The ``matplotlib.figure.Figure``; ``fig.axes[i].images[0].get_array()`` is panel ``i``'s ``reach > 0``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6), squeeze=False)
    fig.patch.set_facecolor("white")
    cmap = ListedColormap(["white", "#1f77b4"])
    for ax, (title, reach) in zip(axes[0], panels.items(), strict=True):
        T = reach.shape[0]
        ax.imshow(
            (reach > 0).astype(float),
            cmap=cmap,
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(0.5, T + 0.5, T + 0.5, 0.5),
        )
        ax.plot([0.5, T + 0.5], [0.5, T + 0.5], color="0.6", lw=0.6)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step $t$ that receives gradient")
        ax.set_ylabel("step $s$ of the loss")
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig
