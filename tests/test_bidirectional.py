"""Bidirectional stacks: the claims of Chapter 7 (07_bidirectional_dropout).

* the backward direction's output at step t is stored at t: it equals a forward RNN
  (with the ``_reverse`` weights) run over the reversed sequence, flipped back;
  without the flip back the halves are misaligned, although the final state is the same;
* ``output[..., :H]`` is forward and ``output[..., H:]`` backward;
* ``h_n`` is indexed ``layer*2 + direction`` and ``h_n.view(L, 2, N, H)`` splits it;
* ``h_n[-2] == output[-1, :, :H]`` and ``h_n[-1] == output[0, :, H:]`` (not ``output[-1, :, H:]``);
* layer ``l >= 1`` reads width ``2H``: ``weight_ih_l1`` is ``(H, 2H)``;
* ``NumpyRNN`` and ``TorchRNN`` match ``nn.RNN`` forward and backward, bidirectional.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rnnlib import NumpyRNN, TorchRNN, layer_forward, num_parameters
from rnnlib.explain.examples import ARTICLE_SEED, article_input
from rnnlib.gradcheck import max_abs_difference as max_abs

TOL = 1e-12
PROPERTY = settings(max_examples=15, deadline=None, derandomize=True, database=None)


def article_birnn(num_layers: int = 2, batch_first: bool = False) -> nn.RNN:
    torch.manual_seed(ARTICLE_SEED)
    return nn.RNN(3, 5, num_layers, bidirectional=True, batch_first=batch_first).double()  # as in the chapter


def article_x() -> torch.Tensor:
    return torch.from_numpy(article_input(dtype=np.float64))


def weights(rnn: nn.RNN) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in rnn.state_dict().items()}


def bidirectional_layer(x, P, layer, h0_fwd, h0_bwd):
    """The chapter's from-scratch layer: forward loop, reverse loop storing at t, concatenation."""
    W, U, b = (P[f"weight_ih_l{layer}"], P[f"weight_hh_l{layer}"], P[f"bias_ih_l{layer}"] + P[f"bias_hh_l{layer}"])
    Wr, Ur, br = (
        P[f"weight_ih_l{layer}_reverse"],
        P[f"weight_hh_l{layer}_reverse"],
        P[f"bias_ih_l{layer}_reverse"] + P[f"bias_hh_l{layer}_reverse"],
    )
    fwd, bwd = [None] * len(x), [None] * len(x)
    h = h0_fwd
    for t in range(len(x)):
        h = fwd[t] = np.tanh(x[t] @ W.T + h @ U.T + b)
    h = h0_bwd
    for t in reversed(range(len(x))):
        h = bwd[t] = np.tanh(x[t] @ Wr.T + h @ Ur.T + br)
    return np.concatenate([np.stack(fwd), np.stack(bwd)], axis=-1), fwd[-1], bwd[0]


def bidirectional_stack(x, P, num_layers, masks=None):
    N, H = x.shape[1], P["weight_hh_l0"].shape[0]
    zeros = np.zeros((N, H))
    layer_input, last = x, []
    for layer in range(num_layers):
        y, hf, hb = bidirectional_layer(layer_input, P, layer, zeros, zeros)
        last += [hf, hb]
        layer_input = y * masks[layer] if masks is not None and layer in masks else y
    return layer_input, np.stack(last)


# --------------------------------------------------------------------------------------
# Alignment of the backward direction
# --------------------------------------------------------------------------------------


@PROPERTY
@given(T=st.integers(1, 7), N=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_backward_half_equals_forward_rnn_on_reversed_sequence_flipped_back(T, N, seed) -> None:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    rnn = nn.RNN(3, 4, 1, bidirectional=True, dtype=torch.float64)
    x = rng.standard_normal((T, N, 3))
    out, h_n = rnn(torch.from_numpy(x))
    P = weights(rnn)
    rev, rev_last, _ = layer_forward(
        x[::-1].copy(),
        np.zeros((N, 4)),
        P["weight_ih_l0_reverse"],
        P["weight_hh_l0_reverse"],
        P["bias_ih_l0_reverse"],
        P["bias_hh_l0_reverse"],
    )
    assert max_abs(out[..., 4:], rev[::-1]) < TOL
    assert max_abs(h_n[1], rev_last) < TOL


def test_unflipped_reverse_run_is_misaligned_but_has_the_same_final_state() -> None:
    rnn, x = article_birnn(1), article_x()
    out, h_n = rnn(x)
    P, H, N = weights(rnn), 5, x.shape[1]
    rev, rev_last, _ = layer_forward(
        x.numpy()[::-1].copy(),
        np.zeros((N, H)),
        P["weight_ih_l0_reverse"],
        P["weight_hh_l0_reverse"],
        P["bias_ih_l0_reverse"],
        P["bias_hh_l0_reverse"],
    )
    assert max_abs(rev, out[..., H:]) > 0.1  # the bug: concatenated without flipping back
    assert max_abs(rev, out[..., H:].flip(0)) < TOL  # it is the true backward half in reverse time order
    assert max_abs(rev_last, h_n[1]) < TOL  # and the final state hides it


def test_unflipped_layer_in_a_stack_changes_the_top_layer_h_n() -> None:
    rnn, x = article_birnn(2), article_x()
    _, h_n = rnn(x)
    P, H = weights(rnn), 5
    zeros = np.zeros((2, H))
    y0, _, _ = bidirectional_layer(x.numpy(), P, 0, zeros, zeros)
    y0_wrong = np.concatenate([y0[..., :H], y0[::-1, :, H:]], axis=-1)
    _, hf, hb = bidirectional_layer(y0_wrong, P, 1, zeros, zeros)
    assert max_abs(np.stack([hf, hb]), h_n[2:]) > 0.01


def test_from_scratch_bidirectional_stack_matches_nn_rnn() -> None:
    rnn, x = article_birnn(2), article_x()
    out, h_n = rnn(x)
    out_s, h_n_s = bidirectional_stack(x.numpy(), weights(rnn), 2)
    assert max_abs(out_s, out) < TOL and max_abs(h_n_s, h_n) < TOL


def test_forward_half_is_forward_direction_and_backward_half_is_reverse_direction() -> None:
    rnn, x = article_birnn(1), article_x()
    out, _ = rnn(x)
    P, H = weights(rnn), 5
    zeros = np.zeros((2, H))
    fwd, _, _ = layer_forward(x.numpy(), zeros, P["weight_ih_l0"], P["weight_hh_l0"], P["bias_ih_l0"], P["bias_hh_l0"])
    bwd, _, _ = layer_forward(
        x.numpy(),
        zeros,
        P["weight_ih_l0_reverse"],
        P["weight_hh_l0_reverse"],
        P["bias_ih_l0_reverse"],
        P["bias_hh_l0_reverse"],
        reverse=True,
    )
    assert max_abs(out[..., :H], fwd) < TOL and max_abs(out[..., H:], bwd) < TOL


# --------------------------------------------------------------------------------------
# h_n layout
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_h_n_view_splits_layer_and_direction(num_layers) -> None:
    rnn, x = article_birnn(num_layers), article_x()
    _, h_n = rnn(x)
    hv = h_n.view(num_layers, 2, 2, 5)
    for layer in range(num_layers):
        for d in range(2):
            assert torch.equal(hv[layer, d], h_n[2 * layer + d])


def test_h_n_every_layer_and_direction_equals_from_scratch_last_states() -> None:
    rnn, x = article_birnn(3), article_x()
    _, h_n = rnn(x)
    _, last = bidirectional_stack(x.numpy(), weights(rnn), 3)
    assert max_abs(last, h_n) < TOL


@pytest.mark.parametrize("batch_first", [False, True])
def test_h_n_second_last_equals_forward_output_at_last_step(batch_first) -> None:
    rnn, x = article_birnn(2, batch_first), article_x()
    out, h_n = rnn(x.transpose(0, 1) if batch_first else x)
    last = out[:, -1, :5] if batch_first else out[-1, :, :5]
    assert max_abs(h_n[-2], last) < TOL


@pytest.mark.parametrize("batch_first", [False, True])
def test_h_n_last_equals_backward_output_at_first_step_not_last(batch_first) -> None:
    rnn, x = article_birnn(2, batch_first), article_x()
    out, h_n = rnn(x.transpose(0, 1) if batch_first else x)
    first = out[:, 0, 5:] if batch_first else out[0, :, 5:]
    last = out[:, -1, 5:] if batch_first else out[-1, :, 5:]
    assert max_abs(h_n[-1], first) < TOL
    assert max_abs(h_n[-1], last) > 0.1


def test_misread_view_pairs_wrong_tensors() -> None:
    rnn, x = article_birnn(2), article_x()
    _, h_n = rnn(x)
    misread = h_n.view(2, 2, 2, 5)  # read as (directions, layers, N, H)
    assert torch.equal(misread[1, 0], h_n[2]) and not torch.equal(misread[1, 0], h_n[1])


# --------------------------------------------------------------------------------------
# Shapes and counts
# --------------------------------------------------------------------------------------


def test_layer_two_input_width_is_2H() -> None:
    rnn = article_birnn(3)
    for layer in (1, 2):
        for suffix in ("", "_reverse"):
            assert getattr(rnn, f"weight_ih_l{layer}{suffix}").shape == (5, 10)
    numpy_rnn = NumpyRNN(3, 5, 3, bidirectional=True, seed=0)
    assert numpy_rnn.params["weight_ih_l1"].shape == (5, 10)
    assert numpy_rnn.params["weight_ih_l1_reverse"].shape == (5, 10)


def test_bidirectional_forward_layer0_weights_equal_unidirectional_after_same_seed() -> None:
    bi = article_birnn(2)
    torch.manual_seed(ARTICLE_SEED)
    uni = nn.RNN(3, 5, 2).double()
    for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert torch.equal(getattr(bi, k), getattr(uni, k))


def test_bidirectional_parameter_count_is_270() -> None:
    assert sum(p.numel() for p in article_birnn(2).parameters()) == 270
    assert num_parameters(3, 5, 2, bias=True, bidirectional=True) == 270
    assert num_parameters(3, 5, 2) == 110


def test_output_shape_is_T_N_2H_and_h_n_is_2L_N_H() -> None:
    out, h_n = article_birnn(2)(article_x())
    assert out.shape == (4, 2, 10) and h_n.shape == (4, 2, 5)


# --------------------------------------------------------------------------------------
# Dependence on the future
# --------------------------------------------------------------------------------------


def test_bidirectional_output_depends_on_future_only_through_backward_half_in_one_layer() -> None:
    rnn, x = article_birnn(2), article_x()
    P, H = weights(rnn), 5
    zeros = np.zeros((2, H))
    x2 = x.clone()
    x2[-1] += 1.0
    y0, _, _ = bidirectional_layer(x.numpy(), P, 0, zeros, zeros)
    y0b, _, _ = bidirectional_layer(x2.numpy(), P, 0, zeros, zeros)
    assert max_abs(y0[0, :, :H], y0b[0, :, :H]) == 0.0
    assert max_abs(y0[0, :, H:], y0b[0, :, H:]) > 1e-3
    out, _ = rnn(x)
    out2, _ = rnn(x2)
    assert max_abs(out[0, :, :H], out2[0, :, :H]) > 1e-3  # the stack's forward half sees the future


# --------------------------------------------------------------------------------------
# Parity of rnnlib, bidirectional
# --------------------------------------------------------------------------------------


@PROPERTY
@given(
    T=st.integers(1, 6),
    N=st.integers(1, 4),
    L=st.integers(1, 3),
    batch_first=st.booleans(),
    with_h0=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_numpy_and_torch_bidirectional_match_nn_rnn_forward_and_backward(T, N, L, batch_first, with_h0, seed) -> None:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    D, H = 3, 4
    rnn = nn.RNN(D, H, L, bidirectional=True, batch_first=batch_first, dtype=torch.float64)
    x = rng.standard_normal((N, T, D) if batch_first else (T, N, D))
    h0 = 0.5 * rng.standard_normal((2 * L, N, H)) if with_h0 else None
    G = rng.standard_normal(x.shape[:2] + (2 * H,))
    G_n = rng.standard_normal((2 * L, N, H))

    xt = torch.from_numpy(x).requires_grad_(True)
    h0t = None if h0 is None else torch.from_numpy(h0)
    out, h_n = rnn(xt, h0t)
    ((out * torch.from_numpy(G)).sum() + (h_n * torch.from_numpy(G_n)).sum()).backward()

    numpy_rnn = NumpyRNN.from_torch(rnn)
    o, h = numpy_rnn.forward(x, h0)
    dx, _ = numpy_rnn.backward(G, G_n)
    assert max_abs(o, out) < TOL and max_abs(h, h_n) < TOL
    assert max_abs(dx, xt.grad) < TOL
    for k, p in rnn.named_parameters():
        assert max_abs(numpy_rnn.grads[k], p.grad) < TOL, k

    torch_rnn = TorchRNN(D, H, L, bidirectional=True, batch_first=batch_first, dtype=torch.float64)
    torch_rnn.load_state_dict(rnn.state_dict())
    xt2 = torch.from_numpy(x).requires_grad_(True)
    out2, h_n2 = torch_rnn(xt2, h0t)
    ((out2 * torch.from_numpy(G)).sum() + (h_n2 * torch.from_numpy(G_n)).sum()).backward()
    assert max_abs(out2, out) < TOL and max_abs(h_n2, h_n) < TOL
    assert max_abs(xt2.grad, xt.grad) < TOL
    for k, p in torch_rnn.named_parameters():
        assert max_abs(p.grad, dict(rnn.named_parameters())[k].grad) < TOL, k


def test_article_bidirectional_parity_numpy_and_torch() -> None:
    rnn, x = article_birnn(2), article_x()
    out, h_n = rnn(x)
    o, h = NumpyRNN.from_torch(rnn).forward(x.numpy())
    t = TorchRNN(3, 5, 2, bidirectional=True, dtype=torch.float64)
    t.load_state_dict(rnn.state_dict())
    o2, h2 = t(x)
    assert max(max_abs(o, out), max_abs(h, h_n), max_abs(o2, out), max_abs(h2, h_n)) < TOL


def test_flip_symmetry_with_swapped_weights() -> None:
    """Exercise ex-07-flip-symmetry: swap forward/reverse weights, reverse the input."""
    torch.manual_seed(0)
    a = nn.RNN(3, 5, bidirectional=True, dtype=torch.float64)
    b = nn.RNN(3, 5, bidirectional=True, dtype=torch.float64)
    sd = a.state_dict()
    b.load_state_dict({k: sd[k[:-8] if k.endswith("_reverse") else k + "_reverse"] for k in sd})
    x = article_x()
    out_a, h_a = a(x)
    out_b, h_b = b(x.flip(0))
    expected = torch.cat([out_a[..., 5:], out_a[..., :5]], dim=-1).flip(0)
    assert max_abs(out_b, expected) < TOL and max_abs(h_b, h_a.flip(0)) < TOL


def test_gradient_into_layer_1_output_is_the_sum_over_both_upper_directions() -> None:
    """dL/dy_t^(1) = delta_fwd_t^(2) W_ih^(2) + delta_bwd_t^(2) W_ih_reverse^(2), with layer 2 written out by hand."""
    rnn = article_birnn()
    P = dict(rnn.named_parameters())
    x = article_x()
    T, N, H = x.shape[0], x.shape[1], rnn.hidden_size
    layer1 = nn.RNN(3, H, 1, bidirectional=True).double()
    layer1.load_state_dict({k: v for k, v in rnn.state_dict().items() if "_l0" in k})
    y1 = layer1(x)[0].detach().requires_grad_(True)  # (T, N, 2H): layer 2's input
    pre = {}

    def direction(suffix, steps):
        W, U = P[f"weight_ih_l1{suffix}"], P[f"weight_hh_l1{suffix}"]
        b = P[f"bias_ih_l1{suffix}"] + P[f"bias_hh_l1{suffix}"]
        h, states = torch.zeros(N, H, dtype=torch.float64), [None] * T
        for t in steps:
            a = y1[t] @ W.T + h @ U.T + b
            a.retain_grad()
            pre[suffix, t] = a
            h = states[t] = torch.tanh(a)
        return torch.stack(states)

    out = torch.cat([direction("", range(T)), direction("_reverse", reversed(range(T)))], dim=-1)
    assert max_abs(out, rnn(x)[0]) < TOL
    G = torch.randn(T, N, 2 * H, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (out * G).sum().backward()
    for t in range(T):
        from_fwd = pre["", t].grad @ P["weight_ih_l1"]
        from_bwd = pre["_reverse", t].grad @ P["weight_ih_l1_reverse"]
        assert max_abs(from_fwd + from_bwd, y1.grad[t]) < TOL
        assert max_abs(from_fwd, y1.grad[t]) > 1e-3 and max_abs(from_bwd, y1.grad[t]) > 1e-3  # neither alone


# --- The figure of a bidirectional stack (rnnlib.explain.bidirectional_diagram) ----------------


@pytest.mark.parametrize("L, T", [(1, 2), (2, 4), (3, 3)])
def test_bidirectional_figure_graph(L, T):
    """Forward reads t-1, backward t+1, the concatenation of step t feeds both directions of the next layer."""
    import matplotlib.pyplot as plt

    from rnnlib.explain.bidirectional_diagram import bidirectional_h_n, bidirectional_stack_graph, draw_bidirectional
    from rnnlib.explain.dataflow import bidirectional_graph

    nodes, edges = bidirectional_stack_graph(L, T)
    for src, dst, weight in edges:
        if src[0] == dst[0] == "fwd":
            assert src[2] == dst[2] - 1 and weight == f"weight_hh_l{dst[1] - 1}"
        elif src[0] == dst[0] == "bwd":
            assert src[2] == dst[2] + 1 and weight == f"weight_hh_l{dst[1] - 1}_reverse"
        elif dst[0] == "cat":
            assert src[1:] == dst[1:] and weight is None
        else:
            assert src[2] == dst[2] and src[0] == ("x" if dst[1] == 1 else "cat")
    # Contract each concatenation: the cell graph of rnnlib.explain.dataflow (d = 0 forward, 1 backward).
    code = {"fwd": 0, "bwd": 1}
    cell_edges = {
        ((s[1], s[2], code[s[0]]), (d[1], d[2], code[d[0]]), w) for s, d, w in edges if s[0] in code and d[0] in code
    }
    cats = [(s, d) for s, d, w in edges if d[0] == "cat"]
    for s, d, w in edges:
        if s[0] == "cat":
            cell_edges |= {((b[1], b[2], code[b[0]]), (d[1], d[2], code[d[0]]), w) for b, c in cats if c == s}
    ref_nodes, ref_edges = bidirectional_graph(L, T)
    assert cell_edges == set(ref_edges)
    # Every weight named is an nn.RNN parameter, and every weight matrix of nn.RNN is used.
    names = {w for _, _, w in edges if w is not None}
    assert names == {n for n, _ in nn.RNN(3, 2, L, bidirectional=True).named_parameters() if n.startswith("weight")}
    assert bidirectional_h_n(L, T)[::2] == [("fwd", l, T) for l in range(1, L + 1)]
    assert bidirectional_h_n(L, T)[1::2] == [("bwd", l, 1) for l in range(1, L + 1)]
    fig = draw_bidirectional(L, T)
    arrows = [p.get_gid() for p in fig.axes[0].patches if str(p.get_gid()).startswith("edge:")]
    assert arrows == [f"edge:{s}->{d}" for s, d, _ in edges]
    plt.close(fig)


def test_bidirectional_figure_h_n_labels_are_nn_rnn_h_n():
    """The states the figure labels h_n[k] are nn.RNN's h_n[k] (checked on the top layer through output)."""
    from rnnlib.explain.bidirectional_diagram import bidirectional_h_n

    torch.manual_seed(0)
    L, T, H = 2, 4, 5
    rnn = nn.RNN(3, H, L, bidirectional=True).double()
    with torch.no_grad():
        output, h_n = rnn(torch.randn(T, 2, 3, dtype=torch.float64))
    top_fwd, top_bwd = bidirectional_h_n(L, T)[-2:]
    assert torch.equal(h_n[-2], output[top_fwd[2] - 1, :, :H])
    assert torch.equal(h_n[-1], output[top_bwd[2] - 1, :, H:])
