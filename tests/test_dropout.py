"""Dropout in a stacked RNN: the claims of Chapter 7 (07_bidirectional_dropout).

* placement: masks only for layers ``0 .. L-2`` (between layers), never the top layer,
  never the recurrent path, shape ``(T, N, H*dirs)``, values ``0`` or ``1/(1-p)``;
* the masks multiply each lower layer's output on its way up (from-scratch replay);
* evaluation mode ignores dropout; one layer: a warning and no effect at all;
* statistics: the fraction of zeros is about ``p``, the mean mask about 1;
* ``nn.RNN``'s hidden mask can be recovered by inverting layer 1, and ``NumpyRNN`` fed that
  one mask for layer 0 (nothing for the top) reproduces ``nn.RNN``'s training output;
* ``TorchRNN`` after the same seed draws ``nn.RNN``'s masks (CPU implementation detail);
* the mean of training outputs is not the eval output (nonlinearity);
* backward uses the masks: finite differences with masks held fixed agree.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rnnlib import NumpyRNN, TorchRNN, check_rnn_gradients, layer_forward
from rnnlib.explain.examples import ARTICLE_SEED, article_input
from rnnlib.gradcheck import max_abs_difference as max_abs
from rnnlib.torch_rnn import torch_layer_forward

TOL = 1e-12


def stack_with_masks(x, P, num_layers, bidirectional, masks):
    """Replay a stack layer by layer with rnnlib.layer_forward, multiplying by masks[l] between layers."""
    N, H = x.shape[1], P["weight_hh_l0"].shape[0]
    zeros = np.zeros((N, H))
    layer_input, last = x, []
    for layer in range(num_layers):
        outs = []
        for suffix, reverse in (("", False), ("_reverse", True)) if bidirectional else (("", False),):
            o, h, _ = layer_forward(
                layer_input,
                zeros,
                P[f"weight_ih_l{layer}{suffix}"],
                P[f"weight_hh_l{layer}{suffix}"],
                P[f"bias_ih_l{layer}{suffix}"],
                P[f"bias_hh_l{layer}{suffix}"],
                reverse=reverse,
            )
            outs.append(o)
            last.append(h)
        y = np.concatenate(outs, axis=-1)
        layer_input = y * masks[layer] if layer in masks else y
    return layer_input, np.stack(last)


def recover_layer0_mask(rnn: nn.RNN, x: np.ndarray, output: np.ndarray) -> np.ndarray:
    """The chapter's inversion: nn.RNN's dropout mask on layer 0's output (2 layers, tanh, unidirectional)."""
    P = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    T, N, _ = x.shape
    H = rnn.hidden_size
    zeros = np.zeros((N, H))
    y0, _, _ = layer_forward(x, zeros, P["weight_ih_l0"], P["weight_hh_l0"], P["bias_ih_l0"], P["bias_hh_l0"])
    h1_prev = np.concatenate([zeros[None], output[:-1]])
    a = np.arctanh(output) - h1_prev @ P["weight_hh_l1"].T - P["bias_ih_l1"] - P["bias_hh_l1"]
    dropped = np.linalg.solve(P["weight_ih_l1"], a.reshape(-1, H).T).T.reshape(T, N, H)
    return dropped / y0


# --------------------------------------------------------------------------------------
# Placement, shape, values
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [2, 3, 4])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masks_only_between_layers(num_layers, bidirectional) -> None:
    model = NumpyRNN(3, 5, num_layers, dropout=0.3, bidirectional=bidirectional, seed=0)
    model.forward(np.random.default_rng(0).standard_normal((6, 4, 3)))
    assert sorted(model.last_dropout_masks) == list(range(num_layers - 1))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_mask_shape_and_values_are_zero_or_inverse_keep_probability(p, bidirectional) -> None:
    model = NumpyRNN(3, 5, 3, dropout=p, bidirectional=bidirectional, seed=1)
    model.forward(np.random.default_rng(1).standard_normal((6, 4, 3)))
    dirs = 2 if bidirectional else 1
    for m in model.last_dropout_masks.values():
        assert m.shape == (6, 4, 5 * dirs)
        assert set(np.unique(m)) <= {0.0, 1.0 / (1.0 - p)}


def test_mask_shape_follows_time_major_layout_with_batch_first() -> None:
    model = NumpyRNN(3, 5, 2, dropout=0.5, batch_first=True, seed=2)
    model.forward(np.random.default_rng(2).standard_normal((4, 6, 3)))  # (N, T, D)
    assert model.last_dropout_masks[0].shape == (6, 4, 5)  # (T, N, H) internally


@pytest.mark.parametrize("bidirectional", [False, True])
def test_masks_multiply_lower_layer_outputs_only(bidirectional) -> None:
    model = NumpyRNN(3, 5, 3, dropout=0.5, bidirectional=bidirectional, seed=3)
    x = np.random.default_rng(3).standard_normal((5, 3, 3))
    out, h_n = model.forward(x)
    out_s, h_n_s = stack_with_masks(x, model.params, 3, bidirectional, model.last_dropout_masks)
    assert max_abs(out_s, out) < TOL and max_abs(h_n_s, h_n) < TOL


def test_top_layer_output_has_no_dropout_zeros() -> None:
    model = NumpyRNN(3, 8, 2, dropout=0.9, seed=4)
    out, h_n = model.forward(np.random.default_rng(4).standard_normal((20, 6, 3)))
    assert np.mean(model.last_dropout_masks[0] == 0) > 0.8
    assert not np.any(out == 0) and not np.any(h_n == 0)


def test_dropout_masks_argument_reused_gives_identical_output() -> None:
    model = NumpyRNN(3, 5, 3, dropout=0.5, seed=5)
    x = np.random.default_rng(5).standard_normal((5, 2, 3))
    out, h_n = model.forward(x)
    masks = model.last_dropout_masks
    out2, h_n2 = model.forward(x, dropout_masks=masks)
    assert np.array_equal(out, out2) and np.array_equal(h_n, h_n2)


def test_dropout_mask_of_wrong_shape_raises() -> None:
    model = NumpyRNN(3, 5, 2, dropout=0.5, seed=6)
    with pytest.raises(ValueError, match="dropout mask for layer 0"):
        model.forward(np.zeros((4, 2, 3)), dropout_masks={0: np.ones((4, 2, 6))})


# --------------------------------------------------------------------------------------
# Modes and the one-layer case
# --------------------------------------------------------------------------------------


def test_eval_mode_ignores_dropout_numpy() -> None:
    model = NumpyRNN(3, 5, 3, dropout=0.5, bidirectional=True, seed=7)
    x = np.random.default_rng(7).standard_normal((4, 2, 3))
    model.eval()
    out, h_n = model.forward(x)
    assert model.last_dropout_masks == {}
    out_plain, h_plain = stack_with_masks(x, model.params, 3, True, {})
    assert max_abs(out, out_plain) < TOL and max_abs(h_n, h_plain) < TOL
    out2, _ = model.forward(x)
    assert np.array_equal(out, out2)


def test_eval_mode_nn_rnn_is_deterministic_and_matches_numpy_eval() -> None:
    torch.manual_seed(ARTICLE_SEED)
    rnn = nn.RNN(3, 5, 2, dropout=0.5).double().eval()
    x = torch.from_numpy(article_input(dtype=np.float64))
    with torch.no_grad():
        a, ha = rnn(x)
        b, _ = rnn(x)
    assert torch.equal(a, b)
    numpy_rnn = NumpyRNN.from_torch(rnn)
    assert not numpy_rnn.training
    o, h = numpy_rnn.forward(x.numpy())
    assert max_abs(o, a) < TOL and max_abs(h, ha) < TOL


def test_eval_mode_torchrnn_ignores_dropout() -> None:
    torch.manual_seed(0)
    rnn = TorchRNN(3, 5, 2, dropout=0.5, dtype=torch.float64).eval()
    plain = TorchRNN(3, 5, 2, dtype=torch.float64)
    plain.load_state_dict(rnn.state_dict())
    x = torch.from_numpy(article_input(dtype=np.float64))
    assert torch.equal(rnn(x)[0], plain(x)[0])


def test_training_mode_nn_rnn_outputs_vary_between_calls() -> None:
    torch.manual_seed(ARTICLE_SEED)
    rnn = nn.RNN(3, 5, 2, dropout=0.5).double().train()
    x = torch.from_numpy(article_input(dtype=np.float64))
    torch.manual_seed(1)
    with torch.no_grad():
        assert max_abs(rnn(x)[0], rnn(x)[0]) > 0.01


def test_single_layer_dropout_warns_and_changes_nothing() -> None:
    x = np.random.default_rng(8).standard_normal((5, 3, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(0)
        rnn = nn.RNN(3, 5, 1, dropout=0.5).double()
        numpy_rnn = NumpyRNN(3, 5, 1, dropout=0.5, seed=0)
        torch_rnn = TorchRNN(3, 5, 1, dropout=0.5, dtype=torch.float64)
    assert len(caught) == 3
    assert len({str(w.message) for w in caught}) == 1
    assert all(issubclass(w.category, UserWarning) for w in caught)
    assert "num_layers greater than 1" in str(caught[0].message)

    xt = torch.from_numpy(x)
    with torch.no_grad():
        a = rnn.train()(xt)[0]
        b = rnn.eval()(xt)[0]
        c = torch_rnn.train()(xt)[0]
        d = torch_rnn.eval()(xt)[0]
    assert torch.equal(a, b) and torch.equal(c, d)
    o_train, _ = numpy_rnn.train().forward(x)
    assert numpy_rnn.last_dropout_masks == {}
    o_eval, _ = numpy_rnn.eval().forward(x)
    assert np.array_equal(o_train, o_eval)


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.5, 0.7])
def test_training_mask_zero_fraction_is_close_to_p(p) -> None:
    model = NumpyRNN(3, 10, 2, dropout=p, seed=9)
    model.forward(np.random.default_rng(9).standard_normal((50, 40, 3)))
    m = model.last_dropout_masks[0]
    n = m.size  # 20,000 entries: 5 standard deviations of a binomial fraction
    assert abs(np.mean(m == 0) - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_mean_mask_tends_to_one() -> None:
    model = NumpyRNN(3, 5, 2, dropout=0.5, seed=0)
    xs = article_input(dtype=np.float64)
    model.forward(np.tile(xs, (1, 10_000, 1)))
    mean_mask = model.last_dropout_masks[0].reshape(4, 10_000, 2, 5).mean(axis=1)
    assert np.abs(mean_mask - 1).max() < 0.06


def test_masks_are_fresh_per_forward_call() -> None:
    model = NumpyRNN(3, 5, 2, dropout=0.5, seed=10)
    x = np.random.default_rng(10).standard_normal((6, 4, 3))
    model.forward(x)
    m1 = model.last_dropout_masks[0].copy()
    model.forward(x)
    assert not np.array_equal(m1, model.last_dropout_masks[0])


def test_mean_of_training_outputs_is_not_eval_output() -> None:
    torch.manual_seed(ARTICLE_SEED)
    rnn = nn.RNN(3, 5, 2, dropout=0.5).double()
    x = torch.from_numpy(article_input(dtype=np.float64))
    with torch.no_grad():
        eval_out, _ = rnn.eval()(x)
        rnn.train()
        torch.manual_seed(3)
        K = 50_000
        runs = rnn(x.repeat(1, K, 1))[0].view(4, K, 2, 5)
    gap = (runs.mean(1) - eval_out).abs().max().item()
    se = (runs.std(1) / K**0.5).max().item()
    assert gap > 20 * se


# --------------------------------------------------------------------------------------
# nn.RNN's hidden mask, recovered
# --------------------------------------------------------------------------------------


def _training_run(seed: int = 2):
    torch.manual_seed(ARTICLE_SEED)
    rnn = nn.RNN(3, 5, 2, dropout=0.5).double().train()
    x = np.random.default_rng(1).standard_normal((50, 8, 3))
    torch.manual_seed(seed)
    with torch.no_grad():
        out, h_n = rnn(torch.from_numpy(x))
    return rnn, x, out, h_n


def test_recovered_nn_rnn_mask_values_and_fraction() -> None:
    rnn, x, out, _ = _training_run()
    ratio = recover_layer0_mask(rnn, x, out.numpy())
    mask = np.round(ratio * 0.5) / 0.5
    assert np.abs(ratio - mask).max() < 1e-9
    assert set(np.unique(mask)) <= {0.0, 2.0}
    assert abs(np.mean(mask == 0) - 0.5) < 5 * np.sqrt(0.25 / mask.size)


def test_nn_rnn_drops_only_between_layers_recovered_mask_reproduces_training_output() -> None:
    rnn, x, out, h_n = _training_run()
    mask = np.round(recover_layer0_mask(rnn, x, out.numpy()) * 0.5) / 0.5
    numpy_rnn = NumpyRNN.from_torch(rnn)
    assert numpy_rnn.training
    o, h = numpy_rnn.forward(x, dropout_masks={0: mask})
    assert max_abs(o, out) < TOL and max_abs(h, h_n) < TOL
    assert int((out == 0).sum()) == 0  # the top layer's output is not dropped


def test_torchrnn_training_mode_matches_nn_rnn_after_same_seed() -> None:
    rnn, x, out, _ = _training_run()
    torch_rnn = TorchRNN(3, 5, 2, dropout=0.5, dtype=torch.float64)
    torch_rnn.load_state_dict(rnn.state_dict())
    torch.manual_seed(2)
    with torch.no_grad():
        out_t, _ = torch_rnn(torch.from_numpy(x))
    assert max_abs(out_t, out) < TOL


# --------------------------------------------------------------------------------------
# Backward through dropout
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_backward_uses_masks_matches_finite_differences(bidirectional) -> None:
    model = NumpyRNN(2, 3, 3, dropout=0.5, bidirectional=bidirectional, seed=11)
    x = np.random.default_rng(11).standard_normal((4, 2, 2))
    errors = check_rnn_gradients(model, x)
    # h0's gradient has entries near 1e-10 here (most paths from it are dropped), where the
    # entrywise relative error measures finite-difference noise; it is checked exactly against
    # autograd in the next test instead.
    errors.pop("h0")
    assert max(errors.values()) < 1e-6, errors


def test_backward_with_masks_matches_autograd_of_masked_replay() -> None:
    model = NumpyRNN(3, 4, 3, dropout=0.5, bidirectional=True, seed=12)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((5, 2, 3))
    out, h_n = model.forward(x)
    masks = model.last_dropout_masks
    G, G_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx, dh0 = model.backward(G, G_n)

    # autograd through TorchRNN's layer function with the same masks applied between layers
    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    h0 = torch.zeros(6, 2, 4, dtype=torch.float64, requires_grad=True)
    inp, last = xt, []
    for layer in range(3):
        outs = []
        for d, (suffix, reverse) in enumerate((("", False), ("_reverse", True))):
            o, h = torch_layer_forward(
                inp,
                h0[2 * layer + d],
                params[f"weight_ih_l{layer}{suffix}"],
                params[f"weight_hh_l{layer}{suffix}"],
                params[f"bias_ih_l{layer}{suffix}"],
                params[f"bias_hh_l{layer}{suffix}"],
                "tanh",
                reverse,
            )
            outs.append(o)
            last.append(h)
        inp = torch.cat(outs, dim=-1)
        if layer in masks:
            inp = inp * torch.from_numpy(masks[layer])
    ((inp * torch.from_numpy(G)).sum() + (torch.stack(last) * torch.from_numpy(G_n)).sum()).backward()
    assert max_abs(dx, xt.grad) < TOL and max_abs(dh0, h0.grad) < TOL
    for k, p in params.items():
        assert max_abs(model.grads[k], p.grad) < TOL, k


@pytest.mark.parametrize("m", [1, 3])
def test_one_mask_per_sequence_path_through_m_units_survives_with_probability_keep_to_the_m(m) -> None:
    """Variational dropout: a path of 10 steps that visits m distinct units survives with (1-p)^m, not 1-p."""
    rng = np.random.default_rng(0)
    p, n, H = 0.5, 100_000, 5
    keep = rng.random((n, H)) >= p  # one mask per sequence, reused at every step
    path = list(range(m)) + [m - 1] * (10 - m)  # the unit the path is on at each step
    survives = keep[:, path].all(axis=1).mean()
    assert abs(survives - (1 - p) ** m) < 0.01
    fresh = (rng.random((n, 10)) >= p).all(axis=1).mean()  # a fresh mask per step: (1-p)^10
    assert abs(fresh - (1 - p) ** 10) < 0.001
