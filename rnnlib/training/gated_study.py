"""Chapter 10's measurements of gated stacks: the adding problem for tanh RNN, GRU and LSTM, and gradient decay.

* :class:`CellRegressor`: ``nn.RNN`` (tanh), ``nn.GRU`` or ``nn.LSTM`` + ``nn.Linear(H, 1)`` on the top
  layer's last state, one number per sequence (chapter 9's regressor with the cell as a choice).
* :func:`cell_regressor_parameters`: its parameter count by formula (gates ``G`` = 1, 3, 4).
* :func:`gated_adding_run`: one run of chapter 9's protocol for one cell, one ``T``, one learning rate,
  one seed; plain numbers out. ``experiments/gated_study.py`` runs the whole grid.
* :func:`best_learning_rates`, :func:`arm_summary`, :func:`summary_table`, :func:`learning_rate_table`,
  :func:`plot_gated_study`: the statistics of the stored runs, per arm = (cell, ``T``).
* :func:`input_gradient_curves`: ``|| d prediction / d x_t ||`` at initialisation, over seeds.
* :func:`forget_gate_path`: the product of forget gates against ``d c_T / d c_t`` along the cell path.

Shapes: ``T`` steps, ``N`` batch, ``D`` input features (2 for the adding problem), ``H`` hidden.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from .study import ADDING_TEST_SEED, ADDING_VAL_SEED, SOLVED_MSE

Run = Mapping[str, Any]

CELLS = ("rnn", "gru", "lstm")
"""The three cells compared, in the order tables and figures list them."""
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
"""Blocks of ``H`` rows in ``weight_ih``/``weight_hh``: the Elman cell 1, the GRU 3 (r, z, n), the LSTM 4
(i, f, g, o)."""
LABELS = {"rnn": "tanh RNN", "gru": "GRU", "lstm": "LSTM"}
COLORS = {"rnn": "tab:blue", "gru": "tab:green", "lstm": "tab:red"}


def make_cell(
    cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dtype: torch.dtype | None = None
) -> nn.Module:
    """``nn.RNN(tanh)``, ``nn.GRU`` or ``nn.LSTM`` with the given sizes (time-major)."""
    if cell == "rnn":
        return nn.RNN(input_size, hidden_size, num_layers, nonlinearity="tanh", dtype=dtype)
    if cell == "gru":
        return nn.GRU(input_size, hidden_size, num_layers, dtype=dtype)
    if cell == "lstm":
        return nn.LSTM(input_size, hidden_size, num_layers, dtype=dtype)
    raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")


class CellRegressor(nn.Module):
    """A recurrent stack + ``nn.Linear(H, 1)`` on the top layer's last state: ``forward(x (T, N, D)) -> (N,)``."""

    def __init__(
        self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, *, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        self.cell = cell
        self.rnn = make_cell(cell, input_size, hidden_size, num_layers, dtype)
        self.fc = nn.Linear(hidden_size, 1, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)  # the LSTM's state is (h_n, c_n); output holds h of the top layer either way
        return self.fc(out[-1]).squeeze(-1)


def cell_regressor_parameters(cell: str, hidden_size: int, input_size: int = 2, num_layers: int = 1) -> int:
    """Parameters of :class:`CellRegressor`: ``G`` times the Elman layer's, plus the read-out ``H + 1``.

    Layer 1 has ``G (H D + H H + 2 H)``, every other layer ``G (2 H H + 2 H)``.
    """
    G, H, D, L = GATES[cell], hidden_size, input_size, num_layers
    return G * (H * D + H * H + 2 * H) + (L - 1) * G * (2 * H * H + 2 * H) + H + 1


def gated_adding_run(
    cell: str,
    hidden_size: int,
    seq_len: int,
    lr: float,
    seed: int,
    *,
    steps: int = 2000,
    batch_size: int = 32,
    clip: float = 1.0,
    curve_every: int = 100,
    keep_model: bool = False,
) -> dict[str, Any]:
    """Train one adding-problem regressor (Adam, MSE, clipping at ``clip``) in float32; plain numbers out.

    The weights come from ``torch.manual_seed(seed)``, the batches from ``np.random.default_rng(seed)``
    (:func:`rnnlib.training.train.train_adding`): every cell sees the same batches for a given seed.

    Returns:
        ``{"val", "test": MSE on 1000 fixed sequences each, "params": int,
        "curve": training loss averaged over blocks of curve_every steps}``, and ``"model"`` if ``keep_model``.
    """
    from .train import evaluate_adding, train_adding

    torch.manual_seed(seed)
    model = CellRegressor(cell, 2, hidden_size)
    history = train_adding(
        model, seq_len=seq_len, steps=steps, batch_size=batch_size, lr=lr, clip=clip, seed=seed, progress=False
    )
    model.eval()
    val = evaluate_adding(model, seq_len, num=1000, seed=ADDING_VAL_SEED)
    test = evaluate_adding(model, seq_len, num=1000, seed=ADDING_TEST_SEED)
    result: dict[str, Any] = {
        "val": _finite(val),
        "test": _finite(test),
        "params": sum(p.numel() for p in model.parameters()),
        "curve": _block_means(history.loss, curve_every),
    }
    if keep_model:
        result["model"] = model
    return result


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else math.inf


def _block_means(values: np.ndarray, block: int) -> list[float]:
    values = np.asarray(values, dtype=np.float64)
    n = len(values) // block * block
    return [float(v) if math.isfinite(v) else math.inf for v in values[:n].reshape(-1, block).mean(axis=1)]


# --------------------------------------------------------------------------------------
# Statistics over runs: an arm is (cell, T)
# --------------------------------------------------------------------------------------


def run_key(run: Run) -> tuple[Any, ...]:
    """What identifies a run: cell, width, sequence length, learning rate, seed."""
    return (run["cell"], run["hidden_size"], run["seq_len"], run["lr"], run["seed"])


def arms_of(runs: Sequence[Run]) -> list[tuple[str, int]]:
    """The arms ``(cell, T)``: by ``T``, then in the order of :data:`CELLS`."""
    return sorted({(r["cell"], r["seq_len"]) for r in runs}, key=lambda a: (a[1], CELLS.index(a[0])))


def runs_of(runs: Sequence[Run], arm: tuple[str, int], lr: float | None = None) -> list[Run]:
    chosen = [r for r in runs if (r["cell"], r["seq_len"]) == arm and (lr is None or r["lr"] == lr)]
    return sorted(chosen, key=lambda r: r["seed"])


def median_val(runs: Sequence[Run], arm: tuple[str, int], lr: float) -> float:
    return float(np.median([r["val"] for r in runs_of(runs, arm, lr)]))


def best_learning_rates(runs: Sequence[Run]) -> dict[tuple[str, int], float]:
    """Per arm, the learning rate with the lowest median **validation** MSE over seeds (ties: the smallest)."""
    best = {}
    for arm in arms_of(runs):
        lrs = sorted({r["lr"] for r in runs_of(runs, arm)})
        best[arm] = min(lrs, key=lambda lr: (median_val(runs, arm, lr), lr))
    return best


def arm_summary(runs: Sequence[Run], arm: tuple[str, int], lr: float) -> dict[str, Any]:
    """Test MSE of every seed at ``lr``: median, min, max, and the seeds that solved (test < ``SOLVED_MSE``)."""
    chosen = runs_of(runs, arm, lr)
    test = np.array([r["test"] for r in chosen])
    return {
        "seeds": [r["seed"] for r in chosen],
        "test": test.tolist(),
        "median": float(np.median(test)),
        "min": float(test.min()),
        "max": float(test.max()),
        "params": chosen[0]["params"],
        "solved": [r["seed"] for r in chosen if r["test"] < SOLVED_MSE],
        "lr": lr,
    }


def summaries(runs: Sequence[Run]) -> dict[tuple[str, int], dict[str, Any]]:
    """:func:`arm_summary` of every arm at its own (validation-chosen) learning rate."""
    return {arm: arm_summary(runs, arm, lr) for arm, lr in best_learning_rates(runs).items()}


def solved_at_any_lr(runs: Sequence[Run], arm: tuple[str, int]) -> int:
    """How many runs of the arm solved, over every learning rate and seed."""
    return sum(r["test"] < SOLVED_MSE for r in runs_of(runs, arm))


def learning_rate_table(runs: Sequence[Run]) -> str:
    """Median validation MSE of every arm at every learning rate; ``*`` marks the arm's choice."""
    best = best_learning_rates(runs)
    lrs = sorted({r["lr"] for r in runs})
    lines = [f"{'median val MSE':20s}" + "".join(f"{'lr ' + format(lr, 'g'):>11s}" for lr in lrs)]
    for arm in arms_of(runs):
        cells = [f"{median_val(runs, arm, lr):10.4f}{'*' if best[arm] == lr else ' '}" for lr in lrs]
        lines.append(f"{LABELS[arm[0]] + ' T=' + str(arm[1]):20s}" + "".join(cells))
    return "\n".join(lines)


def summary_table(runs: Sequence[Run]) -> str:
    """Every arm at its own learning rate: parameters, lr, test MSE median [min, max], solved seeds."""
    head = f"{'':16s}{'params':>7s}{'lr':>7s}   {'test MSE median':>15s}  {'[min, max]':>18s}   solved"
    lines = [head]
    for arm, s in summaries(runs).items():
        solved = f"{len(s['solved'])} of {len(s['seeds'])}"
        lines.append(
            f"{LABELS[arm[0]] + ' T=' + str(arm[1]):16s}{s['params']:7d}{s['lr']:7g}   "
            f"{s['median']:15.4f}  [{s['min']:.4f}, {s['max']:.4f}]   {solved}"
        )
    return "\n".join(lines)


def plot_gated_study(runs: Sequence[Run], ax: Any = None) -> Any:
    """Every seed's test MSE of every arm at its own learning rate (dots) and the median (bar), log scale."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 3.4))
    arms = arms_of(runs)
    for i, (arm, s) in enumerate(summaries(runs).items()):
        values = np.array(s["test"])
        jitter = np.linspace(-0.15, 0.15, len(values))
        ax.scatter(i + jitter, values, s=18, color=COLORS[arm[0]], zorder=3)
        ax.hlines(s["median"], i - 0.3, i + 0.3, color="black", lw=1.5, zorder=4)
    ax.axhline(1 / 6, color="gray", linestyle=":", label="predict 1 (MSE 1/6)")
    ax.axhline(SOLVED_MSE, color="tab:red", linestyle="--", lw=1, label=f"solved (< {SOLVED_MSE})")
    ax.set_yscale("log")
    ax.set_ylabel("test MSE")
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels([f"{LABELS[c]}\nT={T}" for c, T in arms], fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="center right")
    return ax


# --------------------------------------------------------------------------------------
# Gradients at initialisation
# --------------------------------------------------------------------------------------


def set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """The forget-gate bias trick: ``b_if + b_hf = value`` in every layer and direction (``b_if = value``,
    ``b_hf = 0``).

    Rows ``H:2H`` of ``bias_ih_l*`` and ``bias_hh_l*`` are the forget gate's (gate order i, f, g, o).
    """
    H = lstm.hidden_size
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("bias_ih"):
                p[H : 2 * H] = value
            elif name.startswith("bias_hh"):
                p[H : 2 * H] = 0.0


def input_gradient_curves(
    cells: Sequence[str],
    hidden_sizes: Mapping[str, int],
    x: Tensor,
    seeds: Sequence[int],
    forget_bias: float | None = None,
) -> dict[str, np.ndarray]:
    """``|| d prediction / d x_t ||`` (batch mean) of freshly initialised regressors, one row per seed.

    Args:
        x: ``(T, N, 2)`` inputs (float64 makes the curves independent of the machine's rounding).
        forget_bias: if given, the LSTMs get :func:`set_forget_bias` with this value after initialisation.

    Returns:
        ``{cell: (len(seeds), T)}``; column ``t`` is how much the prediction after the last step
        can still be moved by the input at step ``t``, ``T - 1 - t`` steps back.
    """
    from .train import input_gradient_norms

    curves = {}
    for cell in cells:
        rows = []
        for seed in seeds:
            torch.manual_seed(seed)
            model = CellRegressor(cell, x.shape[-1], hidden_sizes[cell], dtype=x.dtype)
            if forget_bias is not None and cell == "lstm":
                set_forget_bias(model.rnn, forget_bias)  # type: ignore[arg-type]
            rows.append(input_gradient_norms(model, x))
        curves[cell] = np.array(rows)
    return curves


def plot_input_gradient_curves(curves: Mapping[str, np.ndarray], ax: Any = None) -> Any:
    """Median over seeds against the distance ``T - 1 - t`` (log scale), the band from min to max."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    extra = iter(("tab:purple", "tab:orange", "tab:brown"))
    for cell, rows in curves.items():
        rows = rows / rows[:, -1:]  # each seed relative to its last step
        k = np.arange(rows.shape[1])[::-1]  # distance from the last step
        color = COLORS.get(cell) or next(extra)
        ax.plot(k, np.median(rows, axis=0), color=color, label=f"{LABELS.get(cell, cell)} (median of {len(rows)})")
        ax.fill_between(k, rows.min(axis=0), rows.max(axis=0), color=color, alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("distance $T - t$ (steps back from the prediction)")
    ax.set_ylabel(r"$\|\partial \hat y / \partial x_t\| \,/\, \|\partial \hat y / \partial x_T\|$")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def forget_gate_path(lstm: nn.LSTM, x: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cell path of a one-layer LSTM: ``prod f`` against ``d c_T / d c_t`` with ``h`` held fixed.

    Runs the cell step by step (PyTorch's equations, gate order i, f, g, o) and differentiates
    ``c_T`` with respect to each ``c_t`` **along the cell path only**: ``h_{t}`` is detached before it
    enters the next step, so the only route from ``c_t`` to ``c_T`` is ``c_{s+1} = f_{s+1} * c_s + ...``.
    Because ``c_T`` depends element-wise on ``c_t`` along that route, ``sum_n d c_T[n, j] / d c_t[n, j]``
    is obtained from one backward pass of ``c_T.sum()``.

    Args:
        lstm: a one-layer, unidirectional ``nn.LSTM`` without projection. x: ``(T, N, D)``.

    Returns:
        ``(d c_T / d c_t, prod_{s=t+1}^{T} f_s, forget gates)``: the first two ``(T, N, H)``
        (element-wise derivatives and products), the gates ``(T, N, H)``.
    """
    if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size:
        raise ValueError("forget_gate_path takes a one-layer unidirectional nn.LSTM without projection")
    # nn.Module's __getattr__ is typed Tensor | Module; these are the layer's parameters
    W_ih, W_hh = cast(Tensor, lstm.weight_ih_l0), cast(Tensor, lstm.weight_hh_l0)
    b = cast(Tensor, lstm.bias_ih_l0) + cast(Tensor, lstm.bias_hh_l0)
    T, N, _ = x.shape
    H = lstm.hidden_size
    h = x.new_zeros(N, H)
    c = x.new_zeros(N, H)
    cells, forgets = [], []
    for t in range(T):
        a = x[t] @ W_ih.T + h.detach() @ W_hh.T + b  # h detached: no route through h
        i, f, g, o = a.split(H, dim=1)  # PyTorch's gate order
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_prev = c.detach().requires_grad_(True) if t == 0 else c
        c_prev.retain_grad()
        cells.append(c_prev)
        c = f * c_prev + i * g
        h = o * torch.tanh(c)
        forgets.append(f.detach())
    c.sum().backward()
    # cells[t] is c_{t-1}, the cell entering step t: d c_T / d c_{t-1} = prod_{s=t}^{T-1} f_s
    grads = np.stack([cast(Tensor, cl.grad).detach().numpy() for cl in cells])  # retained above
    f_all = torch.stack(forgets).numpy()
    products = np.flip(np.cumprod(np.flip(f_all, 0), axis=0), 0)
    return grads, products, f_all


# --------------------------------------------------------------------------------------
# The cells from scratch, and the classic mistakes
# --------------------------------------------------------------------------------------


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def lstm_step(
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    order: str = "ifgo",
) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step in PyTorch's equations: ``x (N, D)``, ``h, c (N, H)`` -> ``h', c' (N, H)``.

    ``order`` names the gate blocks of the rows of ``W_ih``/``W_hh``/biases as the code **assumes** them:
    PyTorch stores ``"ifgo"``; ``"ifog"`` reproduces the classic loading mistake.
    """
    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (N, 4H)
    blocks = dict(zip(order, np.split(a, 4, axis=1), strict=True))
    i, f, o = sigmoid(blocks["i"]), sigmoid(blocks["f"]), sigmoid(blocks["o"])
    g = np.tanh(blocks["g"])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def gru_step(
    x: np.ndarray, h: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray
) -> np.ndarray:
    """One GRU step in PyTorch's equations (gates r, z, n; ``b_hn`` inside ``r * (W_hn h + b_hn)``)."""
    gi = x @ W_ih.T + b_ih  # (N, 3H)
    gh = h @ W_hh.T + b_hh
    i_r, i_z, i_n = np.split(gi, 3, axis=1)
    h_r, h_z, h_n = np.split(gh, 3, axis=1)
    r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def stack_from_scratch(
    cell: str,
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    num_layers: int,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    order: str = "ifgo",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A stacked LSTM or GRU by a double loop over layers and steps: layer ``l`` reads layer ``l-1``'s ``h``.

    Args:
        params: ``{name: array}`` with ``nn.LSTM``/``nn.GRU``'s names (``weight_ih_l0``, ...), biases included.
        x: ``(T, N, D)``. h0, c0: ``(L, N, H)`` or ``None`` (zeros; ``c0`` for the LSTM only).

    Returns:
        ``output (T, N, H)`` (the top layer's ``h``), ``h_n (L, N, H)`` and ``c_n (L, N, H)`` (``None`` for the GRU).
    """
    T, N, _ = x.shape
    H = params["weight_hh_l0"].shape[1]
    h0 = np.zeros((num_layers, N, H)) if h0 is None else h0
    c0 = np.zeros((num_layers, N, H)) if c0 is None else c0
    layer_input, h_n, c_n = x, [], []
    for layer in range(num_layers):
        W_ih, W_hh, b_ih, b_hh = (params[f"{k}_l{layer}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        h, c, outs = h0[layer], c0[layer], []
        for t in range(T):
            if cell == "lstm":
                h, c = lstm_step(layer_input[t], h, c, W_ih, W_hh, b_ih, b_hh, order=order)
            else:
                h = gru_step(layer_input[t], h, W_ih, W_hh, b_ih, b_hh)
            outs.append(h)
        layer_input = np.stack(outs)  # the next layer reads this layer's h, never its c
        h_n.append(h)
        c_n.append(c)
    return layer_input, np.stack(h_n), (np.stack(c_n) if cell == "lstm" else None)


def chunked_lstm_forward(lstm: Any, x: np.ndarray, chunk: int, carry_cell: bool = True) -> np.ndarray:
    """Run an LSTM stack (``NumpyLSTM``) over ``x (T, N, D)`` in chunks of ``chunk`` steps, as truncated BPTT does.

    Each chunk starts from the previous chunk's final state: ``(h_n, c_n)`` when ``carry_cell``, and
    ``(h_n, zeros)`` when not (the mistake: only ``h`` carried). Returns the outputs ``(T, N, H)``.
    """
    outs, state = [], None
    for start in range(0, x.shape[0], chunk):
        out, (h_n, c_n) = lstm.forward(x[start : start + chunk], state)
        outs.append(out)
        state = (h_n, c_n if carry_cell else np.zeros_like(c_n))
    return np.concatenate(outs)
