"""LSTM and GRU: ``NumpyLSTM``/``NumpyGRU`` and ``TorchLSTM``/``TorchGRU`` compute what ``nn.LSTM``/``nn.GRU`` compute.

* parity in float64 over configurations drawn by hypothesis (layers, bias, batch_first,
  bidirectional, dropout in training mode, unbatched input, empty batch, h0 or not, lengths,
  ``proj_size``): forward to 1e-12, every gradient (parameters, input, h0, c0) to 1e-10 against
  autograd through ``nn.LSTM``/``nn.GRU`` with the same weights. Dropout masks are NumPy's own,
  so with dropout the reference is the same ``nn`` cell run layer by layer with those masks between
  layers; the torch modules draw ``nn``'s own masks after the same seed;
* finite differences (relative error below 1e-6) on a small bidirectional, 2-layer LSTM with a
  projection and on a GRU, both with lengths;
* initialisation: after the same seed, the state dicts equal ``nn.LSTM``/``nn.GRU``'s exactly;
* bad input: clear errors, the same checks as the Elman stack.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlib import NumpyGRU, NumpyLSTM, NumpyRNN, TorchGRU, TorchLSTM, TorchRNN, numerical_gradient, rel_error
from rnnlib.gradcheck import max_abs_difference as max_abs
from rnnlib.params import all_weight_names, param_shapes

FORWARD_TOL = 1e-12
BACKWARD_TOL = 1e-10
FD_TOL = 1e-6
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None)

NN = {"lstm": nn.LSTM, "gru": nn.GRU}
NUMPY = {"lstm": NumpyLSTM, "gru": NumpyGRU}
TORCH = {"lstm": TorchLSTM, "gru": TorchGRU}


@dataclass(frozen=True)
class Case:
    """One configuration of a gated stack and the sizes of its input."""

    cell: str
    num_layers: int
    bias: bool
    batch_first: bool
    bidirectional: bool
    dropout: float
    proj_size: int
    batched: bool
    with_h0: bool
    with_lengths: bool
    T: int
    N: int
    D: int
    H: int
    seed: int

    @property
    def dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def S(self) -> int:
        """The width of ``h``."""
        return self.proj_size or self.H

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = dict(
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
        )
        if self.proj_size:
            kw["proj_size"] = self.proj_size
        return kw

    def reference(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return NN[self.cell](self.D, self.H, **self.kwargs()).double()

    def inputs(self) -> tuple[np.ndarray, Any, np.ndarray | None]:
        """``x`` in the case's layout, ``h0`` (``(h0, c0)`` for the LSTM, or ``None``) and lengths."""
        rng = np.random.default_rng(self.seed)
        T, N, D = self.T, self.N, self.D
        shape = ((N, T, D) if self.batch_first else (T, N, D)) if self.batched else (T, D)
        x = rng.standard_normal(shape)
        h0: Any = None
        if self.with_h0:
            lead = (self.num_layers * self.dirs, N) if self.batched else (self.num_layers * self.dirs,)
            h0 = rng.standard_normal((*lead, self.S))
            if self.cell == "lstm":
                h0 = (h0, rng.standard_normal((*lead, self.H)))
        lengths = rng.integers(1, T + 1, size=N) if self.with_lengths else None
        return x, h0, lengths


@st.composite
def cases(draw: st.DrawFn, cell: str) -> Case:
    num_layers = draw(st.integers(1, 3))
    batched = draw(st.booleans())
    N = draw(st.integers(0, 4)) if batched else 1
    H = draw(st.integers(1, 5))
    proj_size = draw(st.integers(0, H - 1)) if cell == "lstm" else 0
    return Case(
        cell=cell,
        num_layers=num_layers,
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        dropout=draw(st.sampled_from([0.0, 0.5])) if num_layers > 1 else 0.0,
        proj_size=proj_size,
        batched=batched,
        with_h0=draw(st.booleans()),
        with_lengths=batched and N > 0 and draw(st.booleans()),
        T=draw(st.integers(1, 5)),
        N=N,
        D=draw(st.integers(1, 4)),
        H=H,
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def states_of(value: Any) -> tuple[Any, ...]:
    """``h_n`` or ``(h_n, c_n)`` as a tuple."""
    return tuple(value) if isinstance(value, tuple) else (value,)


def tensor(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def run_module(module: nn.Module, x: torch.Tensor, h0: Any, lengths: Any, batch_first: bool) -> tuple[Any, ...]:
    """``module`` on a padded batch, packed when there are lengths; returns ``(output, *states)``."""
    T = x.shape[1 if batch_first else 0]
    if lengths is None:
        out, hn = module(x, h0)
    else:
        packed = pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out_packed, hn = module(packed, h0)
        out, _ = pad_packed_sequence(out_packed, batch_first=batch_first, total_length=T)
    return (out, *states_of(hn))


def layerwise(
    ref: nn.Module, case: Case, x: torch.Tensor, h0: Any, lengths: Any, masks: dict[int, np.ndarray]
) -> tuple[tuple[Any, ...], dict[str, torch.Tensor]]:
    """``ref`` run one layer at a time (single-layer ``nn`` modules with its weights), NumPy's dropout masks between.

    Returns ``(output, *states)`` and the single-layer modules' parameters keyed by ``ref``'s names.
    """
    batched = x.dim() == 3
    xt = x if batched else x.unsqueeze(1)
    xt = xt.transpose(0, 1) if (batched and case.batch_first) else xt  # time-major, as the masks are
    parts = [p if batched else p.unsqueeze(1) for p in states_of(h0)] if h0 is not None else None
    params: dict[str, torch.Tensor] = {}
    finals: list[list[torch.Tensor]] = []
    layer_input = xt
    dirs = case.dirs
    for layer in range(case.num_layers):
        kw = case.kwargs() | {"num_layers": 1, "batch_first": False, "dropout": 0.0}
        single = NN[case.cell](layer_input.shape[-1], case.H, **kw).double()
        state = {}
        for name in single.state_dict():
            source = name.replace("_l0", f"_l{layer}")
            state[name] = ref.state_dict()[source]
        single.load_state_dict(state)
        for name, p in single.named_parameters():
            params[name.replace("_l0", f"_l{layer}")] = p
        layer_h0 = None
        if parts is not None:
            layer_h0 = tuple(p[layer * dirs : (layer + 1) * dirs] for p in parts)
            layer_h0 = layer_h0 if case.cell == "lstm" else layer_h0[0]
        out, *states = run_module(single, layer_input, layer_h0, lengths, batch_first=False)
        finals.append(states)
        if layer in masks:
            out = out * torch.from_numpy(masks[layer])
        layer_input = out
    out = layer_input if batched else layer_input[:, 0]
    if batched and case.batch_first:
        out = out.transpose(0, 1)
    states = [torch.cat([f[k] for f in finals]) for k in range(len(finals[0]))]
    if not batched:
        states = [s[:, 0] for s in states]
    return (out, *states), params


def numpy_parity_errors(case: Case) -> tuple[float, float]:
    """Max abs errors ``(forward, backward)`` of the NumPy model against autograd through ``nn``."""
    ref = case.reference()
    model = NUMPY[case.cell].from_torch(ref)
    x, h0, lengths = case.inputs()
    out, hn = model.forward(x, h0, lengths=lengths)
    ours = (out, *states_of(hn))
    rng = np.random.default_rng(case.seed + 1)
    upstream = [rng.standard_normal(a.shape) for a in ours]
    d_x, d_h0 = model.backward(upstream[0], tuple(upstream[1:]) if case.cell == "lstm" else upstream[1])

    x_t = tensor(x)
    h0_parts = None if h0 is None else tuple(tensor(p) for p in states_of(h0))
    h0_t = None if h0_parts is None else (h0_parts if case.cell == "lstm" else h0_parts[0])
    if model.last_dropout_masks:
        theirs, params = layerwise(ref, case, x_t, h0_t, lengths, model.last_dropout_masks)
    else:
        theirs = run_module(ref, x_t, h0_t, lengths, case.batch_first)
        params = dict(ref.named_parameters())
    loss = sum((t * torch.from_numpy(u)).sum() for t, u in zip(theirs, upstream, strict=True))
    loss.backward()  # type: ignore[union-attr]

    forward = max(max_abs(a, t) for a, t in zip(ours, theirs, strict=True))
    grads = [max_abs(model.grads[name], p.grad) for name, p in params.items()]
    grads.append(max_abs(d_x, x_t.grad))
    if h0_parts is not None:
        grads += [max_abs(d, p.grad) for d, p in zip(states_of(d_h0), h0_parts, strict=True)]
    assert set(model.grads) == set(params)
    return forward, max(grads)


def torch_parity_errors(case: Case, packed: bool) -> tuple[float, float]:
    """Max abs errors ``(forward, backward)`` of the torch module against ``nn``, both differentiated by autograd.

    With lengths and dropout, both run in evaluation mode: ``nn`` draws its masks over the packed
    data (``(sum(lengths), S*dirs)``) and ``TorchStack``, like ``TorchRNN``, over the padded
    ``(T, N, S*dirs)`` layout, so the draws differ (their distribution does not).
    """
    ref = case.reference()
    x, h0, lengths = case.inputs()
    if lengths is not None and case.dropout > 0:
        ref.eval()
    model = TORCH[case.cell].from_torch(ref)
    results = []
    for module in (ref, model):
        x_t = tensor(x)
        h0_parts = None if h0 is None else tuple(tensor(p) for p in states_of(h0))
        h0_t = None if h0_parts is None else (h0_parts if case.cell == "lstm" else h0_parts[0])
        torch.manual_seed(case.seed)  # the same dropout masks: TorchStack draws them as nn does
        if lengths is not None and not packed:
            assert module is ref or isinstance(module, (TorchLSTM, TorchGRU))
            outs = (
                run_module(module, x_t, h0_t, lengths, case.batch_first)
                if module is ref
                else (lambda o: (o[0], *states_of(o[1])))(module(x_t, h0_t, lengths=lengths))
            )
        else:
            outs = run_module(module, x_t, h0_t, lengths, case.batch_first)
        rng = np.random.default_rng(case.seed + 1)
        loss = sum((t * torch.from_numpy(rng.standard_normal(tuple(t.shape)))).sum() for t in outs)
        loss.backward()  # type: ignore[union-attr]
        grads = [p.grad for _, p in module.named_parameters()] + [x_t.grad]
        grads += [] if h0_parts is None else [p.grad for p in h0_parts]
        results.append(([o.detach() for o in outs], grads))
    (outs_ref, grads_ref), (outs_ours, grads_ours) = results
    forward = max(max_abs(a, b) for a, b in zip(outs_ours, outs_ref, strict=True))
    backward = max(max_abs(a, b) for a, b in zip(grads_ours, grads_ref, strict=True))
    return forward, backward


# --------------------------------------------------------------------------------------
# Parity over configurations drawn by hypothesis
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_numpy_gated_forward_and_backward_match_nn_autograd(cell: str, record_property) -> None:
    worst = [0.0, 0.0]

    @PROPERTY
    @given(case=cases(cell))
    def check(case: Case) -> None:
        forward, backward = numpy_parity_errors(case)
        worst[0], worst[1] = max(worst[0], forward), max(worst[1], backward)
        assert forward <= FORWARD_TOL, case
        assert backward <= BACKWARD_TOL, case

    check()
    record_property("max_abs_forward_backward", worst)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_gated_forward_and_backward_match_nn_autograd(cell: str, record_property) -> None:
    worst = [0.0, 0.0]

    @PROPERTY
    @given(case=cases(cell), packed=st.booleans())
    def check(case: Case, packed: bool) -> None:
        forward, backward = torch_parity_errors(case, packed)
        worst[0], worst[1] = max(worst[0], forward), max(worst[1], backward)
        assert forward <= FORWARD_TOL, case
        assert backward <= BACKWARD_TOL, case

    check()
    record_property("max_abs_forward_backward", worst)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_flag_on_at_once_matches_nn(cell: str, bidirectional: bool) -> None:
    """The richest configuration, explicitly (hypothesis need not have drawn it): 3 layers, dropout, lengths.

    (The torch module runs it in evaluation mode: see :func:`torch_parity_errors`.)
    """
    case = Case(
        cell,
        3,
        True,
        True,
        bidirectional,
        0.5,
        2 if cell == "lstm" else 0,
        True,
        True,
        True,
        T=6,
        N=4,
        D=3,
        H=5,
        seed=11,
    )
    for errors in (numpy_parity_errors(case), torch_parity_errors(case, packed=True)):
        assert errors[0] <= FORWARD_TOL and errors[1] <= BACKWARD_TOL


def test_lstm_state_shapes_with_projection() -> None:
    """``h_n`` is ``(L*dirs, N, P)``, ``c_n`` ``(L*dirs, N, H)``, the output ``P*dirs`` wide (as ``nn.LSTM``)."""
    torch.manual_seed(0)
    ref = nn.LSTM(3, 5, 2, bidirectional=True, proj_size=2).double()
    x = np.random.default_rng(0).standard_normal((4, 3, 3))
    out, (h_n, c_n) = NumpyLSTM.from_torch(ref).forward(x)
    out_t, (h_t, c_t) = TorchLSTM.from_torch(ref)(torch.from_numpy(x))
    assert out.shape == tuple(out_t.shape) == (4, 3, 4)
    assert h_n.shape == tuple(h_t.shape) == (4, 3, 2)
    assert c_n.shape == tuple(c_t.shape) == (4, 3, 5)
    assert ref.weight_ih_l1.shape == (20, 4) and ref.weight_hh_l1.shape == (20, 2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_empty_batch_gives_empty_outputs_and_zero_gradients(cell: str) -> None:
    torch.manual_seed(0)
    kw = {"proj_size": 2} if cell == "lstm" else {}
    ref = NN[cell](3, 4, 2, bidirectional=True, **kw).double()
    x = np.zeros((5, 0, 3))
    model = NUMPY[cell].from_torch(ref)
    out, hn = model.forward(x)
    out_ref, hn_ref = ref(torch.from_numpy(x))
    assert out.shape == tuple(out_ref.shape)
    assert [s.shape for s in states_of(hn)] == [tuple(s.shape) for s in states_of(hn_ref)]
    d_x, _ = model.backward(np.zeros_like(out))
    assert d_x.shape == x.shape
    assert all(not g.any() for g in model.grads.values())
    out_t, _ = TORCH[cell].from_torch(ref)(torch.from_numpy(x))
    assert out_t.shape == out_ref.shape


# --------------------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_backward_matches_finite_differences(cell: str) -> None:
    """Bidirectional, 2 layers, projection (LSTM), lengths, h0 (and c0): every gradient to 1e-6 relative error."""
    model = NUMPY[cell](3, 4, 2, bidirectional=True, seed=0, **({"proj_size": 2} if cell == "lstm" else {}))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 3))
    S = model.proj_size or model.hidden_size
    h0 = [rng.standard_normal((4, 3, S))] + ([rng.standard_normal((4, 3, 4))] if cell == "lstm" else [])
    lengths = np.array([5, 2, 4])

    def run() -> tuple[np.ndarray, ...]:
        out, hn = model.forward(x, tuple(h0) if cell == "lstm" else h0[0], lengths=lengths)
        return (out, *states_of(hn))

    upstream = [rng.standard_normal(a.shape) for a in run()]
    d_x, d_h0 = model.backward(upstream[0], tuple(upstream[1:]) if cell == "lstm" else upstream[1])
    analytic = {**model.grads, "input": d_x, **{f"state{k}": d for k, d in enumerate(states_of(d_h0))}}
    targets = {**model.params, "input": x, **{f"state{k}": a for k, a in enumerate(h0)}}

    def loss() -> float:
        return float(sum(np.sum(a * u) for a, u in zip(run(), upstream, strict=True)))

    errors = {name: rel_error(analytic[name], numerical_gradient(loss, arr)) for name, arr in targets.items()}
    assert max(errors.values()) < FD_TOL, errors


# --------------------------------------------------------------------------------------
# Initialisation and state dicts
# --------------------------------------------------------------------------------------


GRID = [
    (cell, *flags)
    for cell, flags in itertools.product(
        ["lstm", "gru"], itertools.product([1, 2], [True, False], [False, True], [0, 2])
    )
    if cell == "lstm" or flags[3] == 0
]  # proj_size: LSTM only


@pytest.mark.parametrize("cell,num_layers,bias,bidirectional,proj_size", GRID)
def test_torch_module_after_same_seed_has_nn_state_dict_exactly(cell, num_layers, bias, bidirectional, proj_size):
    kw = dict(num_layers=num_layers, bias=bias, bidirectional=bidirectional)
    if proj_size:
        kw["proj_size"] = proj_size
    torch.manual_seed(123)
    ref = NN[cell](3, 5, **kw)
    torch.manual_seed(123)
    ours = TORCH[cell](3, 5, **kw)
    theirs, mine = ref.state_dict(), ours.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert [list(n) for n in ref._all_weights] == all_weight_names(num_layers, bias, bidirectional, proj=proj_size > 0)
    assert [[tuple(w.shape) for w in ws] for ws in ours.all_weights] == [
        [tuple(w.shape) for w in ws] for ws in ref.all_weights
    ]
    numpy_model = NUMPY[cell].from_torch(ref)
    assert list(numpy_model.params) == list(theirs)
    assert all(np.array_equal(numpy_model.params[k], theirs[k].double().numpy()) for k in theirs)
    assert numpy_model.proj_size == proj_size and numpy_model.training
    assert numpy_model.num_parameters() == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_numpy_initialisation_is_uniform_within_inverse_sqrt_hidden(cell: str) -> None:
    model = NUMPY[cell](4, 16, 2, seed=0)
    bound = 1 / np.sqrt(16)
    assert {k: v.shape for k, v in model.params.items()} == param_shapes(4, 16, 2, gates=model.GATES)
    values = np.concatenate([v.ravel() for v in model.params.values()])
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.9 * bound  # thousands of draws reach the edges


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_from_torch_copies_configuration_mode_and_loads_into_each_other(cell: str) -> None:
    torch.manual_seed(0)
    kw = {"proj_size": 1} if cell == "lstm" else {}
    ref = NN[cell](2, 3, 2, bias=False, batch_first=True, dropout=0.25, bidirectional=True, **kw).eval()
    for model in (NUMPY[cell].from_torch(ref), TORCH[cell].from_torch(ref)):
        for key in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional"):
            assert getattr(model, key) == getattr(ref, key)
        assert model.training is False
    TORCH[cell](2, 3, 2, bias=False, batch_first=True, bidirectional=True, **kw).load_state_dict(ref.state_dict())
    NUMPY[cell](2, 3, 2, bias=False, batch_first=True, bidirectional=True, **kw).load_state_dict(ref.state_dict())
    assert repr(TorchLSTM(2, 3, proj_size=1)) == "TorchLSTM(2, 3, proj_size=1)"
    assert repr(NumpyGRU(2, 3, 2, batch_first=True)) == "NumpyGRU(2, 3, num_layers=2, batch_first=True)"


def test_elman_models_are_unchanged_by_the_shared_stack() -> None:
    """``NumpyRNN``/``TorchRNN`` still return a bare ``h_n`` and take a bare ``h0``."""
    model = NumpyRNN(3, 4, 2, seed=0)
    out, h_n = model.forward(np.zeros((5, 2, 3)), np.zeros((2, 2, 4)))
    assert isinstance(h_n, np.ndarray) and h_n.shape == (2, 2, 4)
    _, d_h0 = model.backward(np.ones_like(out))
    assert isinstance(d_h0, np.ndarray)
    _, h_t = TorchRNN(3, 4)(torch.zeros(5, 2, 3), torch.zeros(1, 2, 4))
    assert isinstance(h_t, torch.Tensor)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


BUILD_ERRORS = [
    (lambda: NumpyLSTM(3, 4, proj_size=4), ValueError, "proj_size has to be smaller than hidden_size"),
    (lambda: TorchLSTM(3, 4, proj_size=5), ValueError, "proj_size has to be smaller than hidden_size"),
    (lambda: NumpyLSTM(3, 4, proj_size=-1), ValueError, "proj_size should be a positive integer or zero"),
    (lambda: TorchLSTM(3, 4, proj_size=-1), ValueError, "proj_size should be a positive integer or zero"),
    (lambda: NumpyLSTM(3, 4, proj_size=1.5), TypeError, "proj_size must be an int"),
    (lambda: NumpyGRU(3, 4, proj_size=2), ValueError, "proj_size argument is only supported for LSTM"),
    (lambda: TorchGRU(3, 4, proj_size=2), ValueError, "proj_size argument is only supported for LSTM"),
    (lambda: NumpyLSTM(3, 4, batch_first="False"), TypeError, "batch_first should be of type bool, got: str"),
    (lambda: TorchGRU(3, 4, bias=0), TypeError, "bias should be of type bool, got: int"),
    (lambda: NumpyGRU(3, 4, bidirectional=1), TypeError, "bidirectional should be of type bool"),
    (lambda: TorchLSTM(3, 0), ValueError, "hidden_size must be a positive int, got 0"),
    (lambda: NumpyLSTM(3.0, 4), TypeError, "input_size must be an int"),
    (lambda: NumpyGRU(3, 4, 2, dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (lambda: NumpyLSTM(3, 4, dtype=np.int64), TypeError, "dtype must be a floating type"),
]


@pytest.mark.parametrize("build,error,message", BUILD_ERRORS)
def test_bad_constructor_arguments_are_refused_clearly(build, error, message) -> None:
    with pytest.raises(error, match=message):
        build()


def test_nn_refuses_what_we_refuse_for_proj_size() -> None:
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        nn.GRU(3, 4, proj_size=2)


LSTM = NumpyLSTM(3, 4, 2, proj_size=2, seed=0)
T_LSTM = TorchLSTM(3, 4, 2, proj_size=2).double()
X = np.zeros((5, 2, 3))
H0, C0 = np.zeros((2, 2, 2)), np.zeros((2, 2, 4))

FORWARD_ERRORS = [
    (lambda: LSTM(np.zeros((5, 3))[None, None]), ValueError, r"input must be 3-D \(T, N, D\) or unbatched 2-D"),
    (lambda: LSTM(np.zeros((5, 2, 7))), ValueError, "input's last dimension must be input_size=3, got 7"),
    (lambda: LSTM(X.astype(np.float32)), TypeError, "input has dtype float32 but this NumpyLSTM computes in float64"),
    (lambda: LSTM(X, H0), TypeError, r"h0 of a NumpyLSTM must be a tuple \(h0, c0\), got a ndarray of shape"),
    (lambda: LSTM(X, (H0,)), TypeError, r"must be a tuple \(h0, c0\), got a tuple of length 1"),
    (lambda: LSTM(X, (C0, C0)), ValueError, r"h0 must have shape \(num_layers\*num_directions, N, P\) = \(2, 2, 2\)"),
    (lambda: LSTM(X, (H0, H0)), ValueError, r"c0 must have shape \(num_layers\*num_directions, N, H\) = \(2, 2, 4\)"),
    (lambda: LSTM(X, (H0[0], C0)), ValueError, "for batched 3-D input, h0 must be 3-D"),
    (lambda: LSTM(X, (H0, C0.astype(np.float32))), TypeError, "c0 has dtype float32"),
    (lambda: LSTM(X, (H0, None)), TypeError, "c0 is None"),
    (lambda: LSTM(X, lengths=[5, 6]), ValueError, r"every length must be in \[1, T=5\]"),
    (lambda: LSTM(X, lengths=[5.0, 2.0]), TypeError, "lengths must be integers"),
    (lambda: LSTM(X[:, 0], lengths=[5]), ValueError, "lengths are for batched input"),
    (lambda: LSTM(np.zeros((0, 2, 3))), ValueError, "at least one time step"),
    (
        lambda: T_LSTM(torch.zeros(5, 2, 3, dtype=torch.float64), torch.zeros(2, 2, 2, dtype=torch.float64)),
        TypeError,
        r"hx of a TorchLSTM must be a tuple \(h0, c0\)",
    ),
    (
        lambda: T_LSTM(torch.zeros(5, 2, 3, dtype=torch.float64), (torch.zeros(2, 2, 4, dtype=torch.float64),) * 2),
        ValueError,
        r"h0 must have shape \(num_layers\*num_directions, N, P\) = \(2, 2, 2\), got \(2, 2, 4\)",
    ),
    (lambda: T_LSTM(torch.zeros(5, 2, 3)), TypeError, "input has dtype torch.float32 but the parameters are"),
    (lambda: T_LSTM(np.zeros((5, 2, 3))), TypeError, "input must be a torch.Tensor or PackedSequence"),
    (
        lambda: TorchGRU(3, 4)(torch.zeros(5, 2, 3), torch.zeros(1, 3, 4)),
        ValueError,
        re.escape("h0 must have shape (num_layers*num_directions, N, H) = (1, 2, 4), got (1, 3, 4)"),
    ),
    (lambda: NumpyGRU(3, 4, seed=0)(X, (np.zeros((1, 2, 4)),)), ValueError, "h0 must be 3-D"),
]


@pytest.mark.parametrize("call,error,message", FORWARD_ERRORS)
def test_bad_forward_input_is_refused_saying_what_was_expected_and_what_came(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_bad_backward_input_is_refused() -> None:
    model = NumpyLSTM(3, 4, proj_size=2, seed=0)
    with pytest.raises(ValueError, match="needs a forward"):
        model.backward(np.zeros((5, 2, 2)))
    out, (h_n, c_n) = model.forward(X)
    with pytest.raises(ValueError, match=r"d_output must have the shape of output, \(5, 2, 2\)"):
        model.backward(np.zeros((5, 2, 4)))
    with pytest.raises(TypeError, match=r"must be a tuple \(d_h_n, d_c_n\)"):
        model.backward(out, h_n)
    with pytest.raises(ValueError, match=r"d_c_n must have the shape of c_n, \(1, 2, 4\)"):
        model.backward(out, (h_n, h_n))
    d_x, (d_h0, d_c0) = model.backward(out, (None, c_n))
    assert d_x.shape == X.shape and d_h0.shape == (1, 2, 2) and d_c0.shape == (1, 2, 4)
