"""Data for training: the shipped corpus, a character vocabulary, batches, and synthetic tasks.

Shapes follow ``nn.RNN``'s default time-major layout: ``T`` steps, ``N`` sequences.

* :func:`load_corpus`: a text shipped inside the package (no download).
* :class:`CharVocab`: sorted characters <-> integer ids.
* :func:`train_val_split`: the last fraction of a sequence as validation.
* :func:`random_windows`: a seeded batch of random windows, inputs ``(T, N)`` and
  next-character targets ``(T, N)``.
* :func:`stream_batches`: consecutive ``(T, N)`` windows of ``N`` parallel streams
  (truncated BPTT with a hidden state carried from one batch to the next).
* :func:`one_hot`: ``(T, N)`` ids to ``(T, N, V)`` vectors.
* :func:`known_word_share`: how much of a generated text is made of real words.
* :func:`adding_problem`: Hochreiter & Schmidhuber's adding problem, the sequence
  length ``T`` setting the time lag to bridge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from importlib import resources

import numpy as np

Array = np.ndarray

CORPORA = ("genesis_kjv",)


def load_corpus(name: str = "genesis_kjv") -> str:
    """The text of a corpus shipped in ``rnnlib/training/corpora`` (see its README for source and licence).

    Args:
        name: ``'genesis_kjv'``, the Book of Genesis, King James Version (public domain).

    Returns:
        The whole file as one string (UTF-8, newlines kept).
    """
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}: expected one of {CORPORA}")
    return (resources.files("rnnlib.training") / "corpora" / f"{name}.txt").read_text(encoding="utf-8")


class CharVocab:
    """A character vocabulary: the distinct characters of a text, sorted, numbered from 0.

    Args:
        text: the characters to index.

    Attributes:
        chars: the sorted list of distinct characters; ``chars[i]`` has id ``i``.
        stoi: ``{character: id}``.
    """

    def __init__(self, text: str) -> None:
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        self.chars: list[str] = sorted(set(text))
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters)"

    def encode(self, text: str) -> Array:
        """``(len(text),)`` int64 ids. Raises ``KeyError`` naming an unknown character."""
        try:
            return np.array([self.stoi[c] for c in text], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int] | Array) -> str:
        """The string spelled by a sequence of ids."""
        return "".join(self.chars[int(i)] for i in np.asarray(ids).ravel())


def train_val_split(data: Array, val_fraction: float = 0.1) -> tuple[Array, Array]:
    """Split a 1-D sequence into its first ``1 - val_fraction`` (train) and its last part (validation).

    The split is by position, not at random: neighbouring characters are strongly
    correlated, so a random split would leak the validation text into training.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(round(len(data) * (1.0 - val_fraction)))
    return data[:cut], data[cut:]


def random_windows(data: Array, seq_len: int, batch_size: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """A batch of ``N`` windows of ``T + 1`` consecutive ids, starting at random positions.

    Args:
        data: ``(len,)`` ids; seq_len: ``T``; batch_size: ``N``;
        rng: the generator that draws the start positions (seed it for reproducible batches).

    Returns:
        ``inputs (T, N)`` and ``targets (T, N)`` with ``targets[t] == inputs[t + 1]``:
        at every step the target is the next character.
    """
    if len(data) < seq_len + 1:
        raise ValueError(f"data of length {len(data)} is too short for windows of {seq_len} + 1")
    starts = rng.integers(0, len(data) - seq_len, size=batch_size)  # start + seq_len <= len - 1
    idx = starts[None, :] + np.arange(seq_len + 1)[:, None]  # (T + 1, N)
    window = np.asarray(data)[idx]
    return window[:-1], window[1:]


def stream_batches(data: Array, seq_len: int, batch_size: int) -> Iterator[tuple[Array, Array]]:
    """One epoch of consecutive windows over ``N`` parallel streams (for a carried hidden state).

    ``data`` is cut into ``N`` equal streams, one per column; batch ``k`` holds steps
    ``k*T .. (k+1)*T - 1`` of every stream, so column ``n`` of batch ``k + 1`` continues
    column ``n`` of batch ``k`` where it stopped, and the final hidden state of one
    batch is the right initial state of the next.

    Yields:
        ``inputs (T, N)`` and ``targets (T, N)`` (the next characters).
    """
    data = np.asarray(data)
    stream_len = (len(data) - 1) // batch_size
    if stream_len < seq_len:
        raise ValueError(f"data of length {len(data)} is too short for {batch_size} streams of {seq_len} steps")
    x = data[: stream_len * batch_size].reshape(batch_size, stream_len).T  # (stream_len, N)
    y = data[1 : stream_len * batch_size + 1].reshape(batch_size, stream_len).T
    for start in range(0, stream_len - seq_len + 1, seq_len):
        yield x[start : start + seq_len], y[start : start + seq_len]


def one_hot(ids: Array, num_classes: int, dtype: type = np.float64) -> Array:
    """``ids`` of any shape ``S`` to one-hot vectors of shape ``S + (num_classes,)``."""
    ids = np.asarray(ids)
    out: Array = np.zeros(ids.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1.0, axis=-1)
    return out


def adding_problem(
    seq_len: int, batch_size: int, rng: np.random.Generator, dtype: type = np.float32
) -> tuple[Array, Array]:
    """A batch of the adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015).

    Each sequence has ``T`` steps of two features: a number drawn uniformly in
    ``[0, 1)`` and a marker that is 1 at exactly two steps and 0 elsewhere. The
    target is the sum of the two marked numbers, to be output after the last step.
    The first marker falls in the first half of the sequence and the second in the
    second half (as in Le et al.), so the network must hold a number for about
    ``T/2`` steps or more: ``T`` is the difficulty knob. Predicting the mean, 1,
    every time gives a mean squared error of ``Var(u1 + u2) = 1/6``.

    Args:
        seq_len: ``T`` (at least 2); batch_size: ``N``; rng: seeded generator.

    Returns:
        ``x (T, N, 2)`` (``x[..., 0]`` numbers, ``x[..., 1]`` markers) and ``y (N,)``.
    """
    if seq_len < 2:
        raise ValueError(f"the adding problem needs seq_len >= 2, got {seq_len}")
    T, N, half = seq_len, batch_size, seq_len // 2
    values: Array = rng.random((T, N)).astype(dtype)
    first = rng.integers(0, half, size=N)
    second = rng.integers(half, T, size=N)
    markers: Array = np.zeros((T, N), dtype=dtype)
    cols = np.arange(N)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = values[first, cols] + values[second, cols]  # in ``dtype``, from the very numbers in x
    return x, y


WORD = re.compile(r"[A-Za-z]+")


def known_word_share(text: str, words: set[str]) -> float:
    """The fraction of the words (runs of letters) of ``text`` that belong to ``words``.

    A crude measure of generated text: ``known_word_share(sample, set(WORD.findall(corpus)))``
    is 1 for text made only of words the corpus contains. Returns 0 for a text without words.
    """
    found = WORD.findall(text)
    return sum(w in words for w in found) / len(found) if found else 0.0
