"""Claims of Chapter 5 (backpropagation through time in a stack), one test per claim.

* The one-step formulas (delta = dh * phi', dW_ih = delta^T x, dx = delta W_ih, ...) are
  ``rnn_cell_backward``.
* The step-by-step backward (a loop over layers and steps calling ``rnn_cell_backward``,
  ``rnnlib.explain.gradient_flow.stack_backward``) equals ``NumpyRNN.backward`` (1e-12) and both equal
  ``torch.autograd`` on ``nn.RNN`` (1e-10), on the article's example and on random stacks.
* It passes the finite-difference check (relative errors < 1e-6).
* Each classic mistake of ``rnnlib.coursework.mistakes`` fails the check (some relative error > 1e-3);
  the two stack mistakes leave the top layer right and break every layer below;
  forgetting dh_next makes d_h0 zero; on an encoder loss (h_n only) forgetting G_n zeroes every
  gradient, and G_n for the top layer only breaks every layer below.
* The two biases always get identical gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rnnlib import NumpyRNN, check_rnn_gradients, rnn_cell_backward, rnn_cell_forward
from rnnlib.coursework.mistakes import (
    MISTAKES,
    backward_passing_dh_down,
    backward_sending_loss_gradient_to_every_layer,
    backward_without_dh_next,
    with_backward,
)
from rnnlib.explain.examples import ARTICLE_SEED, article_input
from rnnlib.explain.gradient_flow import stack_backward, stack_forward
from rnnlib.gradcheck import numerical_gradient, rel_error

PROPERTY = settings(max_examples=10, deadline=None, derandomize=True, database=None)


def article_model() -> tuple[nn.RNN, NumpyRNN, np.ndarray]:
    """The chapter's running example: nn.RNN(3, 5, 2) after manual_seed(ARTICLE_SEED), float64."""
    torch.manual_seed(ARTICLE_SEED)
    reference = nn.RNN(3, 5, 2).double()
    return reference, NumpyRNN.from_torch(reference), article_input(dtype=np.float64)


def upstream(T: int, N: int, H: int, L: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, N, H)), rng.standard_normal((L, N, H))


def autograd(reference: nn.RNN, x: np.ndarray, h0: np.ndarray, G: np.ndarray, G_n: np.ndarray) -> dict[str, np.ndarray]:
    reference.zero_grad(set_to_none=True)
    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, hn = reference(x_t, h0_t)
    ((out * torch.from_numpy(G)).sum() + (hn * torch.from_numpy(G_n)).sum()).backward()
    grads = {name: p.grad.numpy().copy() for name, p in reference.named_parameters()}
    return {**grads, "input": x_t.grad.numpy(), "h0": h0_t.grad.numpy()}


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_cell_backward_is_the_five_formulas(nonlinearity) -> None:
    rng = np.random.default_rng(1)
    N, D, H = 3, 4, 5
    x, h_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    W_ih, W_hh, b_ih, b_hh = (
        rng.standard_normal((H, D)),
        rng.standard_normal((H, H)),
        rng.standard_normal(H),
        rng.standard_normal(H),
    )
    h, cache = rnn_cell_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh, nonlinearity)
    dh = rng.standard_normal((N, H))
    deriv = 1 - h**2 if nonlinearity == "tanh" else (h > 0).astype(float)
    delta = dh * deriv
    expected = {
        "dW_ih": delta.T @ x,
        "dW_hh": delta.T @ h_prev,
        "db_ih": delta.sum(0),
        "db_hh": delta.sum(0),
        "dx": delta @ W_ih,
        "dh_prev": delta @ W_hh,
    }
    got = rnn_cell_backward(dh, cache)
    for k, v in expected.items():
        assert got[k].shape == v.shape
        assert np.abs(got[k] - v).max() < 1e-12, k


def test_step_by_step_backward_equals_numpy_rnn_backward_equals_autograd_on_article_example() -> None:
    reference, model, x = article_model()
    T, N, _ = x.shape
    G, G_n = upstream(T, N, 5, 2)
    h0 = np.zeros((2, N, 5))
    _, _, caches = stack_forward(model, x, h0)
    loop = stack_backward(caches, G, G_n)
    model.forward(x, h0)
    d_x, d_h0 = model.backward(G, G_n)
    lib = {**model.grads, "input": d_x, "h0": d_h0}
    mine = {**loop.grads, "input": loop.d_input, "h0": loop.d_h0}
    auto = autograd(reference, x, h0, G, G_n)
    assert list(loop.grads) == list(model.grads)
    for k in lib:
        assert np.abs(mine[k] - lib[k]).max() < 1e-12, k
        assert np.abs(mine[k] - auto[k]).max() <= 1e-10, k
        assert np.abs(lib[k] - auto[k]).max() <= 1e-10, k


@PROPERTY
@given(
    T=st.integers(1, 6),
    N=st.integers(1, 4),
    D=st.integers(1, 5),
    H=st.integers(1, 5),
    L=st.integers(1, 3),
    nonlinearity=st.sampled_from(["tanh", "relu"]),
    bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_step_by_step_backward_equals_numpy_rnn_backward_and_autograd(T, N, D, H, L, nonlinearity, bias, seed) -> None:
    torch.manual_seed(seed % 10_000)
    reference = nn.RNN(D, H, L, nonlinearity, bias).double()
    model = NumpyRNN.from_torch(reference)
    rng = np.random.default_rng(seed)
    x, h0 = rng.standard_normal((T, N, D)), 0.5 * rng.standard_normal((L, N, H))
    G, G_n = upstream(T, N, H, L, seed)
    out, h_n, caches = stack_forward(model, x, h0)
    loop = stack_backward(caches, G, G_n)
    ref_out, ref_hn = model.forward(x, h0)
    assert np.abs(out - ref_out).max() < 1e-12 and np.abs(h_n - ref_hn).max() < 1e-12
    d_x, d_h0 = model.backward(G, G_n)
    auto = autograd(reference, x, h0, G, G_n)
    for k, v in {**loop.grads, "input": loop.d_input, "h0": loop.d_h0}.items():
        lib = {**model.grads, "input": d_x, "h0": d_h0}[k]
        assert np.abs(v - lib).max() < 1e-12, k
        assert np.abs(v - auto[k]).max() <= 1e-10, k


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_step_by_step_backward_passes_gradient_check(nonlinearity) -> None:
    _, model, x = article_model()
    m = NumpyRNN(3, 5, 2, nonlinearity)
    m.load_state_dict(model.state_dict())
    errors = check_rnn_gradients(with_backward(m, stack_backward), x)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", list(MISTAKES))
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_each_classic_mistake_fails_gradient_check(name, nonlinearity) -> None:
    _, model, x = article_model()
    m = NumpyRNN(3, 5, 2, nonlinearity)
    m.load_state_dict(model.state_dict())
    errors = check_rnn_gradients(with_backward(m, MISTAKES[name]), x)
    assert max(errors.values()) > 1e-3, errors


@pytest.mark.parametrize("mistake", [backward_passing_dh_down, backward_sending_loss_gradient_to_every_layer])
@pytest.mark.parametrize("L", [2, 3])
def test_stack_mistakes_leave_top_layer_right_and_break_every_layer_below(mistake, L) -> None:
    torch.manual_seed(ARTICLE_SEED)
    model = NumpyRNN.from_torch(nn.RNN(3, 5, L))
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    errors = check_rnn_gradients(with_backward(model, mistake), x)
    top = [k for k in errors if k.endswith(f"_l{L - 1}")]
    assert max(errors[k] for k in top) < 1e-6
    for layer in range(L - 1):
        assert max(errors[k] for k in errors if k.endswith(f"_l{layer}")) > 1e-3, layer
    assert errors["input"] > 1e-3


def test_forgetting_dh_next_makes_d_h0_zero() -> None:
    _, model, x = article_model()
    _, _, caches = stack_forward(model, x)
    G, G_n = upstream(4, 2, 5, 2)
    assert np.all(backward_without_dh_next(caches, G, G_n).d_h0 == 0)
    assert np.abs(stack_backward(caches, G, G_n).d_h0).max() > 1e-3


def _encoder_gradient_check(backward, L: int = 2) -> dict[str, float]:
    """Relative errors of ``backward`` on an encoder loss that reads only h_n (a read-out of every layer's final
    state)."""
    torch.manual_seed(ARTICLE_SEED)
    model = NumpyRNN.from_torch(nn.RNN(3, 5, L).double())
    x = article_input(dtype=np.float64)
    T, N, H = x.shape[0], x.shape[1], 5
    h0 = np.zeros((L, N, H))
    rng = np.random.default_rng(1)
    R, z = rng.standard_normal((L, 2, H)), rng.standard_normal((N, 2))

    def loss() -> float:
        _, h_n, _ = stack_forward(model, x, h0)
        return float(0.5 * np.sum((np.einsum("lnh,loh->no", h_n, R) - z) ** 2))

    _, h_n, caches = stack_forward(model, x, h0)
    G_n = np.einsum("no,loh->lnh", np.einsum("lnh,loh->no", h_n, R) - z, R)
    d_x, d_h0, grads = backward(caches, np.zeros((T, N, H)), G_n)[:3]
    analytic = {**grads, "input": d_x, "h0": d_h0}
    targets = {**model.params, "input": x, "h0": h0}
    return {k: rel_error(analytic[k], numerical_gradient(loss, a)) for k, a in targets.items()}


def test_forgetting_G_n_on_an_encoder_loss_fails_gradient_check_everywhere() -> None:
    """A loss on h_n only (an encoder feeding a read-out): the backward must start each layer at its G_n."""
    assert max(_encoder_gradient_check(stack_backward).values()) < 1e-6
    without = _encoder_gradient_check(lambda c, g, gn: stack_backward(c, g, np.zeros_like(gn)))
    assert min(without.values()) == 1.0  # every analytic gradient is exactly zero


@pytest.mark.parametrize("L", [2, 3])
def test_G_n_for_the_top_layer_only_leaves_the_top_layer_right_and_breaks_every_layer_below(L) -> None:
    def top_only(caches, d_output, d_h_n):
        only = np.zeros_like(d_h_n)
        only[-1] = d_h_n[-1]
        return stack_backward(caches, d_output, only)

    errors = _encoder_gradient_check(top_only, L)
    assert max(errors[k] for k in errors if k.endswith(f"_l{L - 1}")) < 1e-6
    for layer in range(L - 1):
        assert min(errors[k] for k in errors if k.endswith(f"_l{layer}")) > 1e-3, layer
    assert errors["input"] > 1e-3 and errors["h0"] > 1e-3


def test_mistakes_run_and_return_the_right_shapes() -> None:
    _, model, x = article_model()
    _, _, caches = stack_forward(model, x)
    G, G_n = upstream(4, 2, 5, 2)
    right = stack_backward(caches, G, G_n)
    for name, fn in MISTAKES.items():
        wrong = fn(caches, G, G_n)
        assert wrong.d_input.shape == right.d_input.shape and wrong.d_h0.shape == right.d_h0.shape, name
        assert {k: v.shape for k, v in wrong.grads.items()} == {k: v.shape for k, v in right.grads.items()}, name
        assert fn.__doc__ and fn.__doc__.startswith("WRONG"), name


def test_bias_gradients_are_identical() -> None:
    _, model, x = article_model()
    model.forward(x)
    model.backward(*upstream(4, 2, 5, 2))
    for layer in range(2):
        assert np.array_equal(model.grads[f"bias_ih_l{layer}"], model.grads[f"bias_hh_l{layer}"])


def test_with_backward_copies_and_leaves_model_alone() -> None:
    _, model, x = article_model()
    before = model.state_dict()
    stepped = with_backward(model, stack_backward)
    out, h_n = stepped.forward(x)
    ref_out, ref_hn = model.forward(x)
    assert np.abs(out - ref_out).max() < 1e-12 and np.abs(h_n - ref_hn).max() < 1e-12
    stepped.params["weight_hh_l0"][:] = 0.0
    assert all(np.array_equal(before[k], model.params[k]) for k in before)
    with pytest.raises(ValueError):
        with_backward(NumpyRNN(3, 5, 2, bidirectional=True))


# --- The figure of the two gradient paths (rnnlib.explain.gradient_diagram) --------------------


@pytest.mark.parametrize("L, T", [(1, 1), (2, 4), (3, 4), (4, 2)])
def test_gradient_paths_are_the_forward_edges_reversed(L, T):
    """Left arrows reverse the W_hh edges, down arrows the W_ih edges; the loss enters the top row and h_n's column."""
    import matplotlib.pyplot as plt

    from rnnlib.explain.dataflow import unrolled_graph
    from rnnlib.explain.gradient_diagram import draw_gradient_paths, gradient_edges

    edges = gradient_edges(L, T)
    _, forward = unrolled_graph(L, T)
    inner = [(src, dst, kind) for src, dst, kind in edges if kind != "loss"]
    assert sorted((dst, src) for src, dst, _ in inner) == sorted((src, dst) for src, dst, _ in forward)
    for (src, dst, kind), (_, _, weight) in zip(inner, forward, strict=True):
        assert (kind == "time") == weight.startswith("weight_hh")  # W_hh back in time, W_ih down the stack
        assert (src[0] == dst[0] + 1 and src[1] == dst[1]) if kind == "depth" else (src[1] == dst[1] + 1)
    loss = {dst for _, dst, kind in edges if kind == "loss"}
    assert loss == {(L, t) for t in range(1, T + 1)} | {(l, T) for l in range(1, L + 1)}
    fig = draw_gradient_paths(L, T)
    arrows = [p.get_gid() for p in fig.axes[0].patches if str(p.get_gid()).startswith("grad:")]
    assert arrows == [f"grad:{src}->{dst}" for src, dst, _ in edges]
    plt.close(fig)
