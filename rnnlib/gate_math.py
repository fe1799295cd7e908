"""Two small pieces of arithmetic shared by the NumPy LSTM and GRU layers.

* :func:`sigmoid_scale`: the sigmoid gates are computed as ``0.5 * tanh(a / 2) + 0.5``, which
  equals ``1 / (1 + exp(-a))``, cannot overflow, and lets one ``np.tanh`` call activate every
  gate of a step at once. The ``a / 2`` is folded into the weights: their sigmoid rows are
  multiplied by 0.5 once per forward pass, which is exact in floating point, so the products
  give exactly ``a / 2`` and no step spends a pass over its gates halving them.
* :func:`previous_states`: the state each step read, ``(T, N, S)``, from the states after
  each step and the initial state; backward needs it for ``dW_hh`` and the gates' derivatives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray


def sigmoid_scale(blocks: str, hidden_size: int, dtype: Any) -> Array:
    """``(G*H,)``: 0.5 on the rows of the sigmoid gate blocks, 1 on the others.

    Args:
        blocks: one letter per gate block in row order, ``"s"`` sigmoid, ``"t"`` tanh
            (``"sst s"`` without the space for the LSTM's ``i, f, g, o``; ``"sst"`` for the GRU's ``r, z, n``).
    """
    return np.repeat(np.array([0.5 if b == "s" else 1.0 for b in blocks], dtype=dtype), hidden_size)


def previous_states(states: Array, first: Array, reverse: bool) -> Array:
    """The state each step read: ``prev[t]`` is ``states[t-1]`` (``states[t+1]`` in reverse), ``first`` at the
    first step.

    Args:
        states: ``(T, N, S)``, the state after each step (indexed by time, whatever the direction).
        first: ``(N, S)``, the initial state.

    Returns:
        A new ``(T, N, S)`` array.
    """
    prev = np.empty_like(states)
    if reverse:  # step t read the state after step t+1; step T-1 read the initial state
        prev[:-1] = states[1:]
        prev[-1] = first
    else:
        prev[1:] = states[:-1]
        prev[0] = first
    return prev
