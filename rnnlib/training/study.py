"""A fair comparison of depths: the protocol, one run of it, and the summary of many.

Chapter 9 asks what depth buys a stacked RNN. One training run per configuration cannot
answer that: a run is one draw from a distribution that moves with the seed, the
learning rate, and even the rounding of the machine it ran on. This module holds the
protocol of the course's depth study (``experiments/depth_study.py`` runs it and stores
every run's result in ``experiments/results/``):

* every *arm* (task, nonlinearity, depth ``L``, width ``H``) is trained with each of
  several learning rates and several seeds;
* each arm gets its **own** learning rate: the one with the best median *validation*
  score over the seeds, so a depth is not judged at a learning rate tuned for another;
* the arms are compared on a separate *test* set, by the median over seeds, the spread
  (minimum and maximum), and, for the adding problem, how many seeds solved the task;
* depth is compared twice: at the same width ``H`` (deeper stacks have more
  parameters) and at a matched parameter count (deeper stacks are narrower).

* :func:`adding_run` / :func:`lm_run`: one run of the protocol, returning plain numbers.
* :func:`regressor_parameters` / :func:`lm_parameters`: parameter counts by formula.
* :func:`best_learning_rates`, :func:`arm_summary`: the statistics of a set of runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Run = Mapping[str, Any]

# The adding problem: a test MSE below this (under a third of the trivial 1/6) counts as solved.
SOLVED_MSE = 0.05
# Validation and test sets of the adding problem: fixed seeds, never used for training.
ADDING_VAL_SEED, ADDING_TEST_SEED = 54321, 12345


@dataclass(frozen=True)
class Arm:
    """One configuration of the study: a task, a nonlinearity, a depth and a width."""

    task: str  # "adding" or "lm"
    nonlinearity: str
    num_layers: int
    hidden_size: int

    @property
    def label(self) -> str:
        return f"{self.nonlinearity} L={self.num_layers} H={self.hidden_size}"


def regressor_parameters(num_layers: int, hidden_size: int, input_size: int = 2) -> int:
    """Parameters of ``TorchRNNRegressor(input_size, H, L)``: the stack plus ``nn.Linear(H, 1)``.

    Layer 1 has ``H*D + H*H + 2H``, every other layer ``2*H*H + 2H``; the read-out ``H + 1``.
    """
    H, D, L = hidden_size, input_size, num_layers
    return (H * D + H * H + 2 * H) + (L - 1) * (2 * H * H + 2 * H) + H + 1


def lm_parameters(num_layers: int, hidden_size: int, vocab_size: int) -> int:
    """Parameters of a character LM: one-hot input of size ``V``, the stack, ``nn.Linear(H, V)``."""
    return (
        regressor_parameters(num_layers, hidden_size, vocab_size) - (hidden_size + 1) + (hidden_size + 1) * vocab_size
    )


def adding_run(
    nonlinearity: str,
    num_layers: int,
    hidden_size: int,
    lr: float,
    seed: int,
    *,
    seq_len: int = 20,
    steps: int = 1200,
    batch_size: int = 32,
    clip: float = 1.0,
    curve_every: int = 50,
    dtype: torch.dtype = torch.float32,
    keep_model: bool = False,
) -> dict[str, Any]:
    """Train one adding-problem regressor under the study's protocol; plain numbers out.

    The weights come from ``torch.manual_seed(seed)`` and the batches from
    ``np.random.default_rng(seed)`` (:func:`rnnlib.training.train.adding_experiment`).

    Returns:
        ``{"val": MSE on 1000 validation sequences, "test": MSE on 1000 test sequences,
        "params": int, "curve": training loss averaged over blocks of curve_every steps}``,
        and the trained ``"model"`` if ``keep_model``.
    """
    from .train import adding_experiment, evaluate_adding

    model, history = adding_experiment(
        seq_len,
        num_layers,
        nonlinearity,
        hidden_size=hidden_size,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        clip=clip,
        seed=seed,
        dtype=dtype,
        progress=False,
    )
    model.eval()
    val = evaluate_adding(model, seq_len, num=1000, seed=ADDING_VAL_SEED)
    test = evaluate_adding(model, seq_len, num=1000, seed=ADDING_TEST_SEED)
    result = {
        "val": _finite(val),
        "test": _finite(test),
        "params": int(history.extra["params"]),
        "curve": _block_means(history.loss, curve_every),
    }
    if keep_model:
        result["model"] = model
    return result


def lm_run(
    nonlinearity: str,
    num_layers: int,
    hidden_size: int,
    lr: float,
    seed: int,
    *,
    steps: int = 600,
    seq_len: int = 32,
    batch_size: int = 32,
    clip: float = 1.0,
    curve_every: int = 50,
) -> dict[str, Any]:
    """Train one character LM on Genesis (NumPy, float64, Adam) under the study's protocol.

    Weights from ``NumpyRNNLM(..., seed=seed)``, batches from ``lm_batches(..., seed=seed)``.
    The validation text (the book's last 10%) is cut in two halves: the first scores the
    learning rates (``val``), the second is the test set (``test``), both in bits per character.
    A run whose loss becomes ``nan`` scores ``inf``.
    """
    from .data import CharVocab, load_corpus, train_val_split
    from .models import NumpyRNNLM
    from .optim import Adam
    from .train import evaluate_lm, lm_batches, train_numpy_lm

    text = load_corpus("genesis_kjv")
    vocab = CharVocab(text)
    train_ids, held_out = train_val_split(vocab.encode(text), val_fraction=0.1)
    half = len(held_out) // 2
    model = NumpyRNNLM(len(vocab), hidden_size, num_layers, nonlinearity, seed=seed)
    batches = lm_batches(train_ids, seq_len, batch_size, steps, seed=seed)
    with np.errstate(all="ignore"):
        history = train_numpy_lm(model, Adam(model.params, lr=lr), batches, clip=clip, progress=False)
        val = evaluate_lm(model, held_out[:half]) / math.log(2)
        test = evaluate_lm(model, held_out[half:]) / math.log(2)
    return {
        "val": _finite(val),
        "test": _finite(test),
        "params": model.num_parameters(),
        "curve": _block_means(history.loss, curve_every),
    }


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else math.inf


def _block_means(values: np.ndarray, block: int) -> list[float]:
    values = np.asarray(values, dtype=np.float64)
    n = len(values) // block * block
    means = values[:n].reshape(-1, block).mean(axis=1)
    return [float(v) if math.isfinite(v) else math.inf for v in means]


# --------------------------------------------------------------------------------------
# Statistics over runs
# --------------------------------------------------------------------------------------


def run_key(run: Run) -> tuple[Any, ...]:
    """What identifies a run of the study: task, nonlinearity, depth, width, learning rate, seed."""
    return (run["task"], run["nonlinearity"], run["num_layers"], run["hidden_size"], run["lr"], run["seed"])


def arm_of(run: Run) -> Arm:
    return Arm(run["task"], run["nonlinearity"], run["num_layers"], run["hidden_size"])


def runs_of(runs: Iterable[Run], arm: Arm, lr: float | None = None) -> list[Run]:
    """The runs of one arm (and one learning rate, if given), sorted by seed."""
    chosen = [r for r in runs if arm_of(r) == arm and (lr is None or r["lr"] == lr)]
    return sorted(chosen, key=lambda r: r["seed"])


def best_learning_rates(runs: Sequence[Run]) -> dict[Arm, float]:
    """For every arm, the learning rate with the lowest median validation score over seeds.

    Ties (e.g. several learning rates whose median is ``inf``) go to the smallest rate.
    The test scores are never looked at: they stay an unbiased comparison.
    """
    best: dict[Arm, float] = {}
    for arm in sorted({arm_of(r) for r in runs}, key=_arm_key):
        lrs = sorted({r["lr"] for r in runs_of(runs, arm)})
        best[arm] = min(lrs, key=lambda lr: (float(np.median([r["val"] for r in runs_of(runs, arm, lr)])), lr))
    return best


def arm_summary(runs: Sequence[Run], arm: Arm, lr: float) -> dict[str, Any]:
    """Median, minimum and maximum test score over seeds; seeds that solved (adding problem)."""
    chosen = runs_of(runs, arm, lr)
    test = np.array([r["test"] for r in chosen])
    summary: dict[str, Any] = {
        "seeds": [r["seed"] for r in chosen],
        "test": test.tolist(),
        "median": float(np.median(test)),
        "min": float(test.min()),
        "max": float(test.max()),
        "params": chosen[0]["params"],
    }
    if arm.task == "adding":
        summary["solved"] = [r["seed"] for r in chosen if r["test"] < SOLVED_MSE]
    return summary


def _arm_key(arm: Arm) -> tuple[str, str, int, int]:
    return (arm.task, arm.nonlinearity, arm.num_layers, arm.hidden_size)


# --------------------------------------------------------------------------------------
# Reading a stored study, tables and a figure
# --------------------------------------------------------------------------------------


def load_study(path: Any) -> dict[str, Any]:
    """A study written by ``experiments/depth_study.py``: ``protocol``, ``environment``, ``runs``."""
    import json
    from pathlib import Path

    # a diverged run scores inf, which json writes as Infinity and reads back as float("inf")
    return json.loads(Path(path).read_text())


def arms_of(runs: Sequence[Run], task: str) -> list[Arm]:
    """The arms of one task, ordered by nonlinearity, then depth, then width."""
    return sorted({arm_of(r) for r in runs if r["task"] == task}, key=_arm_key)


def learning_rate_table(runs: Sequence[Run], task: str) -> str:
    """Median validation score of every arm at every learning rate; ``*`` marks the arm's choice."""
    task_runs = [r for r in runs if r["task"] == task]
    best = best_learning_rates(task_runs)
    lrs = sorted({r["lr"] for r in task_runs})
    unit = "MSE" if task == "adding" else "bits/char"
    lines = [f"{'median validation ' + unit:22s}" + "".join(f"{'lr ' + format(lr, 'g'):>11s}" for lr in lrs)]
    for arm in arms_of(task_runs, task):
        cells = []
        for lr in lrs:
            med = float(np.median([r["val"] for r in runs_of(task_runs, arm, lr)]))
            cells.append(f"{_fmt(med, task):>10s}{'*' if best[arm] == lr else ' '}")
        lines.append(f"{arm.label:22s}" + "".join(cells))
    return "\n".join(lines)


def summary_table(runs: Sequence[Run], task: str) -> str:
    """Every arm at its own learning rate: parameters, test median, [min, max], solved seeds."""
    task_runs = [r for r in runs if r["task"] == task]
    best = best_learning_rates(task_runs)
    unit = "test MSE" if task == "adding" else "test bits/char"
    head = f"{'':22s}{'params':>7s}{'lr':>7s}   {unit + ': median':>22s}  {'[min, max]':>16s}"
    if task == "adding":
        head += "   solved (seeds)"
    lines = [head]
    for arm in arms_of(task_runs, task):
        s = arm_summary(task_runs, arm, best[arm])
        line = (
            f"{arm.label:22s}{s['params']:7d}{best[arm]:7g}   {_fmt(s['median'], task):>22s}  "
            f"[{_fmt(s['min'], task)}, {_fmt(s['max'], task)}]".ljust(len(head) if task != "adding" else 0)
        )
        if task == "adding":
            solved = s["solved"]
            line += f"   {len(solved)} of {len(s['seeds'])} ({', '.join(map(str, solved)) or '-'})"
        lines.append(line.rstrip())
    return "\n".join(lines)


def _fmt(value: float, task: str) -> str:
    if not math.isfinite(value):
        return "diverged"
    return f"{value:.3f}" if task == "adding" else f"{value:.2f}"


def plot_study(
    runs: Sequence[Run], task: str, *, ax: Any = None, baseline: float | None = None, baseline_label: str = "baseline"
) -> Any:
    """Every seed's test score of every arm at its own learning rate (dots), and the median (bar)."""
    import matplotlib.pyplot as plt

    task_runs = [r for r in runs if r["task"] == task]
    best = best_learning_rates(task_runs)
    arms = arms_of(task_runs, task)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.6))
    colors = {"tanh": "tab:blue", "relu": "tab:orange"}
    for i, arm in enumerate(arms):
        s = arm_summary(task_runs, arm, best[arm])
        values = np.array([v if math.isfinite(v) else np.nan for v in s["test"]])
        jitter = np.linspace(-0.15, 0.15, len(values))
        ax.scatter(i + jitter, values, s=18, color=colors.get(arm.nonlinearity, "gray"), zorder=3)
        ax.hlines(s["median"], i - 0.3, i + 0.3, color="black", lw=1.5, zorder=4)
    if baseline is not None:
        ax.axhline(baseline, color="gray", linestyle=":", label=baseline_label)
    if task == "adding":
        ax.axhline(SOLVED_MSE, color="tab:red", linestyle="--", lw=1, label=f"solved (< {SOLVED_MSE})")
        ax.set_yscale("log")
        ax.set_ylabel("test MSE")
    else:
        ax.set_ylabel("test bits per character")
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels([f"{a.nonlinearity}\nL={a.num_layers} H={a.hidden_size}" for a in arms], fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def renumber_hidden_units(model: Any, seed: int) -> Any:
    """A copy of a :class:`~rnnlib.training.models.NumpyRNNLM` with the hidden units of every layer renumbered.

    The copy computes exactly the same function (a permutation of the units is a symmetry of
    the network), but every matrix product now adds its terms in another order, as a
    different BLAS kernel or thread count would. Any difference between the two is rounding.
    """
    import copy

    twin = copy.deepcopy(model)
    rng = np.random.default_rng(seed)
    L, H = model.num_layers, model.hidden_size
    perms = [rng.permutation(H) for _ in range(L)]
    p = twin.params
    for layer, perm in enumerate(perms):
        w_ih = p[f"rnn.weight_ih_l{layer}"][perm]
        if layer > 0:
            w_ih = w_ih[:, perms[layer - 1]]
        p[f"rnn.weight_ih_l{layer}"][...] = w_ih
        p[f"rnn.weight_hh_l{layer}"][...] = p[f"rnn.weight_hh_l{layer}"][perm][:, perm]
        for kind in ("ih", "hh"):
            name = f"rnn.bias_{kind}_l{layer}"
            if name in p:
                p[name][...] = p[name][perm]
    p["fc.weight"][...] = p["fc.weight"][:, perms[-1]]
    return twin


def compare_studies(runs_a: Sequence[Run], runs_b: Sequence[Run]) -> dict[str, Any]:
    """How much the same study moved when re-run under other kernels.

    Returns:
        ``changed``: runs whose test score differs at all; ``moved_10pct``: by more than 10%;
        ``flipped``: adding-problem runs solved in one and not in the other; ``total`` runs;
        and ``arms``: for every arm, its learning rate and its median (and solved count,
        adding problem) in each study.
    """
    b_by_key = {run_key(r): r for r in runs_b}
    pairs = [(r, b_by_key[run_key(r)]) for r in runs_a]
    if len(pairs) != len(runs_b):
        raise ValueError(f"the studies hold different runs: {len(runs_a)} and {len(runs_b)}")
    changed = sum(a["test"] != b["test"] for a, b in pairs)
    moved = sum(not math.isclose(a["test"], b["test"], rel_tol=0.1) for a, b in pairs)
    flipped = sum((a["test"] < SOLVED_MSE) != (b["test"] < SOLVED_MSE) for a, b in pairs if a["task"] == "adding")
    arms: dict[Arm, dict[str, Any]] = {}
    for task in ("adding", "lm"):
        ta, tb = [r for r in runs_a if r["task"] == task], [r for r in runs_b if r["task"] == task]
        best_a, best_b = best_learning_rates(ta), best_learning_rates(tb)
        for arm in arms_of(ta, task):
            sa, sb = arm_summary(ta, arm, best_a[arm]), arm_summary(tb, arm, best_b[arm])
            arms[arm] = {
                "lr": (best_a[arm], best_b[arm]),
                "median": (sa["median"], sb["median"]),
                "solved": (len(sa.get("solved", [])), len(sb.get("solved", []))),
            }
    return {"total": len(pairs), "changed": changed, "moved_10pct": moved, "flipped": flipped, "arms": arms}


def comparison_table(comparison: Mapping[str, Any], task: str) -> str:
    """One line per arm: learning rate, median (and solved seeds) in study A and in study B."""
    solved = task == "adding"
    head = f"{'':22s}{'lr: A':>8s}{'B':>7s}   {'median: A':>10s}{'B':>8s}" + ("   solved: A  B" if solved else "")
    lines = [head]
    for arm, c in comparison["arms"].items():
        if arm.task != task:
            continue
        line = (
            f"{arm.label:22s}{c['lr'][0]:8g}{c['lr'][1]:7g}   {_fmt(c['median'][0], task):>10s}"
            f"{_fmt(c['median'][1], task):>8s}"
        )
        if solved:
            line += f"   {c['solved'][0]:9d}{c['solved'][1]:3d}"
        lines.append(line)
    return "\n".join(lines)
