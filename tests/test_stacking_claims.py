"""The claims of chapter 2 (Stacking layers), each proved on the article's example and, where it is a law, on
random ones."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rnnlib import NumpyRNN, TorchRNN, num_parameters
from rnnlib.explain.examples import ARTICLE_SEED, article_input

# The article's input, written literally as the article does (time-major, (seq_len, batch, input)).
ARTICLE_LITERAL = [
    [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
    [[0.7, 0.8, 0.9], [1.0, 1.1, 1.2]],
    [[1.3, 1.4, 1.5], [1.6, 1.7, 1.8]],
    [[1.9, 2.0, 2.1], [2.2, 2.3, 2.4]],
]

# The article's printed "output examples" (invented values), copied verbatim.
ARTICLE_PRINTED_OUTPUT = [
    [[0.1234, 0.5678, 0.9101, 0.1121, 0.3141], [0.4151, 0.6171, 0.8191, 0.0212, 0.2232]],
    [[0.4252, 0.6272, 0.8292, 0.0313, 0.2333], [0.4353, 0.6373, 0.8393, 0.0414, 0.2434]],
    [[0.4454, 0.6474, 0.8494, 0.0515, 0.2535], [0.4555, 0.6575, 0.8595, 0.0616, 0.2636]],
    [[0.4656, 0.6676, 0.8696, 0.0717, 0.2737], [0.4757, 0.6777, 0.8797, 0.0818, 0.2838]],
]
ARTICLE_PRINTED_HN = [
    [[0.4656, 0.6676, 0.8696, 0.0717, 0.2737], [0.4757, 0.6777, 0.8797, 0.0818, 0.2838]],
    [[0.4858, 0.6878, 0.8898, 0.0919, 0.2939], [0.4959, 0.6979, 0.8999, 0.1020, 0.3040]],
]


def stacked_rnn_forward(x, h0, params, num_layers, feed_input_to_every_layer=False):
    """The chapter's two-loop reference (for t: for l:), with the chapter's pitfall as a switch."""
    h = [h0[l] for l in range(num_layers)]
    output = []
    for t in range(x.shape[0]):
        below = x[t]
        for l in range(num_layers):
            if feed_input_to_every_layer:
                below = x[t]
            W_ih, W_hh = params[f"weight_ih_l{l}"], params[f"weight_hh_l{l}"]
            b_ih, b_hh = params[f"bias_ih_l{l}"], params[f"bias_hh_l{l}"]
            h[l] = np.tanh(below @ W_ih.T + b_ih + h[l] @ W_hh.T + b_hh)
            below = h[l]
        output.append(h[-1])
    return np.stack(output), np.stack(h)


def stacked_rnn_all_states(x, h0, params, num_layers):
    """The solution of exercise ex-02-all-layers: every layer's state at every step, (T, L, N, H)."""
    h = [h0[l] for l in range(num_layers)]
    states = []
    for t in range(x.shape[0]):
        below = x[t]
        for l in range(num_layers):
            W_ih, W_hh = params[f"weight_ih_l{l}"], params[f"weight_hh_l{l}"]
            b_ih, b_hh = params[f"bias_ih_l{l}"], params[f"bias_hh_l{l}"]
            h[l] = np.tanh(below @ W_ih.T + b_ih + h[l] @ W_hh.T + b_hh)
            below = h[l]
        states.append(np.stack(h))
    return np.stack(states)


def article_model(dtype=torch.float32):
    torch.manual_seed(ARTICLE_SEED)
    return nn.RNN(input_size=3, hidden_size=5, num_layers=2, batch_first=False).to(dtype)


def article_run(dtype=torch.float32):
    rnn = article_model(dtype)
    x = torch.tensor(article_input(), dtype=dtype)
    h0 = torch.zeros(2, 2, 5, dtype=dtype)
    with torch.no_grad():
        output, hn = rnn(x, h0)
    return rnn, x, h0, output, hn


def one_layer_with(rnn: nn.RNN, layer: int) -> nn.RNN:
    """A one-layer nn.RNN holding layer ``layer`` (0-based) of a stack."""
    in_size = rnn.input_size if layer == 0 else rnn.hidden_size
    single = nn.RNN(in_size, rnn.hidden_size, 1).to(rnn.weight_ih_l0.dtype)
    suffix = f"_l{layer}"
    single.load_state_dict({k.replace(suffix, "_l0"): v for k, v in rnn.state_dict().items() if k.endswith(suffix)})
    return single


def random_stack(seed, T, N, D, H, L):
    torch.manual_seed(seed)
    rnn = nn.RNN(D, H, L).double()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, N, D, generator=gen, dtype=torch.float64)
    h0 = torch.randn(L, N, H, generator=gen, dtype=torch.float64)
    return rnn, x, h0


def test_article_literal_input_equals_article_input():
    assert torch.equal(torch.tensor(ARTICLE_LITERAL), torch.from_numpy(article_input()))


def test_article_printed_values_claim_output_last_equals_hn0():
    # The article's invented numbers have output[-1] != hn[-1], which no weights can produce
    # (output[-1] is always hn[-1]); instead output[-1] == hn[0].
    out, hn = torch.tensor(ARTICLE_PRINTED_OUTPUT), torch.tensor(ARTICLE_PRINTED_HN)
    assert not torch.equal(out[-1], hn[-1]) and torch.equal(out[-1], hn[0])
    _, _, _, real_out, real_hn = article_run()
    assert not torch.allclose(real_out, out, atol=1e-3)


def test_article_example_shapes():
    _, _, _, output, hn = article_run()
    assert output.shape == (4, 2, 5) and hn.shape == (2, 2, 5)


def test_output_last_step_equals_top_layer_state():
    _, _, _, output, hn = article_run()
    assert torch.equal(output[-1], hn[-1])


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 6), N=st.integers(1, 3), L=st.integers(1, 4))
def test_output_last_step_equals_top_layer_state_any_stack(seed, T, N, L):
    rnn, x, h0 = random_stack(seed, T, N, 3, 4, L)
    with torch.no_grad():
        output, hn = rnn(x, h0)
    assert torch.equal(output[-1], hn[-1])


def test_hn0_is_first_layers_last_state_not_in_output():
    rnn, x, h0, output, hn = article_run()
    assert not torch.allclose(output[-1], hn[0])
    # hn[0] is in no step of output at all
    assert all(not torch.allclose(output[t], hn[0], atol=1e-3) for t in range(output.shape[0]))
    with torch.no_grad():
        states1, _ = one_layer_with(rnn, 0)(x, h0[:1])
    assert torch.allclose(states1[-1], hn[0], rtol=0, atol=1e-6)


def test_output_holds_only_top_layer_stack_is_composition_of_layers():
    rnn, x, h0 = random_stack(3, 5, 2, 3, 4, 3)
    with torch.no_grad():
        output, hn = rnn(x, h0)
        seq = x
        for layer in range(3):
            seq, h_last = one_layer_with(rnn, layer)(seq, h0[layer : layer + 1])
            assert torch.allclose(h_last[0], hn[layer], rtol=0, atol=1e-12)
    assert torch.allclose(seq, output, rtol=0, atol=1e-12)


def test_weight_shapes_per_layer():
    torch.manual_seed(ARTICLE_SEED)
    shapes = {k: tuple(v.shape) for k, v in nn.RNN(3, 5, 2).named_parameters()}
    assert shapes == {
        "weight_ih_l0": (5, 3),
        "weight_hh_l0": (5, 5),
        "bias_ih_l0": (5,),
        "bias_hh_l0": (5,),
        "weight_ih_l1": (5, 5),
        "weight_hh_l1": (5, 5),
        "bias_ih_l1": (5,),
        "bias_hh_l1": (5,),
    }


def test_layers_have_independent_parameters():
    rnn = article_model()
    assert rnn.weight_hh_l0 is not rnn.weight_hh_l1
    assert not torch.equal(rnn.weight_hh_l0, rnn.weight_hh_l1)
    # changing one layer's weight leaves the other untouched
    with torch.no_grad():
        before = rnn.weight_hh_l1.clone()
        rnn.weight_hh_l0.add_(1.0)
    assert torch.equal(rnn.weight_hh_l1, before)


@pytest.mark.parametrize("D,H,L,expected", [(3, 5, 2, 110), (10, 20, 3, 2320), (3, 5, 3, 170)])
def test_stacked_parameter_count_formula(D, H, L, expected):
    formula = (H * D + H * H + 2 * H) + (L - 1) * (2 * H * H + 2 * H)
    counted = sum(p.numel() for p in nn.RNN(D, H, L).parameters())
    assert formula == counted == num_parameters(D, H, L) == expected


@pytest.mark.parametrize("H,expected", [(8, 104), (9, 126)])
def test_wide_or_deep_exercise_one_layer_counts(H, expected):
    assert num_parameters(3, H, 1) == sum(p.numel() for p in nn.RNN(3, H, 1).parameters()) == expected


def test_parameter_count_does_not_depend_on_T_and_num_layers_is_not_T():
    torch.manual_seed(ARTICLE_SEED)
    deep = nn.RNN(3, 5, num_layers=3)
    for T in (4, 7):
        out, hn = deep(torch.zeros(T, 2, 3))
        assert out.shape == (T, 2, 5) and hn.shape == (3, 2, 5)


def test_two_loop_numpy_equals_nn_rnn_float32_article():
    rnn, x, h0, output, hn = article_run()
    params = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    out_np, hn_np = stacked_rnn_forward(x.numpy(), h0.numpy(), params, 2)
    assert np.abs(out_np - output.numpy()).max() < 1e-6 and np.abs(hn_np - hn.numpy()).max() < 1e-6


def test_output_last_equals_hn0_can_happen_by_coincidence_but_never_output_last_differs_from_hn_last():
    """With all-zero weights every state is 0, so output[-1] == hn[0] holds; output[-1] == hn[-1] holds always."""
    rnn = nn.RNN(3, 5, 2)
    with torch.no_grad():
        for p in rnn.parameters():
            p.zero_()
        out, hn = rnn(torch.from_numpy(article_input()))
    assert torch.equal(out[-1], hn[0]) and torch.equal(out[-1], hn[-1])


def test_float32_two_loop_difference_is_of_order_1e_8_to_1e_7():
    """The chapter's claim on float32 rounding: differences of order 1e-8 to 1e-7, not zero and not a bug."""
    rnn, x, h0, output, hn = article_run()
    params = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    out_np, hn_np = stacked_rnn_forward(x.numpy(), h0.numpy(), params, 2)
    d32 = max(np.abs(out_np - output.numpy()).max(), np.abs(hn_np - hn.numpy()).max())
    assert 1e-9 < d32 < 1e-6


def test_two_loop_numpy_equals_nn_rnn_float64_article():
    rnn, x, h0, output, hn = article_run(torch.float64)
    params = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    out_np, hn_np = stacked_rnn_forward(x.numpy(), h0.numpy(), params, 2)
    assert np.abs(out_np - output.numpy()).max() < 1e-12 and np.abs(hn_np - hn.numpy()).max() < 1e-12


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 10_000),
    T=st.integers(1, 6),
    N=st.integers(1, 3),
    D=st.integers(1, 4),
    H=st.integers(1, 5),
    L=st.integers(1, 4),
)
def test_two_loop_numpy_equals_nn_rnn_any_stack(seed, T, N, D, H, L):
    rnn, x, h0 = random_stack(seed, T, N, D, H, L)
    with torch.no_grad():
        output, hn = rnn(x, h0)
    params = {k: v.numpy() for k, v in rnn.state_dict().items()}
    out_np, hn_np = stacked_rnn_forward(x.numpy(), h0.numpy(), params, L)
    assert np.abs(out_np - output.numpy()).max() < 1e-12 and np.abs(hn_np - hn.numpy()).max() < 1e-12


def test_all_states_exercise_slices_are_output_and_hn():
    rnn, x, h0, output, hn = article_run(torch.float64)
    params = {k: v.numpy() for k, v in rnn.state_dict().items()}
    S = stacked_rnn_all_states(x.numpy(), h0.numpy(), params, 2)
    assert S.shape == (4, 2, 2, 5)
    assert np.abs(S[:, -1] - output.numpy()).max() < 1e-12 and np.abs(S[-1] - hn.numpy()).max() < 1e-12
    with torch.no_grad():
        states1, _ = one_layer_with(rnn, 0)(x, h0[:1])
    assert np.abs(S[:, 0] - states1.numpy()).max() < 1e-12


def test_rnnlib_matches_article_example():
    rnn, x, h0, output, hn = article_run()
    rnn64 = copy.deepcopy(rnn).double()
    with torch.no_grad():
        out64, hn64 = rnn64(x.double(), h0.double())
    out_np, hn_np = NumpyRNN.from_torch(rnn64)(x.double().numpy(), h0.double().numpy())
    ours = TorchRNN(3, 5, 2).double()
    ours.load_state_dict(rnn64.state_dict())
    with torch.no_grad():
        out_tr, hn_tr = ours(x.double(), h0.double())
    assert np.abs(out_np - out64.numpy()).max() < 1e-12 and np.abs(hn_np - hn64.numpy()).max() < 1e-12
    assert (out_tr - out64).abs().max() < 1e-12 and (hn_tr - hn64).abs().max() < 1e-12
    # float32, on the article's own tensors
    out32_np, _ = NumpyRNN.from_torch(rnn, dtype=np.float32)(x.numpy(), h0.numpy())
    ours32 = TorchRNN(3, 5, 2)
    ours32.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        out32_tr, _ = ours32(x, h0)
    assert np.abs(out32_np - output.numpy()).max() < 1e-6 and (out32_tr - output).abs().max() < 1e-6


def test_feeding_input_to_every_layer_fails_when_D_differs_from_H():
    rnn, x, h0, _, _ = article_run()
    params = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    with pytest.raises(ValueError):
        stacked_rnn_forward(x.numpy(), h0.numpy(), params, 2, feed_input_to_every_layer=True)


def test_feeding_input_to_every_layer_differs_and_is_top_layer_alone():
    torch.manual_seed(1)
    square = nn.RNN(5, 5, num_layers=2).double()
    x = torch.randn(4, 2, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = {k: v.detach().numpy() for k, v in square.state_dict().items()}
    h0 = np.zeros((2, 2, 5))
    wrong, _ = stacked_rnn_forward(x.numpy(), h0, params, 2, feed_input_to_every_layer=True)
    with torch.no_grad():
        reference, _ = square(x)
        top_alone, _ = one_layer_with(square, 1)(x)
    assert np.abs(wrong - reference.numpy()).max() > 0.1
    assert np.abs(wrong - top_alone.numpy()).max() < 1e-12


def test_output_layer_on_the_stack_reads_only_the_top_layer():
    """y_t = W_ho h_t^(L) + b_ho: the head applied to `output`, and its last step is the head of hn[-1]."""
    torch.manual_seed(ARTICLE_SEED)
    rnn = nn.RNN(3, 5, 2).double()
    head = nn.Linear(5, 2).double()
    x = torch.from_numpy(article_input(dtype=np.float64))
    with torch.no_grad():
        output, hn = rnn(x, torch.zeros(2, 2, 5, dtype=torch.float64))
        y = head(output)
        by_hand = output.numpy() @ head.weight.numpy().T + head.bias.numpy()
        assert np.abs(y.numpy() - by_hand).max() < 1e-12
        assert (y[-1] - head(hn[-1])).abs().max().item() < 1e-12  # equal up to matmul rounding


# --- The figure of what nn.RNN returns (rnnlib.explain.diagrams.draw_output_and_h_n) ---------


def test_figure_highlights_exactly_output_and_h_n():
    """The filled cells of the chapter's figure are the states nn.RNN returns, and no other."""
    import matplotlib.pyplot as plt

    from rnnlib.explain.dataflow import forward_time_major
    from rnnlib.explain.diagrams import draw_output_and_h_n, returned_cells

    L, T = 2, 4
    roles = returned_cells(L, T)
    cells = {node: role for node, role in roles.items() if 1 <= node[0] <= L and 1 <= node[1] <= T}
    assert cells == {(2, 1): "output", (2, 2): "output", (2, 3): "output", (2, 4): "both", (1, 4): "h_n"}
    # ... and they are the states nn.RNN returns, on the article's example.
    torch.manual_seed(ARTICLE_SEED)
    rnn = nn.RNN(3, 5, num_layers=L).double()
    x = torch.from_numpy(article_input(dtype=np.float64))
    with torch.no_grad():
        output, h_n = rnn(x)
    states = forward_time_major({k: v.numpy() for k, v in rnn.state_dict().items()}, x.numpy()).states
    for l in range(1, L + 1):
        for t in range(1, T + 1):
            in_output = any(np.allclose(states[l, t], r, rtol=0, atol=1e-12) for r in output.numpy())
            in_h_n = any(np.allclose(states[l, t], r, rtol=0, atol=1e-12) for r in h_n.numpy())
            expected = {(True, False): "output", (False, True): "h_n", (True, True): "both"}.get((in_output, in_h_n))
            assert cells.get((l, t)) == expected, (l, t)
    fig = draw_output_and_h_n(L, T)
    filled = {
        p.get_gid()
        for p in fig.axes[0].patches
        if p.get_gid()
        and p.get_facecolor()[:3] != (1.0, 1.0, 1.0)
        and str(p.get_gid()).startswith("node:(")
        and p.get_facecolor()[:3] != (0.9490196078431372,) * 3
    }
    assert filled == {f"node:{n}" for n in roles}
    plt.close(fig)
