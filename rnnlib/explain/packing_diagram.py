"""The "staircase" of a packed batch: which steps ``pack_padded_sequence`` keeps, and in which order.

Packing sorts the ``N`` sequences longest first and stores, time-major, only their real steps:
all sequences' step 1, then step 2 of those still running, and so on. Laid out as a grid (steps
across, sorted sequences down), the kept steps form a staircase that descends to the right, and
``batch_sizes[t-1]`` is the height of column ``t``.

:func:`packing_staircase` computes the staircase from the lengths alone; :func:`draw_packing_staircase`
draws it, with each kept step's row index in ``PackedSequence.data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["Staircase", "draw_packing_staircase", "packing_staircase"]

Array = np.ndarray
KEPT_FILL, PAD_FILL = "#BFE0F5", "#F2F2F2"


class Staircase(NamedTuple):
    """What :func:`packing_staircase` returns."""

    sorted_indices: Array  #: ``(N,)``: original index of the sorted sequence ``j`` (longest first)
    kept: Array  #: ``(T, N)`` bool: step ``t+1`` of sorted sequence ``j`` is stored
    data_row: Array  #: ``(T, N)`` int: its row in ``PackedSequence.data``, ``-1`` for padding
    batch_sizes: Array  #: ``(T,)``: ``kept.sum(1)``, sequences still running at each step


def packing_staircase(lengths: Sequence[int] | Array) -> Staircase:
    """The staircase of a batch with these lengths, as ``pack_padded_sequence(..., enforce_sorted=False)`` lays it out.

    Args:
        lengths: ``(N,)`` positive integers, in the batch's own order.

    Returns:
        A :class:`Staircase` over ``T = max(lengths)`` steps. Sorting is stable and descending,
        as PyTorch's (equal lengths keep their batch order).
    """
    lens = np.asarray(lengths)
    if lens.ndim != 1 or lens.size == 0 or not np.issubdtype(lens.dtype, np.integer) or (lens < 1).any():
        raise ValueError(f"lengths must be a non-empty 1-D sequence of positive integers, got {lengths!r}")
    order = np.argsort(-lens, kind="stable")
    T = int(lens.max())
    kept = np.arange(1, T + 1)[:, None] <= lens[order][None, :]  # (T, N)
    data_row = np.full(kept.shape, -1)
    data_row[kept] = np.arange(int(kept.sum()))  # row-major over (t, j): time-major, sorted within a step
    return Staircase(order, kept, data_row, kept.sum(axis=1))


def draw_packing_staircase(lengths: Sequence[int] | Array) -> Figure:
    """Draw the staircase: steps across, sorted sequences down; kept steps filled with their ``data`` row.

    Padding is a hatched grey box; under each column, ``batch_sizes``; left of each row, the
    sequence's original index and length.

    Returns:
        The ``Figure``; boxes carry ``gid = "step:t,j"`` (1-based step, 0-based sorted position).
    """
    stairs = packing_staircase(lengths)
    lens = np.asarray(lengths)
    T, N = stairs.kept.shape
    fig, ax = plt.subplots(figsize=(0.95 * (T + 3), 0.75 * (N + 2.2)))
    fig.patch.set_facecolor("white")
    for t in range(T):
        for j in range(N):
            kept = bool(stairs.kept[t, j])
            x, y = t, -j
            ax.add_patch(
                Rectangle(
                    (x, y),
                    0.92,
                    0.8,
                    fc=KEPT_FILL if kept else PAD_FILL,
                    ec="#0072B2" if kept else "#AAAAAA",
                    lw=1.2 if kept else 0.8,
                    hatch=None if kept else "///",
                    gid=f"step:{t + 1},{j}",
                )
            )
            if kept:
                ax.text(
                    x + 0.46,
                    y + 0.4,
                    f"data[{stairs.data_row[t, j]}]",
                    ha="center",
                    va="center",
                    fontsize=8.5,
                    family="monospace",
                )
        ax.text(t + 0.46, 1.05, f"t={t + 1}", ha="center", va="bottom", fontsize=9.5)
        ax.text(
            t + 0.46,
            -N + 0.6,
            str(stairs.batch_sizes[t]),
            ha="center",
            va="top",
            fontsize=11,
            color="#0072B2",
            weight="bold",
        )
    for j, n in enumerate(stairs.sorted_indices):
        ax.text(-0.15, -j + 0.4, f"seq {n} (len {lens[n]})", ha="right", va="center", fontsize=9.5)
    ax.text(-0.15, -N + 0.45, "batch_sizes", ha="right", va="top", fontsize=9.5, family="monospace", color="#0072B2")
    ax.set_xlim(-2.6, T + 0.1)
    ax.set_ylim(-N + 0.1, 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig
