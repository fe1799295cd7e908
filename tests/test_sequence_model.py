"""The claims of chapter 2's "What y_t is for" section: embedding -> stack -> output layer -> masked loss.

Each claim is proved on the chapter's batch (the article's nn.RNN(3, 5, 2) fed by an nn.Embedding) and,
where it is a law, on random configurations.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnlib import NumpyRNN
from rnnlib.explain.examples import ARTICLE_SEED
from rnnlib.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from rnnlib.training.sequence_model import (
    sequence_loss,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

VOCAB = ["<pad>", "<bos>", "<eos>", "I", "love", "PyTorch", "RNN", "rocks"]
PAD = 0


def chapter_batch():
    """The chapter's batch: next-word prediction on "I love PyTorch" and "RNN rocks", time-major, padded."""
    index = {w: i for i, w in enumerate(VOCAB)}
    sentences = [["I", "love", "PyTorch"], ["RNN", "rocks"]]
    ids = np.full((4, 2), PAD)
    targets = np.full((4, 2), PAD)
    for n, words in enumerate(sentences):
        ids[: len(words) + 1, n] = [index[w] for w in ["<bos>", *words]]
        targets[: len(words) + 1, n] = [index[w] for w in [*words, "<eos>"]]
    return ids, targets, targets != PAD


def torch_model(V, D, H, L, O, seed_rnn, seed_rest):
    torch.manual_seed(seed_rnn)
    rnn = nn.RNN(D, H, L).double()
    torch.manual_seed(seed_rest)
    emb = nn.Embedding(V, D).double()
    lin = nn.Linear(H, O).double()
    return emb, rnn, lin


def numpy_args(emb, rnn, lin):
    return (
        emb.weight.detach().numpy().copy(),
        NumpyRNN.from_torch(rnn),
        lin.weight.detach().numpy().copy(),
        lin.bias.detach().numpy().copy(),
    )


def torch_loss_and_grads(emb, rnn, lin, ids, targets, mask):
    for m in (emb, rnn, lin):
        m.zero_grad()
    scores = lin(rnn(emb(torch.from_numpy(ids)))[0])
    t = torch.from_numpy(np.where(mask, targets, -100))
    loss = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), t.reshape(-1), ignore_index=-100)
    loss.backward()
    grads = {"embedding.weight": emb.weight.grad, "linear.weight": lin.weight.grad, "linear.bias": lin.bias.grad}
    grads.update({f"rnn.{k}": p.grad for k, p in rnn.named_parameters()})
    return loss.item(), {k: v.numpy() for k, v in grads.items()}


def article_model():
    # The chapter's order: the article's nn.RNN first (its weights as in the chapter), then the rest.
    torch.manual_seed(ARTICLE_SEED)
    rnn = copy.deepcopy(nn.RNN(3, 5, 2)).double()
    torch.manual_seed(ARTICLE_SEED)
    emb = nn.Embedding(len(VOCAB), 3).double()
    lin = nn.Linear(5, len(VOCAB)).double()
    return emb, rnn, lin


def test_loss_and_every_gradient_equal_autograd_on_the_article_model():
    ids, targets, mask = chapter_batch()
    emb, rnn, lin = article_model()
    loss_t, grads_t = torch_loss_and_grads(emb, rnn, lin, ids, targets, mask)
    loss, grads = sequence_loss(ids, targets, mask, *numpy_args(emb, rnn, lin))
    assert abs(loss - loss_t) < 1e-12
    assert set(grads) == set(grads_t) and len(grads) == 11
    for k in grads:
        assert np.abs(grads[k] - grads_t[k]).max() < 1e-12, k


@pytest.mark.parametrize("seed", range(5))
def test_loss_and_every_gradient_equal_autograd_on_random_models(seed):
    rng = np.random.default_rng(seed)
    V, D, H, L, O, T, N = 7, 4, 6, 3, 5, 6, 3
    emb, rnn, lin = torch_model(V, D, H, L, O, seed, seed + 100)
    ids = rng.integers(0, V, (T, N))
    targets = rng.integers(0, O, (T, N))
    lengths = rng.integers(1, T + 1, N)
    mask = np.arange(T)[:, None] < lengths[None, :]
    loss_t, grads_t = torch_loss_and_grads(emb, rnn, lin, ids, targets, mask)
    loss, grads = sequence_loss(ids, targets, mask, *numpy_args(emb, rnn, lin))
    assert abs(loss - loss_t) < 1e-12
    for k in grads:
        assert np.abs(grads[k] - grads_t[k]).max() < 1e-12, k


def test_masked_loss_equals_cross_entropy_with_ignore_index_and_with_a_masked_mean():
    ids, targets, mask = chapter_batch()
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((4, 2, len(VOCAB)))
    loss, _ = temporal_softmax_loss(scores, targets, mask)
    s = torch.from_numpy(scores).reshape(-1, len(VOCAB))
    t = torch.from_numpy(targets).reshape(-1)
    ignore = F.cross_entropy(s, t, ignore_index=PAD).item()
    per_token = F.cross_entropy(s, t, reduction="none")
    m = torch.from_numpy(mask).reshape(-1).double()
    masked_mean = ((per_token * m).sum() / m.sum()).item()
    assert abs(loss - ignore) < 1e-12 and abs(loss - masked_mean) < 1e-12


@pytest.fixture(scope="module")
def embedding_gradients():
    """The chapter's batch and model: the embedding gradient by backprop and by finite differences."""
    ids, targets, mask = chapter_batch()
    emb, rnn, lin = article_model()
    W_emb, nrnn, W_ho, b_ho = numpy_args(emb, rnn, lin)
    _, grads = sequence_loss(ids, targets, mask, W_emb, nrnn, W_ho, b_ho)
    num = numerical_gradient(lambda: sequence_loss(ids, targets, mask, W_emb, nrnn, W_ho, b_ho)[0], W_emb)
    return ids, (W_emb, nrnn, W_ho, b_ho), {k: v.copy() for k, v in grads.items()}, num


def test_finite_differences_agree_with_the_embedding_gradient_through_the_whole_model(embedding_gradients):
    _, _, grads, num = embedding_gradients
    assert rel_error(grads["embedding.weight"], num) <= 1e-6


def test_finite_differences_agree_with_the_loss_gradient():
    _, targets, mask = chapter_batch()
    scores = np.random.default_rng(1).standard_normal((4, 2, len(VOCAB)))
    _, dscores = temporal_softmax_loss(scores, targets, mask)
    num = numerical_gradient(lambda: temporal_softmax_loss(scores, targets, mask)[0], scores)
    assert rel_error(dscores, num) <= 1e-6


def test_finite_differences_agree_with_each_layer_backward():
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 5, (4, 3))
    W = rng.standard_normal((5, 2))
    dout = rng.standard_normal((4, 3, 2))
    _, cache = word_embedding_forward(ids, W)
    num = numerical_gradient_array(lambda w: word_embedding_forward(ids, w)[0], W, dout)
    assert rel_error(word_embedding_backward(dout, cache), num) <= 1e-6
    x, w, b = rng.standard_normal((4, 3, 6)), rng.standard_normal((5, 6)), rng.standard_normal(5)
    dout = rng.standard_normal((4, 3, 5))
    _, cache = temporal_affine_forward(x, w, b)
    dx, dw, db = temporal_affine_backward(dout, cache)
    assert rel_error(dx, numerical_gradient_array(lambda v: temporal_affine_forward(v, w, b)[0], x, dout)) <= 1e-6
    assert rel_error(dw, numerical_gradient_array(lambda v: temporal_affine_forward(x, v, b)[0], w, dout)) <= 1e-6
    assert rel_error(db, numerical_gradient_array(lambda v: temporal_affine_forward(x, w, v)[0], b, dout)) <= 1e-6


def test_padded_positions_contribute_nothing():
    _, targets, mask = chapter_batch()
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((4, 2, len(VOCAB)))
    loss, dscores = temporal_softmax_loss(scores, targets, mask)
    changed_scores = scores.copy()
    changed_scores[~mask] = rng.standard_normal(((~mask).sum(), len(VOCAB))) * 100
    changed_targets = np.where(mask, targets, 5)  # any target at a padded position
    loss2, dscores2 = temporal_softmax_loss(changed_scores, changed_targets, mask)
    assert loss2 == loss
    assert np.all(dscores[~mask] == 0) and np.array_equal(dscores[mask], dscores2[mask])


def test_padded_input_tokens_change_no_real_loss_or_gradient():
    # Causality: a pad read after a sentence's end reaches only masked steps.
    ids, targets, mask = chapter_batch()
    emb, rnn, lin = article_model()
    W_emb, nrnn, W_ho, b_ho = numpy_args(emb, rnn, lin)
    loss, grads = sequence_loss(ids, targets, mask, W_emb, nrnn, W_ho, b_ho)
    other = ids.copy()
    other[~mask] = 4  # any token in the padded slots
    loss2, grads2 = sequence_loss(other, targets, mask, W_emb, nrnn, W_ho, b_ho)
    assert abs(loss - loss2) < 1e-15
    assert np.all(grads["embedding.weight"][PAD] == 0)


def test_mean_is_over_real_tokens_not_all_positions():
    _, targets, mask = chapter_batch()
    scores = np.random.default_rng(4).standard_normal((4, 2, len(VOCAB)))
    loss, _ = temporal_softmax_loss(scores, targets, mask)
    per_token = F.cross_entropy(
        torch.from_numpy(scores).reshape(-1, len(VOCAB)), torch.from_numpy(targets).reshape(-1), reduction="none"
    ).numpy()
    real = per_token[mask.reshape(-1)]
    assert abs(loss - real.mean()) < 1e-12
    assert abs(loss - real.sum() / mask.size) > 1e-3  # the all-positions mean differs


def test_repeated_ids_accumulate():
    ids = np.array([[1, 1], [2, 1]])  # id 1 read three times, id 2 once, id 0 never
    W = np.arange(9.0).reshape(3, 3)
    dout = np.random.default_rng(5).standard_normal((2, 2, 3))
    _, cache = word_embedding_forward(ids, W)
    dW = word_embedding_backward(dout, cache)
    np.testing.assert_allclose(dW[1], dout[0, 0] + dout[0, 1] + dout[1, 1], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(dW[2], dout[1, 0])
    np.testing.assert_array_equal(dW[0], 0)
    wrong = np.zeros_like(W)
    wrong[ids] += dout  # fancy-index assignment keeps one contribution per row
    assert np.abs(wrong[1] - dW[1]).max() > 0.1


def test_repeated_bos_row_gets_both_sentences_gradients_and_fd_catches_the_overwrite(embedding_gradients):
    ids, (W_emb, nrnn, W_ho, b_ho), grads, num = embedding_gradients
    _, targets, mask = chapter_batch()
    x, _ = word_embedding_forward(ids, W_emb)
    scores, affine_cache = temporal_affine_forward(nrnn.forward(x)[0], W_ho, b_ho)
    _, dscores = temporal_softmax_loss(scores, targets, mask)
    dx, _ = nrnn.backward(temporal_affine_backward(dscores, affine_cache)[0])  # (T, N, D)
    wrong = np.zeros_like(W_emb)
    wrong[ids] += dx
    bos = VOCAB.index("<bos>")
    np.testing.assert_allclose(grads["embedding.weight"][bos], dx[0, 0] + dx[0, 1], rtol=0, atol=1e-15)
    assert rel_error(grads["embedding.weight"], num) <= 1e-6
    assert rel_error(wrong, num) > 1e-2


def test_bad_ids_raise_clear_errors():
    W = np.zeros((8, 3))
    with pytest.raises(ValueError, match=r"ids must be in \[0, 8\).*got 8"):
        word_embedding_forward(np.array([[1, 8]]), W)
    with pytest.raises(ValueError, match=r"got -1"):
        word_embedding_forward(np.array([[-1, 2]]), W)
    with pytest.raises(TypeError, match="integers"):
        word_embedding_forward(np.array([[1.0, 2.0]]), W)


def test_bad_mask_and_targets_raise_clear_errors():
    scores = np.zeros((4, 2, 8))
    targets = np.ones((4, 2), dtype=int)
    with pytest.raises(ValueError, match=r"mask must have the shape of targets, \(4, 2\), got \(2, 4\)"):
        temporal_softmax_loss(scores, targets, np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="no real token"):
        temporal_softmax_loss(scores, targets, np.zeros((4, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"targets must have shape \(4, 2\)"):
        temporal_softmax_loss(scores, np.ones((4, 3), dtype=int), np.ones((4, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"targets at real tokens must be in \[0, 8\), got 9"):
        temporal_softmax_loss(scores, np.full((4, 2), 9), np.ones((4, 2), dtype=bool))
    with pytest.raises(TypeError, match="boolean"):
        temporal_softmax_loss(scores, targets, np.full((4, 2), 0.5))
    # a padded target may be anything (e.g. PyTorch's ignore_index -100)
    loss, _ = temporal_softmax_loss(scores, np.where([[1, 0]] * 4, 1, -100), np.array([[True, False]] * 4))
    assert abs(loss - np.log(8)) < 1e-12


def test_padding_idx_changes_nothing_on_the_chapter_batch_but_matters_with_left_padding():
    ids, targets, mask = chapter_batch()
    grads = {}
    for padding_idx in (None, PAD):
        emb, rnn, lin = article_model()
        torch.manual_seed(ARTICLE_SEED)
        emb = nn.Embedding(len(VOCAB), 3, padding_idx=padding_idx).double()
        lin = nn.Linear(5, len(VOCAB)).double()
        grads[padding_idx] = torch_loss_and_grads(emb, rnn, lin, ids, targets, mask)
    assert grads[None][0] == grads[PAD][0]
    for k in grads[None][1]:
        np.testing.assert_array_equal(grads[None][1][k], grads[PAD][1][k])
    # left padding: sentence 2 shifted right, its pad read before its words reaches real steps
    left_ids, left_targets = ids.copy(), targets.copy()
    left_ids[:, 1] = np.roll(ids[:, 1], 1)
    left_targets[:, 1] = np.roll(targets[:, 1], 1)
    left_mask = left_targets != PAD
    emb, rnn, lin = article_model()
    _, g = torch_loss_and_grads(emb, rnn, lin, left_ids, left_targets, left_mask)
    assert np.abs(g["embedding.weight"][PAD]).max() > 1e-6
