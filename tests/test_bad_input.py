"""Bad input fails early, with a message that says what was expected and what came.

Every case runs on both ``NumpyRNN`` and ``TorchRNN`` where it applies; each assertion
matches the key words and numbers of the message, not just the exception type.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnlib import NumpyRNN, TorchRNN

KINDS = ["numpy", "torch"]


def make(kind: str, *args, **kwargs):
    """A float64 model of either implementation (TorchRNN's default dtype is float32, like nn.RNN's)."""
    if kind == "numpy":
        return NumpyRNN(*args, seed=0, **kwargs)
    return TorchRNN(*args, dtype=torch.float64, **kwargs)


def data(kind: str, shape: tuple[int, ...], dtype=np.float64):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    return a if kind == "numpy" else torch.from_numpy(a)


def re_shape(shape: tuple[int, ...]) -> str:
    """A shape as Python prints it, escaped for a regular expression: ``(4, 2)`` -> ``\\(4, 2\\)``."""
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


# --------------------------------------------------------------------------------------
# Constructor
# --------------------------------------------------------------------------------------

CLASSES = [pytest.param(NumpyRNN, id="numpy"), pytest.param(TorchRNN, id="torch")]


@pytest.mark.parametrize("cls", CLASSES)
def test_unknown_nonlinearity_is_refused(cls) -> None:
    with pytest.raises(ValueError, match=r"unknown nonlinearity 'sigmoid': expected one of \('tanh', 'relu'\)"):
        cls(3, 5, nonlinearity="sigmoid")


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_outside_zero_one_is_refused(cls, p) -> None:
    with pytest.raises(ValueError, match=rf"dropout must be in \[0, 1\), got {p}"):
        cls(3, 5, 2, dropout=p)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("p", ["0.1", None, True])
def test_dropout_that_is_not_a_number_is_refused(cls, p) -> None:
    with pytest.raises(TypeError, match=rf"dropout must be a float in \[0, 1\), got {type(p).__name__}"):
        cls(3, 5, 2, dropout=p)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("name", ["input_size", "hidden_size", "num_layers"])
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_sizes_are_refused(cls, name, value) -> None:
    kwargs = {"input_size": 3, "hidden_size": 5, "num_layers": 2, name: value}
    with pytest.raises(ValueError, match=rf"{name} must be a positive int, got {value}"):
        cls(**kwargs)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("name", ["input_size", "hidden_size", "num_layers"])
@pytest.mark.parametrize("value,type_name", [(3.0, "float"), ("3", "str"), (True, "bool"), (None, "NoneType")])
def test_non_int_sizes_are_refused(cls, name, value, type_name) -> None:
    kwargs = {"input_size": 3, "hidden_size": 5, "num_layers": 2, name: value}
    with pytest.raises(TypeError, match=rf"{name} must be an int, got {type_name}"):
        cls(**kwargs)


NON_BOOLS = [0, 1, "False", None, 1.0]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("name", ["bias", "batch_first"])
@pytest.mark.parametrize("value", NON_BOOLS, ids=repr)
def test_non_bool_flags_are_refused_like_nn_rnn(cls, name, value) -> None:
    """``nn.RNN`` raises ``TypeError: bias should be of type bool, got: int``; ours says the same, then the value."""
    with pytest.raises(TypeError) as ref:
        nn.RNN(3, 5, **{name: value})
    with pytest.raises(TypeError) as ours:
        cls(3, 5, **{name: value})
    assert str(ref.value) == f"{name} should be of type bool, got: {type(value).__name__}"
    assert str(ours.value) == f"{ref.value} ({value!r})"


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("value", NON_BOOLS, ids=repr)
def test_non_bool_bidirectional_is_refused_though_nn_rnn_accepts_it(cls, value) -> None:
    """PyTorch 2.13 does not check ``bidirectional`` (a truthy ``'False'`` builds two directions); we refuse it."""
    assert nn.RNN(3, 5, bidirectional=value).bidirectional is value
    with pytest.raises(TypeError, match=rf"^bidirectional should be of type bool, got: {type(value).__name__} "):
        cls(3, 5, bidirectional=value)


@pytest.mark.parametrize("cls", CLASSES)
def test_numpy_bool_flags_are_accepted_as_python_bools(cls) -> None:
    model = cls(3, 5, bias=np.bool_(False), batch_first=np.bool_(True), bidirectional=np.bool_(True))
    assert (model.bias, model.batch_first, model.bidirectional) == (False, True, True)
    assert all(type(flag) is bool for flag in (model.bias, model.batch_first, model.bidirectional))


def test_numpy_integer_sizes_are_accepted() -> None:
    model = NumpyRNN(np.int64(3), np.int32(5), np.int64(2), seed=0)
    assert model.forward(np.zeros((4, 2, 3)))[0].shape == (4, 2, 5)


def test_numpy_rnn_refuses_a_non_float_dtype() -> None:
    with pytest.raises(TypeError, match=r"dtype must be a floating type .* got int64"):
        NumpyRNN(3, 5, dtype=np.int64)


# --------------------------------------------------------------------------------------
# The dropout warning (as nn.RNN gives it)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_dropout_on_a_single_layer_warns_like_nn_rnn(cls) -> None:
    with pytest.warns(UserWarning) as ref:
        nn.RNN(3, 5, dropout=0.5)
    with pytest.warns(
        UserWarning,
        match=r"non-zero dropout expects num_layers greater than 1, "
        r"but got dropout=0.5 and num_layers=1",
    ) as ours:
        cls(3, 5, dropout=0.5)
    assert str(ours[0].message) == str(ref[0].message)
    assert ours[0].filename == __file__  # points at the caller's line, not inside rnnlib


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("num_layers,p", [(2, 0.5), (1, 0.0)])
def test_no_warning_when_dropout_can_act_or_is_off(cls, num_layers, p) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls(3, 5, num_layers, dropout=p)


# --------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(3,), (4, 2, 3, 1)], ids=["1-D", "4-D"])
def test_input_of_wrong_rank_is_refused(kind, shape) -> None:
    rank = len(shape)
    with pytest.raises(
        ValueError,
        match=rf"input must be 3-D \(T, N, D\) or unbatched 2-D \(T, D\) with D=3, "
        rf"got a {rank}-D array of shape {re_shape(shape)}",
    ):
        make(kind, 3, 5)(data(kind, shape))


@pytest.mark.parametrize("kind", KINDS)
def test_input_of_wrong_rank_names_the_batch_first_layout(kind) -> None:
    with pytest.raises(ValueError, match=r"input must be 3-D \(N, T, D\)"):
        make(kind, 3, 5, batch_first=True)(data(kind, (3,)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(4, 2, 4), (4, 4)], ids=["batched", "unbatched"])
def test_input_of_wrong_feature_size_is_refused(kind, shape) -> None:
    with pytest.raises(
        ValueError,
        match=rf"input's last dimension must be input_size=3, got 4 "
        rf"\(input shape {re_shape(shape)}\)",
    ):
        make(kind, 3, 5)(data(kind, shape))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "shape,batch_first",
    [((0, 2, 3), False), ((2, 0, 3), True), ((0, 0, 3), False), ((0, 3), False)],
    ids=["T0", "T0-batch-first", "T0-N0", "T0-unbatched"],
)
def test_input_without_time_steps_is_refused(kind, shape, batch_first) -> None:
    """``nn.RNN`` refuses it too (``RuntimeError: Expected sequence length to be larger than 0 in RNN``).

    An empty *batch* is fine: ``tests/test_torch_edges.py``.
    """
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
        nn.RNN(3, 5, batch_first=batch_first).double()(data("torch", shape))
    with pytest.raises(ValueError, match=rf"at least one time step \(T >= 1\), got T=0 in shape {re_shape(shape)}"):
        make(kind, 3, 5, batch_first=batch_first)(data(kind, shape))


# --------------------------------------------------------------------------------------
# h0
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "bidirectional,h0_shape,expected",
    [
        (False, (2, 2, 4), (2, 2, 5)),  # wrong H
        (False, (2, 3, 5), (2, 2, 5)),  # wrong N
        (False, (1, 2, 5), (2, 2, 5)),  # one state for two layers
        (True, (2, 2, 5), (4, 2, 5)),  # bidirectional: L*2 states
    ],
    ids=["H", "N", "layers", "directions"],
)
def test_h0_of_wrong_shape_is_refused(kind, bidirectional, h0_shape, expected) -> None:
    model = make(kind, 3, 5, 2, bidirectional=bidirectional)
    with pytest.raises(
        ValueError,
        match=rf"h0 must have shape \(num_layers\*num_directions, N, H\) = "
        rf"{re_shape(expected)}, got {re_shape(h0_shape)}",
    ):
        model(data(kind, (4, 2, 3)), data(kind, h0_shape))


@pytest.mark.parametrize("kind", KINDS)
def test_h0_of_wrong_shape_is_refused_for_unbatched_input(kind) -> None:
    with pytest.raises(
        ValueError, match=r"h0 must have shape \(num_layers\*num_directions, H\) = \(2, 5\), got \(3, 5\)"
    ):
        make(kind, 3, 5, 2)(data(kind, (4, 3)), data(kind, (3, 5)))


@pytest.mark.parametrize("kind", KINDS)
def test_3d_h0_with_unbatched_input_is_refused(kind) -> None:
    with pytest.raises(
        ValueError,
        match=r"for unbatched 2-D input, h0 must be 2-D .* = \(2, 5\), "
        r"got a 3-D array of shape \(2, 1, 5\)",
    ):
        make(kind, 3, 5, 2)(data(kind, (4, 3)), data(kind, (2, 1, 5)))


@pytest.mark.parametrize("kind", KINDS)
def test_2d_h0_with_batched_input_is_refused(kind) -> None:
    with pytest.raises(
        ValueError,
        match=r"for batched 3-D input, h0 must be 3-D .* = \(2, 2, 5\), "
        r"got a 2-D array of shape \(2, 5\)",
    ):
        make(kind, 3, 5, 2)(data(kind, (4, 2, 3)), data(kind, (2, 5)))


@pytest.mark.parametrize("kind", KINDS)
def test_batch_first_h0_is_refused(kind) -> None:
    """``h0`` is ``(L*dirs, N, H)`` whatever ``batch_first`` says: an ``(N, L, H)`` h0 is a shape error."""
    with pytest.raises(ValueError, match=r"= \(2, 3, 5\), got \(3, 2, 5\)"):
        make(kind, 3, 5, 2, batch_first=True)(data(kind, (3, 4, 3)), data(kind, (3, 2, 5)))


# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------


def test_float32_input_to_float64_numpy_rnn_is_refused() -> None:
    with pytest.raises(TypeError, match=r"input has dtype float32 but this NumpyRNN computes in float64"):
        NumpyRNN(3, 5, seed=0).forward(np.zeros((4, 2, 3), dtype=np.float32))


def test_float64_input_to_float32_numpy_rnn_is_refused() -> None:
    with pytest.raises(TypeError, match=r"input has dtype float64 but this NumpyRNN computes in float32"):
        NumpyRNN(3, 5, dtype=np.float32, seed=0).forward(np.zeros((4, 2, 3)))


def test_h0_dtype_mismatch_is_refused_by_numpy_rnn() -> None:
    with pytest.raises(TypeError, match=r"h0 has dtype float32 but this NumpyRNN computes in float64"):
        NumpyRNN(3, 5, seed=0).forward(np.zeros((4, 2, 3)), np.zeros((1, 2, 5), dtype=np.float32))


def test_integer_input_to_numpy_rnn_is_refused() -> None:
    with pytest.raises(TypeError, match=r"input has dtype int64 but this NumpyRNN computes in float64"):
        NumpyRNN(3, 5, seed=0).forward(np.zeros((4, 2, 3), dtype=np.int64))


def test_float64_input_to_float32_torch_rnn_is_refused() -> None:
    with pytest.raises(TypeError, match=r"input has dtype torch.float64 but the parameters are torch.float32"):
        TorchRNN(3, 5)(torch.zeros(4, 2, 3, dtype=torch.float64))


def test_float32_input_to_float64_torch_rnn_is_refused() -> None:
    with pytest.raises(TypeError, match=r"input has dtype torch.float32 but the parameters are torch.float64"):
        TorchRNN(3, 5, dtype=torch.float64)(torch.zeros(4, 2, 3))


def test_h0_dtype_mismatch_is_refused_by_torch_rnn() -> None:
    with pytest.raises(TypeError, match=r"hx has dtype torch.float64 but the parameters are torch.float32"):
        TorchRNN(3, 5)(torch.zeros(4, 2, 3), torch.zeros(1, 2, 5, dtype=torch.float64))


def test_torch_rnn_refuses_a_numpy_array() -> None:
    with pytest.raises(TypeError, match=r"input must be a torch.Tensor or PackedSequence, got ndarray"):
        TorchRNN(3, 5)(np.zeros((4, 2, 3), dtype=np.float32))


# --------------------------------------------------------------------------------------
# lengths
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "lengths,error,pattern",
    [
        (np.array([4, 3, 2]), ValueError, r"lengths must have shape \(N,\) = \(2,\), got \(3,\)"),
        (np.array([[4, 3]]), ValueError, r"lengths must have shape \(N,\) = \(2,\), got \(1, 2\)"),
        (np.array([4, 0]), ValueError, r"every length must be in \[1, T=4\], got \[4, 0\]"),
        (np.array([5, 2]), ValueError, r"every length must be in \[1, T=4\], got \[5, 2\]"),
        (np.array([-1, 2]), ValueError, r"every length must be in \[1, T=4\], got \[-1, 2\]"),
        (np.array([4.0, 2.0]), TypeError, r"lengths must be integers, got dtype float64"),
        (torch.tensor([4.0, 2.0]), TypeError, r"lengths must be integers, got dtype float32"),
    ],
    ids=["too-many", "2-D", "zero", "longer-than-T", "negative", "floats", "float-tensor"],
)
def test_bad_lengths_are_refused(kind, lengths, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        make(kind, 3, 5)(data(kind, (4, 2, 3)), lengths=lengths)


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_with_unbatched_input_are_refused(kind) -> None:
    with pytest.raises(ValueError, match=r"lengths are for batched input; unbatched 2-D input is one sequence"):
        make(kind, 3, 5)(data(kind, (4, 3)), lengths=np.array([4]))


def test_torch_rnn_refuses_lengths_with_a_packed_sequence() -> None:
    packed = pack_padded_sequence(torch.zeros(4, 2, 3), torch.tensor([4, 2]))
    with pytest.raises(ValueError, match=r"pass lengths or a PackedSequence, not both"):
        TorchRNN(3, 5)(packed, lengths=np.array([4, 2]))


# --------------------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------------------


def test_backward_before_forward_is_refused() -> None:
    with pytest.raises(ValueError, match=r"backward\(\) needs a forward\(\) first"):
        NumpyRNN(3, 5, seed=0).backward(np.zeros((4, 2, 5)))


@pytest.mark.parametrize(
    "batch_first,x_shape,d_shape,expected",
    [
        (False, (4, 2, 3), (4, 2, 4), (4, 2, 10)),  # forgot the second direction
        (True, (2, 4, 3), (4, 2, 10), (2, 4, 10)),  # time-major gradient for a batch-first model
        (False, (4, 3), (4, 1, 10), (4, 10)),  # unbatched
    ],
    ids=["directions", "batch-first", "unbatched"],
)
def test_d_output_of_wrong_shape_is_refused(batch_first, x_shape, d_shape, expected) -> None:
    model = NumpyRNN(3, 5, 2, bidirectional=True, batch_first=batch_first, seed=0)
    model.forward(np.zeros(x_shape))
    with pytest.raises(
        ValueError,
        match=rf"d_output must have the shape of output, {re_shape(expected)}, "
        rf"got {re_shape(d_shape)}",
    ):
        model.backward(np.zeros(d_shape))


@pytest.mark.parametrize(
    "x_shape,d_hn_shape,expected",
    [((4, 2, 3), (2, 2, 5), (4, 2, 5)), ((4, 2, 3), (4, 5), (4, 2, 5)), ((4, 3), (4, 1, 5), (4, 5))],
    ids=["states", "rank", "unbatched"],
)
def test_d_h_n_of_wrong_shape_is_refused(x_shape, d_hn_shape, expected) -> None:
    model = NumpyRNN(3, 5, 2, bidirectional=True, seed=0)
    out, _ = model.forward(np.zeros(x_shape))
    with pytest.raises(
        ValueError,
        match=rf"d_h_n must have the shape of h_n, {re_shape(expected)}, "
        rf"got {re_shape(d_hn_shape)}",
    ):
        model.backward(np.zeros_like(out), np.zeros(d_hn_shape))


def test_upstream_gradient_dtype_mismatch_is_refused() -> None:
    model = NumpyRNN(3, 5, seed=0)
    out, _ = model.forward(np.zeros((4, 2, 3)))
    with pytest.raises(TypeError, match=r"d_output has dtype float32 but this NumpyRNN computes in float64"):
        model.backward(out.astype(np.float32))


def test_dropout_mask_of_wrong_shape_is_refused() -> None:
    model = NumpyRNN(3, 5, 2, dropout=0.5, seed=0)
    with pytest.raises(ValueError, match=r"dropout mask for layer 0 must have shape \(4, 2, 5\), got \(4, 2, 4\)"):
        model.forward(np.zeros((4, 2, 3)), dropout_masks={0: np.ones((4, 2, 4))})


def test_dropout_masks_missing_a_layer_are_refused() -> None:
    model = NumpyRNN(3, 5, 3, dropout=0.5, seed=0)
    with pytest.raises(ValueError, match=r"dropout_masks has no mask for layer 1: .* keys \[0, 1\], got keys \[0\]"):
        model.forward(np.zeros((4, 2, 3)), dropout_masks={0: np.ones((4, 2, 5))})
