"""One step and one layer: ``rnn_cell_forward``/``rnn_cell_backward``, ``layer_forward``/``layer_backward``.

* The cell equals ``torch.nn.RNNCell`` (float64) and its backward equals autograd and
  finite differences (``numerical_gradient_array``).
* Unrolling the cell over time equals ``layer_forward`` (which hoists the input
  projection of all steps out of the loop) and a one-layer ``NumpyRNN``; summing the
  cell's backward over time equals ``layer_backward``.
* ``rel_error`` and ``numerical_gradient`` do what their definitions say.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rnnlib import (
    NumpyRNN,
    layer_backward,
    layer_forward,
    numerical_gradient,
    numerical_gradient_array,
    rel_error,
    rnn_cell_backward,
    rnn_cell_forward,
)

TOL = 1e-12
FLAGS = list(itertools.product(("tanh", "relu"), (True, False)))
FLAG_IDS = [f"{act}-{'bias' if bias else 'nobias'}" for act, bias in FLAGS]
PROPERTY = settings(max_examples=15, deadline=None, derandomize=True, database=None)
SIZE = st.integers(1, 6)


def cell_params(D: int, H: int, bias: bool, rng: np.random.Generator) -> dict[str, np.ndarray | None]:
    return {
        "W_ih": rng.uniform(-1, 1, (H, D)),
        "W_hh": rng.uniform(-1, 1, (H, H)),
        "b_ih": rng.uniform(-1, 1, H) if bias else None,
        "b_hh": rng.uniform(-1, 1, H) if bias else None,
    }


# --------------------------------------------------------------------------------------
# The cell
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("act,bias", FLAGS, ids=FLAG_IDS)
@PROPERTY
@given(N=SIZE, D=SIZE, H=SIZE, seed=st.integers(0, 2**31 - 1))
def test_rnn_cell_forward_matches_nn_rnn_cell(act, bias, N, D, H, seed) -> None:
    torch.manual_seed(seed)
    cell = nn.RNNCell(D, H, bias=bias, nonlinearity=act, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    x, h_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    p = {k: v.detach().numpy() for k, v in cell.state_dict().items()}
    h, cache = rnn_cell_forward(x, h_prev, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), act)
    with torch.no_grad():
        ref = cell(torch.from_numpy(x), torch.from_numpy(h_prev)).numpy()
    assert h.shape == (N, H)
    assert np.max(np.abs(h - ref)) <= TOL
    assert cache["h"] is h and cache["x"] is x and cache["h_prev"] is h_prev


@pytest.mark.parametrize("act,bias", FLAGS, ids=FLAG_IDS)
@PROPERTY
@given(N=SIZE, D=SIZE, H=SIZE, seed=st.integers(0, 2**31 - 1))
def test_rnn_cell_backward_matches_autograd(act, bias, N, D, H, seed) -> None:
    rng = np.random.default_rng(seed)
    p = cell_params(D, H, bias, rng)
    x, h_prev, dh = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    h, cache = rnn_cell_forward(x, h_prev, **p, nonlinearity=act)
    grads = rnn_cell_backward(dh, cache)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in {"x": x, "h_prev": h_prev, **p}.items() if v is not None}
    a = t["x"] @ t["W_ih"].T + t["h_prev"] @ t["W_hh"].T
    if bias:
        a = a + t["b_ih"] + t["b_hh"]
    h_t = torch.tanh(a) if act == "tanh" else torch.relu(a)
    (h_t * torch.from_numpy(dh)).sum().backward()
    assert np.max(np.abs(h_t.detach().numpy() - h)) <= TOL
    names = {"dx": "x", "dh_prev": "h_prev", "dW_ih": "W_ih", "dW_hh": "W_hh", "db_ih": "b_ih", "db_hh": "b_hh"}
    assert set(grads) == set(names)
    for g, name in names.items():
        if name in t:
            assert grads[g].shape == t[name].shape
            assert np.max(np.abs(grads[g] - t[name].grad.numpy())) <= TOL, g
        else:
            assert grads[g] is None  # no bias, no bias gradient


@pytest.mark.parametrize("act,bias", FLAGS, ids=FLAG_IDS)
def test_rnn_cell_backward_matches_finite_differences(act, bias) -> None:
    N, D, H = 3, 4, 5
    rng = np.random.default_rng(41)
    p = cell_params(D, H, bias, rng)
    x, h_prev, dh = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    arrays = {"x": x, "h_prev": h_prev, **{k: v for k, v in p.items() if v is not None}}

    def step(_: np.ndarray) -> np.ndarray:  # reads every array in `arrays`, one of which is being perturbed
        return rnn_cell_forward(
            arrays["x"], arrays["h_prev"], arrays["W_ih"], arrays["W_hh"], arrays.get("b_ih"), arrays.get("b_hh"), act
        )[0]

    grads = rnn_cell_backward(dh, rnn_cell_forward(x, h_prev, **p, nonlinearity=act)[1])
    for name, array in arrays.items():
        numerical = numerical_gradient_array(step, array, dh)
        assert rel_error(grads["d" + name], numerical) <= 1e-6, name


def test_rnn_cell_bias_gradients_are_equal() -> None:
    """``b_ih`` and ``b_hh`` enter the sum the same way, so they get the same gradient (and are separate arrays)."""
    rng = np.random.default_rng(42)
    p = cell_params(3, 4, True, rng)
    _, cache = rnn_cell_forward(rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), **p)
    g = rnn_cell_backward(rng.standard_normal((2, 4)), cache)
    assert np.array_equal(g["db_ih"], g["db_hh"]) and g["db_ih"] is not g["db_hh"]


# --------------------------------------------------------------------------------------
# Unrolling the cell: a layer, and a one-layer NumpyRNN
# --------------------------------------------------------------------------------------


def unroll(x: np.ndarray, h0: np.ndarray, p: dict, act: str, reverse: bool = False):
    """The readable loop: one ``rnn_cell_forward`` per step. Returns ``out (T, N, H)``, ``h_last`` and the caches."""
    T = x.shape[0]
    out = np.empty((T, *h0.shape))
    caches = [None] * T
    h = h0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        h, caches[t] = rnn_cell_forward(x[t], h, **p, nonlinearity=act)
        out[t] = h
    return out, h, caches


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("act,bias", FLAGS, ids=FLAG_IDS)
@PROPERTY
@given(T=SIZE, N=SIZE, D=SIZE, H=SIZE, seed=st.integers(0, 2**31 - 1))
def test_unrolled_cell_equals_layer_forward_and_one_layer_numpy_rnn(act, bias, reverse, T, N, D, H, seed) -> None:
    rng = np.random.default_rng(seed)
    p = cell_params(D, H, bias, rng)
    x, h0 = rng.standard_normal((T, N, D)), rng.standard_normal((N, H))
    out_ref, h_ref, _ = unroll(x, h0, p, act, reverse)

    out, h_last, _ = layer_forward(x, h0, **p, nonlinearity=act, reverse=reverse)
    assert out.shape == (T, N, H) and h_last.shape == (N, H)
    assert np.max(np.abs(out - out_ref)) <= TOL and np.max(np.abs(h_last - h_ref)) <= TOL

    if not reverse:
        model = NumpyRNN(D, H, 1, act, bias, seed=0)
        names = {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}
        model.load_state_dict({names[k]: v for k, v in p.items() if v is not None})
        out_m, h_n = model.forward(x, h0[None])
        assert np.max(np.abs(out_m - out_ref)) <= TOL and np.max(np.abs(h_n[0] - h_ref)) <= TOL


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("act,bias", FLAGS, ids=FLAG_IDS)
@PROPERTY
@given(T=SIZE, N=SIZE, D=SIZE, H=SIZE, seed=st.integers(0, 2**31 - 1))
def test_layer_backward_equals_cell_backward_summed_over_time(act, bias, reverse, T, N, D, H, seed) -> None:
    """BPTT by hand: walk the steps backwards, add each step's output gradient, sum the weight gradients."""
    rng = np.random.default_rng(seed)
    p = cell_params(D, H, bias, rng)
    x, h0 = rng.standard_normal((T, N, D)), rng.standard_normal((N, H))
    d_out, d_h_last = rng.standard_normal((T, N, H)), rng.standard_normal((N, H))
    _, _, caches = unroll(x, h0, p, act, reverse)
    sums = {k: 0.0 for k in ("dW_ih", "dW_hh", "db_ih", "db_hh")}
    dx = np.empty_like(x)
    dh = d_h_last
    for t in range(T) if reverse else range(T - 1, -1, -1):
        g = rnn_cell_backward(dh + d_out[t], caches[t])
        dx[t], dh = g["dx"], g["dh_prev"]
        for k in sums:
            sums[k] = sums[k] + g[k] if g[k] is not None else None

    _, _, cache = layer_forward(x, h0, **p, nonlinearity=act, reverse=reverse)
    dx_l, dh0_l, grads = layer_backward(d_out, d_h_last, cache)
    assert np.max(np.abs(dx_l - dx)) <= TOL and np.max(np.abs(dh0_l - dh)) <= TOL
    assert set(grads) == ({"weight_ih", "weight_hh", "bias_ih", "bias_hh"} if bias else {"weight_ih", "weight_hh"})
    for kind, key in (("weight_ih", "dW_ih"), ("weight_hh", "dW_hh"), ("bias_ih", "db_ih"), ("bias_hh", "db_hh")):
        if bias or kind.startswith("weight"):
            assert np.max(np.abs(grads[kind] - sums[key])) <= TOL, kind


def test_layer_forward_with_full_mask_equals_no_mask() -> None:
    rng = np.random.default_rng(43)
    p = cell_params(3, 4, True, rng)
    x, h0 = rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 4))
    out, h_last, _ = layer_forward(x, h0, **p)
    out_m, h_last_m, _ = layer_forward(x, h0, **p, mask=np.ones((5, 2), dtype=bool))
    assert np.array_equal(out, out_m) and np.array_equal(h_last, h_last_m)


# --------------------------------------------------------------------------------------
# rel_error and numerical gradients
# --------------------------------------------------------------------------------------


def test_rel_error_is_max_entrywise_relative_difference() -> None:
    a, b = np.array([1.0, 2.0, -3.0]), np.array([1.1, 2.0, -3.0])
    assert rel_error(a, b) == pytest.approx(0.1 / 2.1, rel=1e-14)
    assert rel_error(b, a) == rel_error(a, b)  # symmetric
    assert rel_error(a, a) == 0.0
    assert rel_error(np.array([1.0, -1.0]), np.array([-1.0, 1.0])) == 1.0  # opposite signs: the maximum, 1
    assert rel_error(np.zeros((2, 3)), np.zeros((2, 3))) == 0.0  # 0/0 avoided by the floor
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0


def test_rel_error_floor_is_1e_minus_8() -> None:
    """Below the floor the denominator is 1e-8: tiny absolute differences of tiny numbers do not explode."""
    assert rel_error(np.array([0.0]), np.array([1e-10])) == pytest.approx(1e-2, rel=1e-12)
    assert rel_error(np.array([0.0]), np.array([1e-6])) == pytest.approx(1.0)


def test_rel_error_accepts_lists_and_torch_tensors_and_refuses_shape_mismatch() -> None:
    assert rel_error([1.0, 2.0], torch.tensor([1.0, 2.0], dtype=torch.float64)) == 0.0
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(3,\)"):
        rel_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_of_known_function_and_x_restored() -> None:
    x = np.random.default_rng(44).standard_normal((3, 4))
    x_before = x.copy()
    g = numerical_gradient(lambda: float(np.sum(np.sin(x))), x, 1e-5)
    assert np.array_equal(x, x_before)  # perturbed in place, then restored exactly
    assert rel_error(g, np.cos(x)) < 1e-8


def test_numerical_gradient_array_is_a_vector_jacobian_product() -> None:
    rng = np.random.default_rng(45)
    A, x, df = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    g = numerical_gradient_array(lambda v: A @ v, x, df)
    assert rel_error(g, A.T @ df) < 1e-8


def test_max_abs_difference_mixes_arrays_and_tensors_and_refuses_broadcasting():
    import numpy as np
    import pytest
    import torch

    from rnnlib.gradcheck import max_abs_difference

    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert max_abs_difference(a, torch.tensor(a) + 0.5) == 0.5
    assert max_abs_difference(np.empty((0, 3)), np.empty((0, 3))) == 0.0
    with pytest.raises(ValueError, match=r"\(2, 2\) and \(2,\)"):
        max_abs_difference(a, a[0])
