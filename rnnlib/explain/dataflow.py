"""How data flows through a stack: the L x T grid of cells as a dependency graph, and orders to compute it.

A stacked RNN with ``L`` layers run over ``T`` steps computes ``L*T`` hidden states
:math:`h_t^{(l)}`. Each is one call of the cell,

    h_t^{(l)} = act(W_ih^{(l)} h_t^{(l-1)} + b_ih^{(l)} + W_hh^{(l)} h_{t-1}^{(l)} + b_hh^{(l)}),

so the state ``(l, t)`` needs exactly two others: the one *below* it, ``(l-1, t)``,
and the one to its *left*, ``(l, t-1)``. This module makes that graph explicit and
runs the stack in any order that respects it.

Coordinates are 1-based, as in the maths: node ``(l, t)`` is :math:`h_t^{(l)}`, with
``1 <= l <= L`` and ``1 <= t <= T``. The same coordinates name the boundary:

* ``(0, t)`` is the input :math:`x_t` (``x[t-1]`` in code), "layer 0";
* ``(l, 0)`` is the initial state :math:`h_0^{(l)}` (``h0[l-1]``), "step 0";
* ``(L+1, t)`` is ``output[t-1]``, which *is* :math:`h_t^{(L)}` (no weight);
* ``(l, T+1)`` is ``h_n[l-1]``, which *is* :math:`h_T^{(l)}` (no weight).

An edge ``(src, dst, weight_name)`` names the parameter that multiplies ``src`` on
its way into ``dst``, with ``torch.nn.RNN``'s 0-based names: the weight
:math:`W_{ih}^{(l)}` of layer ``l`` is ``weight_ih_l{l-1}``.

Orders (schedules) are lists of *steps*; a step is a list of cells computed
"together": every cell of a step reads only states finished in earlier steps.
A plain order of cells is the schedule with one cell per step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, NamedTuple, cast

import numpy as np

from ..numpy_rnn import get_activation, rnn_cell_forward
from ..params import param_name

Array = np.ndarray
Node = tuple[int, int]
Edge = tuple[Node, Node, "str | None"]
Schedule = list[list[Node]]


def _check_sizes(num_layers: int, seq_len: int) -> None:
    for name, value in (("num_layers", num_layers), ("seq_len", seq_len)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------


def grid_cells(num_layers: int, seq_len: int) -> list[Node]:
    """The ``L*T`` cells ``(l, t)``, layer by layer."""
    _check_sizes(num_layers, seq_len)
    return [(l, t) for l in range(1, num_layers + 1) for t in range(1, seq_len + 1)]


def unrolled_graph(num_layers: int, seq_len: int, boundary: bool = False) -> tuple[list[Node], list[Edge]]:
    """The unrolled stack as a directed acyclic graph.

    Args:
        num_layers: ``L``.
        seq_len: ``T``.
        boundary: also include the inputs ``(0, t)``, the initial states ``(l, 0)``,
            the outputs ``(L+1, t)`` and the final states ``(l, T+1)``.

    Returns:
        ``nodes``: the ``L*T`` cells (then the boundary nodes, if asked for);
        ``edges``: ``(src, dst, weight_name)``. Between cells there are ``(L-1)*T``
        *up* edges ``(l, t) -> (l+1, t)`` weighted ``weight_ih_l{l}`` (that is
        :math:`W_{ih}^{(l+1)}`) and ``L*(T-1)`` *right* edges ``(l, t) -> (l, t+1)``
        weighted ``weight_hh_l{l-1}`` (:math:`W_{hh}^{(l)}`). With ``boundary``: ``x_t ->
        (1, t)`` (``weight_ih_l0``), ``h0 -> (l, 1)`` (``weight_hh_l{l-1}``) and the
        weightless edges into ``output`` and ``h_n``.
    """
    nodes = grid_cells(num_layers, seq_len)
    L, T = num_layers, seq_len
    edges: list[Edge] = []
    for l, t in nodes:
        if l < L:
            edges.append(((l, t), (l + 1, t), param_name("weight_ih", l)))  # layer l+1 has torch index l
        if t < T:
            edges.append(((l, t), (l, t + 1), param_name("weight_hh", l - 1)))
    if boundary:
        inputs = [(0, t) for t in range(1, T + 1)]
        initial = [(l, 0) for l in range(1, L + 1)]
        outputs = [(L + 1, t) for t in range(1, T + 1)]
        final = [(l, T + 1) for l in range(1, L + 1)]
        nodes = nodes + inputs + initial + outputs + final
        edges += [((0, t), (1, t), param_name("weight_ih", 0)) for t in range(1, T + 1)]
        edges += [((l, 0), (l, 1), param_name("weight_hh", l - 1)) for l in range(1, L + 1)]
        edges += [((L, t), (L + 1, t), None) for t in range(1, T + 1)]
        edges += [((l, T), (l, T + 1), None) for l in range(1, L + 1)]
    return nodes, edges


def node_role(node: Node, num_layers: int, seq_len: int) -> str:
    """``'cell'``, ``'input'``, ``'h0'``, ``'output'`` or ``'h_n'`` (see the module docstring)."""
    l, t = node
    L, T = num_layers, seq_len
    if 1 <= l <= L and 1 <= t <= T:
        return "cell"
    if l == 0 and 1 <= t <= T:
        return "input"
    if t == 0 and 1 <= l <= L:
        return "h0"
    if l == L + 1 and 1 <= t <= T:
        return "output"
    if t == T + 1 and 1 <= l <= L:
        return "h_n"
    raise ValueError(f"{node} is not a node of the {L} x {T} unrolled graph")


def cell_inputs(cell: Node) -> tuple[Node, Node]:
    """The two states cell ``(l, t)`` reads: from below ``(l-1, t)`` and from the left ``(l, t-1)``.

    Either may be a boundary node: ``(0, t)`` is :math:`x_t`, ``(l, 0)`` is :math:`h_0^{(l)}`.
    """
    l, t = cell
    return (l - 1, t), (l, t - 1)


def _adjacency(nodes: Iterable[Hashable], edges: Iterable[tuple]) -> tuple[dict, dict]:
    succ: dict = {n: [] for n in nodes}
    pred: dict = {n: [] for n in succ}
    for src, dst, *_ in edges:
        succ[src].append(dst)
        pred[dst].append(src)
    return succ, pred


def topological_order(nodes: Sequence[Hashable], edges: Iterable[tuple]) -> list:
    """Kahn's algorithm: the nodes in an order where every edge points forward.

    Raises ``ValueError`` if the graph has a cycle.
    """
    succ, pred = _adjacency(nodes, edges)
    indegree = {n: len(p) for n, p in pred.items()}
    ready = deque(n for n in succ if indegree[n] == 0)
    order = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    if len(order) != len(succ):
        raise ValueError("the graph has a cycle")
    return order


def longest_path_nodes(nodes: Sequence[Hashable], edges: Iterable[tuple]) -> int:
    """Number of nodes on a longest path of a DAG (dynamic programming in topological order)."""
    edges = list(edges)
    _, pred = _adjacency(nodes, edges)
    depth: dict = {}
    for n in topological_order(nodes, edges):
        depth[n] = 1 + max((depth[p] for p in pred[n]), default=0)
    return max(depth.values(), default=0)


def bidirectional_graph(num_layers: int, seq_len: int) -> tuple[list[tuple[int, int, int]], list[tuple]]:
    """The cells of a bidirectional stack, ``(l, t, d)`` with ``d = 0`` forward, ``1`` reverse.

    The forward cell ``(l, t, 0)`` reads ``(l, t-1, 0)``; the reverse cell ``(l, t, 1)``
    reads ``(l, t+1, 1)``; and both directions of layer ``l`` read *both* directions of
    layer ``l-1`` at the same step (their outputs are concatenated).
    """
    _check_sizes(num_layers, seq_len)
    L, T = num_layers, seq_len
    nodes = [(l, t, d) for l in range(1, L + 1) for t in range(1, T + 1) for d in (0, 1)]
    edges: list[tuple] = []
    for l, t, d in nodes:
        name_hh = param_name("weight_hh", l - 1, reverse=d == 1)
        if d == 0 and t < T:
            edges.append(((l, t, 0), (l, t + 1, 0), name_hh))
        if d == 1 and t > 1:
            edges.append(((l, t, 1), (l, t - 1, 1), name_hh))
        if l < L:
            for d_up in (0, 1):
                edges.append(((l, t, d), (l + 1, t, d_up), param_name("weight_ih", l, reverse=d_up == 1)))
    return nodes, edges


def critical_path_length(num_layers: int, seq_len: int, bidirectional: bool = False) -> int:
    """The fewest sequential steps that can compute the whole stack: cells on a longest path.

    Computed from the graph (:func:`unrolled_graph` or :func:`bidirectional_graph`),
    not from a formula: ``T + L - 1`` unidirectional, ``L * T`` bidirectional.
    """
    nodes, edges = bidirectional_graph(num_layers, seq_len) if bidirectional else unrolled_graph(num_layers, seq_len)
    return longest_path_nodes(nodes, edges)


def ancestors(node: Node, num_layers: int, seq_len: int) -> set[Node]:
    """Every node (cells and boundary) whose value ``node`` depends on, ``node`` excluded."""
    nodes, edges = unrolled_graph(num_layers, seq_len, boundary=True)
    _, pred = _adjacency(nodes, edges)
    seen: set[Node] = set()
    stack = list(pred[node])
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(pred[n])
    return seen


def count_paths(num_layers: int, seq_len: int, src: Node, dst: Node) -> int:
    """Number of directed paths from ``src`` to ``dst`` in the graph with boundary."""
    nodes, edges = unrolled_graph(num_layers, seq_len, boundary=True)
    succ, pred = _adjacency(nodes, edges)
    if src not in succ or dst not in succ:
        raise ValueError(f"{src} or {dst} is not a node of the {num_layers} x {seq_len} graph")
    ways = {n: 0 for n in nodes}
    ways[src] = 1
    for n in topological_order(nodes, edges):
        if n != src:
            ways[n] = sum(ways[p] for p in pred[n])
    return ways[dst]


def all_paths(num_layers: int, seq_len: int, src: Node, dst: Node) -> list[list[Edge]]:
    """Every path from ``src`` to ``dst`` in the graph with boundary, as its list of edges."""
    _, edges = unrolled_graph(num_layers, seq_len, boundary=True)
    out_edges: dict[Node, list[Edge]] = {}
    for e in edges:
        out_edges.setdefault(e[0], []).append(e)
    paths: list[list[Edge]] = []

    def walk(node: Node, prefix: list[Edge]) -> None:
        if node == dst:
            paths.append(list(prefix))
            return
        for e in out_edges.get(node, []):
            prefix.append(e)
            walk(e[1], prefix)
            prefix.pop()

    walk(src, [])
    return paths


# --------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------


def time_major_order(num_layers: int, seq_len: int) -> list[Node]:
    """All layers at step 1, then all layers at step 2, ...: the article's order and PyTorch's pseudo-code."""
    _check_sizes(num_layers, seq_len)
    return [(l, t) for t in range(1, seq_len + 1) for l in range(1, num_layers + 1)]


def layer_major_order(num_layers: int, seq_len: int) -> list[Node]:
    """Layer 1 over all steps, then layer 2 over all steps, ...: what fast libraries do."""
    return grid_cells(num_layers, seq_len)


def wavefronts(num_layers: int, seq_len: int) -> Schedule:
    """The anti-diagonals: step ``k`` (``1 <= k <= L+T-1``) holds the cells with ``l + t - 1 = k``."""
    _check_sizes(num_layers, seq_len)
    L, T = num_layers, seq_len
    return [[(l, k + 1 - l) for l in range(1, L + 1) if 1 <= k + 1 - l <= T] for k in range(1, L + T)]


def as_schedule(order: Iterable[Node]) -> Schedule:
    """A plain order of cells as a schedule of one cell per step."""
    return [[cell] for cell in order]


def is_valid_schedule(steps: Sequence[Sequence[Node]], num_layers: int, seq_len: int) -> bool:
    """Does ``steps`` compute every cell exactly once, each after both cells it reads?

    A cell may read only states finished in *earlier* steps (cells of one step are
    computed together), or the boundary (inputs and initial states).
    """
    cells = set(grid_cells(num_layers, seq_len))
    done: set[Node] = set()
    for step in steps:
        step = [cast(Node, tuple(c)) for c in step]  # cells may come as lists
        if len(set(step)) != len(step):
            return False
        for cell in step:
            if cell not in cells or cell in done:
                return False
            if any(dep in cells and dep not in done for dep in cell_inputs(cell)):
                return False
        done.update(step)
    return done == cells


def is_topological_order(order: Sequence[Node], num_layers: int, seq_len: int) -> bool:
    """Is ``order`` (one cell at a time) a topological order of the cell graph?"""
    return is_valid_schedule(as_schedule(order), num_layers, seq_len)


def peak_live_states(steps: Sequence[Sequence[Node]], num_layers: int, seq_len: int) -> int:
    """The most states a schedule must hold at once, measured after each step.

    A computed state is *live* while a cell that reads it is still to be computed
    (top-layer states go out as ``output`` at once and count only while the next
    step of their own layer still needs them). Inference needs no other state.
    """
    if not is_valid_schedule(steps, num_layers, seq_len):
        raise ValueError("not a valid schedule of this grid")
    nodes, edges = unrolled_graph(num_layers, seq_len)
    succ, _ = _adjacency(nodes, edges)
    done: set[Node] = set()
    peak = 0
    for step in steps:
        done.update(cast(Node, tuple(c)) for c in step)
        live = sum(1 for c in done if any(s not in done for s in succ[c]))
        peak = max(peak, live)
    return peak


# --------------------------------------------------------------------------------------
# Running a schedule
# --------------------------------------------------------------------------------------


class ScheduleRun(NamedTuple):
    """What :func:`run_schedule` computed.

    ``output (T, N, H)`` and ``h_n (L, N, H)`` as ``nn.RNN`` returns them; ``trace``: the
    cells in the order they were evaluated; ``states``: ``{(l, t): (N, H)}`` for every
    cell, plus the boundary ``(0, t)`` (inputs, ``(N, D)``) and ``(l, 0)`` (``h0``).
    """

    output: Array
    h_n: Array
    trace: list[Node]
    states: dict[Node, Array]


def num_layers_of(params: dict[str, Any]) -> int:
    """``L`` from a unidirectional state dict (refuses bidirectional ones)."""
    if any(k.endswith("_reverse") for k in params):
        raise ValueError("schedules here are for unidirectional stacks (the state dict has *_reverse entries)")
    L = sum(1 for k in params if k.startswith("weight_hh_l"))
    if L == 0 or any(param_name("weight_hh", l) not in params for l in range(L)):
        raise ValueError("params must hold weight_hh_l0 ... weight_hh_l{L-1}")
    return L


def layer_params(params: dict[str, Any], layer: int) -> tuple[Array, Array, Array | None, Array | None]:
    """``(W_ih, W_hh, b_ih, b_hh)`` of layer ``layer`` (1-based, as :math:`W^{(l)}`)."""
    return tuple(
        params.get(param_name(kind, layer - 1))  # type: ignore[return-value]
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def run_schedule(
    steps: Sequence[Sequence[Node]],
    params: dict[str, Any],
    x: Array,
    h0: Array | None = None,
    nonlinearity: str = "tanh",
) -> ScheduleRun:
    """Run a unidirectional stack cell by cell (with :func:`~rnnlib.rnn_cell_forward`) in the order ``steps``.

    Args:
        steps: a valid schedule (:func:`is_valid_schedule`); every cell of a step is
            computed from states finished before the step, then all are stored.
        params: ``nn.RNN``-style state dict of NumPy arrays (``weight_ih_l0``, ...).
        x: ``(T, N, D)`` time-major input.
        h0: ``(L, N, H)``; zeros when ``None``.

    Returns:
        a :class:`ScheduleRun`.
    """
    params = {k: np.asarray(v) for k, v in params.items()}
    L = num_layers_of(params)
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (T, N, D), got shape {x.shape}")
    T, N, _ = x.shape
    H = params["weight_hh_l0"].shape[0]
    if h0 is None:
        h0 = np.zeros((L, N, H), dtype=x.dtype)
    if not is_valid_schedule(steps, L, T):
        raise ValueError(
            "steps is not a valid schedule: some cell is missing, repeated, or computed before a state it reads"
        )
    h: dict[Node, Array] = {(0, t): x[t - 1] for t in range(1, T + 1)}
    h.update({(l, 0): h0[l - 1] for l in range(1, L + 1)})
    trace: list[Node] = []
    for step in steps:
        new = {}
        for l, t in step:
            below, left = cell_inputs((l, t))
            new[l, t], _ = rnn_cell_forward(h[below], h[left], *layer_params(params, l), nonlinearity)
            trace.append((l, t))
        h.update(new)  # only now: no cell of this step saw another one's result
    output = np.stack([h[L, t] for t in range(1, T + 1)])
    h_n = np.stack([h[l, T] for l in range(1, L + 1)])
    return ScheduleRun(output, h_n, trace, h)


def forward_time_major(
    params: dict[str, Any], x: Array, h0: Array | None = None, nonlinearity: str = "tanh"
) -> ScheduleRun:
    """:func:`run_schedule` in :func:`time_major_order`."""
    L, T = num_layers_of(params), np.shape(x)[0]
    return run_schedule(as_schedule(time_major_order(L, T)), params, x, h0, nonlinearity)


def forward_layer_major(
    params: dict[str, Any], x: Array, h0: Array | None = None, nonlinearity: str = "tanh"
) -> ScheduleRun:
    """:func:`run_schedule` in :func:`layer_major_order`."""
    L, T = num_layers_of(params), np.shape(x)[0]
    return run_schedule(as_schedule(layer_major_order(L, T)), params, x, h0, nonlinearity)


def forward_wavefront(
    params: dict[str, Any], x: Array, h0: Array | None = None, nonlinearity: str = "tanh"
) -> ScheduleRun:
    """:func:`run_schedule` by :func:`wavefronts`: ``L + T - 1`` steps of up to ``min(L, T)`` cells."""
    L, T = num_layers_of(params), np.shape(x)[0]
    return run_schedule(wavefronts(L, T), params, x, h0, nonlinearity)


# --------------------------------------------------------------------------------------
# Gradients as sums over paths
# --------------------------------------------------------------------------------------


def path_jacobians(
    params: dict[str, Any],
    x: Array,
    t_in: int,
    t_out: int,
    h0: Array | None = None,
    nonlinearity: str = "tanh",
) -> list[tuple[list[Edge], Array]]:
    """The Jacobian of ``output[t_out-1]`` with respect to ``x[t_in-1]``, one term per path.

    By the chain rule on the unrolled graph, the Jacobian is the sum over every
    path from :math:`x_{t_{in}}` to :math:`h_{t_{out}}^{(L)}` of the product of the local
    Jacobians of its edges. An edge into cell ``v`` weighted ``W`` contributes
    ``diag(act'(h_v)) @ W``; the edge into ``output`` is the identity.

    Args:
        x: ``(T, D)`` one sequence (unbatched).
        t_in, t_out: 1-based steps, ``t_in <= t_out`` (otherwise there is no path).
        h0: ``(L, H)``; zeros when ``None``.

    Returns:
        ``[(path, J)]`` with ``path`` a list of edges and ``J`` ``(H, D)``; the sum of the
        ``J`` is the Jacobian. Empty when ``t_in > t_out``.
    """
    params = {k: np.asarray(v) for k, v in params.items()}
    L = num_layers_of(params)
    x = np.asarray(x)
    T = x.shape[0]
    run = forward_time_major(params, x[:, None, :], None if h0 is None else np.asarray(h0)[:, None, :], nonlinearity)
    deriv = get_activation(nonlinearity).derivative_from_output
    terms = []
    for path in all_paths(L, T, (0, t_in), (L + 1, t_out)):
        J = np.eye(x.shape[1], dtype=x.dtype)
        for _, dst, name in path:
            if name is not None:
                J = (deriv(run.states[dst][0])[:, None] * params[name]) @ J
        terms.append((path, J))
    return terms
