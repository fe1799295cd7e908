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

Shapes: ``x (T, N, D)``, ``d_output (T, N, H)``, ``h0`` and ``d_h_n (L, N, H)``; time-major.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .numpy_rnn import NumpyRNN

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


def truncated_bptt_gradients(model: NumpyRNN, x: Array, d_output: Array, chunk_size: int,
                             h0: Array | None = None, d_h_n: Array | None = None) -> TBPTTResult:
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


def torch_truncated_bptt_gradients(module: Any, x: Any, d_output: Any, chunk_size: int,
                                   h0: Any = None, d_h_n: Any = None) -> tuple[dict[str, Array], Array]:
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
