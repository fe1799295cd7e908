"""How fast are the NumPy RNN, LSTM and GRU? Against ``torch.nn.RNN``/``LSTM``/``GRU`` on the CPU, in float32.

Run it from the repository root::

    .venv/bin/python benchmarks/rnn_speed.py                   # all three cells, medium and large sizes
    .venv/bin/python benchmarks/rnn_speed.py --cell rnn        # NumpyRNN against nn.RNN only (under a minute)
    .venv/bin/python benchmarks/rnn_speed.py --check           # first verify both compute the same thing
    .venv/bin/python benchmarks/rnn_speed.py --cell lstm --sizes 100x32x64x128x2 --repeats 200
    .venv/bin/python benchmarks/rnn_speed.py --threads 2       # both libraries multi-threaded

A size is ``TxNxDxHxL``: time steps, batch, input features, hidden size, layers. ``--cell`` is
``rnn``, ``lstm``, ``gru`` or ``all`` (the default: the three ratios then come from the same run,
under the same load, which is what makes them comparable on a shared machine; a full run takes a
few minutes, the large LSTM being most of it).
For each cell, both models have the same weights (``NumpyRNN``/``NumpyLSTM``/``NumpyGRU.from_torch``),
see the same input ``x`` and the same output gradient ``G``, are in eval mode, and compute in float32.
Four things are timed:

* NumPy forward: ``model(x)``;
* torch forward: ``rnn(x)`` under ``torch.no_grad()``;
* NumPy forward+backward: ``model(x)`` then ``model.backward(G)`` (gradients of the weights and of ``x``);
* torch forward+backward: ``rnn(x)`` then ``out.backward(G)``, with ``x.requires_grad`` so that torch
  also computes the gradient of the input, as NumPy does.

Each repeat runs the four once, in a shuffled order, so that a burst of load from other programs
slows all of them alike and neither library always runs right after the other; the table shows the
median over the repeats (``time.perf_counter``) and the NumPy/torch ratios. The timing and the thread
control are ``rnnlib.explain.timing``'s, which chapter 11 of the book uses as well. On a shared machine timings
are noisy: raise ``--repeats`` and compare several runs.

Threads. By default both libraries use one thread (``--threads 1``): torch through
``torch.set_num_threads``, NumPy's OpenBLAS through its own ``openblas_set_num_threads``
(``rnnlib.explain.timing.set_numpy_blas_threads``). The per-step
products are too small to gain much from a second thread, and on a machine whose cores are busy with
other work, a multi-threaded library waits at every step for all its threads to be scheduled, which
times the machine's load rather than the library. Worse, in one process the two thread pools compete:
OpenBLAS's threads spin for a while after each call, stealing the cores torch's threads need next (and
the other way round). Use ``--threads`` above 1 only on an otherwise idle machine.

What limits NumPy (the script measures the floors, see its "where the forward's time goes" lines):

* The recurrent product ``h @ W_hh.T``. It cannot be batched over time (step ``t`` needs ``h_{t-1}``),
  so it runs as ``T*L`` small ``(N, H) @ (H, G*H)`` products, each a separate BLAS call (``G`` gate
  blocks: 1 for the Elman cell, 4 for the LSTM, 3 for the GRU). Timing these products alone gives a
  floor no NumPy code can go under; at the medium size it is roughly half of the forward, and the
  backward has the same products plus the weight gradients' big ones.
* Python's time loop. Each step costs a few NumPy calls (3 for the Elman cell: product, add, tanh;
  about 10 for the gated cells), and each call costs about a microsecond of interpreter and dispatch
  overhead whatever the array size. Timing the same number of calls on 1-element arrays gives that
  floor: a small share at the medium size, the main cost for tiny ``N`` and ``H``.
* Memory. A fresh ``(T, N, H)`` array's pages cost a page fault each on first write (about a
  microsecond each here, in a virtual machine), and two such arrays fill more cache than one;
  ``layer_forward``/``layer_backward`` therefore write in place into the buffers they must have anyway.

The gated cells add to this:

* 4x (LSTM) and 3x (GRU) the matrix products of the Elman cell, input projections and recurrent
  products alike: the products are most of the time, and the "all NumPy's products" line prints
  them against torch's whole forward. For the LSTM at the medium size that floor alone measured
  0.95-1.07x ``nn.LSTM``'s whole forward here (six runs), and the loop's 2000 NumPy calls another
  0.13-0.17x even on 1-element arrays: these two floors already add up to about 1.2x before the gate
  math touches any data. The rest of NumPy's forward (40-45% of it) is that gate math and memory.
* The elementwise gate math. Every step also runs the sigmoids and tanhs of ``4H`` (``3H``) gate
  values per sequence, the cell update ``c' = f c + i g`` and ``h' = o tanh(c')`` (the GRU's
  ``r * (W_hn h + b_hn)`` and ``(1 - z) n + z h``), each a separate pass over a ``(N, H)`` or
  ``(N, G*H)`` array: 10 (LSTM) and 12 (GRU) NumPy calls per step, each reading and writing memory
  the product just wrote, on top of the product. ``rnnlib.gate_math`` computes each sigmoid as
  ``0.5 tanh(a/2) + 0.5`` so that one ``tanh`` call covers several gates (all four of the LSTM's).
* torch's fused LSTM. torch's CPU build runs ``nn.LSTM`` through oneDNN (``aten::mkldnn_rnn_layer``,
  forward and, with gradients on, ``mkldnn_rnn_layer_backward``): one C++ kernel per layer that
  reuses its weights' packed layout at every step and applies the gates' activations and the cell
  update to each block of the product while it is still in cache, with no per-operation dispatch.
  NumPy has no fused kernel: its matrix products alone cost about as much as oneDNN's whole LSTM
  forward, so the LSTM's forward ratio stays well above the Elman cell's and the GRU's.
  ``nn.GRU`` has no such kernel in torch's CPU build: it runs aten's generic loop (an ``addmm`` and
  a handful of elementwise operations per step, each dispatched and, with gradients on, recorded
  by autograd), like ``nn.RNN``, which is why NumPy's GRU keeps up with it and its backward beats it.

Tried on ``rnnlib.lstm`` and not kept, as the forward changed by no more than the noise (a few per
cent at the medium size, slower at small sizes): the gate blocks reordered to ``i, f, o, g`` so that
one affine pass finishes the three sigmoids, the step's product written with ``np.matmul(out=...)``
into preallocated buffers, and the recurrent product split into one ``(N, H) @ (H, H)`` per gate.

torch is not free of these either: its CPU ``nn.RNN`` also loops over time step by step, in C++,
calling the same kind of small matrix product each step (the ``torch.mm`` floor printed next to
NumPy's), and each of its operations goes through torch's dispatcher, and, with gradients on, records
an autograd node that backward then walks one by one. At the medium size that per-operation cost
outweighs Python's loop overhead, which is why NumPy can be faster than torch there.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from rnnlib.explain.timing import GATES, median_times, numpy_blas_name, set_numpy_blas_threads  # noqa: E402
from rnnlib.gru import NumpyGRU  # noqa: E402
from rnnlib.lstm import NumpyLSTM  # noqa: E402
from rnnlib.numpy_rnn import NumpyRNN  # noqa: E402
from rnnlib.stack import NumpyStack  # noqa: E402

MEDIUM = (100, 32, 64, 128, 2)  # the size the goals are set at
LARGE = (100, 64, 256, 512, 2)
CELLS = ("rnn", "lstm", "gru")
#: The goals, NumPy time / torch time at the medium size: (forward, forward+backward), per cell.
GOALS: dict[str, tuple[float, float]] = {"rnn": (1.5, 2.0), "lstm": (1.2, 1.5), "gru": (1.2, 1.5)}
GOAL_FWD, GOAL_FWD_BWD = GOALS["rnn"]
#: The torch module and the NumPy class of each cell.
MODELS: dict[str, tuple[Callable[..., torch.nn.Module], type[NumpyStack]]] = {
    "rnn": (torch.nn.RNN, NumpyRNN),
    "lstm": (torch.nn.LSTM, NumpyLSTM),
    "gru": (torch.nn.GRU, NumpyGRU),
}
#: NumPy calls per step and layer in the forward loop of each cell (``rnnlib.numpy_rnn.layer_forward``,
#: ``rnnlib.lstm.lstm_layer_forward``, ``rnnlib.gru.gru_layer_forward``; with bias, no lengths).
CALLS_PER_STEP: dict[str, int] = {"rnn": 3, "lstm": 10, "gru": 12}


def parse_size(text: str) -> tuple[int, int, int, int, int]:
    """``'100x32x64x128x2'`` -> ``(T, N, D, H, L)``."""
    parts = text.lower().split("x")
    if len(parts) != 5 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"a size is TxNxDxHxL, positive integers, e.g. 100x32x64x128x2; got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def fmt_size(size: tuple[int, ...]) -> str:
    return "x".join(map(str, size))


def time_interleaved(functions: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median wall time in ms of each function, all of them run once per repeat in a shuffled order.

    ``rnnlib.explain.timing.median_times``, the helper chapter 11 uses too, in milliseconds.
    """
    return {name: 1e3 * seconds for name, seconds in median_times(functions, repeats, warmup).items()}


class Case:
    """One cell at one size: the torch module, the NumPy copy, the input and the output gradient."""

    def __init__(self, size: tuple[int, int, int, int, int], cell: str = "rnn", seed: int = 0) -> None:
        self.size = size
        self.cell = cell
        T, N, D, H, L = size
        torch_class, numpy_class = MODELS[cell]
        torch.manual_seed(seed)
        self.rnn = torch_class(D, H, L).eval()  # float32, bias, seq-first (tanh for nn.RNN): the defaults
        self.model: Any = numpy_class.from_torch(self.rnn, dtype=np.float32).eval()
        self.x = torch.randn(T, N, D)
        self.G = torch.randn(T, N, H)
        self.x_np, self.G_np = self.x.numpy(), self.G.numpy()
        self.x_grad = self.x.clone().requires_grad_()  # torch computes d/dx too, as NumPy does

    def numpy_forward(self) -> tuple[np.ndarray, Any]:
        return self.model(self.x_np)

    def torch_forward(self) -> tuple[torch.Tensor, Any]:
        with torch.no_grad():
            return self.rnn(self.x)

    def numpy_forward_backward(self) -> tuple[np.ndarray, Any]:
        self.model(self.x_np)
        return self.model.backward(self.G_np)

    def torch_forward_backward(self) -> None:
        self.rnn.zero_grad(set_to_none=True)  # fresh gradient arrays, as NumPy's backward makes
        self.x_grad.grad = None
        out, _ = self.rnn(self.x_grad)
        out.backward(self.G)

    def check(self) -> dict[str, float]:
        """Largest differences NumPy vs torch: outputs and final states (absolute), gradients (relative to
        their largest entry)."""
        out_np, state_np = self.numpy_forward()
        dx_np, _ = self.model.backward(self.G_np)
        self.torch_forward_backward()
        with torch.no_grad():
            out_t, state_t = self.rnn(self.x)
        errors = {"output": float(np.abs(out_np - out_t.numpy()).max())}
        if self.cell == "lstm":  # (h_n, c_n)
            errors["h_n"] = float(np.abs(state_np[0] - state_t[0].numpy()).max())
            errors["c_n"] = float(np.abs(state_np[1] - state_t[1].numpy()).max())
        else:
            errors["h_n"] = float(np.abs(state_np - state_t.numpy()).max())
        pairs = [("d_input", dx_np, self.x_grad.grad)]
        pairs += [(name, self.model.grads[name], p.grad) for name, p in self.rnn.named_parameters()]
        for name, mine, theirs in pairs:
            assert theirs is not None, f"torch computed no gradient for {name}"
            ref = theirs.numpy()
            errors[name] = float(np.abs(mine - ref).max() / np.abs(ref).max())
        return errors


STATE_ERRORS = ("output", "h_n", "c_n")


def floors(case: Case) -> dict[str, Callable[[], None]]:
    """The floors of NumPy's forward, as functions to time, with the same number of calls and products.

    * ``calls``: the forward loop's NumPy calls (``CALLS_PER_STEP`` per step and layer) on 1-element
      arrays: the pure per-call overhead of Python + NumPy dispatch.
    * ``matmuls``: the ``T*L`` recurrent products ``(N, H) @ (H, G*H)`` alone (``G`` gate blocks: 1, 4, 3),
      into a reused buffer.
    * ``gemms``: every matrix product of the forward: ``matmuls`` plus each layer's input projection,
      one ``(T*N, D_in) @ (D_in, G*H)`` product: what NumPy's forward costs with no other work at all.
    * ``torch_matmuls``: the recurrent products with ``torch.mm``: the per-op cost torch's own loop pays.
    """
    T, N, D, H, L = case.size
    G = GATES[case.cell]
    one = np.zeros((1, 1), dtype=np.float32)
    out = np.empty((1, 1), dtype=np.float32)
    calls_per_step = CALLS_PER_STEP[case.cell]

    def calls() -> None:
        for _ in range(T * L):
            np.matmul(one, one, out=out)
            for k in range(calls_per_step - 1):  # add, tanh, add, ...: elementwise calls
                if k % 2 == 0:
                    np.add(out, one, out=out)
                else:
                    np.tanh(out, out=out)

    rng = np.random.default_rng(0)
    h = rng.standard_normal((N, H), dtype=np.float32)
    W = rng.standard_normal((H, G * H), dtype=np.float32)
    buf = np.empty((N, G * H), dtype=np.float32)
    inputs = [rng.standard_normal((T * N, D if layer == 0 else H), dtype=np.float32) for layer in range(L)]
    W_inputs = [np.ascontiguousarray(rng.standard_normal((G * H, x.shape[1]), dtype=np.float32).T) for x in inputs]

    def matmuls() -> None:
        for _ in range(T * L):
            np.matmul(h, W, out=buf)

    def gemms() -> None:
        for x, W_in in zip(inputs, W_inputs, strict=True):
            x @ W_in
        matmuls()

    h_t, W_t, buf_t = torch.from_numpy(h), torch.from_numpy(W), torch.from_numpy(buf)

    def torch_matmuls() -> None:
        with torch.no_grad():
            for _ in range(T * L):
                torch.mm(h_t, W_t, out=buf_t)

    return {"calls": calls, "matmuls": matmuls, "gemms": gemms, "torch_matmuls": torch_matmuls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=parse_size,
        nargs="+",
        default=[MEDIUM, LARGE],
        metavar="TxNxDxHxL",
        help=f"sizes to time (default: {fmt_size(MEDIUM)} {fmt_size(LARGE)})",
    )
    parser.add_argument(
        "--cell",
        choices=(*CELLS, "all"),
        default="all",
        help="which cell: NumpyRNN vs nn.RNN, NumpyLSTM vs nn.LSTM, NumpyGRU vs nn.GRU, or all "
        "three in the same run (default: all)",
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=15, help="timed repeats per size; the median is shown (default 15)"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="threads for torch and for NumPy's BLAS (default 1: see the module docstring)",
    )
    parser.add_argument("--check", action="store_true", help="verify NumPy and torch agree before timing")
    args = parser.parse_args(argv)
    cells = CELLS if args.cell == "all" else (args.cell,)

    torch.set_num_threads(args.threads)
    blas_threads = set_numpy_blas_threads(args.threads)
    print(
        f"numpy {np.__version__} (BLAS: {numpy_blas_name()}, threads: "
        f"{blas_threads if blas_threads is not None else 'unknown'}); "
        f"torch {torch.__version__} (threads: {torch.get_num_threads()}); float32; "
        f"median of {args.repeats} repeats; {os.cpu_count()} cores"
    )

    cases = [Case(size, cell) for cell in cells for size in args.sizes]
    if args.check:
        for case in cases:
            errors = case.check()
            worst_out = max(v for k, v in errors.items() if k in STATE_ERRORS)
            worst_grad = max(v for k, v in errors.items() if k not in STATE_ERRORS)
            print(
                f"check {case.cell:>4} {fmt_size(case.size)}: max |out - torch| = {worst_out:.1e}, "
                f"max gradient error (relative to its largest entry) = {worst_grad:.1e}"
            )
            if worst_out > 1e-5 or worst_grad > 1e-4:
                print("NumPy and torch disagree beyond float32 rounding", file=sys.stderr)
                return 1

    header = (
        f"{'cell':>4} {'size TxNxDxHxL':>18} | {'numpy fwd':>9} {'torch fwd':>9} {'ratio':>5} | "
        f"{'numpy f+b':>9} {'torch f+b':>9} {'ratio':>5}"
    )
    print(header + "\n" + "-" * len(header))
    ratios, timings = {}, {}
    for case in cases:
        # The floors are timed in the same shuffled rounds as the models, so the same load hits both.
        ms = time_interleaved(
            {
                "nf": case.numpy_forward,
                "tf": case.torch_forward,
                "nfb": case.numpy_forward_backward,
                "tfb": case.torch_forward_backward,
                **floors(case),
            },
            args.repeats,
        )
        key = (case.cell, case.size)
        ratios[key] = (ms["nf"] / ms["tf"], ms["nfb"] / ms["tfb"])
        timings[key] = ms
        print(
            f"{case.cell:>4} {fmt_size(case.size):>18} | {ms['nf']:7.2f}ms {ms['tf']:7.2f}ms {ratios[key][0]:5.2f} | "
            f"{ms['nfb']:7.2f}ms {ms['tfb']:7.2f}ms {ratios[key][1]:5.2f}"
        )

    print(
        "\nwhere the forward's time goes: its floors, as shares of the forward times above "
        "(and all of NumPy's products against torch's whole forward)"
    )
    for case in cases:
        T, N, D, H, L = case.size
        G = GATES[case.cell]
        ms = timings[(case.cell, case.size)]
        print(
            f"{case.cell:>4} {fmt_size(case.size):>18} | the {T * L} products (N,H)@(H,{G if G > 1 else ''}H) alone: "
            f"numpy {ms['matmuls']:.2f} ms = {ms['matmuls'] / ms['nf']:.0%}, "
            f"torch.mm {ms['torch_matmuls']:.2f} ms = {ms['torch_matmuls'] / ms['tf']:.0%}; "
            f"all NumPy's products {ms['gemms']:.2f} ms = {ms['gemms'] / ms['nf']:.0%}, "
            f"{ms['gemms'] / ms['tf']:.2f}x torch's forward; "
            f"{CALLS_PER_STEP[case.cell] * T * L} NumPy calls on 1-element arrays: "
            f"{ms['calls']:.2f} ms = {ms['calls'] / ms['nf']:.0%}"
        )

    print()
    for cell in cells:
        goal_fwd, goal_fwd_bwd = GOALS[cell]
        if (cell, MEDIUM) in ratios:
            fwd, fwd_bwd = ratios[(cell, MEDIUM)]
            ok = fwd <= goal_fwd and fwd_bwd <= goal_fwd_bwd
            print(
                f"verdict {cell:>4} at {fmt_size(MEDIUM)}: NumPy/torch forward {fwd:.2f} (goal <= {goal_fwd}), "
                f"forward+backward {fwd_bwd:.2f} (goal <= {goal_fwd_bwd}): {'goals met' if ok else 'goals NOT met'}"
            )
        else:
            print(f"verdict {cell:>4}: the goals are set at {fmt_size(MEDIUM)}, which was not timed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
