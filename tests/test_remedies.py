"""Claims of Chapter 6's remedies: clipping, truncated BPTT, initialisation.

* ``rnnlib.clipping.clip_grad_norm`` equals ``torch.nn.utils.clip_grad_norm_`` on the same
  gradients to 1e-12: the returned total norm, the clipped gradients, the no-op case below
  ``max_norm``, other norm types; it keeps the direction.
* ``rnnlib.tbptt``: one chunk is full BPTT (1e-12); k chunks equal PyTorch's ``h.detach()``
  idiom (1e-12); with a loss on the last step, every input outside the last chunk gets exactly
  zero gradient while inside it TBPTT equals full BPTT; the share truncation discards grows with rho.
* ``rnnlib.init``: IRNN and ``set_recurrent_weights`` give what they promise.
* The chapter's training demonstration, as medians over networks: with lr 0.3, the first unclipped
  step saturates most states, and clipping at 1 ends at less than half the unclipped loss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rnnlib import NumpyRNN
from rnnlib.clipping import clip_grad_norm, total_grad_norm
from rnnlib.init import irnn_init, set_recurrent_weights, spectral_radius
from rnnlib.tbptt import chunk_bounds, torch_truncated_bptt_gradients, truncated_bptt_gradients

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
    tg, tdx = torch_truncated_bptt_gradients(rnn, torch.from_numpy(x), torch.from_numpy(G), chunk,
                                             h0=torch.from_numpy(h0), d_h_n=torch.from_numpy(G_n))
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
    assert shares[0] < 1e-4 and all(a < b for a, b in zip(shares, shares[1:]))


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
