"""Where the steps of a time-major batch sit in memory, and what ``.view`` and ``.transpose`` read.

A contiguous time-major tensor ``x`` of shape ``(T, N, D)`` stores its ``T*N`` feature vectors
(*blocks* of ``D`` numbers) one after the other: step 1 of every sequence, then step 2 of every
sequence, and so on. Block ``(t, n)`` (step ``t``, sequence ``n``, both 1-based) sits at offset
``k = (t-1)*N + (n-1)``, in units of ``D`` numbers.

* ``x.view(N, T, D)`` re-cuts that same memory into ``N`` rows of ``T`` consecutive blocks: row
  ``i`` holds blocks ``(i-1)*T .. i*T - 1``, which mixes sequences (:func:`view_blocks`).
* ``x.transpose(0, 1)`` keeps the memory and swaps the strides: row ``n`` holds blocks
  ``n-1, n-1+N, n-1+2N, ...``, the steps of sequence ``n`` (:func:`transpose_blocks`).

:func:`draw_memory_layout` draws the memory and both readings of it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

__all__ = ["draw_memory_layout", "memory_blocks", "transpose_blocks", "view_blocks"]

Block = tuple[int, int]  # (t, n), 1-based: step t of sequence n

SEQUENCE_FILLS = ["#BFE0F5", "#FFD8A8", "#C9E8B8", "#F3C6DD", "#FFF1A8", "#D9D2F0"]


def _check(seq_len: int, batch: int) -> None:
    for name, value in (("seq_len", seq_len), ("batch", batch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def memory_blocks(seq_len: int, batch: int) -> list[Block]:
    """The blocks of a contiguous ``(T, N, D)`` tensor in memory order: ``[(1, 1), (1, 2), ..., (T, N)]``."""
    _check(seq_len, batch)
    return [(t, n) for t in range(1, seq_len + 1) for n in range(1, batch + 1)]


def view_blocks(seq_len: int, batch: int) -> list[list[Block]]:
    """``x.view(N, T, D)``: row ``i`` (0-based) holds the memory blocks ``i*T .. (i+1)*T - 1``.

    Returns:
        ``N`` lists of ``T`` blocks ``(t, n)``; ``rows[i][j]`` is what ``x.view(N, T, D)[i, j]`` holds.
    """
    memory = memory_blocks(seq_len, batch)
    return [memory[i * seq_len : (i + 1) * seq_len] for i in range(batch)]


def transpose_blocks(seq_len: int, batch: int) -> list[list[Block]]:
    """``x.transpose(0, 1)``: row ``n`` (0-based) holds blocks ``n, n + N, n + 2N, ...``: sequence ``n+1``.

    Returns:
        ``N`` lists of ``T`` blocks; ``rows[n][j]`` is what ``x.transpose(0, 1)[n, j]`` holds, ``(j+1, n+1)``.
    """
    memory = memory_blocks(seq_len, batch)
    return [memory[n::batch] for n in range(batch)]


def _block_label(block: Block) -> str:
    t, n = block
    return f"s{n} w{t}"


def draw_memory_layout(seq_len: int, batch: int) -> Figure:
    """Three strips: the memory of a time-major ``(T, N, D)`` tensor, and ``N`` rows as ``.view`` and
    ``.transpose`` read them.

    Each box is one block of ``D`` numbers, labelled ``s{n} w{t}`` (sequence ``n``, step ``t``) and
    filled by its sequence; the small number under a box is its offset in memory (in blocks).
    Arrows show the stride of ``transpose`` for the first sequence: ``N`` blocks per step.

    Returns:
        The ``Figure``; box patches carry ``gid = "memory:k"``, ``"view:i,j"`` or ``"transpose:i,j"``.
    """
    T, N = seq_len, batch
    memory = memory_blocks(T, N)
    offset = {block: k for k, block in enumerate(memory)}
    w, h, gap = 1.0, 0.62, 0.5
    fig, ax = plt.subplots(figsize=(0.85 * (T * N + 3), 0.85 * (2 * N + 4)))
    fig.patch.set_facecolor("white")

    def box(x: float, y: float, block: Block, gid: str) -> None:
        fill = SEQUENCE_FILLS[(block[1] - 1) % len(SEQUENCE_FILLS)]
        ax.add_patch(Rectangle((x, y), w, h, fc=fill, ec="#555555", lw=1.0, gid=gid))
        ax.text(x + w / 2, y + h / 2, _block_label(block), ha="center", va="center", fontsize=9)
        ax.text(x + w / 2, y - 0.12, str(offset[block]), ha="center", va="top", fontsize=7, color="#777777")

    # Memory: one strip of T*N blocks.
    y_mem = 2 * N + 1.6
    for k, block in enumerate(memory):
        box(k * w, y_mem, block, f"memory:{k}")
    ax.text(-0.3, y_mem + h / 2, "memory of\nx (T, N, D)", ha="right", va="center", fontsize=10)

    # The two readings, N rows of T blocks each, side by side.
    x_view, x_tr = 0.0, (T + 1.5) * w
    y_top = y_mem - 2.2
    rows = {"view": view_blocks(T, N), "transpose": transpose_blocks(T, N)}
    for name, x0, title in (("view", x_view, "x.view(N, T, D)"), ("transpose", x_tr, "x.transpose(0, 1)")):
        y_title = y_top - (N - 1) * (h + gap) - 0.45
        ax.text(x0 + T * w / 2, y_title, title, ha="center", va="top", fontsize=10, family="monospace")
        for i, row in enumerate(rows[name]):
            y = y_top - i * (h + gap)
            for j, block in enumerate(row):
                box(x0 + j * w, y, block, f"{name}:{i},{j}")
            ax.text(x0 - 0.15, y + h / 2, f"[{i}]", ha="right", va="center", fontsize=9, family="monospace")

    # The stride of transpose, for its first row: every N-th block of memory.
    for j, block in enumerate(rows["transpose"][0]):
        k = offset[block]
        ax.add_patch(
            FancyArrowPatch(
                (k * w + w / 2, y_mem - 0.3),
                (x_tr + j * w + w / 2, y_top + h + 0.02),
                arrowstyle="-|>",
                mutation_scale=9,
                color="#0072B2",
                lw=0.9,
                alpha=0.8,
                zorder=0,
            )
        )
    ax.set_xlim(-2.2, max(T * N, 2 * T + 1.5) * w + 0.3)
    ax.set_ylim(y_top - (N - 1) * (h + gap) - 1.0, y_mem + h + 0.3)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig
