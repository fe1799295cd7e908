"""Models built on the stack: a character-level language model in NumPy and its PyTorch twin.

The language model reads one character per step, as a one-hot vector of size ``V``
(the vocabulary), runs an ``L``-layer Elman stack of width ``H``, and maps the top
layer's state to ``V`` scores with an output layer laid out like ``nn.Linear``::

    h_t^(L) = stack(x_1 .. x_t)                  (T, N, H)
    y_t     = W_ho h_t^(L) + b_ho                 W_ho: (V, H), b_ho: (V,)
    loss    = mean over t, n of  -log softmax(y_t)[target]

* :class:`NumpyRNNLM`: forward, hand-written backward (``NumpyRNN.backward`` plus the
  output layer and the softmax cross-entropy), ``sample(temperature)``.
* :class:`TorchRNNLM`: the same model as an ``nn.Module`` (``nn.RNN`` or
  :class:`~rnnlib.TorchRNN`, then ``nn.Linear``); its ``state_dict`` loads into
  :class:`NumpyRNNLM` and back (keys ``rnn.weight_ih_l0`` ..., ``fc.weight``, ``fc.bias``).
* :class:`TorchRNNRegressor`: ``nn.RNN`` + ``nn.Linear(H, 1)`` read at the last step,
  for the adding problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..numpy_rnn import NumpyRNN
from ..params import to_numpy
from ..torch_rnn import TorchRNN
from .data import one_hot

Array = np.ndarray


def log_softmax(logits: Array) -> Array:
    """``log softmax`` over the last axis, computed stably (the maximum subtracted first)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits: Array, targets: Array) -> tuple[float, Array]:
    """Mean cross-entropy of ``softmax(logits)`` against integer targets, and its gradient.

    Args:
        logits: ``(..., V)`` scores; targets: ``(...)`` integer classes.

    Returns:
        The mean over all positions of ``-log p[target]`` (as ``F.cross_entropy``
        with ``reduction='mean'``), and ``d_logits`` with the shape of ``logits``:
        ``(softmax(logits) - onehot(target)) / number_of_positions``.
    """
    logp = log_softmax(logits)
    count = targets.size
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    loss = -picked.sum() / count
    d_logits = np.exp(logp)
    np.put_along_axis(
        d_logits, targets[..., None], np.take_along_axis(d_logits, targets[..., None], axis=-1) - 1.0, axis=-1
    )
    d_logits /= count
    return float(loss), d_logits


def softmax_with_temperature(logits: Array, temperature: float) -> Array:
    """``softmax(logits / temperature)`` over the last axis; ``temperature == 0`` gives the one-hot argmax.

    As the temperature goes to 0 the distribution concentrates on the largest score
    (its limit is the argmax); as it grows, it flattens towards uniform.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        out = np.zeros_like(logits, dtype=np.float64)
        np.put_along_axis(out, np.argmax(logits, axis=-1)[..., None], 1.0, axis=-1)
        return out
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def sample_index(probs: Array, rng: np.random.Generator) -> int:
    """Draw one index from a probability vector by inverting its cumulative sum with one uniform number."""
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(probs) - 1))


class NumpyRNNLM:
    """A character-level language model in NumPy: one-hot input, ``NumpyRNN`` stack, output layer.

    Args:
        vocab_size: ``V`` (input and output size).
        hidden_size: ``H``; num_layers: ``L``; nonlinearity: ``'tanh'`` or ``'relu'``.
        dtype: of parameters and computations.
        seed: seeds the initialisation (``nn.RNN``'s and ``nn.Linear``'s ranges:
            uniform in ``[-1/sqrt(H), 1/sqrt(H)]``).

    Attributes:
        rnn: the :class:`~rnnlib.NumpyRNN` stack.
        W_ho: ``(V, H)``; b_ho: ``(V,)``: the output layer, ``nn.Linear``'s layout.
        params / grads: ``{name: array}`` views keyed like :class:`TorchRNNLM`'s state dict;
            the arrays are the model's own, so an optimizer updating them in place
            updates the model.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        *,
        dtype: Any = np.float64,
        seed: int | None = None,
    ) -> None:
        self.vocab_size = vocab_size
        self.rnn = NumpyRNN(vocab_size, hidden_size, num_layers, nonlinearity, dtype=dtype, seed=seed)
        self.dtype = self.rnn.dtype
        bound = 1.0 / math.sqrt(hidden_size)
        rng = self.rnn.rng
        self.W_ho = rng.uniform(-bound, bound, (vocab_size, hidden_size)).astype(self.dtype)
        self.b_ho = rng.uniform(-bound, bound, (vocab_size,)).astype(self.dtype)
        self.dW_ho = np.zeros_like(self.W_ho)
        self.db_ho = np.zeros_like(self.b_ho)
        self._cache: dict[str, Any] | None = None

    @property
    def hidden_size(self) -> int:
        return self.rnn.hidden_size

    @property
    def num_layers(self) -> int:
        return self.rnn.num_layers

    def __repr__(self) -> str:
        return (
            f"NumpyRNNLM(vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, nonlinearity={self.rnn.nonlinearity!r})"
        )

    # -- parameters ------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Array]:
        """``{name: array}`` with ``rnn.*`` then ``fc.weight``, ``fc.bias`` (the arrays themselves)."""
        return {**{f"rnn.{k}": v for k, v in self.rnn.params.items()}, "fc.weight": self.W_ho, "fc.bias": self.b_ho}

    @property
    def grads(self) -> dict[str, Array]:
        """The gradients of the last :meth:`backward`, keyed like :attr:`params`."""
        return {**{f"rnn.{k}": v for k, v in self.rnn.grads.items()}, "fc.weight": self.dW_ho, "fc.bias": self.db_ho}

    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    def state_dict(self) -> dict[str, Array]:
        """Copies of :attr:`params`."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :class:`TorchRNNLM` state dict (tensors) or a dict of arrays with the same keys."""
        expected = set(self.params)
        got = set(state_dict)
        if got != expected:
            raise ValueError(
                f"state dict keys differ: missing {sorted(expected - got)}, unexpected {sorted(got - expected)}"
            )
        self.rnn.load_state_dict({k[4:]: v for k, v in state_dict.items() if k.startswith("rnn.")})
        for attr, key in (("W_ho", "fc.weight"), ("b_ho", "fc.bias")):
            value = np.array(to_numpy(state_dict[key]), dtype=self.dtype)
            if value.shape != getattr(self, attr).shape:
                raise ValueError(f"{key} must have shape {getattr(self, attr).shape}, got {value.shape}")
            setattr(self, attr, value)

    @classmethod
    def from_torch(cls, module: TorchRNNLM, *, dtype: Any = np.float64) -> NumpyRNNLM:
        """A :class:`NumpyRNNLM` with the configuration and weights of a :class:`TorchRNNLM`."""
        model = cls(
            module.vocab_size,
            module.rnn.hidden_size,
            module.rnn.num_layers,
            module.rnn.nonlinearity,
            dtype=dtype,
            seed=0,
        )
        model.load_state_dict(module.state_dict())
        return model

    # -- forward / backward ----------------------------------------------------------------

    def forward(self, inputs: Array, h0: Array | None = None) -> tuple[Array, Array]:
        """Scores for the next character at every step.

        Args:
            inputs: ``(T, N)`` integer ids; h0: ``(L, N, H)`` or ``None`` (zeros).

        Returns:
            ``logits (T, N, V)`` and ``h_n (L, N, H)``.
        """
        inputs = np.asarray(inputs)
        x = one_hot(inputs, self.vocab_size, self.dtype)  # (T, N, V)
        out, h_n = self.rnn.forward(x, h0)  # out: (T, N, H), the top layer's states
        logits = out @ self.W_ho.T + self.b_ho  # (T, N, V)
        self._cache = {"out": out}
        return logits, h_n

    def loss(self, inputs: Array, targets: Array, h0: Array | None = None) -> tuple[float, Array]:
        """Forward pass and mean cross-entropy; keeps what :meth:`backward` needs.

        Returns:
            The loss (nats per character) and ``h_n (L, N, H)``.
        """
        logits, h_n = self.forward(inputs, h0)
        loss, d_logits = softmax_cross_entropy(logits, np.asarray(targets))
        assert self._cache is not None
        self._cache["d_logits"] = d_logits
        return loss, h_n

    def backward(self, d_h_n: Array | None = None) -> Array:
        """Gradients of the last :meth:`loss` with respect to every parameter (filled into :attr:`grads`).

        The output layer first, then backpropagation through time in the stack::

            dW_ho = sum_{t,n} d_logits[t,n]^T h_t^(L)[n]      db_ho = sum_{t,n} d_logits[t,n]
            d out = d_logits @ W_ho                            -> NumpyRNN.backward

        Args:
            d_h_n: ``(L, N, H)`` gradient arriving at the final states (``None``: zeros).

        Returns:
            ``d_h0 (L, N, H)``, the gradient with respect to the initial state.
        """
        if self._cache is None or "d_logits" not in self._cache:
            raise ValueError("backward() needs a loss() first")
        out, d_logits = self._cache["out"], self._cache["d_logits"]
        T, N, V = d_logits.shape
        H = out.shape[-1]
        flat = d_logits.reshape(T * N, V)
        self.dW_ho = flat.T @ out.reshape(T * N, H)  # (V, H)
        self.db_ho = flat.sum(axis=0)  # (V,)
        d_out = d_logits @ self.W_ho  # (T, N, H)
        _, d_h0 = self.rnn.backward(d_out, d_h_n)
        return d_h0

    def loss_and_grads(self, inputs: Array, targets: Array, h0: Array | None = None) -> tuple[float, Array]:
        """:meth:`loss` then :meth:`backward`; returns the loss and ``h_n``."""
        loss, h_n = self.loss(inputs, targets, h0)
        self.backward()
        return loss, h_n

    # -- generation ------------------------------------------------------------------------

    def sample(
        self,
        prime: Sequence[int],
        length: int,
        temperature: float = 1.0,
        rng: np.random.Generator | None = None,
        carry_state: bool = True,
    ) -> Array:
        """Generate ``length`` ids after reading ``prime``, one character at a time.

        At each step the next id is drawn from ``softmax(y_t / temperature)``; the
        drawn character is fed back as the next input. Temperature below 1 sharpens
        the distribution, above 1 flattens it; ``temperature == 0`` takes the argmax
        (the limit of temperature -> 0), and needs no ``rng``.

        Args:
            prime: at least one id to start from; length: how many ids to generate.
            rng: seeded generator for the draws.
            carry_state: ``False`` resets the state to zero before every character
                (a mistake worth seeing: the model then only knows the last character).

        Returns:
            ``(length,)`` int64 ids (the prime not included).
        """
        if len(prime) == 0:
            raise ValueError("sample() needs at least one prime id")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if temperature > 0 and rng is None:
            raise ValueError("sampling with temperature > 0 needs rng (a seeded np.random.Generator)")
        was_training = self.rnn.training
        self.rnn.eval()
        L, H = self.num_layers, self.hidden_size
        h = np.zeros((L, 1, H), dtype=self.dtype)
        logits, h = self.forward(np.asarray(prime).reshape(-1, 1), h)
        last = logits[-1, 0]
        out = np.empty(length, dtype=np.int64)
        for i in range(length):
            if temperature == 0:
                nxt = int(np.argmax(last))
            else:
                nxt = sample_index(softmax_with_temperature(last, temperature), rng)  # type: ignore[arg-type]
            out[i] = nxt
            h0 = h if carry_state else np.zeros_like(h)
            logits, h = self.forward(np.array([[nxt]]), h0)
            last = logits[-1, 0]
        self.rnn.train(was_training)
        self._cache = None
        return out


class TorchRNNLM(nn.Module):
    """The PyTorch twin of :class:`NumpyRNNLM`: one-hot input, ``nn.RNN`` (or ``TorchRNN``), ``nn.Linear``.

    Args:
        vocab_size: ``V``; hidden_size: ``H``; num_layers: ``L``; nonlinearity.
        from_scratch: use :class:`~rnnlib.TorchRNN` instead of ``nn.RNN`` (same weights
            after the same seed).
        dtype: of the parameters (e.g. ``torch.float64`` for parity checks).

    ``forward(inputs (T, N) long, h0 (L, N, H) or None) -> (logits (T, N, V), h_n (L, N, H))``.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        *,
        from_scratch: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        rnn_cls = TorchRNN if from_scratch else nn.RNN
        self.rnn = rnn_cls(vocab_size, hidden_size, num_layers, nonlinearity, dtype=dtype)
        self.fc = nn.Linear(hidden_size, vocab_size, dtype=dtype)

    def forward(self, inputs: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = nn.functional.one_hot(inputs, self.vocab_size).to(self.fc.weight.dtype)  # (T, N, V)
        out, h_n = self.rnn(x, h0)
        return self.fc(out), h_n


class TorchRNNRegressor(nn.Module):
    """``nn.RNN`` + ``nn.Linear(H, 1)`` on the top layer's last state: one number per sequence.

    ``forward(x (T, N, D)) -> (N,)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, num_layers, nonlinearity, dtype=dtype)
        self.fc = nn.Linear(hidden_size, 1, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[-1]).squeeze(-1)
