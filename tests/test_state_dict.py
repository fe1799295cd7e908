"""State dicts: the same names, shapes and order as ``torch.nn.RNN``, so weights move freely.

Round trip ``nn.RNN -> NumpyRNN -> TorchRNN -> nn.RNN`` keeps every value, and
``load_state_dict`` refuses missing, unexpected and mis-shaped entries with a
message that names each of them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from rnnlib import NumpyRNN, TorchRNN, param_shapes

CONFIGS = [
    dict(input_size=D, hidden_size=H, num_layers=L, bias=bias, bidirectional=bi)
    for D, H, L, bias, bi in itertools.product((1, 3), (2, 5), (1, 2, 3), (True, False), (False, True))
]


def config_id(cfg: dict) -> str:
    return "D{input_size}-H{hidden_size}-L{num_layers}-bias{bias:d}-bi{bidirectional:d}".format(**cfg)


def shapes_of(state_dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_keys_and_shapes_equal_nn_rnn(cfg) -> None:
    expected = shapes_of(nn.RNN(**cfg).state_dict())
    for got in (
        shapes_of(NumpyRNN(**cfg, seed=0).state_dict()),
        shapes_of(TorchRNN(**cfg).state_dict()),
        param_shapes(**cfg),
    ):
        assert list(got.items()) == list(expected.items())  # same names, same shapes, same order


def test_bidirectional_upper_layer_reads_both_directions() -> None:
    """``weight_ih_l1_reverse`` has shape ``(H, 2H)``: layer 1 reads ``[forward, backward]`` of layer 0."""
    H = 4
    ref = nn.RNN(3, H, 2, bidirectional=True).state_dict()
    assert tuple(ref["weight_ih_l1_reverse"].shape) == (H, 2 * H)
    ours = (NumpyRNN(3, H, 2, bidirectional=True, seed=0).params, TorchRNN(3, H, 2, bidirectional=True).state_dict())
    for sd in ours:
        assert tuple(sd["weight_ih_l0_reverse"].shape) == (H, 3)
        assert tuple(sd["weight_ih_l1"].shape) == tuple(sd["weight_ih_l1_reverse"].shape) == (H, 2 * H)
        assert tuple(sd["weight_hh_l1_reverse"].shape) == (H, H)
        assert tuple(sd["bias_hh_l1_reverse"].shape) == (H,)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_round_trip_nn_rnn_to_numpy_to_torch_rnn_to_nn_rnn_keeps_values(cfg) -> None:
    torch.manual_seed(51)
    source = nn.RNN(**cfg, dtype=torch.float64)
    numpy_rnn = NumpyRNN(**cfg, seed=52)
    numpy_rnn.load_state_dict(source.state_dict())
    torch_rnn = TorchRNN(**cfg, dtype=torch.float64)
    torch_rnn.load_state_dict({k: torch.from_numpy(v) for k, v in numpy_rnn.state_dict().items()})
    target = nn.RNN(**cfg, dtype=torch.float64)
    target.load_state_dict(torch_rnn.state_dict())
    for name, value in source.state_dict().items():
        assert np.array_equal(numpy_rnn.params[name], value.numpy()), name
        assert torch.equal(torch_rnn.state_dict()[name], value), name
        assert torch.equal(target.state_dict()[name], value), name
    # and the round-tripped nn.RNN computes as the source does (its flat weights were updated)
    x = torch.from_numpy(np.random.default_rng(53).standard_normal((4, 2, cfg["input_size"])))
    with torch.no_grad():
        assert torch.equal(target(x)[0], source(x)[0])


def test_from_torch_copies_config_weights_and_mode() -> None:
    torch.manual_seed(54)
    rnn = nn.RNN(3, 4, 2, "relu", False, True, 0.25, True).eval()
    model = NumpyRNN.from_torch(rnn)
    for attr in (
        "input_size",
        "hidden_size",
        "num_layers",
        "nonlinearity",
        "bias",
        "batch_first",
        "dropout",
        "bidirectional",
        "training",
    ):
        assert getattr(model, attr) == getattr(rnn, attr), attr
    assert model.dtype == np.float64
    assert all(np.array_equal(model.params[k], v.double().numpy()) for k, v in rnn.state_dict().items())
    assert NumpyRNN.from_torch(rnn, dtype=np.float32).params["weight_ih_l0"].dtype == np.float32
    torch.manual_seed(54)
    assert NumpyRNN.from_torch(TorchRNN(3, 4, 2, "relu", False, True, 0.25, True).train()).training


def test_state_dict_is_a_copy_and_load_converts_dtype() -> None:
    model = NumpyRNN(3, 4, seed=0)
    sd = model.state_dict()
    sd["weight_ih_l0"][:] = 0.0
    assert not np.all(model.params["weight_ih_l0"] == 0.0)  # the model is untouched
    model32 = NumpyRNN(3, 4, dtype=np.float32, seed=1)
    model32.load_state_dict(model.state_dict())  # float64 arrays into a float32 model
    assert all(p.dtype == np.float32 for p in model32.params.values())
    assert np.allclose(model32.params["weight_hh_l0"], model.params["weight_hh_l0"], rtol=0, atol=1e-7)


def test_numpy_load_state_dict_accepts_grad_tracking_tensors() -> None:
    torch_rnn = TorchRNN(3, 4, 2, dtype=torch.float64)
    model = NumpyRNN(3, 4, 2, seed=0)
    model.load_state_dict(dict(torch_rnn.named_parameters()))  # requires_grad=True tensors
    assert all(np.array_equal(model.params[k], p.detach().numpy()) for k, p in torch_rnn.named_parameters())


# --------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------


def full_state_dict() -> dict[str, np.ndarray]:
    return NumpyRNN(3, 4, 2, bidirectional=True, seed=0).state_dict()


def test_load_state_dict_refuses_missing_keys_naming_them() -> None:
    sd = full_state_dict()
    del sd["weight_hh_l1_reverse"], sd["bias_ih_l0"]
    with pytest.raises(ValueError, match=r"missing keys \['bias_ih_l0', 'weight_hh_l1_reverse'\]"):
        NumpyRNN(3, 4, 2, bidirectional=True, seed=1).load_state_dict(sd)


def test_load_state_dict_refuses_unexpected_keys_naming_them() -> None:
    sd = {**full_state_dict(), "weight_ih_l2": np.zeros((4, 8)), "flat": np.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected keys \['weight_ih_l2', 'flat'\]"):
        NumpyRNN(3, 4, 2, bidirectional=True, seed=1).load_state_dict(sd)


def test_load_state_dict_refuses_wrong_shapes_naming_them() -> None:
    sd = full_state_dict()
    sd["weight_ih_l1_reverse"] = np.zeros((4, 4))  # a unidirectional layer-1 weight
    with pytest.raises(ValueError, match=r"weight_ih_l1_reverse: expected shape \(4, 8\), got \(4, 4\)"):
        NumpyRNN(3, 4, 2, bidirectional=True, seed=1).load_state_dict(sd)


def test_load_state_dict_lists_every_problem_at_once_and_leaves_params_unchanged() -> None:
    model = NumpyRNN(3, 4, 2, bidirectional=True, seed=1)
    before = model.state_dict()
    sd = full_state_dict()
    del sd["bias_hh_l0"]
    sd["extra"] = np.zeros(2)
    sd["weight_hh_l0"] = np.zeros((4, 5))
    with pytest.raises(ValueError) as info:
        model.load_state_dict(sd)
    message = str(info.value)
    for part in (
        "missing keys ['bias_hh_l0']",
        "unexpected keys ['extra']",
        "weight_hh_l0: expected shape (4, 4), got (4, 5)",
    ):
        assert part in message
    assert all(np.array_equal(before[k], model.params[k]) for k in before)


def test_bias_free_model_refuses_a_state_dict_with_biases() -> None:
    with pytest.raises(ValueError, match=r"unexpected keys \['bias_ih_l0', 'bias_hh_l0'\]"):
        NumpyRNN(3, 4, bias=False, seed=0).load_state_dict(NumpyRNN(3, 4, seed=0).state_dict())


def test_torch_rnn_load_state_dict_refuses_missing_extra_and_misshaped_entries() -> None:
    """``TorchRNN`` uses ``nn.Module.load_state_dict``: the same refusals, in torch's words."""
    sd = {k: torch.from_numpy(v).float() for k, v in full_state_dict().items()}
    del sd["bias_hh_l0"]
    sd["extra"] = torch.zeros(2)
    sd["weight_hh_l0"] = torch.zeros(4, 5)
    with pytest.raises(RuntimeError) as info:
        TorchRNN(3, 4, 2, bidirectional=True).load_state_dict(sd)
    message = str(info.value)
    assert 'Missing key(s) in state_dict: "bias_hh_l0"' in message
    assert 'Unexpected key(s) in state_dict: "extra"' in message
    assert "size mismatch for weight_hh_l0" in message


def test_torch_rnn_from_torch_copies_configuration_weights_and_mode():
    import torch
    from torch import nn

    from rnnlib import TorchRNN

    torch.manual_seed(0)
    rnn = nn.RNN(3, 4, 2, nonlinearity="relu", bias=False, batch_first=True, bidirectional=True).double().eval()
    copy = TorchRNN.from_torch(rnn)
    assert not copy.training
    assert (copy.num_layers, copy.nonlinearity, copy.bias, copy.batch_first, copy.bidirectional) == (
        2,
        "relu",
        False,
        True,
        True,
    )
    for (k1, v1), (k2, v2) in zip(rnn.state_dict().items(), copy.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
