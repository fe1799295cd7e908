"""Timing RNN code honestly: medians of interleaved runs, thread control, and the FLOP counts to divide by.

Shared by chapter 11 (performance) and ``benchmarks/rnn_speed.py``, so that the book and the script
measure the same way.

* :func:`median_times`: the median wall time of several callables, all run once per repeat in a
  shuffled order (a burst of load from other programs then slows all of them alike).
* :func:`set_threads` / :func:`threads`: the thread count of torch and of NumPy's BLAS (OpenBLAS,
  reached through ``ctypes``: ``threadpoolctl`` is not a dependency of the course).
* :func:`gflops`: a FLOP count over a time.
* The cost model: :func:`gemm_flops`, :func:`layer_flops`, :func:`stack_flops` (and their split
  into the part that can be batched over time and the part that cannot), :func:`backward_flops`,
  :func:`recurrent_step_bytes` and :func:`stored_state_bytes`.

FLOPs count a multiply and an add as two, and only the matrix products: the bias additions and
the activation are ``O(T N H)`` per layer, against ``O(T N H^2)`` for the products.
Sizes: ``T`` steps, ``N`` batch, ``D`` input features, ``H`` hidden, ``L`` layers.
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import numpy as np
import torch

#: Matrix products per step and layer, relative to an Elman cell: an LSTM computes four gates
#: (input, forget, cell, output), a GRU three (reset, update, new), each with its own pair of products.
GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


def median_times(
    functions: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Median wall time, in seconds, of each function.

    Each repeat runs every function once, in an order shuffled anew (``random.Random(seed)``),
    timed with ``time.perf_counter``. Interleaving means that a slow spell of the machine hits
    every function alike instead of one of them; the median ignores the odd interrupted run.

    Args:
        functions: ``{name: f}``, each ``f()`` one run of the thing to time.
        repeats: timed runs of each function (at least 1).
        warmup: untimed runs of each function first (caches, page faults, lazy initialisation).
        seed: of the shuffles, so that a run is reproducible in its order.

    Returns:
        ``{name: median seconds}``, in the order of ``functions``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        for f in functions.values():
            f()
    order = list(functions)
    shuffler = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        shuffler.shuffle(order)
        for name in order:
            start = time.perf_counter()
            functions[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(samples[name]) for name in functions}


def median_time(function: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time, in seconds, of one function (:func:`median_times` with one entry)."""
    return median_times({"f": function}, repeats, warmup)["f"]


def gflops(flops: float, seconds: float) -> float:
    """Achieved rate in GFLOP/s: ``flops / seconds / 1e9``."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    return flops / seconds / 1e9


def fit_loglog_slope(sizes: np.ndarray | list[float], seconds: np.ndarray | list[float]) -> float:
    """Least-squares slope of ``log(seconds)`` against ``log(sizes)``: time grows like ``size ** slope``."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.log(np.asarray(seconds, dtype=float))
    if x.shape != y.shape or x.size < 2:
        raise ValueError("need at least two (size, time) pairs of equal length")
    slope, _ = np.polyfit(x, y, 1)
    return float(slope)


# --------------------------------------------------------------------------------------
# Threads: torch, and NumPy's BLAS
# --------------------------------------------------------------------------------------


def _openblas() -> ctypes.CDLL | None:
    """The OpenBLAS library NumPy loaded, found in this process's memory map (Linux only)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.split()[-1].lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _openblas_function(action: str) -> Callable[..., int] | None:
    """``openblas_{action}_num_threads`` or its ``scipy_openblas`` (64-bit integer build) spelling."""
    lib = _openblas()
    if lib is None:
        return None
    for name in (
        f"openblas_{action}_num_threads",
        f"scipy_openblas_{action}_num_threads64_",
        f"openblas_{action}_num_threads64_",
    ):
        if hasattr(lib, name):
            return getattr(lib, name)
    return None


def numpy_blas_name() -> str:
    """Name and version of NumPy's BLAS, from ``np.show_config`` (``'unknown'`` if it cannot tell)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config is not a stable API
        return "unknown"


def get_numpy_blas_threads() -> int | None:
    """OpenBLAS's thread count, or ``None`` if NumPy's BLAS cannot be reached (not OpenBLAS, not Linux)."""
    getter = _openblas_function("get")
    return int(getter()) if getter is not None else None


def set_numpy_blas_threads(n: int) -> int | None:
    """Set OpenBLAS's thread count; return the count it then reports (``None`` if it cannot be reached)."""
    if n < 1:
        raise ValueError(f"thread count must be at least 1, got {n}")
    setter = _openblas_function("set")
    if setter is not None:
        setter(ctypes.c_int(n))
    return get_numpy_blas_threads()


class ThreadCounts(NamedTuple):
    """Threads in force: ``torch`` (``torch.get_num_threads()``) and ``blas`` (OpenBLAS; ``None`` if unknown)."""

    torch: int
    blas: int | None


def set_threads(n: int) -> ThreadCounts:
    """Give torch and NumPy's BLAS ``n`` threads each; return the counts they report."""
    torch.set_num_threads(n)
    return ThreadCounts(torch.get_num_threads(), set_numpy_blas_threads(n))


def current_threads() -> ThreadCounts:
    """The thread counts in force now."""
    return ThreadCounts(torch.get_num_threads(), get_numpy_blas_threads())


@contextlib.contextmanager
def threads(n: int) -> Iterator[ThreadCounts]:
    """``with threads(2): ...`` runs the block with ``n`` threads for torch and BLAS, then restores the counts."""
    before = current_threads()
    try:
        yield set_threads(n)
    finally:
        torch.set_num_threads(before.torch)
        if before.blas is not None:
            set_numpy_blas_threads(before.blas)


# --------------------------------------------------------------------------------------
# The cost model
# --------------------------------------------------------------------------------------


def gemm_flops(m: int, k: int, n: int) -> int:
    """FLOPs of an ``(m, k) @ (k, n)`` product: ``m*n`` dot products of length ``k``, ``2*m*k*n``."""
    return 2 * m * k * n


def _gates(cell: str) -> int:
    try:
        return GATES[cell]
    except KeyError:
        raise ValueError(f"unknown cell {cell!r}: expected one of {tuple(GATES)}") from None


def input_projection_flops(T: int, N: int, D_in: int, H: int, cell: str = "rnn") -> int:
    """FLOPs of one layer's input products ``x_t @ W_ih.T`` over all steps: ``gates * 2*T*N*D_in*H``.

    They depend on no earlier step, so they can be done as one ``(T*N, D_in) @ (D_in, H)`` product.
    """
    return _gates(cell) * gemm_flops(T * N, D_in, H)


def recurrent_flops(T: int, N: int, H: int, cell: str = "rnn") -> int:
    """FLOPs of one layer's recurrent products ``h_{t-1} @ W_hh.T``: ``gates * 2*T*N*H*H``.

    Step ``t`` needs ``h_{t-1}``: ``T`` dependent ``(N, H) @ (H, H)`` products, which cannot be batched over time.
    """
    return _gates(cell) * T * gemm_flops(N, H, H)


def layer_flops(T: int, N: int, D_in: int, H: int, cell: str = "rnn") -> int:
    """FLOPs of one layer's forward pass: ``gates * 2*T*N*(D_in*H + H*H)`` (gates: 1 Elman, 4 LSTM, 3 GRU)."""
    return input_projection_flops(T, N, D_in, H, cell) + recurrent_flops(T, N, H, cell)


def stack_flops(T: int, N: int, D: int, H: int, L: int, cell: str = "rnn") -> int:
    """FLOPs of an ``L``-layer stack's forward pass: layer 1 reads ``D`` features, the others ``H``."""
    return layer_flops(T, N, D, H, cell) + (L - 1) * layer_flops(T, N, H, H, cell)


def backward_flops(T: int, N: int, D: int, H: int, L: int, cell: str = "rnn") -> int:
    """FLOPs of BPTT through the stack, input gradient included: twice the forward's.

    Every forward product ``A @ W.T`` gives two of the same size backward: ``dA = dY @ W``
    (the gradient that flows on) and ``dW = dY.T @ A`` (the weight's).
    """
    return 2 * stack_flops(T, N, D, H, L, cell)


def recurrent_step_bytes(N: int, H: int, itemsize: int = 4, cell: str = "rnn") -> int:
    """Bytes one recurrent step of one layer touches: ``W_hh`` read, ``h_{t-1}`` and ``pre_t`` read, ``h_t`` written.

    ``itemsize * (gates*H*H + (1 + 2*gates)*N*H)``; for an Elman cell ``itemsize * (H*H + 3*N*H)``. The weight
    dominates when ``H`` is large against ``N``, and it is the same matrix at every step: whether it
    comes from a cache or from memory decides the step's speed.
    """
    g = _gates(cell)
    return itemsize * (g * H * H + (1 + 2 * g) * N * H)


def stored_state_bytes(T: int, N: int, H: int, L: int, itemsize: int = 4) -> int:
    """Bytes of the hidden states BPTT keeps for the backward pass: ``T*N*H`` per layer, ``L`` layers."""
    return itemsize * T * N * H * L


def checkpointed_state_bytes(T: int, N: int, H: int, L: int, segment: int, itemsize: int = 4) -> int:
    """Bytes BPTT keeps with checkpointing: every ``segment``-th state of each layer, plus one segment recomputed.

    ``itemsize * N*H*L * (ceil(T / segment) + segment)``: the checkpoints, then, during the backward pass,
    the states of the one segment being differentiated (recomputed from its checkpoint by a second
    forward pass over it). ``segment = sqrt(T)`` makes the two terms equal, ``2 * sqrt(T)`` states per layer
    instead of ``T``; the price is one more forward pass in all.
    """
    if not 1 <= segment <= T:
        raise ValueError(f"segment must be in 1..T={T}, got {segment}")
    return itemsize * N * H * L * (-(-T // segment) + segment)
