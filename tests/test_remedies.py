"""Claims of Chapter 6's remedies: clipping, truncated BPTT, initialisation.

* ``rnnlib.training.clipping.clip_grad_norm`` equals ``torch.nn.utils.clip_grad_norm_`` on the same
  gradients to 1e-12: the returned total norm, the clipped gradients, the no-op case below
  ``max_norm``, other norm types; it keeps the direction.
* ``rnnlib.training.tbptt``: one chunk is full BPTT (1e-12); k chunks equal PyTorch's ``h.detach()``
  idiom (1e-12); with a loss on the last step, every input outside the last chunk gets exactly
  zero gradient while inside it TBPTT equals full BPTT; the share truncation discards grows with rho.
  TBPTT(k1, k2) (Williams & Peng) and randomized truncation (d2l 9.7) equal torch implementations with
  ``.detach()`` to 1e-12 in float64; k1 == k2 is the chunks; the reach matrices the chapter draws are
  where (and, randomized, with what weight) a single loss sends gradient.
* ``rnnlib.training.init``: IRNN and ``set_recurrent_weights`` give what they promise.
* The chapter's training demonstration, as medians over networks: with lr 0.3, the first unclipped
  step saturates most states, and clipping at 1 ends at less than half the unclipped loss.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import torch
from torch import nn

from rnnlib import NumpyRNN
from rnnlib.training.clipping import clip_grad_norm, total_grad_norm
from rnnlib.training.init import irnn_init, set_recurrent_weights, spectral_radius
from rnnlib.training.tbptt import (
    chunk_bounds,
    k1k2_windows,
    plot_gradient_reach,
    randomized_tbptt_gradients,
    randomized_truncation_factors,
    reach_from_factors,
    reach_k1k2,
    tbptt_k1k2_gradients,
    torch_randomized_tbptt_gradients,
    torch_tbptt_k1k2_gradients,
    torch_truncated_bptt_gradients,
    truncated_bptt_gradients,
)

T, N, D, H = 24, 3, 4, 6


def torch_rnn_with_grads(seed: int = 0, L: int = 2, scale: float = 1.0) -> nn.RNN:
    torch.manual_seed(seed)
    rnn = nn.RNN(D, H, L).double()
    x = torch.randn(T, N, D, dtype=torch.float64)
    out, h_n = rnn(x)
    (scale * (out**2).sum()).backward()
    return rnn


def numpy_grads(rnn: nn.Module) -> dict[str, np.ndarray]:
    return {name: p.grad.numpy().copy() for name, p in rnn.named_parameters()}


@pytest.mark.parametrize("max_norm", [0.01, 1.0, 5.0, 1e6])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(max_norm, norm_type) -> None:
    rnn = torch_rnn_with_grads()
    grads = numpy_grads(rnn)
    total = clip_grad_norm(grads, max_norm, norm_type)
    total_torch = torch.nn.utils.clip_grad_norm_(rnn.parameters(), max_norm, norm_type)
    assert abs(total - total_torch.item()) <= 1e-12 * max(1.0, total)
    for name, p in rnn.named_parameters():
        assert np.abs(grads[name] - p.grad.numpy()).max() < 1e-12, name


def test_clip_grad_norm_is_a_no_op_below_max_norm_and_returns_the_norm() -> None:
    rnn = torch_rnn_with_grads()
    grads = numpy_grads(rnn)
    before = {k: v.copy() for k, v in grads.items()}
    norm = math.sqrt(sum(np.sum(g**2) for g in grads.values()))
    returned = clip_grad_norm(grads, max_norm=2 * norm)
    returned_torch = torch.nn.utils.clip_grad_norm_(rnn.parameters(), max_norm=2 * norm)
    assert abs(returned - norm) < 1e-12 * norm and abs(returned - returned_torch.item()) < 1e-12 * norm
    assert all(np.array_equal(grads[k], before[k]) for k in grads)
    assert all(np.array_equal(p.grad.numpy(), before[n]) for n, p in rnn.named_parameters())


def test_clipping_modifies_the_arrays_in_place_and_keeps_the_direction() -> None:
    grads = numpy_grads(torch_rnn_with_grads())
    arrays = {k: v for k, v in grads.items()}
    before = np.concatenate([g.ravel() for g in grads.values()])
    total = clip_grad_norm(grads, 1.0)
    after = np.concatenate([g.ravel() for g in grads.values()])
    assert all(grads[k] is arrays[k] for k in grads)  # same objects, scaled in place
    assert total > 1.0 and abs(np.linalg.norm(after) - 1.0) < 1e-5
    assert abs(before @ after / (np.linalg.norm(before) * np.linalg.norm(after)) - 1) < 1e-12
    assert abs(total_grad_norm(grads) - np.linalg.norm(after)) < 1e-12


def test_clipping_refuses_non_finite_norms_when_asked() -> None:
    grads = {"w": np.array([1.0, np.inf])}
    with pytest.raises(RuntimeError):
        clip_grad_norm(grads, 1.0, error_if_nonfinite=True)


def test_chunk_bounds_cover_the_sequence() -> None:
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(10, 10) == [(0, 10)] == chunk_bounds(10, 50)
    with pytest.raises(ValueError):
        chunk_bounds(10, 0)


def setup_stack(L: int = 2, nonlinearity: str = "tanh", seed: int = 0):
    torch.manual_seed(seed)
    rnn = nn.RNN(D, H, L, nonlinearity).double()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, D))
    G, G_n, h0 = rng.standard_normal((T, N, H)), rng.standard_normal((L, N, H)), rng.standard_normal((L, N, H))
    return rnn, NumpyRNN.from_torch(rnn), x, G, G_n, h0


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_tbptt_with_one_chunk_equals_full_bptt(L, nonlinearity) -> None:
    _, model, x, G, G_n, h0 = setup_stack(L, nonlinearity)
    model.forward(x, h0)
    d_x, d_h0 = model.backward(G, G_n)
    full = {k: v.copy() for k, v in model.grads.items()}
    for chunk in (T, T + 5):
        r = truncated_bptt_gradients(model, x, G, chunk, h0=h0, d_h_n=G_n)
        assert max(np.abs(r.grads[k] - full[k]).max() for k in full) < 1e-12
        assert np.abs(r.d_input - d_x).max() < 1e-12 and np.abs(r.d_h0 - d_h0).max() < 1e-12
        assert r.dropped.shape == (0, L, N, H)


@pytest.mark.parametrize("chunk", [1, 5, 8, 13])
@pytest.mark.parametrize("L", [1, 2])
def test_tbptt_equals_torch_with_detach(chunk, L) -> None:
    rnn, model, x, G, G_n, h0 = setup_stack(L)
    r = truncated_bptt_gradients(model, x, G, chunk, h0=h0, d_h_n=G_n)
    tg, tdx = torch_truncated_bptt_gradients(
        rnn, torch.from_numpy(x), torch.from_numpy(G), chunk, h0=torch.from_numpy(h0), d_h_n=torch.from_numpy(G_n)
    )
    assert max(np.abs(r.grads[k] - tg[k]).max() for k in tg) < 1e-12
    assert np.abs(r.d_input - tdx).max() < 1e-12
    assert r.dropped.shape == (len(chunk_bounds(T, chunk)) - 1, L, N, H)


def test_tbptt_gives_early_steps_nothing_from_a_late_loss() -> None:
    _, model, x, G, _, _ = setup_stack(2)
    G_last = np.zeros_like(G)
    G_last[-1] = G[-1]
    model.forward(x)
    d_x, _ = model.backward(G_last)
    for k in (5, 6):
        start = chunk_bounds(T, k)[-1][0]  # the last chunk (4 steps for k = 5, 6 for k = 6)
        r = truncated_bptt_gradients(model, x, G_last, k)
        assert np.all(r.d_input[:start] == 0) and np.abs(d_x[:start]).max() > 0
        assert np.abs(r.d_input[start:] - d_x[start:]).max() < 1e-12


def test_truncation_discards_more_when_gradients_vanish_less() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8, D))
    G_last = np.zeros((40, 8, 32))
    G_last[-1] = rng.standard_normal((8, 32))
    shares = []
    for rho in (0.5, 0.9, 1.0, 1.1):
        model = NumpyRNN(D, 32, 1, seed=0)
        set_recurrent_weights(model, rho, seed=1)
        model.forward(x)
        d_x, _ = model.backward(G_last)
        shares.append(np.sum(d_x[:-10] ** 2) / np.sum(d_x**2))
    assert shares[0] < 1e-4 and all(a < b for a, b in pairwise(shares))


def test_irnn_init_is_identity_zero_bias_small_inputs() -> None:
    model = irnn_init(NumpyRNN(D, H, 2, "relu", seed=0), input_std=0.001)
    for layer in range(2):
        assert np.array_equal(model.params[f"weight_hh_l{layer}"], np.eye(H))
        assert not model.params[f"bias_ih_l{layer}"].any() and not model.params[f"bias_hh_l{layer}"].any()
        assert np.abs(model.params[f"weight_ih_l{layer}"]).max() < 0.01
    with pytest.raises(ValueError):
        irnn_init(NumpyRNN(D, H, 1, "tanh"))


@pytest.mark.parametrize("kind", ["orthogonal", "gaussian", "identity"])
def test_set_recurrent_weights_sets_the_spectral_radius(kind) -> None:
    model = set_recurrent_weights(NumpyRNN(D, H, 3, seed=0), 0.8, kind, seed=2)
    for layer in range(3):
        assert abs(spectral_radius(model.params[f"weight_hh_l{layer}"]) - 0.8) < 1e-12
    if kind == "orthogonal":
        W = model.params["weight_hh_l0"]
        assert abs(np.linalg.norm(W, 2) - 0.8) < 1e-12


def _clipping_demo(lr: float, max_norm: float, seed: int, steps: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Chapter 6's demonstration: tanh, W_hh = 1.5 Q, zero biases, loss at the last step, plain SGD.

    Returns the loss and the share of saturated states (|h| > 0.99) at every step.
    """
    Hc, Dc, Nc, Tc = 32, 4, 8, 40
    x = np.random.default_rng(100 + seed).standard_normal((Tc, Nc, Dc))
    y = 0.5 * np.random.default_rng(200 + seed).standard_normal((Nc, Hc))
    model = NumpyRNN(Dc, Hc, 1, "tanh", seed=seed)
    set_recurrent_weights(model, 1.5, "orthogonal", seed=seed + 1)
    for name in model.params:
        if name.startswith("bias"):
            model.params[name][:] = 0.0
    losses, saturated = [], []
    for _ in range(steps):
        out, _ = model.forward(x)
        losses.append(0.5 * float(np.sum((out[-1] - y) ** 2)) / Nc)
        saturated.append(float(np.mean(np.abs(out) > 0.99)))
        d_out = np.zeros_like(out)
        d_out[-1] = (out[-1] - y) / Nc
        model.backward(d_out)
        clip_grad_norm(model.grads, max_norm)
        for name in model.params:
            model.params[name] -= lr * model.grads[name]
    return np.array(losses), np.array(saturated)


def test_clipping_rescues_sgd_at_a_large_learning_rate() -> None:
    """The chapter's claims, as medians over networks (one chaotic run is no evidence).

    At lr 0.3 the first unclipped step raises the loss and saturates most states; clipped
    runs never saturate and end below half their start and below half the unclipped runs.
    The chapter uses 64 networks; 16 other ones (seeds 100-115) must show the same.
    """
    seeds = range(100, 116)
    unclipped = [_clipping_demo(0.3, math.inf, s) for s in seeds]
    clipped = [_clipping_demo(0.3, 1.0, s) for s in seeds]
    start = np.median([loss[0] for loss, _ in clipped])
    assert np.median([loss[1] for loss, _ in unclipped]) > start
    assert np.median([sat[1] for _, sat in unclipped]) > 0.5
    assert max(sat.max() for _, sat in clipped) < 0.05
    end_clipped = np.median([loss[-10:].mean() for loss, _ in clipped])
    end_unclipped = np.median([loss[-10:].mean() for loss, _ in unclipped])
    assert end_clipped < 0.5 * start and end_clipped < 0.5 * end_unclipped


# --------------------------------------------------------------------------------------
# TBPTT(k1, k2) and randomized truncation
# --------------------------------------------------------------------------------------


def test_k1k2_windows_every_k1_steps_back_k2() -> None:
    assert k1k2_windows(10, 4, 4) == [(0, 0, 4), (4, 4, 8), (8, 8, 10)]  # the chunks
    assert k1k2_windows(10, 3, 5) == [(0, 0, 3), (1, 3, 6), (4, 6, 9), (7, 9, 10)]
    assert k1k2_windows(10, 10, 12) == [(0, 0, 10)]
    for bad in ((0, 3), (4, 3)):
        with pytest.raises(ValueError):
            k1k2_windows(10, *bad)


@pytest.mark.parametrize("k1,k2", [(1, 1), (5, 5), (5, 10), (3, 7), (1, 4), (7, 30)])
@pytest.mark.parametrize("L", [1, 2])
def test_tbptt_k1k2_equals_torch_with_detach(k1, k2, L) -> None:
    rnn, model, x, G, G_n, h0 = setup_stack(L)
    r = tbptt_k1k2_gradients(model, x, G, k1, k2, h0=h0, d_h_n=G_n)
    tg, tdx = torch_tbptt_k1k2_gradients(
        rnn, torch.from_numpy(x), torch.from_numpy(G), k1, k2, h0=torch.from_numpy(h0), d_h_n=torch.from_numpy(G_n)
    )
    assert max(np.abs(r.grads[k] - tg[k]).max() for k in tg) < 1e-12
    assert np.abs(r.d_input - tdx).max() < 1e-12


@pytest.mark.parametrize("k", [1, 5, 8, 24, 30])
def test_tbptt_k1k2_with_k1_equal_k2_is_the_chunks(k) -> None:
    _, model, x, G, G_n, h0 = setup_stack(2)
    r = tbptt_k1k2_gradients(model, x, G, k, k, h0=h0, d_h_n=G_n)
    c = truncated_bptt_gradients(model, x, G, k, h0=h0, d_h_n=G_n)
    assert max(np.abs(r.grads[n] - c.grads[n]).max() for n in c.grads) < 1e-12
    assert np.abs(r.d_input - c.d_input).max() < 1e-12 and np.abs(r.d_h0 - c.d_h0).max() < 1e-12
    assert r.dropped.shape == c.dropped.shape


@pytest.mark.parametrize("keep_prob", [0.5, 0.8, 1.0])
@pytest.mark.parametrize("reweight", [True, False])
@pytest.mark.parametrize("L", [1, 2])
def test_randomized_truncation_equals_torch_with_detach(keep_prob, reweight, L) -> None:
    rnn, model, x, G, G_n, h0 = setup_stack(L)
    factors = randomized_truncation_factors(T, keep_prob, np.random.default_rng(7), reweight)
    r = randomized_tbptt_gradients(model, x, G, factors, h0=h0, d_h_n=G_n)
    tg, tdx = torch_randomized_tbptt_gradients(
        rnn, torch.from_numpy(x), torch.from_numpy(G), factors, h0=torch.from_numpy(h0), d_h_n=torch.from_numpy(G_n)
    )
    assert max(np.abs(r.grads[k] - tg[k]).max() for k in tg) < 1e-12
    assert np.abs(r.d_input - tdx).max() < 1e-12
    assert r.dropped.shape == (int(np.sum(factors == 0)), L, N, H)


def test_randomized_truncation_with_every_factor_one_is_full_bptt_and_with_periodic_cuts_the_chunks() -> None:
    _, model, x, G, G_n, h0 = setup_stack(2)
    model.forward(x, h0)
    d_x, d_h0 = model.backward(G, G_n)
    full = {k: v.copy() for k, v in model.grads.items()}
    r = randomized_tbptt_gradients(model, x, G, np.ones(T - 1), h0=h0, d_h_n=G_n)
    assert max(np.abs(r.grads[k] - full[k]).max() for k in full) < 1e-12
    assert np.abs(r.d_input - d_x).max() < 1e-12 and np.abs(r.d_h0 - d_h0).max() < 1e-12
    factors = np.ones(T - 1)
    factors[4::5] = 0.0  # cut before steps 5, 10, 15, 20
    r = randomized_tbptt_gradients(model, x, G, factors, h0=h0, d_h_n=G_n)
    c = truncated_bptt_gradients(model, x, G, 5, h0=h0, d_h_n=G_n)
    assert max(np.abs(r.grads[k] - c.grads[k]).max() for k in c.grads) < 1e-12
    assert np.abs(r.d_input - c.d_input).max() < 1e-12 and np.abs(r.dropped - c.dropped).max() < 1e-12


def test_randomized_truncation_factors_keep_with_the_given_probability() -> None:
    f = randomized_truncation_factors(100_001, 0.9, np.random.default_rng(0))
    assert set(np.unique(f)) == {0.0, 1 / 0.9}
    assert abs(np.mean(f > 0) - 0.9) < 0.005 and abs(f.mean() - 1) < 0.006  # each factor: expectation 1
    assert set(np.unique(randomized_truncation_factors(50, 0.9, np.random.default_rng(0), False))) == {0.0, 1.0}
    with pytest.raises(ValueError):
        randomized_truncation_factors(10, 0.0, np.random.default_rng(0))


def _one_loss(G: np.ndarray, s: int) -> np.ndarray:
    G_s = np.zeros_like(G)
    G_s[s] = G[s]
    return G_s


@pytest.mark.parametrize("k1,k2", [(5, 5), (5, 10), (3, 7), (24, 24)])
def test_reach_k1k2_is_where_the_loss_at_s_sends_gradient(k1, k2) -> None:
    """reach[s, t] > 0 exactly where a loss at step s alone gives step t's input a gradient."""
    _, model, x, G, _, _ = setup_stack(2)
    reach = reach_k1k2(T, k1, k2)
    for s in range(T):
        d_x = tbptt_k1k2_gradients(model, x, _one_loss(G, s), k1, k2).d_input
        assert np.array_equal(np.abs(d_x).max(axis=(1, 2)) > 0, reach[s] > 0), s
    assert np.array_equal(reach_k1k2(T, T, T), np.tril(np.ones((T, T))))  # full BPTT
    lengths = reach.sum(axis=1)  # steps each loss reaches, itself included
    assert all(lengths[s] >= k2 - k1 + 1 for s in range(k2 - k1, T))  # once the start is far enough
    first = k1 * -(-(k2 - k1) // k1)  # the first pass that starts at least k2 - k1 steps in
    assert all(lengths[s] == k2 - k1 + 1 for s in range(first, T, k1))  # each pass's oldest loss
    assert lengths.max() == min(k2, T)


def test_reach_from_factors_is_the_weight_of_the_path_relative_to_full_bptt() -> None:
    _, model, x, G, _, _ = setup_stack(2)
    factors = randomized_truncation_factors(T, 0.8, np.random.default_rng(3))
    reach = reach_from_factors(factors)
    model.forward(x)
    for s in range(T):
        d_full, _ = model.backward(_one_loss(G, s))
        d_x = randomized_tbptt_gradients(model, x, _one_loss(G, s), factors).d_input
        assert np.abs(d_x - reach[s][:, None, None] * d_full).max() < 1e-12 * max(1.0, np.abs(d_full).max())
    assert np.array_equal(reach_from_factors(np.ones(T - 1)), np.tril(np.ones((T, T))))
    periodic = np.ones(T - 1)
    periodic[4::5] = 0.0
    assert np.array_equal(reach_from_factors(periodic), reach_k1k2(T, 5, 5))


def test_plot_gradient_reach_draws_each_scheme() -> None:
    import matplotlib.pyplot as plt

    panels = {
        "chunks": reach_k1k2(T, 5, 5),
        "k1k2": reach_k1k2(T, 5, 10),
        "random": reach_from_factors(randomized_truncation_factors(T, 0.8, np.random.default_rng(0))),
    }
    fig = plot_gradient_reach(panels)
    assert len(fig.axes) == 3
    for ax, reach in zip(fig.axes, panels.values(), strict=True):
        assert np.array_equal(np.asarray(ax.images[0].get_array()), (reach > 0).astype(float))
    plt.close(fig)
