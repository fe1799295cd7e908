"""A bidirectional stack as a graph, and its figure.

Layer ``l`` of a bidirectional stack runs two RNNs over the same input: the *forward* one,
:math:`\\overrightarrow{h}_t^{(l)}` from :math:`\\overrightarrow{h}_{t-1}^{(l)}`, and the *backward* one,
:math:`\\overleftarrow{h}_t^{(l)}` from :math:`\\overleftarrow{h}_{t+1}^{(l)}`. Both read the layer's input at
step ``t``; the layer's output at step ``t`` is the concatenation
:math:`y_t^{(l)} = [\\overrightarrow{h}_t^{(l)}; \\overleftarrow{h}_t^{(l)}]` (width ``2H``), which is layer
``l+1``'s input, and the top layer's is ``output[t-1]``.

Nodes are ``(kind, l, t)`` with 1-based ``l`` and ``t``: ``("x", 0, t)`` the input,
``("fwd", l, t)`` and ``("bwd", l, t)`` the two states, ``("cat", l, t)`` the concatenation.
An edge ``(src, dst, weight)`` names the ``nn.RNN`` parameter that multiplies ``src`` on its way into
``dst`` (``None`` for the concatenation, which has no weight). Without the concatenation nodes it is
:func:`rnnlib.explain.dataflow.bidirectional_graph`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..params import param_name

__all__ = ["DIRECTION_COLORS", "bidirectional_stack_graph", "bidirectional_h_n", "draw_bidirectional"]

BiNode = tuple[str, int, int]
BiEdge = tuple[BiNode, BiNode, "str | None"]

#: Forward states and their arrows; backward states and theirs (Okabe-Ito blue and vermillion).
DIRECTION_COLORS = {"fwd": "#0072B2", "bwd": "#D55E00"}


def _check(num_layers: int, seq_len: int) -> None:
    for name, value in (("num_layers", num_layers), ("seq_len", seq_len)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _weight(kind: str, layer: int, direction: str) -> str:
    """``nn.RNN``'s name of layer ``layer``'s (1-based) ``weight_ih``/``weight_hh`` in a direction."""
    return param_name(kind, layer - 1) + ("_reverse" if direction == "bwd" else "")


def bidirectional_stack_graph(num_layers: int, seq_len: int) -> tuple[list[BiNode], list[BiEdge]]:
    """The unrolled bidirectional stack: nodes and weighted edges.

    Returns:
        ``nodes``: the ``T`` inputs, then per layer the ``T`` forward, ``T`` backward and ``T``
        concatenation nodes; ``edges``: into ``fwd``/``bwd`` of layer ``l`` from the layer's input at
        the same step (``weight_ih_l{l-1}`` or ``weight_ih_l{l-1}_reverse``), ``fwd`` from ``fwd`` at
        ``t-1`` and ``bwd`` from ``bwd`` at ``t+1`` (``weight_hh_...``), and into ``cat`` from both
        states of the same step (weight ``None``).
    """
    _check(num_layers, seq_len)
    L, T = num_layers, seq_len
    nodes: list[BiNode] = [("x", 0, t) for t in range(1, T + 1)]
    edges: list[BiEdge] = []
    for l in range(1, L + 1):
        for kind in ("fwd", "bwd", "cat"):
            nodes += [(kind, l, t) for t in range(1, T + 1)]
        for t in range(1, T + 1):
            below: BiNode = ("x", 0, t) if l == 1 else ("cat", l - 1, t)
            for d in ("fwd", "bwd"):
                edges.append((below, (d, l, t), _weight("weight_ih", l, d)))
            if t > 1:
                edges.append((("fwd", l, t - 1), ("fwd", l, t), _weight("weight_hh", l, "fwd")))
            if t < T:
                edges.append((("bwd", l, t + 1), ("bwd", l, t), _weight("weight_hh", l, "bwd")))
            edges += [(("fwd", l, t), ("cat", l, t), None), (("bwd", l, t), ("cat", l, t), None)]
    return nodes, edges


def bidirectional_h_n(num_layers: int, seq_len: int) -> list[BiNode]:
    """The states in ``h_n``, in ``nn.RNN``'s order: ``h_n[2(l-1)]`` is forward at ``T``, ``h_n[2l-1]`` backward
    at 1."""
    _check(num_layers, seq_len)
    return [node for l in range(1, num_layers + 1) for node in (("fwd", l, seq_len), ("bwd", l, 1))]


def _position(node: BiNode) -> tuple[float, float]:
    kind, l, t = node
    row = {"x": 0.0, "fwd": 0.0, "bwd": 1.0, "cat": 2.0}[kind]
    return 1.7 * t, (3.1 * (l - 1) + 1.0 + row) if kind != "x" else 0.0


def draw_bidirectional(num_layers: int, seq_len: int, title: str | None = None) -> Figure:
    """Draw the graph of :func:`bidirectional_stack_graph`: per layer a forward row, a backward row, and the
    concatenations.

    Forward states and arrows are blue, backward ones vermillion, the concatenation grey; the
    states that ``h_n`` returns carry their index (``h_n[k]``) next to their box.

    Returns:
        The ``Figure``, with one ``FancyArrowPatch`` per edge, ``gid = "edge:src->dst"``.
    """
    L, T = num_layers, seq_len
    nodes, edges = bidirectional_stack_graph(L, T)
    fig, ax = plt.subplots(figsize=(1.7 * (T + 1.6) + 0.4, 1.05 * (3.1 * L + 1.6) + 0.9))
    fig.patch.set_facecolor("white")
    w, h = 1.05, 0.52
    for node in nodes:
        kind, l, t = node
        x, y = _position(node)
        if kind == "x":
            label, ec, fc, ww = rf"$x_{{{t}}}$", "#888888", "#F2F2F2", 0.8 * w
        elif kind == "cat":
            label = rf"$y_{{{t}}}^{{({l})}}$" if l < L else f"output[{t - 1}]"
            ec, fc, ww = "#555555", "#F2F2F2", w * 1.15
        else:
            arrow = r"\rightarrow" if kind == "fwd" else r"\leftarrow"
            label, ec, fc, ww = rf"${arrow}\, h_{{{t}}}^{{({l})}}$", DIRECTION_COLORS[kind], "white", w
        ax.add_patch(
            FancyBboxPatch(
                (x - ww / 2, y - h / 2),
                ww,
                h,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                fc=fc,
                ec=ec,
                lw=1.6 if kind in DIRECTION_COLORS else 1.0,
                zorder=2,
                gid=f"node:{node}",
            )
        )
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=11 if kind != "cat" or l < L else 8.5,
            zorder=3,
            family="monospace" if kind == "cat" and l == L else None,
        )
    for k, node in enumerate(bidirectional_h_n(L, T)):
        x, y = _position(node)
        side = 1 if node[0] == "fwd" else -1
        ax.text(
            x + side * (w / 2 + 0.08),
            y,
            f"h_n[{k}]",
            ha="left" if side == 1 else "right",
            va="center",
            fontsize=8.5,
            family="monospace",
            color=DIRECTION_COLORS[node[0]],
        )

    for src, dst, weight in edges:
        (x0, y0), (x1, y1) = _position(src), _position(dst)
        style: str | tuple[int, tuple[int, int]]  # a named or a dash-pattern line style
        if weight is None:  # fwd/bwd -> cat: straight up from the forward row passes the backward box
            color, style, lw, rad = "#777777", (0, (3, 2)), 1.0, (-0.35 if src[0] == "fwd" else 0.0)
        else:
            d = dst[0]
            color, style, lw = DIRECTION_COLORS[d], "solid", 1.4
            rad = 0.0 if y0 == y1 else (0.25 if d == "bwd" else 0.0)
        if y0 == y1:  # along a row
            sgn = 1 if x1 > x0 else -1
            start, end = (x0 + sgn * w / 2, y0), (x1 - sgn * w / 2, y1)
        else:
            start, end = (x0, y0 + h / 2), (x1, y1 - h / 2)
            if src[0] == "fwd" and dst[0] == "cat":
                start, end = (x0 - w / 2 + 0.05, y0 + 0.1), (x1 - w * 0.55, y1 - 0.05)
            if dst[0] == "bwd" and src[0] in ("x", "cat"):
                start, end = (x0 + 0.3, y0 + h / 2), (x1 + 0.3, y1 - h / 2)
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=10,
                color=color,
                lw=lw,
                linestyle=style,
                connectionstyle=f"arc3,rad={rad}",
                shrinkA=1,
                shrinkB=1,
                zorder=1,
                gid=f"edge:{src}->{dst}",
            )
        )
    handles = [
        Line2D([], [], color=DIRECTION_COLORS["fwd"], lw=2, label="forward: reads $t-1$ (weight_*_l$k$)"),
        Line2D([], [], color=DIRECTION_COLORS["bwd"], lw=2, label="backward: reads $t+1$ (weight_*_l$k$_reverse)"),
        Line2D(
            [],
            [],
            color="#777777",
            lw=1,
            linestyle=(0, (3, 2)),
            label=r"concatenation $y_t = [\rightarrow h_t;\ \leftarrow h_t]$, width $2H$ (no weight)",
        ),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=9.5)
    ax.set_xlim(0.6, 1.7 * (T + 0.75))
    ax.set_ylim(-0.45, 3.1 * (L - 1) + 3.45)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=12)
    return fig
