"""``torch.nn.RNN``'s edges, where PyTorch's own RNN tests reach: each claim checked against ``nn.RNN`` directly.

``torch.func.functional_call`` and parametrizations, ``all_weights`` and ``flatten_parameters``,
``dropout`` changed after construction (to 1, or out of range), and an empty batch ``(T, 0, D)``.
(Non-bool flags and ``T = 0`` are in ``tests/test_bad_input.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from rnnlib import NumpyRNN, TorchRNN

CONFIGS = [
    pytest.param(dict(num_layers=2), id="2-layer"),
    pytest.param(dict(num_layers=2, bidirectional=True), id="2-layer-bidirectional"),
    pytest.param(dict(num_layers=1, bias=False, batch_first=True), id="no-bias-batch-first"),
]


def pair(**config) -> tuple[nn.RNN, TorchRNN]:
    """A float64 ``nn.RNN`` and a ``TorchRNN`` holding the same weights."""
    torch.manual_seed(0)
    reference = nn.RNN(3, 5, **config).double()
    ours = TorchRNN(3, 5, **config, dtype=torch.float64)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def batch(shape: tuple[int, ...] = (4, 2, 3)) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def loss(output: Tensor, h_n: Tensor) -> Tensor:
    """Uses every output and every final state, with unequal weights, so no gradient is trivially zero."""
    return (output * torch.linspace(-1, 1, output.shape[-1], dtype=output.dtype)).sum() + h_n.pow(2).sum()


def assert_same_outputs_and_grads(reference: nn.Module, ours: nn.Module, x: Tensor) -> None:
    """Same forward and, for every trainable parameter (by name), the same gradient of :func:`loss`."""
    out_ref, hn_ref = reference(x)
    out, hn = ours(x)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(hn, hn_ref, rtol=0, atol=1e-12)
    names = [name for name, _ in reference.named_parameters()]
    assert [name for name, _ in ours.named_parameters()] == names
    grads_ref = torch.autograd.grad(loss(out_ref, hn_ref), list(reference.parameters()))
    grads = torch.autograd.grad(loss(out, hn), list(ours.parameters()))
    for name, g_ref, g in zip(names, grads_ref, grads, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-12, msg=name)


# --------------------------------------------------------------------------------------
# torch.func.functional_call and parametrizations
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_functional_call_uses_the_given_parameters_like_nn_rnn(config) -> None:
    reference, ours = pair(**config)
    x = batch((2, 4, 3) if config.get("batch_first") else (4, 2, 3))
    # Other weights than the modules hold, so that reading the module's own would show.
    params = {name: (1.5 * p.detach()).requires_grad_() for name, p in reference.named_parameters()}
    out_ref, hn_ref = functional_call(reference, params, (x,))
    out, hn = functional_call(ours, params, (x,))
    assert not torch.allclose(out_ref, reference(x)[0])
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(hn, hn_ref, rtol=0, atol=1e-12)
    grads_ref = torch.autograd.grad(loss(out_ref, hn_ref), list(params.values()))
    grads = torch.autograd.grad(loss(out, hn), list(params.values()))
    for name, g_ref, g in zip(params, grads_ref, grads, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-12, msg=name)


def test_functional_call_leaves_the_modules_own_parameters_alone() -> None:
    _, ours = pair(num_layers=2)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    functional_call(ours, {k: torch.zeros_like(v) for k, v in before.items()}, (batch(),))
    for name, value in ours.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_torch_func_grad_through_functional_call_matches_nn_rnn() -> None:
    """The ``torch.func`` idiom: ``grad`` of a function of the parameters dict."""
    reference, ours = pair(num_layers=2, bidirectional=True)
    x = batch()
    params = {name: p.detach() for name, p in reference.named_parameters()}

    def loss_of(module: nn.Module):
        return lambda p: loss(*functional_call(module, p, (x,)))

    grads_ref = torch.func.grad(loss_of(reference))(params)
    grads = torch.func.grad(loss_of(ours))(params)
    for name in params:
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=0, atol=1e-12, msg=name)


class Symmetric(nn.Module):
    """The parametrization of PyTorch's tutorial: a square weight made symmetric from its upper triangle."""

    def forward(self, X: Tensor) -> Tensor:
        return X.triu() + X.triu(1).transpose(-1, -2)


@pytest.mark.parametrize("config", CONFIGS)
def test_a_registered_parametrization_is_honoured_like_nn_rnn(config) -> None:
    reference, ours = pair(**config)
    for module in (reference, ours):
        parametrize.register_parametrization(module, "weight_hh_l0", Symmetric())
    assert torch.equal(ours.weight_hh_l0, ours.weight_hh_l0.T)
    assert_same_outputs_and_grads(reference, ours, batch((2, 4, 3) if config.get("batch_first") else (4, 2, 3)))


@pytest.mark.parametrize("config", CONFIGS)
def test_weight_norm_is_honoured_like_nn_rnn(config) -> None:
    reference, ours = pair(**config)
    for module in (reference, ours):
        weight_norm(module, "weight_ih_l0")
        # Rescale the magnitude so that a forward pass that read the stale tensor would differ.
        with torch.no_grad():
            module.parametrizations.weight_ih_l0.original0.mul_(2.0)
    assert_same_outputs_and_grads(reference, ours, batch((2, 4, 3) if config.get("batch_first") else (4, 2, 3)))


def test_a_parametrization_changes_the_output() -> None:
    """The parametrization tests above would pass vacuously if forward ignored it: it does not."""
    _, ours = pair(num_layers=2)
    x = batch()
    before = ours(x)[0]
    parametrize.register_parametrization(ours, "weight_hh_l1", Symmetric())
    assert not torch.allclose(ours(x)[0], before)


# --------------------------------------------------------------------------------------
# all_weights and flatten_parameters
# --------------------------------------------------------------------------------------

ALL_WEIGHTS_CONFIGS = [
    pytest.param(dict(num_layers=1), id="1-layer"),
    pytest.param(dict(num_layers=3), id="3-layer"),
    pytest.param(dict(num_layers=2, bidirectional=True), id="2-layer-bidirectional"),
    pytest.param(dict(num_layers=2, bias=False, bidirectional=True), id="no-bias-bidirectional"),
]


@pytest.mark.parametrize("config", ALL_WEIGHTS_CONFIGS)
def test_torch_rnn_all_weights_are_nn_rnns_in_structure_and_value(config) -> None:
    reference, ours = pair(**config)
    assert [len(ws) for ws in ours.all_weights] == [len(ws) for ws in reference.all_weights]
    for ws_ref, ws in zip(reference.all_weights, ours.all_weights, strict=True):
        for w_ref, w in zip(ws_ref, ws, strict=True):
            assert isinstance(w, nn.Parameter)
            assert torch.equal(w, w_ref)


@pytest.mark.parametrize("config", ALL_WEIGHTS_CONFIGS)
def test_torch_rnn_all_weights_are_the_live_parameters(config) -> None:
    _, ours = pair(**config)
    params = list(ours.parameters())
    flat = [w for ws in ours.all_weights for w in ws]
    assert len(flat) == len(params)
    assert all(w is p for w, p in zip(flat, params, strict=True))  # registration order is all_weights' order


def test_torch_rnn_all_weights_show_a_parametrized_weight_as_nn_rnn_does() -> None:
    reference, ours = pair(num_layers=2)
    for module in (reference, ours):
        parametrize.register_parametrization(module, "weight_hh_l1", Symmetric())
    torch.testing.assert_close(ours.all_weights[1][1], reference.all_weights[1][1], rtol=0, atol=0)
    assert torch.equal(ours.all_weights[1][1], ours.all_weights[1][1].T)


@pytest.mark.parametrize("config", ALL_WEIGHTS_CONFIGS)
def test_numpy_rnn_all_weights_are_nn_rnns_as_arrays(config) -> None:
    reference, _ = pair(**config)
    ours = NumpyRNN.from_torch(reference)
    assert [len(ws) for ws in ours.all_weights] == [len(ws) for ws in reference.all_weights]
    for ws_ref, ws in zip(reference.all_weights, ours.all_weights, strict=True):
        for w_ref, w in zip(ws_ref, ws, strict=True):
            assert isinstance(w, np.ndarray)
            np.testing.assert_array_equal(w, w_ref.detach().numpy())


def test_numpy_rnn_all_weights_are_the_arrays_of_params() -> None:
    ours = NumpyRNN(3, 5, 2, bidirectional=True, seed=0)
    assert all(w is p for w, p in zip((w for ws in ours.all_weights for w in ws), ours.params.values(), strict=True))


def test_flatten_parameters_changes_nothing() -> None:
    reference, ours = pair(num_layers=2, bidirectional=True)
    x = batch()
    before = ours(x)
    params = list(ours.parameters())
    reference.flatten_parameters()
    assert ours.flatten_parameters() is None
    assert all(p is q for p, q in zip(ours.parameters(), params, strict=True))
    after = ours(x)
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    torch.testing.assert_close(after[0], reference(x)[0], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------
# dropout set after construction (PyTorch's test_RNN_change_dropout)
# --------------------------------------------------------------------------------------

KINDS = ["numpy", "torch"]


def run(model, x: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(output, h_n)`` as arrays, from either implementation."""
    if isinstance(model, NumpyRNN):
        return model.forward(x.numpy())
    with torch.no_grad():
        out, hn = model(x)
    return out.numpy(), hn.numpy()


def ours_like(kind: str, reference: nn.RNN):
    return NumpyRNN.from_torch(reference, seed=0) if kind == "numpy" else TorchRNN.from_torch(reference)


DROP_ALL_CONFIGS = [
    pytest.param(dict(num_layers=2), id="2-layer"),
    pytest.param(dict(num_layers=3, bidirectional=True), id="3-layer-bidirectional"),
    pytest.param(dict(num_layers=2, nonlinearity="relu", batch_first=True), id="relu-batch-first"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", DROP_ALL_CONFIGS)
@pytest.mark.parametrize("p", [1, 1.0], ids=["int", "float"])
def test_dropout_one_in_training_mode_equals_nn_rnn(kind, config, p) -> None:
    """``nn.RNN`` at ``dropout=1`` drops every unit between layers: the layers above read zeros."""
    torch.manual_seed(0)
    reference = nn.RNN(3, 5, **config).double()
    ours = ours_like(kind, reference)
    reference.dropout = ours.dropout = p
    x = batch((2, 4, 3) if config.get("batch_first") else (4, 2, 3))
    with torch.no_grad():
        out_ref, hn_ref = reference(x)
    with np.errstate(all="raise"):  # no 0/0 on the way
        out, hn = run(ours, x)
    assert np.isfinite(out).all() and np.isfinite(hn).all()
    np.testing.assert_allclose(out, out_ref.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(hn, hn_ref.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(run(ours, x)[0], out)  # nothing random is left


def test_dropout_one_gradients_equal_nn_rnns() -> None:
    """NumpyRNN's backward and TorchRNN's autograd at p = 1 equal nn.RNN's gradients (finite: no 0/0)."""
    torch.manual_seed(0)
    reference = nn.RNN(3, 5, 2, bidirectional=True).double()
    ours = NumpyRNN.from_torch(reference, seed=0)
    _, twin = pair(num_layers=2, bidirectional=True)
    reference.dropout = ours.dropout = twin.dropout = 1
    x = batch().requires_grad_()
    out_ref, hn_ref = reference(x)
    out_twin, hn_twin = twin(x)
    params = list(reference.parameters())
    grads_ref = torch.autograd.grad(loss(out_ref, hn_ref), [x, *params])
    grads_twin = torch.autograd.grad(loss(out_twin, hn_twin), [x, *twin.parameters()])
    out, hn = ours.forward(x.detach().numpy())
    d_out = np.broadcast_to(np.linspace(-1, 1, out.shape[-1]), out.shape).copy()
    dx, _ = ours.backward(d_out, 2 * hn)  # the gradient of loss(): the weights of the output, 2 h_n
    np.testing.assert_allclose(dx, grads_ref[0].numpy(), rtol=0, atol=1e-12)
    for (name, _), g_ref, g_twin in zip(reference.named_parameters(), grads_ref[1:], grads_twin[1:], strict=True):
        np.testing.assert_allclose(ours.grads[name], g_ref.numpy(), rtol=0, atol=1e-12, err_msg=name)
        torch.testing.assert_close(g_twin, g_ref, rtol=0, atol=1e-12, msg=name)
    assert np.abs(ours.grads["weight_ih_l0"]).sum() > 0  # layer 0's own h_n still reaches it
    out, _ = ours.forward(x.detach().numpy())
    ours.backward(np.ones_like(out))  # from the output alone: nothing crosses the dropped connection
    assert not any(ours.grads[name].any() for name in ours.params if name.endswith(("_l0", "_l0_reverse")))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_change_dropout_after_construction_as_pytorchs_own_test(kind, train) -> None:
    """PyTorch's ``test_RNN_change_dropout``: deterministic at p = 0 and p = 1 and in eval mode, random otherwise."""
    torch.manual_seed(0)
    reference = nn.RNN(10, 10, 2, dropout=0, nonlinearity="relu").double()
    ours = ours_like(kind, reference).train(train)
    x = torch.ones(3, 2, 10, dtype=torch.float64)
    previous = None
    for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
        ours.dropout = p
        (out1, hn1), (out2, hn2) = run(ours, x), run(ours, x)
        deterministic = p in (0, 1) or not train
        assert np.array_equal(out1, out2) == deterministic and np.array_equal(hn1, hn2) == deterministic
        if previous is not None:
            assert np.array_equal(out1, previous) == (not train)
        previous = out1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("p", [1.5, -0.5])
def test_dropout_outside_zero_one_set_after_construction_fails_like_nn_rnn(kind, p) -> None:
    torch.manual_seed(0)
    reference = nn.RNN(3, 5, 2).double()
    ours = ours_like(kind, reference)
    reference.dropout = ours.dropout = p
    with pytest.raises(RuntimeError) as ref:
        reference(batch())
    with pytest.raises(RuntimeError) as error:
        run(ours, batch())
    assert str(error.value) == str(ref.value) == f"dropout probability has to be between 0 and 1, but got {p}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers,train", [(2, False), (1, True)], ids=["eval", "1-layer"])
def test_dropout_outside_zero_one_is_ignored_where_nn_rnn_applies_none(kind, num_layers, train) -> None:
    """``nn.RNN`` checks the probability only where it drops: in training mode, between layers."""
    torch.manual_seed(0)
    reference = nn.RNN(3, 5, num_layers).double().train(train)
    ours = ours_like(kind, reference)
    reference.dropout = ours.dropout = 1.5
    with torch.no_grad():
        out_ref, _ = reference(batch())
    np.testing.assert_allclose(run(ours, batch())[0], out_ref.numpy(), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------
# An empty batch
# --------------------------------------------------------------------------------------

EMPTY_CONFIGS = [
    pytest.param(dict(num_layers=2), (4, 0, 3), id="time-major"),
    pytest.param(dict(num_layers=2, batch_first=True), (0, 4, 3), id="batch-first"),
    pytest.param(dict(num_layers=2, bidirectional=True), (4, 0, 3), id="bidirectional"),
    pytest.param(dict(num_layers=3, bias=False, dropout=0.5), (4, 0, 3), id="no-bias-dropout"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("config,shape", EMPTY_CONFIGS)
def test_empty_batch_gives_nn_rnns_empty_shapes(kind, config, shape, with_h0) -> None:
    torch.manual_seed(0)
    reference = nn.RNN(3, 5, **config).double()  # training mode: dropout, where set, is drawn on nothing
    ours = ours_like(kind, reference)
    dirs = 2 if config.get("bidirectional") else 1
    h0 = torch.zeros(config["num_layers"] * dirs, 0, 5, dtype=torch.float64) if with_h0 else None
    x = torch.zeros(shape, dtype=torch.float64)
    with torch.no_grad():
        out_ref, hn_ref = reference(x, h0)
    out, hn = ours(x.numpy(), None if h0 is None else h0.numpy()) if kind == "numpy" else ours(x, h0)
    assert tuple(out.shape) == tuple(out_ref.shape) == (*shape[:2], 5 * dirs)
    assert tuple(hn.shape) == tuple(hn_ref.shape) == (config["num_layers"] * dirs, 0, 5)


@pytest.mark.parametrize("config,shape", EMPTY_CONFIGS)
def test_empty_batch_backward_equals_nn_rnns(config, shape) -> None:
    """NumpyRNN.backward and autograd through TorchRNN: an empty input gradient and all-zero weight gradients."""
    torch.manual_seed(0)
    reference = nn.RNN(3, 5, **config).double()
    ours = NumpyRNN.from_torch(reference, seed=0)
    twin = TorchRNN.from_torch(reference)
    dirs = 2 if config.get("bidirectional") else 1
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    h0 = torch.zeros(config["num_layers"] * dirs, 0, 5, dtype=torch.float64, requires_grad=True)
    grads = {}
    for name, module in (("nn.RNN", reference), ("TorchRNN", twin)):
        out, hn = module(x, h0)
        grads[name] = torch.autograd.grad(loss(out, hn), [x, h0, *module.parameters()])
    out, hn = ours.forward(x.detach().numpy(), h0.detach().numpy())
    dx, dh0 = ours.backward(np.ones_like(out), np.ones_like(hn))
    grads["NumpyRNN"] = (dx, dh0, *ours.grads.values())
    for name in ("TorchRNN", "NumpyRNN"):
        assert len(grads[name]) == len(grads["nn.RNN"])
        for g, g_ref in zip(grads[name], grads["nn.RNN"], strict=True):
            assert tuple(g.shape) == tuple(g_ref.shape)
            np.testing.assert_array_equal(np.asarray(g), g_ref.numpy())
            assert not np.asarray(g).any()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "lengths",
    [np.array([], dtype=np.int64), torch.tensor([], dtype=torch.int64), []],
    ids=["int64-array", "int64-tensor", "list"],
)
def test_empty_batch_with_empty_lengths_runs(kind, lengths) -> None:
    """nn.RNN cannot take this (``pack_padded_sequence`` refuses to pack an empty batch); ours returns it empty."""
    with pytest.raises(RuntimeError, match="Cannot pack empty tensors"):
        torch.nn.utils.rnn.pack_padded_sequence(torch.zeros(4, 0, 3), torch.tensor([], dtype=torch.int64))
    torch.manual_seed(0)
    ours = ours_like(kind, nn.RNN(3, 5, 2, bidirectional=True).double())
    x = torch.zeros(4, 0, 3, dtype=torch.float64, requires_grad=True)
    out, hn = ours(x.detach().numpy() if kind == "numpy" else x, lengths=lengths)
    assert tuple(out.shape) == (4, 0, 10) and tuple(hn.shape) == (4, 0, 5)
    if kind == "numpy":
        dx, dh0 = ours.backward(out, hn)
        grads = list(ours.grads.values())
    else:
        dx, *grads = torch.autograd.grad(loss(out, hn), [x, *ours.parameters()])
    assert tuple(dx.shape) == (4, 0, 3)
    assert [tuple(g.shape) for g in grads] == [tuple(w.shape) for ws in ours.all_weights for w in ws]
    assert not any(np.asarray(g).any() for g in grads)
