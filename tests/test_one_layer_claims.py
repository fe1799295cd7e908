"""The claims of Chapter 1 (chapters/01_one_layer.ipynb), one test per claim.

Every comparison is in float64, at the 1e-12 tolerance the chapter prints.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rnnlib import NumpyRNN, num_parameters, rnn_cell_backward, rnn_cell_forward

TOL = 1e-12


def loop_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    """The chapter's five-line loop: x (T, N, D), h0 (N, H) -> states (T, N, H), last state (N, H)."""
    h, states = h0, []
    for x_t in x:
        h = np.tanh(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        states.append(h)
    return np.stack(states), h


def cs231n_forward(x, h0, Wx, Wh, b):
    """CS231n's convention: Wx (D, H), Wh (H, H), one bias (H,)."""
    h, states = h0, []
    for x_t in x:
        h = np.tanh(x_t @ Wx + h @ Wh + b)
        states.append(h)
    return np.stack(states)


def torch_params(rnn: nn.RNN) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in rnn.state_dict().items()}


def seeded_rnn(D: int, H: int, seed: int) -> nn.RNN:
    torch.manual_seed(seed)
    return nn.RNN(D, H).double()


# --- Why a recurrent state -------------------------------------------------------------


@pytest.mark.parametrize("bits", [[1, 0, 1], [0, 1, 1, 0, 1, 1, 1], [1] * 20, [0] * 5])
def test_relu_rnn_with_unit_weights_counts_ones(bits):
    model = NumpyRNN(1, 1, nonlinearity="relu")
    model.load_state_dict(
        {
            "weight_ih_l0": np.ones((1, 1)),
            "weight_hh_l0": np.ones((1, 1)),
            "bias_ih_l0": np.zeros(1),
            "bias_hh_l0": np.zeros(1),
        }
    )
    out, h_n = model(np.array(bits, dtype=np.float64).reshape(-1, 1))
    assert h_n[0, 0] == sum(bits)
    assert np.array_equal(out[:, 0], np.cumsum(bits))


# --- tanh or ReLU ----------------------------------------------------------------------


def test_tanh_state_stays_bounded_while_relu_state_grows():
    W_hh = 1.5 * np.eye(2)
    zero_in, W_ih = np.zeros((1, 2)), np.zeros((2, 2))
    h_tanh = h_relu = np.array([[0.1, 0.2]])
    for _ in range(50):
        h_tanh, _ = rnn_cell_forward(zero_in, h_tanh, W_ih, W_hh, nonlinearity="tanh")
        h_relu, _ = rnn_cell_forward(zero_in, h_relu, W_ih, W_hh, nonlinearity="relu")
    assert (np.abs(h_tanh) < 1).all()
    # the nonzero fixed point h* = tanh(1.5 h*)
    assert np.allclose(h_tanh, np.tanh(1.5 * h_tanh), atol=1e-12)
    np.testing.assert_allclose(h_relu[0], 1.5**50 * np.array([0.1, 0.2]), rtol=1e-12)


# --- Two biases ------------------------------------------------------------------------


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**31 - 1), D=st.integers(1, 6), H=st.integers(1, 6), T=st.integers(1, 6))
def test_two_biases_equal_their_sum_in_one(seed, D, H, T):
    rnn = seeded_rnn(D, H, seed)
    merged = nn.RNN(D, H).double()
    merged.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        merged.bias_ih_l0 += merged.bias_hh_l0
        merged.bias_hh_l0.zero_()
        x = torch.randn(T, 2, D, dtype=torch.float64)
        out, h_n = rnn(x)
        out_m, h_n_m = merged(x)
    assert (out - out_m).abs().max().item() < TOL
    assert (h_n - h_n_m).abs().max().item() < TOL


def _gru_difference_after_merging(gate: int) -> float:
    torch.manual_seed(0)
    gru = nn.GRU(4, 5).double()
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    g = nn.GRU(4, 5).double()
    g.load_state_dict(gru.state_dict())
    rows = slice(5 * gate, 5 * (gate + 1))
    with torch.no_grad():
        g.bias_ih_l0[rows] += g.bias_hh_l0[rows]
        g.bias_hh_l0[rows] = 0.0
        return (g(x)[0] - gru(x)[0]).abs().max().item()


def test_gru_reset_and_update_gate_biases_can_be_merged():
    assert _gru_difference_after_merging(0) < TOL  # r
    assert _gru_difference_after_merging(1) < TOL  # z


def test_gru_candidate_gate_biases_cannot_be_merged():
    assert _gru_difference_after_merging(2) > 1e-3  # n: b_hn is multiplied by r_t


def test_both_biases_get_the_same_gradient():
    rnn = seeded_rnn(4, 5, 0)
    rnn(torch.randn(6, 3, 4, dtype=torch.float64))[0].pow(2).sum().backward()
    # equal up to rounding: PyTorch's kernels sum the two in different orders
    assert (rnn.bias_ih_l0.grad - rnn.bias_hh_l0.grad).abs().max().item() < TOL
    rng = np.random.default_rng(0)
    _, cache = rnn_cell_forward(
        rng.standard_normal((3, 4)),
        rng.standard_normal((3, 5)),
        rng.standard_normal((5, 4)),
        rng.standard_normal((5, 5)),
        rng.standard_normal(5),
        rng.standard_normal(5),
    )
    g = rnn_cell_backward(rng.standard_normal((3, 5)), cache)
    assert np.array_equal(g["db_ih"], g["db_hh"])


def test_gradient_descent_keeps_bias_difference_and_moves_sum_twice_as_fast():
    rnn = seeded_rnn(4, 5, 0)
    diff0 = (rnn.bias_ih_l0 - rnn.bias_hh_l0).detach().clone()
    sum0 = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().clone()
    rnn(torch.randn(6, 3, 4, dtype=torch.float64))[0].pow(2).sum().backward()
    g, lr = rnn.bias_ih_l0.grad.clone(), 0.1
    torch.optim.SGD(rnn.parameters(), lr=lr).step()
    with torch.no_grad():
        assert (rnn.bias_ih_l0 - rnn.bias_hh_l0 - diff0).abs().max().item() < TOL
        assert (rnn.bias_ih_l0 + rnn.bias_hh_l0 - (sum0 - 2 * lr * g)).abs().max().item() < TOL


# --- One step by hand ------------------------------------------------------------------

W_IH = np.array([[0.5, -1.0], [0.25, 0.5]])
W_HH = np.array([[0.1, 0.2], [-0.3, 0.4]])
B_IH, B_HH = np.array([0.1, -0.1]), np.array([0.0, 0.2])
X_T, H_PREV = np.array([1.0, 2.0]), np.array([0.5, -1.0])


def test_hand_computed_step_terms():
    np.testing.assert_allclose(W_IH @ X_T, [-1.5, 1.25], atol=1e-15)
    np.testing.assert_allclose(W_HH @ H_PREV, [-0.15, -0.55], atol=1e-15)
    np.testing.assert_allclose(B_IH + B_HH, [0.1, 0.1], atol=1e-15)
    a = W_IH @ X_T + W_HH @ H_PREV + B_IH + B_HH
    np.testing.assert_allclose(a, [-1.55, 0.8], atol=1e-15)
    np.testing.assert_allclose(np.tanh(a), [-0.9138, 0.6640], atol=5e-5)


def test_hand_computed_step_equals_rnn_cell_forward_and_rnncell():
    h_hand = np.tanh(W_IH @ X_T + W_HH @ H_PREV + B_IH + B_HH)
    h_lib, _ = rnn_cell_forward(X_T[None], H_PREV[None], W_IH, W_HH, B_IH, B_HH)
    cell = nn.RNNCell(2, 2).double()
    cell.load_state_dict(
        {
            "weight_ih": torch.tensor(W_IH),
            "weight_hh": torch.tensor(W_HH),
            "bias_ih": torch.tensor(B_IH),
            "bias_hh": torch.tensor(B_HH),
        }
    )
    with torch.no_grad():
        h_cell = cell(torch.tensor(X_T[None]), torch.tensor(H_PREV[None])).numpy()
    assert np.abs(h_lib[0] - h_hand).max() < TOL
    assert np.abs(h_cell[0] - h_hand).max() < TOL


# --- Unrolling over time ---------------------------------------------------------------


@pytest.mark.parametrize("T,N,D,H,O,seed", [(5, 3, 4, 6, 2, 1), (1, 1, 1, 1, 1, 0), (12, 2, 7, 3, 4, 5)])
def test_unrolled_loop_equals_numpyrnn_and_nn_rnn_plus_linear(T, N, D, H, O, seed):
    torch.manual_seed(seed)
    rnn = nn.RNN(D, H, num_layers=1).double()
    head = nn.Linear(H, O).double()
    x = torch.randn(T, N, D, dtype=torch.float64)
    p = torch_params(rnn)
    W_ho, b_ho = head.weight.detach().numpy(), head.bias.detach().numpy()

    states, h_last = loop_forward(
        x.numpy(), np.zeros((N, H)), p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
    )
    out_np, h_n_np = NumpyRNN.from_torch(rnn)(x.numpy())
    with torch.no_grad():
        out_t, h_n_t = rnn(x)
        y_t = head(out_t).numpy()

    assert np.abs(states - out_np).max() < TOL
    assert np.abs(states - out_t.numpy()).max() < TOL
    assert np.abs(h_last - h_n_t[0].numpy()).max() < TOL
    assert np.abs(states @ W_ho.T + b_ho - y_t).max() < TOL
    assert np.abs(out_np @ W_ho.T + b_ho - y_t).max() < TOL


def test_one_layer_output_last_step_equals_h_n():
    rnn = seeded_rnn(4, 6, 1)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        out, h_n = rnn(x)
    assert torch.equal(out[-1], h_n[0])
    out_np, h_n_np = NumpyRNN.from_torch(rnn)(x.numpy())
    assert np.array_equal(out_np[-1], h_n_np[0])


def test_two_layer_output_last_step_equals_top_layer_state_not_first():
    torch.manual_seed(0)
    rnn2 = nn.RNN(3, 5, num_layers=2)
    with torch.no_grad():
        out, h_n = rnn2(torch.randn(4, 2, 3))
    assert torch.equal(out[-1], h_n[-1])
    assert not torch.allclose(out[-1], h_n[0])


# --- Parameter sharing -----------------------------------------------------------------


def test_shared_weight_gradient_is_sum_of_per_step_gradients():
    T, N, D, H = 5, 3, 4, 6
    torch.manual_seed(1)
    rnn = nn.RNN(D, H).double()
    head = nn.Linear(H, 2).double()
    x = torch.randn(T, N, D, dtype=torch.float64)
    head(rnn(x)[0]).pow(2).sum().backward()

    copies = [rnn.weight_hh_l0.detach().clone().requires_grad_() for _ in range(T)]
    W_ih, b_ih, b_hh = rnn.weight_ih_l0.detach(), rnn.bias_ih_l0.detach(), rnn.bias_hh_l0.detach()
    h, hs = torch.zeros(N, H, dtype=torch.float64), []
    for t in range(T):
        h = torch.tanh(x[t] @ W_ih.T + b_ih + h @ copies[t].T + b_hh)
        hs.append(h)
    head(torch.stack(hs)).pow(2).sum().backward()

    total = sum(W.grad for W in copies)
    assert (total - rnn.weight_hh_l0.grad).abs().max().item() < TOL
    assert copies[0].grad.abs().max().item() == 0.0  # step 1 multiplies h_0 = 0
    assert all(W.grad.norm().item() > 1e-3 for W in copies[1:])


@pytest.mark.parametrize("D,H", [(4, 6), (1, 1), (10, 3)])
def test_parameter_count_independent_of_T(D, H):
    rnn = seeded_rnn(D, H, 0)
    before = {k: v.clone() for k, v in rnn.state_dict().items()}
    for T in (1, 10, 1000):
        with torch.no_grad():
            out, _ = rnn(torch.randn(T, 3, D, dtype=torch.float64))
        assert out.shape == (T, 3, H)
        assert sum(q.numel() for q in rnn.parameters()) == H * D + H * H + 2 * H
    assert all(torch.equal(before[k], v) for k, v in rnn.state_dict().items())


# --- Parameter count -------------------------------------------------------------------


@pytest.mark.parametrize("D,H,O", [(1, 1, 1), (3, 5, 2), (28, 128, 10), (100, 256, 100), (7, 2, 3)])
def test_parameter_count_formula(D, H, O):
    assert sum(q.numel() for q in nn.RNN(D, H).parameters()) == H * D + H * H + 2 * H
    assert num_parameters(D, H) == H * D + H * H + 2 * H
    assert NumpyRNN(D, H).num_parameters() == H * D + H * H + 2 * H
    assert sum(q.numel() for q in nn.Linear(H, O).parameters()) == O * H + O


def test_exercise_param_count_language_model():
    rnn = sum(q.numel() for q in nn.RNN(300, 128).parameters())
    head = sum(q.numel() for q in nn.Linear(128, 10000).parameters())
    assert (rnn, head) == (55040, 1290000)
    assert round(128 * 128 / rnn, 3) == 0.298
    assert round(head / (rnn + head), 2) == 0.96


# --- Pitfalls --------------------------------------------------------------------------


def test_untransposed_input_weights_raise_a_shape_error_when_D_differs_from_H():
    rnn = seeded_rnn(4, 6, 1)
    p = torch_params(rnn)
    x = np.random.default_rng(0).standard_normal((5, 3, 4))
    with pytest.raises(ValueError, match="mismatch"):
        cs231n_forward(x, np.zeros((3, 6)), p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"] + p["bias_hh_l0"])


@pytest.mark.parametrize("D,H", [(4, 6), (3, 3)])
def test_untransposed_recurrent_weights_are_silently_wrong(D, H):
    rnn = seeded_rnn(D, H, 2)
    p = torch_params(rnn)
    x = torch.randn(4, 2, D, dtype=torch.float64)
    with torch.no_grad():
        ref = rnn(x)[0].numpy()
    b = p["bias_ih_l0"] + p["bias_hh_l0"]
    h0 = np.zeros((2, H))
    right = cs231n_forward(x.numpy(), h0, p["weight_ih_l0"].T, p["weight_hh_l0"].T, b)
    wrong_hh = cs231n_forward(x.numpy(), h0, p["weight_ih_l0"].T, p["weight_hh_l0"], b)
    assert np.abs(right - ref).max() < TOL
    assert wrong_hh.shape == ref.shape and np.abs(wrong_hh - ref).max() > 1e-2
    if D == H:  # no shape error for either matrix
        wrong_both = cs231n_forward(x.numpy(), h0, p["weight_ih_l0"], p["weight_hh_l0"], b)
        assert np.abs(wrong_both - ref).max() > 1e-2


def test_single_bias_port_needs_the_sum_of_both_biases():
    rnn = seeded_rnn(4, 6, 1)
    p = torch_params(rnn)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        ref = rnn(x)[0].numpy()
    Wx, Wh, h0 = p["weight_ih_l0"].T, p["weight_hh_l0"].T, np.zeros((3, 6))
    assert np.abs(cs231n_forward(x.numpy(), h0, Wx, Wh, p["bias_ih_l0"] + p["bias_hh_l0"]) - ref).max() < TOL
    assert np.abs(cs231n_forward(x.numpy(), h0, Wx, Wh, p["bias_ih_l0"]) - ref).max() > 1e-2


def test_load_state_dict_refuses_a_missing_bias():
    rnn = seeded_rnn(4, 6, 1)
    incomplete = {k: v for k, v in rnn.state_dict().items() if k != "bias_hh_l0"}
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l0'\]"):
        NumpyRNN(4, 6).load_state_dict(incomplete)


def test_dtype_mismatch_raises_clear_error():
    model = NumpyRNN(4, 6, seed=0)
    with pytest.raises(TypeError, match="float32 but this NumpyRNN computes in float64"):
        model(np.zeros((5, 3, 4), dtype=np.float32))
    rnn = seeded_rnn(4, 6, 0)
    with pytest.raises((RuntimeError, ValueError), match="dtype"):
        rnn(torch.zeros(5, 3, 4))


def test_float32_agrees_with_float64_only_to_about_1e_7():
    rnn = seeded_rnn(4, 6, 1)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    rnn32 = nn.RNN(4, 6)
    rnn32.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        d = (rnn32(x.float())[0].double() - rnn(x)[0]).abs().max().item()
    assert 1e-12 < d < 1e-5


# --- Exercise: the (D, H) convention ---------------------------------------------------


@pytest.mark.parametrize("D,H", [(4, 6), (5, 5)])
def test_exercise_dh_convention_step_matches_rnn_cell_forward(D, H):
    rng = np.random.default_rng(0)
    W_ih, W_hh = rng.standard_normal((H, D)), rng.standard_normal((H, H))
    b_ih, b_hh = rng.standard_normal(H), rng.standard_normal(H)
    x, h = rng.standard_normal((3, D)), rng.standard_normal((3, H))
    expected, _ = rnn_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh)
    got = np.tanh(x @ W_ih.T + h @ W_hh.T + (b_ih + b_hh))
    assert np.abs(got - expected).max() < TOL
