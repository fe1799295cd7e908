"""Backward: ``NumpyRNN.backward`` (hand-written BPTT) gives the true gradients.

* Against ``torch.autograd`` through ``nn.RNN`` and through ``TorchRNN``, in float64
  and eval mode, over the whole flag grid (``conftest.RNN_GRID``): every parameter,
  the input and ``h0``, to 1e-10 (max abs).
* Against centred finite differences (``check_rnn_gradients``, CS231n's relative
  error) for a representative set of configurations: relative error <= 1e-6.
* In training mode with dropout between layers: with the forward pass's masks held
  fixed, against finite differences, and against autograd through ``TorchRNN``'s own
  forward code made to apply the same masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from torch import nn

from rnnlib import NumpyRNN, TorchRNN, check_rnn_gradients

TOL = 1e-10
FD_TOL = 1e-6


def fd_step(nonlinearity: str) -> float:
    """Finite-difference step. A centred difference has rounding error ~ eps*|loss|/h (about 1e-9 in
    absolute terms at h=1e-6 here) and truncation error ~ h**2: with CS231n's entry-wise relative error,
    a gradient entry of size 1e-4 then sits at 1e-6 from rounding alone. h=1e-5 (CS231n's step, near the
    optimum eps**(1/3)) is ten times cleaner for smooth tanh; relu keeps 1e-6 to stay clear of its kink."""
    return 1e-5 if nonlinearity == "tanh" else 1e-6


SIZE = st.integers(1, 6)
SEED = st.integers(0, 2**31 - 1)
PROPERTY = settings(max_examples=8, deadline=None, derandomize=True, database=None)


def copies(rnn: nn.RNN) -> tuple[NumpyRNN, TorchRNN]:
    """A float64 NumpyRNN and TorchRNN holding ``rnn``'s configuration, weights and mode."""
    return NumpyRNN.from_torch(rnn), TorchRNN.from_torch(rnn)


def autograd_gradients(
    module: nn.Module, x: np.ndarray, h0: np.ndarray, G: np.ndarray, G_n: np.ndarray | None, **kwargs
) -> dict[str, np.ndarray]:
    """Gradients of ``sum(output * G) + sum(h_n * G_n)`` by autograd: every parameter, ``input`` and ``h0``."""
    module.zero_grad(set_to_none=True)
    x_t = torch.tensor(x, requires_grad=True)
    h0_t = torch.tensor(h0, requires_grad=True)
    out, h_n = module(x_t, h0_t, **kwargs)
    loss = (out * torch.from_numpy(G)).sum()
    if G_n is not None:
        loss = loss + (h_n * torch.from_numpy(G_n)).sum()
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return {**grads, "input": x_t.grad.numpy(), "h0": h0_t.grad.numpy()}


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    assert list(a) == list(b), (list(a), list(b))
    for k in a:
        assert a[k].shape == b[k].shape, (k, a[k].shape, b[k].shape)
    return {k: float(np.max(np.abs(a[k] - b[k]))) for k in a}


# --------------------------------------------------------------------------------------
# The flag grid: NumpyRNN.backward == autograd (nn.RNN and TorchRNN)
# --------------------------------------------------------------------------------------


def test_numpy_backward_matches_autograd_of_nn_rnn_and_torch_rnn(rnn_case, record_property) -> None:
    errors: list[float] = []

    @seed(rnn_case.seed)
    @PROPERTY
    @given(T=SIZE, N=SIZE, D=SIZE, H=SIZE, data_seed=SEED, with_d_h_n=st.booleans())
    def check(T: int, N: int, D: int, H: int, data_seed: int, with_d_h_n: bool) -> None:
        rnn = rnn_case.reference(D, H, data_seed)
        numpy_rnn, torch_rnn = copies(rnn)
        rng = np.random.default_rng(data_seed)
        x, h0 = rnn_case.inputs(T, N, D, H, rng)
        out_shape, hn_shape = rnn_case.output_shapes(T, N, H)
        G = rng.standard_normal(out_shape)
        G_n = rng.standard_normal(hn_shape) if with_d_h_n else None
        # torch needs an explicit h0 to report its gradient; NumpyRNN gets None when the case has none,
        # and must then return the gradient with respect to the zero initial state.
        h0_full = h0 if h0 is not None else np.zeros(hn_shape)
        numpy_rnn.forward(x, h0)
        d_x, d_h0 = numpy_rnn.backward(G, G_n)
        ours = {**numpy_rnn.grads, "input": d_x, "h0": d_h0}
        for module in (rnn, torch_rnn):
            diffs = max_abs_diff(ours, autograd_gradients(module, x, h0_full, G, G_n))
            errors.extend(diffs.values())
            assert max(diffs.values()) <= TOL, (type(module).__name__, diffs)

    check()
    record_property("max_abs_error", max(errors))


def test_backward_accumulates_nothing_between_calls() -> None:
    """``grads`` is replaced, not accumulated (unlike ``.grad`` in torch): two backward passes give the same grads."""
    model = NumpyRNN(3, 4, 2, bidirectional=True, seed=0).eval()
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    out, _ = model.forward(x)
    model.backward(np.ones_like(out))
    first = {k: v.copy() for k, v in model.grads.items()}
    model.backward(np.ones_like(out))
    assert all(np.array_equal(first[k], model.grads[k]) for k in first)
    assert list(model.grads) == list(model.params)


# --------------------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------------------

# (num_layers, nonlinearity, bias, batch_first, bidirectional, batched, with_h0, with_lengths)
FD_CASES = [
    (1, "tanh", True, False, False, True, True, False),
    (2, "relu", False, True, True, True, False, False),
    (3, "tanh", True, False, True, False, True, False),
    (2, "tanh", True, True, False, True, True, True),
    (2, "relu", True, False, True, True, True, True),
    (1, "relu", True, True, False, False, False, False),
]


def fd_id(case: tuple) -> str:
    L, act, bias, bf, bi, batched, h0, lengths = case
    return (
        f"L{L}-{act}-{'bias' if bias else 'nobias'}-{'bf' if bf else 'tm'}-{'bi' if bi else 'uni'}-"
        f"{'batched' if batched else 'unbatched'}-{'h0' if h0 else 'noh0'}{'-lengths' if lengths else ''}"
    )


@pytest.mark.parametrize("case", FD_CASES, ids=fd_id)
def test_numpy_backward_matches_finite_differences(case, record_property) -> None:
    L, act, bias, bf, bi, batched, with_h0, with_lengths = case
    T, N, D, H = 4, 3, 2, 3
    dirs = 2 if bi else 1
    model = NumpyRNN(D, H, L, act, bias, bf, bidirectional=bi, seed=21).eval()
    rng = np.random.default_rng(22)
    x_shape = ((N, T, D) if bf else (T, N, D)) if batched else (T, D)
    x = rng.standard_normal(x_shape)
    h0 = rng.standard_normal((L * dirs, N, H) if batched else (L * dirs, H)) if with_h0 else None
    lengths = np.array([T, 1, T - 1]) if with_lengths else None
    errors = check_rnn_gradients(model, x, h0, lengths=lengths, seed=23, h=fd_step(act))
    assert set(errors) == {*model.params, "input", "h0"}
    record_property("max_rel_error", max(errors.values()))
    assert max(errors.values()) <= FD_TOL, errors


# --------------------------------------------------------------------------------------
# Training mode with dropout
# --------------------------------------------------------------------------------------

P = 0.3
DROPOUT_CASES = [(2, "tanh", False), (2, "relu", True), (3, "tanh", True), (3, "relu", False)]


def dropout_model(L: int, act: str, bi: bool) -> tuple[NumpyRNN, np.ndarray, np.ndarray]:
    T, N, D, H = 4, 3, 2, 3
    model = NumpyRNN(D, H, L, act, dropout=P, bidirectional=bi, seed=31).train()
    rng = np.random.default_rng(32)
    return model, rng.standard_normal((T, N, D)), rng.standard_normal((L * (2 if bi else 1), N, H))


@pytest.mark.parametrize("L,act,bi", DROPOUT_CASES)
def test_dropout_masks_are_inverted_bernoulli_between_layers_only(L, act, bi) -> None:
    model, x, h0 = dropout_model(L, act, bi)
    out, _ = model.forward(x, h0)
    masks = model.last_dropout_masks
    assert sorted(masks) == list(range(L - 1))  # none after the top layer
    for mask in masks.values():
        assert mask.shape == (x.shape[0], x.shape[1], model.hidden_size * model.num_directions)
        assert set(np.unique(mask)) <= {0.0, 1 / (1 - P)}
        assert 0 < np.count_nonzero(mask) < mask.size  # some dropped, some kept
    # the same masks, passed back in, give the same output
    out_again, _ = model.forward(x, h0, dropout_masks=masks)
    assert np.array_equal(out, out_again)


@pytest.mark.parametrize("L,act,bi", DROPOUT_CASES)
def test_backward_with_dropout_matches_finite_differences_with_masks_fixed(L, act, bi, record_property) -> None:
    model, x, h0 = dropout_model(L, act, bi)
    errors = check_rnn_gradients(model, x, h0, seed=33, h=fd_step(act))
    assert model.training and model.last_dropout_masks  # dropout was on
    record_property("max_rel_error", max(errors.values()))
    assert max(errors.values()) <= FD_TOL, errors


@pytest.mark.parametrize("L,act,bi", DROPOUT_CASES)
def test_backward_with_dropout_matches_autograd_of_torch_rnn_with_same_masks(L, act, bi, monkeypatch) -> None:
    """``TorchRNN``'s forward, with ``F.dropout`` replaced by multiplication with NumpyRNN's masks."""
    model, x, h0 = dropout_model(L, act, bi)
    out_np, hn_np = model.forward(x, h0)
    masks = model.last_dropout_masks
    rng = np.random.default_rng(34)
    G, G_n = rng.standard_normal(out_np.shape), rng.standard_normal(hn_np.shape)
    d_x, d_h0 = model.backward(G, G_n)
    ours = {**model.grads, "input": d_x, "h0": d_h0}

    torch_rnn = TorchRNN(2, 3, L, act, dropout=P, bidirectional=bi, dtype=torch.float64).train()
    torch_rnn.load_state_dict({k: torch.from_numpy(v) for k, v in model.params.items()})
    calls: list[int] = []

    def fixed_dropout(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False):
        assert p == P and training and not inplace
        layer = len(calls)
        calls.append(layer)
        return input * torch.from_numpy(masks[layer])

    monkeypatch.setattr(torch.nn.functional, "dropout", fixed_dropout)
    theirs = autograd_gradients(torch_rnn, x, h0, G, G_n)
    assert calls == list(range(L - 1))
    with torch.no_grad():
        calls.clear()
        out_t, hn_t = torch_rnn(torch.from_numpy(x), torch.from_numpy(h0))
    assert np.max(np.abs(out_t.numpy() - out_np)) <= 1e-12 and np.max(np.abs(hn_t.numpy() - hn_np)) <= 1e-12
    diffs = max_abs_diff(ours, theirs)
    assert max(diffs.values()) <= TOL, diffs


def test_editing_the_output_in_place_does_not_change_the_gradients():
    import numpy as np

    from rnnlib import NumpyRNN

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3))
    model = NumpyRNN(3, 4, seed=0).eval()
    out, _ = model.forward(x)
    model.backward(np.ones_like(out))
    expected = {k: v.copy() for k, v in model.grads.items()}
    out, _ = model.forward(x)
    out *= 0
    model.backward(np.ones_like(out))
    for k in expected:
        np.testing.assert_array_equal(model.grads[k], expected[k])
