"""The backward pass on the unrolled grid: the two directions a gradient travels in a stack.

The forward pass of :mod:`rnnlib.explain.dataflow` sends :math:`h_t^{(l)}` *up* (to layer ``l+1``, through
:math:`W_{ih}^{(l+1)}`) and *right* (to step ``t+1``, through :math:`W_{hh}^{(l)}`). Backpropagation
reverses every edge: the gradient reaching :math:`h_t^{(l)}` comes *down* from :math:`h_t^{(l+1)}`
(multiplied by :math:`\\operatorname{diag}(\\phi')` and :math:`W_{ih}^{(l+1)}`) and *left* from
:math:`h_{t+1}^{(l)}` (by :math:`\\operatorname{diag}(\\phi')` and :math:`W_{hh}^{(l)}`), and it enters the
grid from the loss: ``G_t`` (the gradient of ``output[t-1]``) into the top row, ``G_n`` (of ``h_n``)
into the last column.

:func:`gradient_edges` lists those edges; :func:`draw_gradient_paths` draws them, coloured by
direction. Nodes use :mod:`rnnlib.explain.dataflow`'s 1-based coordinates, with ``(L+1, t)`` the loss on
``output[t-1]`` and ``(l, T+1)`` the loss on ``h_n[l-1]``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .dataflow import Node, grid_cells, unrolled_graph
from .diagrams import BOX_H, BOX_W, DX, DY, node_position

__all__ = ["GRADIENT_COLORS", "draw_gradient_paths", "gradient_edges"]

GradEdge = tuple[Node, Node, str]

#: Colour of each kind of gradient edge: back in time, down the stack, in from the loss.
GRADIENT_COLORS = {"time": "#D55E00", "depth": "#0072B2", "loss": "#555555"}


def gradient_edges(num_layers: int, seq_len: int) -> list[GradEdge]:
    """Every edge along which the gradient flows, ``(src, dst, kind)``: ``src`` sends to ``dst``.

    ``kind`` is ``"time"`` for ``(l, t+1) -> (l, t)`` (through :math:`W_{hh}^{(l)}`),
    ``"depth"`` for ``(l+1, t) -> (l, t)`` (through :math:`W_{ih}^{(l+1)}`), and ``"loss"`` for
    ``(L+1, t) -> (L, t)`` (``G_t``) and ``(l, T+1) -> (l, T)`` (``G_n``). The cell-to-cell edges are
    exactly those of :func:`~rnnlib.explain.dataflow.unrolled_graph`, reversed.
    """
    L, T = num_layers, seq_len
    _, forward = unrolled_graph(L, T)
    edges: list[GradEdge] = [(dst, src, "depth" if dst[0] > src[0] else "time") for src, dst, _ in forward]
    edges += [((L + 1, t), (L, t), "loss") for t in range(1, T + 1)]
    edges += [((l, T + 1), (l, T), "loss") for l in range(1, L + 1)]
    return edges


def draw_gradient_paths(num_layers: int, seq_len: int, title: str | None = None) -> Figure:
    """The ``L x T`` grid with the gradient's arrows: left (through time), down (through the stack).

    Returns:
        The ``Figure``; one ``FancyArrowPatch`` per edge of :func:`gradient_edges`, in that order,
        with ``gid = "grad:(src)->(dst)"``.
    """
    L, T = num_layers, seq_len
    fig, ax = plt.subplots(figsize=(1.2 * DX * (T + 2) + 0.6, 1.15 * DY * (L + 2) + 0.9))
    fig.patch.set_facecolor("white")
    boxes = [(cell, rf"$h_{{{cell[1]}}}^{{({cell[0]})}}$") for cell in grid_cells(L, T)]
    boxes += [((L + 1, t), rf"$G_{{{t}}}$") for t in range(1, T + 1)]
    boxes += [((l, T + 1), rf"$G_n^{{({l})}}$") for l in range(1, L + 1)]
    for node, label in boxes:
        x, y = node_position(node)
        cell = node in set(grid_cells(L, T))
        w, h = (BOX_W, BOX_H) if cell else (BOX_W * 0.8, BOX_H * 0.85)
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                fc="white" if cell else "#F2F2F2",
                ec="#333333" if cell else "#888888",
                lw=1.4 if cell else 1.0,
                zorder=2,
            )
        )
        ax.text(x, y, label, ha="center", va="center", fontsize=12 if cell else 11, zorder=3)

    labelled: set[tuple[str, int]] = set()
    for src, dst, kind in gradient_edges(L, T):
        (x0, y0), (x1, y1) = node_position(src), node_position(dst)
        if x0 == x1:  # down
            h_src = BOX_H * (0.85 if src[0] == L + 1 else 1.0)
            start, end = (x0, y0 - h_src / 2), (x1, y1 + BOX_H / 2)
        else:  # left
            w_src = BOX_W * (0.8 if src[1] == T + 1 else 1.0)
            start, end = (x0 - w_src / 2, y0), (x1 + BOX_W / 2, y1)
        color = GRADIENT_COLORS[kind]
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=12,
                color=color,
                lw=1.0 if kind == "loss" else 1.8,
                linestyle=(0, (3, 2)) if kind == "loss" else "solid",
                shrinkA=1,
                shrinkB=1,
                zorder=1,
                gid=f"grad:{src}->{dst}",
            )
        )
        if kind == "time" and dst[1] == 1 and ("time", dst[0]) not in labelled:
            labelled.add(("time", dst[0]))
            ax.text(
                (start[0] + end[0]) / 2,
                y0 + 0.08,
                rf"$W_{{hh}}^{{({dst[0]})}}$",
                ha="center",
                va="bottom",
                fontsize=10,
                color=color,
            )
        if kind == "depth" and dst[1] == 1 and ("depth", dst[0]) not in labelled:
            labelled.add(("depth", dst[0]))
            ax.text(
                x0 - 0.08,
                (start[1] + end[1]) / 2,
                rf"$W_{{ih}}^{{({src[0]})}}$",
                ha="right",
                va="center",
                fontsize=10,
                color=color,
            )

    handles = [
        Line2D(
            [],
            [],
            color=GRADIENT_COLORS["time"],
            lw=2,
            label=r"back in time: $\delta_{t+1}^{(l)} W_{hh}^{(l)}$ into $\bar h_t^{(l)}$",
        ),
        Line2D(
            [],
            [],
            color=GRADIENT_COLORS["depth"],
            lw=2,
            label=r"down the stack: $g_t^{(l)} = \delta_t^{(l+1)} W_{ih}^{(l+1)}$",
        ),
        Line2D(
            [],
            [],
            color=GRADIENT_COLORS["loss"],
            lw=1,
            linestyle=(0, (3, 2)),
            label=r"from the loss: $G_t$ (output), $G_n$ (h_n)",
        ),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=10)
    ax.set_xlim(0.35 * DX, (T + 1.6) * DX)
    ax.set_ylim(0.4 * DY, (L + 1.5) * DY)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=12)
    return fig
