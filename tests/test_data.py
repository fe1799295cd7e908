"""rnnlib.training.data: the shipped corpus, the vocabulary, batches, and the adding problem."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from rnnlib.training.data import (
    CharVocab,
    adding_problem,
    load_corpus,
    one_hot,
    random_windows,
    stream_batches,
    train_val_split,
)


@pytest.fixture(scope="module")
def text() -> str:
    return load_corpus("genesis_kjv")


def test_corpus_ships_with_the_package_and_has_60_characters(text):
    assert text.startswith("In the beginning God created the heaven and the earth.\n")
    assert len(text) == 196_818
    assert len(set(text)) == 60
    assert text.count("\n") == 1533


def test_unknown_corpus_is_refused():
    with pytest.raises(ValueError, match="unknown corpus"):
        load_corpus("shakespeare")


def test_vocab_is_sorted_and_round_trips(text):
    vocab = CharVocab(text)
    assert vocab.chars == sorted(set(text)) and len(vocab) == 60
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.min() == 0 and ids.max() == 59
    assert vocab.decode(ids) == text
    assert vocab.decode(vocab.encode("And God said")) == "And God said"


def test_vocab_names_an_unknown_character():
    with pytest.raises(KeyError, match="'#'"):
        CharVocab("abc").encode("a#")


def test_validation_is_the_last_tenth(text):
    ids = CharVocab(text).encode(text)
    train, val = train_val_split(ids, 0.1)
    assert len(val) == round(0.1 * len(ids))
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)


def test_batch_targets_are_the_inputs_shifted_by_one():
    data = np.arange(1000)
    x, y = random_windows(data, seq_len=7, batch_size=5, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (7, 5)
    np.testing.assert_array_equal(y[:-1], x[1:])
    np.testing.assert_array_equal(y, x + 1)  # data[i] == i: the target is the next element
    assert x.min() >= 0 and y.max() <= 999


def test_batches_are_reproducible_from_a_seed():
    data = np.arange(500)
    a = random_windows(data, 10, 4, np.random.default_rng(3))
    b = random_windows(data, 10, 4, np.random.default_rng(3))
    c = random_windows(data, 10, 4, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_windows_reach_the_last_target_and_never_past_it():
    data = np.arange(12)
    x, y = random_windows(data, seq_len=11, batch_size=50, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(x[:, 0], np.arange(11))  # only one window fits
    np.testing.assert_array_equal(y[:, 0], np.arange(1, 12))


def test_stream_batches_continue_where_the_previous_batch_stopped():
    data = np.arange(101)
    batches = list(stream_batches(data, seq_len=5, batch_size=4))
    assert len(batches) == 5  # 4 streams of 25 steps, 5 windows of 5
    for (x0, y0), (x1, _) in pairwise(batches):
        np.testing.assert_array_equal(x1[0], x0[-1] + 1)
        np.testing.assert_array_equal(y0, x0 + 1)


def test_one_hot_places_a_single_one():
    ids = np.array([[0, 2], [1, 1]])
    oh = one_hot(ids, 3)
    assert oh.shape == (2, 2, 3)
    np.testing.assert_array_equal(oh.sum(-1), 1)
    np.testing.assert_array_equal(oh.argmax(-1), ids)


def test_adding_problem_target_is_the_sum_of_the_two_marked_numbers():
    x, y = adding_problem(seq_len=20, batch_size=64, rng=np.random.default_rng(0))
    assert x.shape == (20, 64, 2) and y.shape == (64,) and x.dtype == y.dtype == np.float32
    markers = x[..., 1]
    np.testing.assert_array_equal(markers.sum(0), 2)
    assert markers[:10].sum(0).tolist() == [1] * 64  # one marker in each half
    np.testing.assert_array_equal(y, (x[..., 0] * markers).sum(0))


def test_adding_problem_is_reproducible_and_its_mean_predictor_scores_one_sixth():
    a = adding_problem(10, 8, np.random.default_rng(1), dtype=np.float64)
    b = adding_problem(10, 8, np.random.default_rng(1), dtype=np.float64)
    np.testing.assert_array_equal(a[0], b[0])
    _, y = adding_problem(10, 200_000, np.random.default_rng(2), dtype=np.float64)
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 2e-3
