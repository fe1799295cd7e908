"""Figures of the unrolled stack, drawn from the graph of :mod:`rnnlib.explain.dataflow`.

:func:`draw_unrolled` draws the ``L x T`` grid of a stacked RNN: one box per
hidden state :math:`h_t^{(l)}` (time to the right, layers upwards), the inputs
:math:`x_t` below, ``output[t-1]`` above, the initial states :math:`h_0^{(l)}` on the
left and the final states ``h_n[l-1]`` on the right. Every arrow comes from an edge
of :func:`~rnnlib.explain.dataflow.unrolled_graph` with the boundary, so the picture and the
graph the tests check are the same object. Arrows take the colour of the layer
whose weight they carry (the up-arrows *into* row ``l`` carry :math:`W_{ih}^{(l)}`,
the right-arrows *of* row ``l`` carry :math:`W_{hh}^{(l)}`), and each weight is written
once, at the left end of its row: every other arrow of that colour and direction
is the same matrix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from .dataflow import Node, node_role, unrolled_graph, wavefronts

__all__ = [
    "LAYER_COLORS",
    "draw_output_and_h_n",
    "draw_unrolled",
    "node_label",
    "node_position",
    "returned_cells",
    "unrolled_graph",
]

# Colour-blind-friendly (Okabe-Ito), dark enough for arrows on white.
LAYER_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
GREY = "#555555"
DX, DY = 1.55, 1.25  # data units between columns (steps) and rows (layers)
BOX_W, BOX_H = 0.95, 0.56  # cell box size in data units
WAVE_CMAP, WAVE_RANGE = "YlGnBu", (0.04, 0.5)  # the light half of the map: black text stays readable
HIGHLIGHT_FILL = "#FFE08A"


def layer_color(layer: int) -> str:
    """The colour of layer ``layer`` (1-based), cycling through :data:`LAYER_COLORS`."""
    return LAYER_COLORS[(layer - 1) % len(LAYER_COLORS)]


def wave_fill(k: int, num_waves: int) -> tuple[float, float, float, float]:
    """Fill colour of wavefront ``k`` of ``num_waves``: light yellow (first) to light blue (last)."""
    lo, hi = WAVE_RANGE
    frac = 0.0 if num_waves == 1 else (k - 1) / (num_waves - 1)
    return matplotlib.colormaps[WAVE_CMAP](lo + (hi - lo) * frac)


def node_position(node: Node) -> tuple[float, float]:
    """Where node ``(l, t)`` sits: ``x`` grows with ``t``, ``y`` with ``l``."""
    l, t = node
    return t * DX, l * DY


def node_label(node: Node, num_layers: int, seq_len: int) -> str:
    """The text in a node's box: ``$h_t^{(l)}$``, ``$x_t$``, ``$h_0^{(l)}$``, ``output[t-1]``, ``h_n[l-1]``."""
    l, t = node
    role = node_role(node, num_layers, seq_len)
    return {
        "cell": rf"$h_{{{t}}}^{{({l})}}$",
        "input": rf"$x_{{{t}}}$",
        "h0": rf"$h_{{0}}^{{({l})}}$",
        "output": f"output[{t - 1}]",
        "h_n": f"h_n[{l - 1}]",
    }[role]


def _weight_tex(name: str) -> str:
    """``weight_ih_l0`` -> ``$W_{ih}^{(1)}$``."""
    kind, layer = name.split("_")[1], int(name.rsplit("_l", 1)[1])
    return rf"$W_{{{kind}}}^{{({layer + 1})}}$"


def draw_unrolled(
    num_layers: int,
    seq_len: int,
    ax: Axes | None = None,
    highlight: str | Iterable[Node] | None = None,
    title: str | None = None,
    highlight_label: str | None = None,
) -> Figure | SubFigure:
    """Draw the unrolled ``L x T`` stack.

    Args:
        num_layers: ``L`` (rows).
        seq_len: ``T`` (columns).
        ax: draw into these axes; a new figure sized to the grid otherwise.
        highlight: ``'antidiagonal'`` fills each cell by its wavefront ``k = l + t - 1``
            (the parallel step that can compute it) and writes ``k`` in the box; an
            iterable of nodes fills those nodes (e.g. :func:`~rnnlib.explain.dataflow.ancestors`).
        title: optional axes title.
        highlight_label: legend text for the nodes filled by a set ``highlight``.

    Returns:
        The ``Figure`` (white background). The axes hold one ``FancyArrowPatch`` per
        edge of ``unrolled_graph(L, T, boundary=True)``, in that order, with
        ``gid = "edge:(l, t)->(l', t')"``, and one box and label per node.
    """
    L, T = num_layers, seq_len
    nodes, edges = unrolled_graph(L, T, boundary=True)
    wave_of: dict[Node, int] = {}
    highlighted: set[Node] = set()
    if isinstance(highlight, str):
        if highlight != "antidiagonal":
            raise ValueError(f"highlight must be 'antidiagonal' or a set of nodes, got {highlight!r}")
        wave_of = {cell: k for k, wave in enumerate(wavefronts(L, T), start=1) for cell in wave}
    elif highlight is not None:
        highlighted = {tuple(n) for n in highlight}  # type: ignore[misc]
        unknown = highlighted - set(nodes)
        if unknown:
            raise ValueError(f"highlight has nodes outside the graph: {sorted(unknown)}")

    fig: Figure | SubFigure  # a SubFigure when ``ax`` is in one
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.25 * DX * (T + 2) + 0.6, 1.2 * DY * (L + 2) + 0.9))
    else:
        fig = ax.figure
    fig.patch.set_facecolor("white")
    ax.set_facecolor("white")

    # Boxes.
    face: str | tuple[float, float, float, float]  # a colour name, or RGBA from wave_fill
    for node in nodes:
        role = node_role(node, L, T)
        x, y = node_position(node)
        w, h = (
            (BOX_W, BOX_H) if role == "cell" else (BOX_W * (1.05 if role in ("output", "h_n") else 0.8), BOX_H * 0.85)
        )
        if role == "cell":
            edge_color, lw, face = layer_color(node[0]), 1.8, "white"
        else:
            edge_color, lw, face = GREY, 1.0, "#F2F2F2"
        if node in wave_of:
            face = wave_fill(wave_of[node], L + T - 1)
        if node in highlighted:
            face = HIGHLIGHT_FILL
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                fc=face,
                ec=edge_color,
                lw=lw,
                zorder=2,
                gid=f"node:{node}",
            )
        )
        text_y = y + (0.07 if node in wave_of else 0.0)
        size = 13 if role in ("cell", "input", "h0") else 9.5
        ax.text(
            x,
            text_y,
            node_label(node, L, T),
            ha="center",
            va="center",
            fontsize=size,
            zorder=3,
            family="monospace" if role in ("output", "h_n") else None,
        )
        if node in wave_of:
            ax.text(x, y - 0.17, f"k={wave_of[node]}", ha="center", va="center", fontsize=8, color="#333333", zorder=3)

    # Arrows, one per edge, in the graph's order.
    labelled: set[str] = set()
    style: str | tuple[int, tuple[int, int]]  # a named or a dashed linestyle
    for src, dst, name in edges:
        (x0, y0), (x1, y1) = node_position(src), node_position(dst)
        vertical = x0 == x1
        if vertical:
            start, end = (x0, y0 + BOX_H / 2 * (0.85 if src[0] == 0 else 1)), (x1, y1 - BOX_H / 2)
        else:
            w_src = BOX_W * 0.8 if src[1] == 0 else BOX_W
            w_dst = BOX_W if dst[1] <= T else BOX_W * 1.05
            start, end = (x0 + w_src / 2, y0), (x1 - w_dst / 2, y1)
        if name is None:  # output[t-1] and h_n[l-1] are the state itself
            color, style, lw = GREY, (0, (3, 2)), 1.1
        else:
            color, style, lw = layer_color(dst[0]), "solid", 1.6
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=11,
                color=color,
                lw=lw,
                linestyle=style,
                shrinkA=1,
                shrinkB=1,
                zorder=1,
                gid=f"edge:{src}->{dst}",
            )
        )
        if name is not None and name not in labelled and dst[1] == 1:
            labelled.add(name)
            if vertical:
                ax.text(
                    x0 - 0.1,
                    (start[1] + end[1]) / 2,
                    _weight_tex(name),
                    ha="right",
                    va="center",
                    fontsize=11,
                    color=color,
                )
            else:
                ax.text(
                    (start[0] + end[0]) / 2,
                    y0 + 0.1,
                    _weight_tex(name),
                    ha="center",
                    va="bottom",
                    fontsize=11,
                    color=color,
                )

    # Legend: one entry per layer, naming the two matrices every arrow of that colour uses.
    handles: list[Artist] = [
        Line2D(
            [],
            [],
            color=layer_color(l),
            lw=2,
            label=rf"layer {l}: $W_{{ih}}^{{({l})}}$ = weight_ih_l{l - 1} (up),"
            rf" $W_{{hh}}^{{({l})}}$ = weight_hh_l{l - 1} (right)",
        )
        for l in range(L, 0, -1)
    ]
    handles.append(Line2D([], [], color=GREY, lw=1.1, linestyle=(0, (3, 2)), label="the same array (no weight)"))
    if wave_of:
        handles.append(
            Patch(
                fc=wave_fill((L + T) // 2, L + T - 1),
                ec="#999999",
                label=r"$k = l + t - 1$: wavefront (parallel step) that can compute the cell",
            )
        )
    if highlighted and highlight_label:
        handles.append(Patch(fc=HIGHLIGHT_FILL, ec="#999999", label=highlight_label))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1, frameon=False, fontsize=9.5)

    # Axis hints: time runs right, depth runs up.
    hint: dict[str, Any] = dict(arrowstyle="-|>", mutation_scale=12, color="#888888", lw=1.0, zorder=0)
    ax.add_artist(FancyArrowPatch((0.6 * DX, -0.42 * DY), ((T + 0.4) * DX, -0.42 * DY), **hint))
    ax.text((T + 0.5) * DX, -0.42 * DY, "time $t$", ha="left", va="center", fontsize=10, color="#666666")
    ax.add_artist(FancyArrowPatch((-0.5 * DX, 0.6 * DY), (-0.5 * DX, (L + 0.4) * DY), **hint))
    ax.text(-0.5 * DX, (L + 0.5) * DY, "layer $l$", ha="center", va="bottom", fontsize=10, color="#666666")

    ax.set_xlim(-0.75 * DX, (T + 1.6) * DX)
    ax.set_ylim(-0.55 * DY, (L + 1.45) * DY)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=12)
    return fig


# --------------------------------------------------------------------------------------
# What nn.RNN returns: output (the top row) and h_n (the last column)
# --------------------------------------------------------------------------------------

OUTPUT_FILL, H_N_FILL, BOTH_FILL = "#BFE0F5", "#FFD8A8", "#C9E8B8"


def returned_cells(num_layers: int, seq_len: int) -> dict[Node, str]:
    """Which nodes of the unrolled grid ``nn.RNN`` hands back, and in which tensor.

    Returns:
        ``{node: role}`` with ``role`` in ``{"output", "h_n", "both"}``: the top row's cells
        :math:`h_t^{(L)}` (``output[t-1]``) and the boundary nodes ``(L+1, t)`` are
        ``"output"``; the last column's cells :math:`h_T^{(l)}` (``h_n[l-1]``) and the boundary
        nodes ``(l, T+1)`` are ``"h_n"``; :math:`h_T^{(L)}`, the one state in both tensors, is
        ``"both"``. Every other cell (a lower layer before the last step) is absent: ``nn.RNN``
        computes it and returns it nowhere.
    """
    L, T = num_layers, seq_len
    roles: dict[Node, str] = {}
    for t in range(1, T + 1):
        roles[(L, t)] = "output"
        roles[(L + 1, t)] = "output"
    for l in range(1, L + 1):
        roles[(l, T)] = "h_n"
        roles[(l, T + 1)] = "h_n"
    roles[(L, T)] = "both"
    return roles


def draw_output_and_h_n(num_layers: int, seq_len: int, title: str | None = None) -> Figure | SubFigure:
    """:func:`draw_unrolled`, with ``output`` (top row) and ``h_n`` (last column) filled.

    The fills follow :func:`returned_cells`: ``output`` in light blue, ``h_n`` in light orange,
    :math:`h_T^{(L)}` (in both) in light green; the legend names the three.

    Returns:
        The ``Figure``; each box keeps its ``gid = "node:(l, t)"``.
    """
    fig = draw_unrolled(num_layers, seq_len, title=title)
    ax = fig.axes[0]
    fills = {"output": OUTPUT_FILL, "h_n": H_N_FILL, "both": BOTH_FILL}
    roles = {f"node:{node}": role for node, role in returned_cells(num_layers, seq_len).items()}
    for patch in ax.patches:
        role = roles.get(str(patch.get_gid()))
        if role is not None:
            patch.set_facecolor(fills[role])
    legend = ax.get_legend()
    handles: list[Artist] = [h for h in legend.legend_handles if h is not None] if legend is not None else []
    handles += [
        Patch(fc=OUTPUT_FILL, ec="#999999", label=r"output: $h_t^{(L)}$, every step $t$"),
        Patch(fc=H_N_FILL, ec="#999999", label=r"h_n: $h_T^{(l)}$, every layer $l$"),
        Patch(fc=BOTH_FILL, ec="#999999", label=r"$h_T^{(L)}$ = output[-1] = h_n[-1]"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1, frameon=False, fontsize=9.5)
    return fig
