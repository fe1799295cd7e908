"""Claims of Chapter 4 (how data flows through a stack), one test per claim.

The graph of the unrolled stack, the orders that compute it, the critical path,
the paths a gradient takes, and the figure drawn from the same graph.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from rnnlib.explain.dataflow import (  # noqa: E402
    all_paths,
    ancestors,
    as_schedule,
    count_paths,
    critical_path_length,
    forward_layer_major,
    forward_time_major,
    forward_wavefront,
    is_topological_order,
    is_valid_schedule,
    layer_major_order,
    layer_params,
    path_jacobians,
    peak_live_states,
    run_schedule,
    time_major_order,
    unrolled_graph,
    wavefronts,
)
from rnnlib.explain.diagrams import draw_unrolled, node_label  # noqa: E402
from rnnlib.explain.examples import ARTICLE_SEED, article_input  # noqa: E402
from rnnlib.numpy_rnn import layer_forward  # noqa: E402

sizes = st.tuples(st.integers(1, 6), st.integers(1, 12))  # (L, T)
PROPERTY = dict(deadline=None, derandomize=True, database=None)  # the same examples on every run


def torch_stack(L: int, D: int = 3, H: int = 5, seed: int = 0, nonlinearity: str = "tanh", bias: bool = True):
    torch.manual_seed(seed)
    rnn = torch.nn.RNN(D, H, L, nonlinearity=nonlinearity, bias=bias).double()
    params = {k: v.detach().numpy().copy() for k, v in rnn.state_dict().items()}
    return rnn, params


# --------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------


@settings(max_examples=40, **PROPERTY)
@given(sizes)
def test_graph_has_one_node_per_layer_and_step_and_up_and_right_edges(size):
    L, T = size
    nodes, edges = unrolled_graph(L, T)
    assert len(nodes) == len(set(nodes)) == L * T
    assert set(nodes) == {(l, t) for l in range(1, L + 1) for t in range(1, T + 1)}
    ups = [(s, d, w) for s, d, w in edges if d == (s[0] + 1, s[1])]
    rights = [(s, d, w) for s, d, w in edges if d == (s[0], s[1] + 1)]
    assert len(ups) == (L - 1) * T and len(rights) == L * (T - 1)
    assert len(edges) == len(ups) + len(rights)
    # The up-edge into layer l+1 carries W_ih^{(l+1)} = weight_ih_l{l}; the right-edge of layer l, W_hh^{(l)}.
    assert all(w == f"weight_ih_l{d[0] - 1}" for _, d, w in ups)
    assert all(w == f"weight_hh_l{s[0] - 1}" for s, _, w in rights)


@settings(max_examples=30, **PROPERTY)
@given(sizes)
def test_every_weight_is_used_once_per_step_and_by_one_layer_only(size):
    L, T = size
    _, edges = unrolled_graph(L, T, boundary=True)
    uses = Counter(w for _, _, w in edges if w is not None)
    _, params = torch_stack(L)
    assert set(uses) == {k for k in params if k.startswith("weight")}
    assert all(n == T for n in uses.values())
    for name in uses:  # every edge with this weight ends in the same layer
        layers = {d[0] for _, d, w in edges if w == name}
        assert layers == {int(name.rsplit("_l", 1)[1]) + 1}


def test_boundary_nodes_are_inputs_initial_states_outputs_and_final_states():
    L, T = 2, 4
    nodes, edges = unrolled_graph(L, T, boundary=True)
    assert len(nodes) == L * T + 2 * T + 2 * L
    assert ((0, 1), (1, 1), "weight_ih_l0") in edges
    assert ((2, 0), (2, 1), "weight_hh_l1") in edges
    assert ((L, T), (L + 1, T), None) in edges  # output[T-1] is h_T^{(L)}
    assert ((1, T), (1, T + 1), None) in edges  # h_n[0] is h_T^{(1)}


# --------------------------------------------------------------------------------------
# Orders: all give the same numbers, and the same as nn.RNN
# --------------------------------------------------------------------------------------


def test_time_major_equals_layer_major_equals_wavefront_equals_nn_rnn_on_article_example():
    rnn, P = torch_stack(2, seed=ARTICLE_SEED)
    x = article_input(dtype=np.float64)
    out_t, hn_t = rnn(torch.from_numpy(x))
    runs = [forward_time_major(P, x), forward_layer_major(P, x), forward_wavefront(P, x)]
    for run in runs[1:]:
        assert np.array_equal(run.output, runs[0].output)  # the same operations: the same bits
        assert np.array_equal(run.h_n, runs[0].h_n)
    assert np.abs(runs[0].output - out_t.detach().numpy()).max() <= 1e-12
    assert np.abs(runs[0].h_n - hn_t.detach().numpy()).max() <= 1e-12


@settings(max_examples=25, **PROPERTY)
@given(sizes, st.integers(1, 3), st.sampled_from(["tanh", "relu"]), st.booleans(), st.integers(0, 10_000))
def test_all_orders_equal_nn_rnn(size, N, nonlinearity, bias, seed):
    L, T = size
    D, H = 3, 4
    rnn, P = torch_stack(L, D, H, seed, nonlinearity, bias)
    rng = np.random.default_rng(seed)
    x, h0 = rng.standard_normal((T, N, D)), rng.standard_normal((L, N, H))
    out_t, hn_t = rnn(torch.from_numpy(x), torch.from_numpy(h0))
    tm = forward_time_major(P, x, h0, nonlinearity)
    for run in (forward_layer_major(P, x, h0, nonlinearity), forward_wavefront(P, x, h0, nonlinearity)):
        assert np.array_equal(run.output, tm.output) and np.array_equal(run.h_n, tm.h_n)
    assert np.abs(tm.output - out_t.detach().numpy()).max() <= 1e-12
    assert np.abs(tm.h_n - hn_t.detach().numpy()).max() <= 1e-12


def test_hoisted_layer_major_equals_cell_by_cell_to_rounding():
    L, T, N = 3, 6, 2
    _, P = torch_stack(L, 4, 7, seed=1)
    x = np.random.default_rng(1).standard_normal((T, N, 4))
    h0 = np.zeros((L, N, 7))
    out = x
    for l in range(1, L + 1):
        out, _, _ = layer_forward(out, h0[l - 1], *layer_params(P, l))
    assert np.abs(out - forward_time_major(P, x).output).max() <= 1e-15


def test_run_schedule_refuses_an_order_that_reads_a_state_before_it_exists():
    _, P = torch_stack(2)
    x = article_input(dtype=np.float64)
    top_first = [(l, t) for t in range(1, 5) for l in (2, 1)]
    assert not is_topological_order(top_first, 2, 4)
    with pytest.raises(ValueError, match="not a valid schedule"):
        run_schedule(as_schedule(top_first), P, x)


# --------------------------------------------------------------------------------------
# Dependencies and the critical path
# --------------------------------------------------------------------------------------


@settings(max_examples=60, **PROPERTY)
@given(sizes)
def test_critical_path_is_T_plus_L_minus_1(size):
    L, T = size
    assert critical_path_length(L, T) == T + L - 1


@settings(max_examples=40, **PROPERTY)
@given(sizes)
def test_wavefronts_are_T_plus_L_minus_1_steps_at_most_min_L_T_wide_and_a_valid_schedule(size):
    L, T = size
    waves = wavefronts(L, T)
    assert len(waves) == T + L - 1
    assert max(len(w) for w in waves) == min(L, T)
    assert sum(len(w) for w in waves) == L * T
    assert is_valid_schedule(waves, L, T)


@settings(max_examples=30, **PROPERTY)
@given(sizes)
def test_anti_diagonal_cells_are_mutually_independent(size):
    L, T = size
    for wave in wavefronts(L, T):
        for a, b in itertools.permutations(wave, 2):
            assert a not in ancestors(b, L, T)


def test_cells_on_a_main_diagonal_are_not_independent():
    # The other diagonal, l - t = const, is not a wavefront: (2, 2) depends on (1, 1).
    assert (1, 1) in ancestors((2, 2), 2, 2)
    assert not is_valid_schedule([[(1, 1), (2, 2)], [(1, 2)], [(2, 1)]], 2, 2)


@settings(max_examples=30, **PROPERTY)
@given(sizes)
def test_evaluation_orders_are_topological(size):
    L, T = size
    _, P = torch_stack(L, seed=3)
    x = np.random.default_rng(3).standard_normal((T, 1, 3))
    for forward, order in (
        (forward_time_major, time_major_order(L, T)),
        (forward_layer_major, layer_major_order(L, T)),
        (forward_wavefront, [c for w in wavefronts(L, T) for c in w]),
    ):
        trace = forward(P, x).trace
        assert trace == order
        assert is_topological_order(trace, L, T)


@settings(max_examples=30, **PROPERTY)
@given(sizes)
def test_a_cell_depends_on_every_earlier_input_in_every_layer(size):
    L, T = size
    for l, t in unrolled_graph(L, T)[0]:
        assert {n for n in ancestors((l, t), L, T) if n[0] == 0} == {(0, s) for s in range(1, t + 1)}


def test_later_inputs_do_not_change_earlier_states():
    L, T, t = 3, 6, 3
    _, P = torch_stack(L, seed=2)
    x = np.random.default_rng(2).standard_normal((T, 2, 3))
    x2 = x.copy()
    x2[t:] += 1.0  # change x_{t+1}, ..., x_T
    a, b = forward_time_major(P, x).states, forward_time_major(P, x2).states
    for l in range(1, L + 1):
        for s in range(1, T + 1):
            assert np.array_equal(a[l, s], b[l, s]) == (s <= t)


# --------------------------------------------------------------------------------------
# Memory and bidirectional layers (the exercises)
# --------------------------------------------------------------------------------------


@settings(max_examples=30, **PROPERTY)
@given(st.tuples(st.integers(2, 6), st.integers(2, 12)))
def test_time_major_holds_L_states_layer_major_T_wavefront_min_L_T(size):
    L, T = size
    assert peak_live_states(as_schedule(time_major_order(L, T)), L, T) == L
    assert peak_live_states(as_schedule(layer_major_order(L, T)), L, T) == T
    assert peak_live_states(wavefronts(L, T), L, T) == min(L, T)


@settings(max_examples=30, **PROPERTY)
@given(sizes)
def test_bidirectional_critical_path_is_L_times_T(size):
    L, T = size
    assert critical_path_length(L, T, bidirectional=True) == L * T


# --------------------------------------------------------------------------------------
# Gradients: paths through time and depth
# --------------------------------------------------------------------------------------


@settings(max_examples=40, **PROPERTY)
@given(sizes, st.data())
def test_paths_from_x_s_to_output_t_number_binomial(size, data):
    L, T = size
    s = data.draw(st.integers(1, T))
    t = data.draw(st.integers(s, T))
    n = count_paths(L, T, (0, s), (L + 1, t))
    assert n == math.comb((t - s) + (L - 1), L - 1)
    paths = all_paths(L, T, (0, s), (L + 1, t)) if n <= 500 else []
    assert not paths or len(paths) == n
    for path in paths:  # every path: L input weights, t-s recurrent weights, then the identity into output
        names = [w for _, _, w in path]
        assert len(names) == (t - s) + L + 1 and names[-1] is None
        assert sorted(w for w in names if w and "ih" in w) == [f"weight_ih_l{k}" for k in range(L)]
        assert sum(1 for w in names if w and "hh" in w) == t - s
    assert count_paths(L, T, (0, t), (L + 1, s)) == (1 if s == t else 0)


@pytest.mark.parametrize(
    "L,T,t_in,t_out,nonlinearity",
    [(2, 4, 1, 4, "tanh"), (3, 6, 2, 5, "tanh"), (3, 5, 1, 5, "relu"), (1, 3, 3, 3, "tanh")],
)
def test_jacobian_is_the_sum_over_paths_of_products_of_local_jacobians(L, T, t_in, t_out, nonlinearity):
    rnn, P = torch_stack(L, seed=4, nonlinearity=nonlinearity)
    x = np.random.default_rng(4).standard_normal((T, 3))
    terms = path_jacobians(P, x, t_in, t_out, nonlinearity=nonlinearity)
    assert len(terms) == math.comb((t_out - t_in) + (L - 1), L - 1)
    J = torch.autograd.functional.jacobian(lambda xx: rnn(xx)[0][t_out - 1], torch.from_numpy(x))
    assert np.abs(sum(j for _, j in terms) - J[:, t_in - 1, :].numpy()).max() <= 1e-12
    assert np.all(J[:, t_out:, :].numpy() == 0)  # no path from a later input


# --------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("L,T,highlight", [(2, 4, None), (3, 6, "antidiagonal"), (3, 6, {(1, 1), (2, 3)})])
def test_figure_draws_one_arrow_per_edge_and_one_label_per_node(L, T, highlight):
    fig = draw_unrolled(L, T, highlight=highlight)
    try:
        ax = fig.axes[0]
        nodes, edges = unrolled_graph(L, T, boundary=True)
        arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch) and (p.get_gid() or "").startswith("edge:")]
        assert [a.get_gid() for a in arrows] == [f"edge:{s}->{d}" for s, d, _ in edges]
        texts = [t.get_text() for t in ax.texts]
        assert all(node_label(n, L, T) in texts for n in nodes)
        assert r"$h_{1}^{(1)}$" in texts and "h_n[0]" in texts and "output[0]" in texts
        assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
        if highlight == "antidiagonal":
            assert sum(t.startswith("k=") for t in texts) == L * T
    finally:
        plt.close(fig)


def test_figure_refuses_unknown_highlight():
    with pytest.raises(ValueError):
        draw_unrolled(2, 3, highlight="diagonal")
    with pytest.raises(ValueError):
        draw_unrolled(2, 3, highlight={(5, 5)})
