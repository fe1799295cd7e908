"""The article's worked example, with real numbers: ``nn.RNN(3, 5, 2)`` on the (4, 2, 3) input 0.1..2.4.

The article prints invented outputs in which ``output[-1]`` equals ``hn[0]``. The truth,
proved here: ``output`` is the *top* layer's state at every step, so its last step is
``h_n[-1]`` (the top layer), not ``h_n[0]``; and ``batch_first`` only transposes the
input and output, never ``h_n``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnlib import NumpyRNN, TorchRNN
from rnnlib.explain.examples import (
    ARTICLE_SEED,
    BATCH,
    HIDDEN_SIZE,
    INPUT_SIZE,
    NUM_LAYERS,
    SEQ_LEN,
    article_input,
)


def article_rnn(batch_first: bool = False, dtype: torch.dtype = torch.float32) -> nn.RNN:
    """The course's weights for the worked example: ``torch.manual_seed(ARTICLE_SEED)`` right before ``nn.RNN``."""
    torch.manual_seed(ARTICLE_SEED)
    return nn.RNN(INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS, batch_first=batch_first, dtype=dtype)


def article_run(batch_first: bool = False, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    x = torch.from_numpy(article_input(batch_first=batch_first, dtype=np_dtype))
    h0 = torch.zeros(NUM_LAYERS, BATCH, HIDDEN_SIZE, dtype=dtype)
    with torch.no_grad():
        return article_rnn(batch_first, dtype)(x, h0)


def test_article_input_is_the_articles_tensor() -> None:
    x = article_input()
    assert x.shape == (SEQ_LEN, BATCH, INPUT_SIZE) == (4, 2, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=np.float32))
    np.testing.assert_array_equal(x[3], np.array([[1.9, 2.0, 2.1], [2.2, 2.3, 2.4]], dtype=np.float32))
    x_bf = article_input(batch_first=True)
    assert x_bf.shape == (2, 4, 3) and x_bf.flags.c_contiguous
    # the article's batch_first tensor: sentence 1 is words (0.1, 0.2, 0.3), (0.7, 0.8, 0.9), ...
    np.testing.assert_array_equal(x_bf[0, :, 0], np.array([0.1, 0.7, 1.3, 1.9], dtype=np.float32))
    np.testing.assert_array_equal(x_bf, x.transpose(1, 0, 2))
    assert article_input(dtype=np.float64)[2, 1, 2] == 1.8  # k/10: the float nearest to each decimal


@pytest.mark.parametrize("batch_first", [False, True])
def test_article_shapes(batch_first) -> None:
    output, h_n = article_run(batch_first)
    assert tuple(output.shape) == ((2, 4, 5) if batch_first else (4, 2, 5))
    assert tuple(h_n.shape) == (2, 2, 5)


def test_output_last_step_equals_top_layer_state() -> None:
    output, h_n = article_run()
    assert torch.equal(output[-1], h_n[-1])


def test_output_last_step_equals_top_layer_state_batch_first() -> None:
    output, h_n = article_run(batch_first=True)
    assert torch.equal(output[:, -1], h_n[-1])


@pytest.mark.parametrize("batch_first", [False, True])
def test_hn_first_layer_is_not_output_last_step(batch_first) -> None:
    """The article's printout has ``output[-1] == hn[0]``; in truth the first layer's last state differs."""
    output, h_n = article_run(batch_first)
    last = output[:, -1] if batch_first else output[-1]
    assert (last - h_n[0]).abs().max() > 0.1


def test_article_same_seed_gives_same_weights_in_both_layouts() -> None:
    sd, sd_bf = article_rnn().state_dict(), article_rnn(batch_first=True).state_dict()
    assert list(sd) == list(sd_bf) and all(torch.equal(sd[k], sd_bf[k]) for k in sd)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_batch_first_gives_transposed_output_and_same_h_n(dtype, tol) -> None:
    output, h_n = article_run(False, dtype)
    output_bf, h_n_bf = article_run(True, dtype)
    assert (output_bf - output.transpose(0, 1)).abs().max() <= tol
    assert (h_n_bf - h_n).abs().max() <= tol


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_numpy_and_torch_rnn_reproduce_the_worked_example(batch_first, dtype, tol) -> None:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    output, h_n = article_run(batch_first, dtype)
    rnn = article_rnn(batch_first, dtype)
    x = article_input(batch_first=batch_first, dtype=np_dtype)
    h0 = np.zeros((NUM_LAYERS, BATCH, HIDDEN_SIZE), dtype=np_dtype)

    numpy_rnn = NumpyRNN.from_torch(rnn, dtype=np_dtype)
    out_np, h_n_np = numpy_rnn.forward(x, h0)
    assert out_np.dtype == np_dtype and h_n_np.dtype == np_dtype
    assert np.max(np.abs(out_np - output.numpy())) <= tol
    assert np.max(np.abs(h_n_np - h_n.numpy())) <= tol

    torch_rnn = TorchRNN(INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS, batch_first=batch_first, dtype=dtype)
    torch_rnn.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        out_t, h_n_t = torch_rnn(torch.from_numpy(x), torch.from_numpy(h0))
    assert (out_t - output).abs().max() <= tol and (h_n_t - h_n).abs().max() <= tol


def test_torch_rnn_built_after_article_seed_has_the_article_weights() -> None:
    torch.manual_seed(ARTICLE_SEED)
    ours = TorchRNN(INPUT_SIZE, HIDDEN_SIZE, NUM_LAYERS)
    ref = article_rnn()
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in ref.state_dict().items())


def test_worked_example_states_stay_inside_tanh_range_and_differ_per_sentence() -> None:
    output, h_n = article_run()
    assert output.abs().max() < 1
    assert (output[:, 0] - output[:, 1]).abs().max() > 1e-3  # two sentences, two trajectories
