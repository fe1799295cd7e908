"""Forward parity: ``NumpyRNN`` and ``TorchRNN`` compute what ``torch.nn.RNN`` computes.

In float64, with the weights of a seeded ``nn.RNN`` copied into both, outputs and
``h_n`` agree to 1e-12 (max abs) over the whole flag grid of ``conftest.RNN_GRID``
(layers 1-3, tanh/relu, bias, batch_first, bidirectional, batched/unbatched,
with/without h0), with sizes ``T, N, D, H`` in 1..6 drawn by hypothesis. Also:
initialisation matches ``nn.RNN`` after the same seed, and the parameter count
has the closed form of :func:`rnnlib.num_parameters`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlib import NumpyRNN, TorchRNN, num_parameters, param_shapes
from rnnlib.gradcheck import max_abs_difference as max_abs

TOL = 1e-12
SIZE = st.integers(1, 6)
SEED = st.integers(0, 2**31 - 1)
PROPERTY = settings(max_examples=10, deadline=None, derandomize=True, database=None)


def copies(rnn: nn.RNN) -> tuple[NumpyRNN, TorchRNN]:
    """A float64 NumpyRNN and TorchRNN holding ``rnn``'s configuration, weights and mode."""
    return NumpyRNN.from_torch(rnn), TorchRNN.from_torch(rnn)


def as_tensor(a: np.ndarray | None) -> torch.Tensor | None:
    return None if a is None else torch.from_numpy(a)


# --------------------------------------------------------------------------------------
# The flag grid
# --------------------------------------------------------------------------------------


def test_numpy_and_torch_forward_match_nn_rnn(rnn_case, record_property) -> None:
    errors: list[float] = []

    @seed(rnn_case.seed)
    @PROPERTY
    @given(T=SIZE, N=SIZE, D=SIZE, H=SIZE, data_seed=SEED)
    def check(T: int, N: int, D: int, H: int, data_seed: int) -> None:
        rnn = rnn_case.reference(D, H, data_seed)
        numpy_rnn, torch_rnn = copies(rnn)
        x, h0 = rnn_case.inputs(T, N, D, H, np.random.default_rng(data_seed))
        with torch.no_grad():
            out_ref, hn_ref = rnn(as_tensor(x), as_tensor(h0))
            out_t, hn_t = torch_rnn(as_tensor(x), as_tensor(h0))
        out_np, hn_np = numpy_rnn.forward(x, h0)
        out_shape, hn_shape = rnn_case.output_shapes(T, N, H)
        assert tuple(out_ref.shape) == out_shape and tuple(hn_ref.shape) == hn_shape
        errs = [max_abs(out_np, out_ref), max_abs(hn_np, hn_ref), max_abs(out_t, out_ref), max_abs(hn_t, hn_ref)]
        errors.extend(errs)
        assert max(errs) <= TOL, errs

    check()
    record_property("max_abs_error", max(errors))


# --------------------------------------------------------------------------------------
# Structure of the outputs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_output_is_top_layer_states_and_h_n_is_last_states(num_layers, bidirectional, batch_first) -> None:
    """``output`` holds the top layer; ``h_n[k]`` is layer ``k // dirs``'s last state (step T-1 forward, 0 reverse)."""
    T, N, D, H = 5, 3, 4, 6
    model = NumpyRNN(D, H, num_layers, bidirectional=bidirectional, batch_first=batch_first, seed=1).eval()
    x = np.random.default_rng(2).standard_normal((N, T, D) if batch_first else (T, N, D))
    out, h_n = model.forward(x)
    out_tm = out.transpose(1, 0, 2) if batch_first else out
    top = (num_layers - 1) * model.num_directions
    assert np.array_equal(out_tm[-1, :, :H], h_n[top])  # forward direction ends at t = T-1
    if bidirectional:
        assert np.array_equal(out_tm[0, :, H:], h_n[top + 1])  # the reverse direction ends at t = 0


@pytest.mark.parametrize("bidirectional", [False, True])
def test_unbatched_input_equals_batch_of_one(bidirectional) -> None:
    model = NumpyRNN(3, 4, 2, bidirectional=bidirectional, seed=3).eval()
    rng = np.random.default_rng(4)
    x, h0 = rng.standard_normal((5, 3)), rng.standard_normal((2 * model.num_directions, 4))
    out, h_n = model.forward(x, h0)
    out_b, h_n_b = model.forward(x[:, None], h0[:, None])
    assert np.array_equal(out, out_b[:, 0]) and np.array_equal(h_n, h_n_b[:, 0])


def test_zero_h0_equals_no_h0() -> None:
    model = NumpyRNN(3, 4, 2, bidirectional=True, seed=5).eval()
    x = np.random.default_rng(6).standard_normal((5, 2, 3))
    out, h_n = model.forward(x)
    out0, h_n0 = model.forward(x, np.zeros((4, 2, 4)))
    assert np.array_equal(out, out0) and np.array_equal(h_n, h_n0)


@pytest.mark.parametrize("num_layers", [2, 3])
def test_eval_mode_ignores_dropout(num_layers) -> None:
    """With ``dropout > 0`` the three implementations still agree in eval mode; training mode does drop."""
    D, H = 3, 5
    torch.manual_seed(7)
    rnn = nn.RNN(D, H, num_layers, dropout=0.5, dtype=torch.float64).eval()
    numpy_rnn, torch_rnn = copies(rnn)
    x = np.random.default_rng(8).standard_normal((6, 4, D))
    with torch.no_grad():
        out_ref, hn_ref = rnn(torch.from_numpy(x))
        out_t, hn_t = torch_rnn(torch.from_numpy(x))
    out_np, hn_np = numpy_rnn.forward(x)
    assert max(max_abs(out_np, out_ref), max_abs(hn_np, hn_ref), max_abs(out_t, out_ref), max_abs(hn_t, hn_ref)) <= TOL
    assert numpy_rnn.last_dropout_masks == {}
    out_train, _ = numpy_rnn.train().forward(x)
    assert set(numpy_rnn.last_dropout_masks) == set(range(num_layers - 1))
    assert max_abs(out_train, out_np) > 1e-3


# --------------------------------------------------------------------------------------
# Per-sequence lengths (padded batch) against pack_padded_sequence + nn.RNN
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lengths_match_packed_nn_rnn(num_layers, batch_first, bidirectional) -> None:
    @seed(17 * num_layers + 2 * batch_first + bidirectional)
    @PROPERTY
    @given(T=SIZE, N=SIZE, D=SIZE, H=SIZE, data_seed=SEED)
    def check(T: int, N: int, D: int, H: int, data_seed: int) -> None:
        torch.manual_seed(data_seed)
        rnn = nn.RNN(D, H, num_layers, batch_first=batch_first, bidirectional=bidirectional, dtype=torch.float64).eval()
        numpy_rnn, torch_rnn = copies(rnn)
        rng = np.random.default_rng(data_seed)
        x = rng.standard_normal((N, T, D) if batch_first else (T, N, D))
        h0 = rng.standard_normal((num_layers * (1 + bidirectional), N, H))
        lengths = rng.integers(1, T + 1, size=N)
        packed = pack_padded_sequence(
            torch.from_numpy(x), torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False
        )
        with torch.no_grad():
            out_packed, hn_ref = rnn(packed, torch.from_numpy(h0))
            out_ref, _ = pad_packed_sequence(out_packed, batch_first=batch_first, total_length=T)
            out_t, hn_t = torch_rnn(torch.from_numpy(x), torch.from_numpy(h0), lengths=lengths)
            out_tp, hn_tp = torch_rnn(packed, torch.from_numpy(h0))
        out_np, hn_np = numpy_rnn.forward(x, h0, lengths=lengths)
        errs = [
            max_abs(out_np, out_ref),
            max_abs(hn_np, hn_ref),
            max_abs(out_t, out_ref),
            max_abs(hn_t, hn_ref),
            max_abs(out_tp.data, out_packed.data),
            max_abs(hn_tp, hn_ref),
        ]
        assert max(errs) <= TOL, errs

    check()


# --------------------------------------------------------------------------------------
# Initialisation and parameter count
# --------------------------------------------------------------------------------------

CONFIGS = [
    dict(input_size=D, hidden_size=H, num_layers=L, bias=bias, bidirectional=bi)
    for D, H, L, bias, bi in itertools.product((1, 3), (1, 2, 5), (1, 2, 3), (True, False), (False, True))
]


def config_id(cfg: dict) -> str:
    return "D{input_size}-H{hidden_size}-L{num_layers}-bias{bias:d}-bi{bidirectional:d}".format(**cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_rnn_init_equals_nn_rnn_after_same_seed(cfg, dtype) -> None:
    torch.manual_seed(11)
    ref = nn.RNN(**cfg, dtype=dtype)
    torch.manual_seed(11)
    ours = TorchRNN(**cfg, dtype=dtype)
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)
    for name, value in ref_sd.items():
        assert our_sd[name].dtype == dtype
        assert torch.equal(our_sd[name], value), name
    # and the generator is left in the same state: the next draw agrees
    torch.manual_seed(11)
    nn.RNN(**cfg, dtype=dtype)
    after_ref = torch.rand(3)
    torch.manual_seed(11)
    TorchRNN(**cfg, dtype=dtype)
    assert torch.equal(torch.rand(3), after_ref)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_numpy_rnn_init_is_uniform_within_inverse_sqrt_hidden(cfg) -> None:
    model = NumpyRNN(**cfg, seed=12)
    ref = nn.RNN(**cfg)
    assert list(model.params) == list(ref.state_dict())  # names, in nn.RNN's order
    bound = 1 / math.sqrt(cfg["hidden_size"])
    for name, value in model.params.items():
        assert value.shape == tuple(ref.state_dict()[name].shape), name
        assert value.dtype == np.float64
        assert np.all(np.abs(value) <= bound), name
    assert np.array_equal(
        np.concatenate([p.ravel() for p in NumpyRNN(**cfg, seed=12).params.values()]),
        np.concatenate([p.ravel() for p in model.params.values()]),
    )  # seeded: reproducible


def test_numpy_rnn_init_fills_the_whole_interval() -> None:
    """Many draws: the values spread over ``[-1/sqrt(H), 1/sqrt(H)]`` evenly (mean ~0, extremes near the bounds)."""
    H = 64
    model = NumpyRNN(32, H, 2, seed=13)
    values = np.concatenate([p.ravel() for p in model.params.values()])
    bound = 1 / math.sqrt(H)
    assert values.size == num_parameters(32, H, 2)
    assert np.all(np.abs(values) <= bound)
    assert values.min() < -0.99 * bound and values.max() > 0.99 * bound
    # 14592 draws: the sample mean has std b/sqrt(3)/sqrt(14592) ~ 0.005 b, the sample std ~ 0.0034 b
    assert abs(values.mean()) < 0.03 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.02 * bound  # std of U(-b, b) is b / sqrt(3)
    assert not np.array_equal(values, np.concatenate([p.ravel() for p in NumpyRNN(32, H, 2, seed=14).params.values()]))


def test_numpy_rnn_float32_init_has_float32_params() -> None:
    model = NumpyRNN(3, 5, 2, dtype=np.float32, seed=0)
    assert all(p.dtype == np.float32 for p in model.params.values())


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_num_parameters_formula_equals_nn_rnn_numel(cfg) -> None:
    expected = sum(p.numel() for p in nn.RNN(**cfg).parameters())
    assert num_parameters(**cfg) == expected
    assert NumpyRNN(**cfg, seed=0).num_parameters() == expected
    assert sum(p.numel() for p in TorchRNN(**cfg).parameters()) == expected
    assert sum(math.prod(s) for s in param_shapes(**cfg).values()) == expected
