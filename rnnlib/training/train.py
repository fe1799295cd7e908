"""Training loops for the course's models, with progress bars and loss histories.

* :func:`lm_batches`: a fixed, seeded list of random-window batches, so that two
  trainers can be fed exactly the same data.
* :func:`train_numpy_lm` / :func:`train_torch_lm`: the same loop for
  :class:`~rnnlib.training.models.NumpyRNNLM` (hand-written BPTT, :mod:`rnnlib.training.optim`) and for
  :class:`~rnnlib.training.models.TorchRNNLM` (autograd, ``torch.optim``).
* :func:`evaluate_lm`: mean cross-entropy (nats per character) over a whole text.
* :func:`train_adding` / :func:`evaluate_adding` / :func:`adding_experiment`: the
  adding problem with a :class:`~rnnlib.training.models.TorchRNNRegressor`.
* :func:`progress_bar`: the text progress bar the trainers show.
* :func:`input_gradient_norms`: how strongly the prediction depends on each input step.
* :func:`plot_loss_curves`, :func:`plot_parity`, :func:`plot_input_gradient_norms`: figures.

Gradient clipping is :func:`rnnlib.training.clipping.clip_grad_norm` (torch's rule, for NumPy dicts).
Every trainer returns a :class:`TrainHistory`; pass ``progress=False`` to silence the
``tqdm`` bar (tests do).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .clipping import clip_grad_norm, total_grad_norm
from .data import adding_problem, random_windows
from .models import NumpyRNNLM, TorchRNNLM, TorchRNNRegressor
from .optim import Optimizer

Array = np.ndarray
Batch = tuple[Array, Array]


@dataclass
class TrainHistory:
    """What a training run records, one entry per optimisation step.

    Attributes:
        loss: the training loss of each step's batch, before the step's update.
        grad_norm: the global gradient norm of each step, before clipping.
        extra: anything else a trainer wants to report (e.g. a final test error).
    """

    loss: Array
    grad_norm: Array
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.loss)

    def final(self, last: int = 20) -> float:
        """Mean training loss over the last ``last`` steps (a less noisy "final loss")."""
        return float(np.mean(self.loss[-last:]))


def progress_bar(iterable: Iterable[Any], total: int | None = None, desc: str = "") -> Iterable[Any]:
    """A text ``tqdm`` bar on stdout around ``iterable``.

    It redraws at most every 10 seconds, so that a notebook cell's stored output
    holds a line or two per bar rather than one line per redraw.
    """
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stdout, mininterval=10.0, ncols=90, ascii=True)


def _progress(iterable: Iterable[Any], total: int | None, desc: str, progress: bool) -> Iterable[Any]:
    return progress_bar(iterable, total, desc) if progress else iterable


# --------------------------------------------------------------------------------------
# Character-level language model
# --------------------------------------------------------------------------------------


def lm_batches(data: Array, seq_len: int, batch_size: int, steps: int, seed: int) -> list[Batch]:
    """``steps`` batches of random windows (:func:`~rnnlib.training.data.random_windows`) from one seeded generator.

    Returns:
        A list of ``(inputs (T, N), targets (T, N))`` pairs: a fixed list, so that
        several trainers can read the very same batches in the same order.
    """
    rng = np.random.default_rng(seed)
    return [random_windows(data, seq_len, batch_size, rng) for _ in range(steps)]


def train_numpy_lm(
    model: NumpyRNNLM,
    optimizer: Optimizer,
    batches: Sequence[Batch],
    *,
    clip: float | None = None,
    progress: bool = True,
    desc: str = "numpy",
) -> TrainHistory:
    """Train a :class:`NumpyRNNLM`: for each batch, forward, BPTT, clip, step.

    Every window starts from a zero state (the batches are independent windows).

    Args:
        model: updated in place. optimizer: an :mod:`rnnlib.training.optim` optimizer built on ``model.params``.
        batches: ``(inputs (T, N), targets (T, N))`` pairs.
        clip: maximum global gradient norm, or ``None`` (no clipping).
    """
    losses, norms = [], []
    for inputs, targets in _progress(batches, len(batches), desc, progress):
        loss, _ = model.loss_and_grads(inputs, targets)
        grads = model.grads
        norms.append(clip_grad_norm(grads, clip) if clip is not None else total_grad_norm(grads))
        optimizer.step(grads)
        losses.append(loss)
    return TrainHistory(np.array(losses), np.array(norms))


def torch_lm_loss(
    model: TorchRNNLM, inputs: Array, targets: Array, h0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of a :class:`TorchRNNLM` on one batch, and ``h_n``."""
    logits, h_n = model(torch.as_tensor(inputs), h0)
    loss = nn.functional.cross_entropy(logits.reshape(-1, model.vocab_size), torch.as_tensor(targets).reshape(-1))
    return loss, h_n


def train_torch_lm(
    model: TorchRNNLM,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[Batch],
    *,
    clip: float | None = None,
    progress: bool = True,
    desc: str = "torch",
) -> TrainHistory:
    """Train a :class:`TorchRNNLM` on the same batches, with autograd and a ``torch.optim`` optimizer."""
    losses, norms = [], []
    model.train()
    for inputs, targets in _progress(batches, len(batches), desc, progress):
        loss, _ = torch_lm_loss(model, inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        max_norm = clip if clip is not None else math.inf
        norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), max_norm)))
        optimizer.step()
        losses.append(loss.item())
    return TrainHistory(np.array(losses), np.array(norms))


def evaluate_lm(model: NumpyRNNLM | TorchRNNLM, data: Array, num_streams: int = 16) -> float:
    """Mean cross-entropy (nats per character) of predicting every next character of ``data``.

    ``data`` is cut into ``num_streams`` equal contiguous pieces read in parallel, each
    from a zero state, in one pass (so the context grows along each piece). Divide by
    ``ln 2`` for bits per character.
    """
    data = np.asarray(data)
    length = (len(data) - 1) // num_streams
    inputs = data[: length * num_streams].reshape(num_streams, length).T  # (length, N)
    targets = data[1 : length * num_streams + 1].reshape(num_streams, length).T
    if isinstance(model, NumpyRNNLM):
        loss, _ = model.loss(inputs, targets)
        model._cache = None
        return loss
    with torch.no_grad():
        was_training = model.training
        model.eval()
        loss_t, _ = torch_lm_loss(model, inputs, targets)
        model.train(was_training)
    return float(loss_t)


# --------------------------------------------------------------------------------------
# The adding problem
# --------------------------------------------------------------------------------------


def train_adding(
    model: nn.Module,
    *,
    seq_len: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    clip: float | None = 1.0,
    seed: int = 0,
    progress: bool = True,
    desc: str = "adding",
) -> TrainHistory:
    """Train a regressor ``x (T, N, 2) -> (N,)`` on fresh adding-problem batches (mean squared error, Adam,
    optional clipping): a :class:`TorchRNNRegressor`, or the gated study's ``CellRegressor``.

    Batch ``k`` is drawn from ``np.random.default_rng(seed)``, so two models trained
    with the same ``seed`` see the same data.
    """
    dtype = next(model.parameters()).dtype
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses, norms = [], []
    model.train()
    for _ in _progress(range(steps), steps, desc, progress):
        x, y = adding_problem(seq_len, batch_size, rng, dtype=np_dtype)
        loss = nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), clip if clip is not None else math.inf)))
        optimizer.step()
        losses.append(loss.item())
    return TrainHistory(np.array(losses), np.array(norms))


def evaluate_adding(model: nn.Module, seq_len: int, num: int = 1000, seed: int = 12345) -> float:
    """Mean squared error on ``num`` fresh sequences (a fixed test set for a given ``seed``).

    For reference, always predicting 1 (the mean target) scores ``1/6 ~ 0.1667``.
    """
    dtype = next(model.parameters()).dtype
    x, y = adding_problem(
        seq_len, num, np.random.default_rng(seed), dtype=np.float64 if dtype == torch.float64 else np.float32
    )
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y)))


def adding_experiment(
    seq_len: int,
    num_layers: int,
    nonlinearity: str = "tanh",
    *,
    hidden_size: int = 32,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-3,
    clip: float | None = 1.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> tuple[TorchRNNRegressor, TrainHistory]:
    """Build a :class:`TorchRNNRegressor` after ``torch.manual_seed(seed)``, train it, and test it.

    Returns:
        The trained model and its history; ``history.extra`` holds ``test_mse``
        (:func:`evaluate_adding`) and ``params`` (the number of parameters).
    """
    torch.manual_seed(seed)
    model = TorchRNNRegressor(2, hidden_size, num_layers, nonlinearity, dtype=dtype)
    desc = f"T={seq_len} L={num_layers} {nonlinearity}"
    history = train_adding(
        model,
        seq_len=seq_len,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        clip=clip,
        seed=seed,
        progress=progress,
        desc=desc,
    )
    history.extra["test_mse"] = evaluate_adding(model, seq_len)
    history.extra["params"] = sum(p.numel() for p in model.parameters())
    return model, history


def input_gradient_norms(model: nn.Module, x: torch.Tensor) -> Array:
    """``|| d prediction / d x_t ||`` for every step ``t``, averaged over the batch (any regressor
    ``x (T, N, D) -> (N,)``).

    Args:
        x: ``(T, N, D)`` inputs.

    Returns:
        ``(T,)``: how much the output read after step ``T`` can still be moved by the
        input at step ``t``; a signal from step ``t`` must travel ``T - t`` recurrent
        steps (plus the layers) to reach the output.
    """
    x = x.clone().requires_grad_(True)
    model.zero_grad()
    model(x).sum().backward()  # the N predictions are independent: one backward gives all
    assert x.grad is not None
    return x.grad.norm(dim=-1).mean(dim=1).detach().cpu().numpy()


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def moving_average(values: Array, window: int) -> Array:
    """Trailing mean over ``window`` values (shorter at the start): a readable noisy loss curve."""
    values = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_loss_curves(
    curves: Mapping[str, Array],
    *,
    ax: Any = None,
    title: str | None = None,
    ylabel: str = "training loss",
    smooth: int = 1,
    baseline: float | None = None,
    baseline_label: str = "baseline",
    styles: Mapping[str, dict[str, Any]] | None = None,
) -> Any:
    """Plot loss histories against the step number on one set of axes.

    Args:
        curves: ``{label: (steps,) losses}``.
        ax: axes to draw on (a new figure when ``None``).
        smooth: moving-average window (1: raw values).
        baseline: a horizontal reference line (e.g. the loss of a trivial predictor).
        styles: per-label keyword arguments for ``ax.plot``.

    Returns:
        The ``Figure``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
    else:
        fig = ax.figure
    fig.patch.set_facecolor("white")
    for label, values in curves.items():
        y = moving_average(values, smooth) if smooth > 1 else np.asarray(values)
        ax.plot(np.arange(1, len(y) + 1), y, label=label, **(styles or {}).get(label, {}))
    if baseline is not None:
        ax.axhline(baseline, color="gray", linestyle=":", linewidth=1, label=baseline_label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_parity(loss_a: Array, loss_b: Array, labels: tuple[str, str] = ("NumPy", "PyTorch")) -> Any:
    """Two loss curves overlaid (left) and their absolute difference per step on a log scale (right).

    Steps where the two losses are exactly equal have no point on the right panel (log of 0).

    Returns:
        The ``Figure``.
    """
    import matplotlib.pyplot as plt

    loss_a, loss_b = np.asarray(loss_a), np.asarray(loss_b)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    plot_loss_curves(
        {labels[0]: loss_a, labels[1]: loss_b},
        ax=ax1,
        ylabel="training loss (nats/char)",
        styles={labels[0]: dict(linewidth=3, alpha=0.5), labels[1]: dict(linewidth=1, color="black")},
    )
    diff = np.abs(loss_a - loss_b)
    steps = np.arange(1, len(diff) + 1)
    ax2.semilogy(steps, np.where(diff > 0, diff, np.nan), ".", markersize=3)
    ax2.set_xlabel("step")
    ax2.set_ylabel(f"|loss {labels[0]} - loss {labels[1]}|")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_input_gradient_norms(norms: Mapping[str, Array], *, ax: Any = None, title: str | None = None) -> Any:
    """:func:`input_gradient_norms` curves on a log scale against the lag ``T - t``.

    Args:
        norms: ``{label: (T,) norms}`` (step ``t = 0 .. T-1``).

    Returns:
        The ``Figure``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
    else:
        fig = ax.figure
    fig.patch.set_facecolor("white")
    for label, g in norms.items():
        g = np.asarray(g)
        lag = len(g) - 1 - np.arange(len(g))  # steps between x_t and the prediction
        ax.semilogy(lag, g, label=label)
    ax.set_xlabel("lag: steps between the input and the prediction")
    ax.set_ylabel(r"$\|\partial \hat y / \partial x_t\|$")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def log_decay_per_step(norms: Array, skip: int = 2) -> float:
    """The average factor by which a :func:`input_gradient_norms` curve shrinks per step of lag.

    A least-squares line through ``log10(norms)`` against the lag, ignoring the ``skip``
    smallest lags (where the output layer and the last steps dominate); returns ``10**slope``.
    """
    g = np.asarray(norms)[: len(norms) - skip]
    lag = len(norms) - 1 - np.arange(len(g))
    slope = np.polyfit(lag, np.log10(g), 1)[0]
    return float(10.0**slope)
