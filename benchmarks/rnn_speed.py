"""How fast is the NumPy RNN? ``NumpyRNN`` against ``torch.nn.RNN`` on the CPU, in float32.

Run it from the repository root::

    .venv/bin/python benchmarks/rnn_speed.py                   # medium and large sizes, under a minute
    .venv/bin/python benchmarks/rnn_speed.py --check           # first verify both compute the same thing
    .venv/bin/python benchmarks/rnn_speed.py --sizes 100x32x64x128x2 --repeats 200
    .venv/bin/python benchmarks/rnn_speed.py --threads 2       # both libraries multi-threaded

A size is ``TxNxDxHxL``: time steps, batch, input features, hidden size, layers.
Both models have the same weights (``NumpyRNN.from_torch``), see the same input ``x`` and the same
output gradient ``G``, are in eval mode, and compute in float32. Four things are timed:

* NumPy forward: ``model(x)``;
* torch forward: ``rnn(x)`` under ``torch.no_grad()``;
* NumPy forward+backward: ``model(x)`` then ``model.backward(G)`` (gradients of the weights and of ``x``);
* torch forward+backward: ``rnn(x)`` then ``out.backward(G)``, with ``x.requires_grad`` so that torch
  also computes the gradient of the input, as NumPy does.

Each repeat runs the four once, in a shuffled order, so that a burst of load from other programs
slows all of them alike and neither library always runs right after the other; the table shows the
median over the repeats (``time.perf_counter``) and the NumPy/torch ratios. The timing and the thread
control are ``rnnlib.timing``'s, which chapter 11 of the book uses as well. On a shared machine timings
are noisy: raise ``--repeats`` and compare several runs.

Threads. By default both libraries use one thread (``--threads 1``): torch through
``torch.set_num_threads``, NumPy's OpenBLAS through its own ``openblas_set_num_threads``
(``rnnlib.timing.set_numpy_blas_threads``). The per-step
products are too small to gain much from a second thread, and on a machine whose cores are busy with
other work, a multi-threaded library waits at every step for all its threads to be scheduled, which
times the machine's load rather than the library. Worse, in one process the two thread pools compete:
OpenBLAS's threads spin for a while after each call, stealing the cores torch's threads need next (and
the other way round). Use ``--threads`` above 1 only on an otherwise idle machine.

What limits NumPy (the script measures the first two, see its "where the forward's time goes" lines):

* The recurrent product ``h @ W_hh.T``. It cannot be batched over time (step ``t`` needs ``h_{t-1}``),
  so it runs as ``T*L`` small ``(N, H) @ (H, H)`` products, each a separate BLAS call. Timing these
  products alone gives a floor no NumPy code can go under; at the medium size it is roughly half of
  the forward, and the backward has the same products plus the weight gradients' big ones.
* Python's time loop. Each step costs three NumPy calls (product, add, tanh), and each call costs
  under a microsecond of interpreter and dispatch overhead whatever the array size. Timing the same
  number of calls on 1-element arrays gives that floor: a small share at the medium size, the main cost
  for tiny ``N`` and ``H``.
* Memory. A fresh ``(T, N, H)`` array's pages cost a page fault each on first write (about a
  microsecond each here, in a virtual machine), and two such arrays fill more cache than one;
  ``layer_forward``/``layer_backward`` therefore write in place into the buffers they must have anyway.

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
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from rnnlib.numpy_rnn import NumpyRNN  # noqa: E402
from rnnlib.timing import median_times, numpy_blas_name, set_numpy_blas_threads  # noqa: E402

MEDIUM = (100, 32, 64, 128, 2)  # the size the goals are set at
LARGE = (100, 64, 256, 512, 2)
GOAL_FWD, GOAL_FWD_BWD = 1.5, 2.0  # NumPy time / torch time, at the medium size


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

    ``rnnlib.timing.median_times``, the helper chapter 11 uses too, in milliseconds.
    """
    return {name: 1e3 * seconds for name, seconds in median_times(functions, repeats, warmup).items()}


class Case:
    """One size: the torch module, the NumPy copy, the input and the output gradient."""

    def __init__(self, size: tuple[int, int, int, int, int], seed: int = 0) -> None:
        self.size = size
        T, N, D, H, L = size
        torch.manual_seed(seed)
        self.rnn = torch.nn.RNN(D, H, L).eval()  # float32, tanh, bias, seq-first: the defaults
        self.model = NumpyRNN.from_torch(self.rnn, dtype=np.float32).eval()
        self.x = torch.randn(T, N, D)
        self.G = torch.randn(T, N, H)
        self.x_np, self.G_np = self.x.numpy(), self.G.numpy()
        self.x_grad = self.x.clone().requires_grad_()  # torch computes d/dx too, as NumPy does

    def numpy_forward(self) -> tuple[np.ndarray, np.ndarray]:
        return self.model(self.x_np)

    def torch_forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.rnn(self.x)

    def numpy_forward_backward(self) -> tuple[np.ndarray, np.ndarray]:
        self.model(self.x_np)
        return self.model.backward(self.G_np)

    def torch_forward_backward(self) -> None:
        self.rnn.zero_grad(set_to_none=True)  # fresh gradient arrays, as NumPy's backward makes
        self.x_grad.grad = None
        out, _ = self.rnn(self.x_grad)
        out.backward(self.G)

    def check(self) -> dict[str, float]:
        """Largest differences NumPy vs torch: outputs (absolute) and gradients (relative to their largest entry)."""
        out_np, hn_np = self.numpy_forward()
        dx_np, _ = self.model.backward(self.G_np)
        self.torch_forward_backward()
        with torch.no_grad():
            out_t, hn_t = self.rnn(self.x)
        errors = {"output": float(np.abs(out_np - out_t.numpy()).max()),
                  "h_n": float(np.abs(hn_np - hn_t.numpy()).max())}
        pairs = [("d_input", dx_np, self.x_grad.grad)]
        pairs += [(name, self.model.grads[name], p.grad) for name, p in self.rnn.named_parameters()]
        for name, mine, theirs in pairs:
            ref = theirs.numpy()
            errors[name] = float(np.abs(mine - ref).max() / np.abs(ref).max())
        return errors


def floors(case: Case) -> dict[str, Callable[[], None]]:
    """The two floors of NumPy's time loop, as functions to time, with the same number of calls.

    * ``calls``: the forward loop's NumPy calls (3 per step and layer: product, add, tanh)
      on 1-element arrays: the pure per-call overhead of Python + NumPy dispatch.
    * ``matmuls``: the ``T*L`` recurrent products ``(N, H) @ (H, H)`` alone, into a reused buffer.
    * ``torch_matmuls``: the same products with ``torch.mm``: the per-op cost torch's own loop pays.
    """
    T, N, D, H, L = case.size
    one = np.zeros((1, 1), dtype=np.float32)
    out = np.empty((1, 1), dtype=np.float32)

    def calls() -> None:
        for _ in range(T * L):
            np.matmul(one, one, out=out)
            np.add(out, one, out=out)
            np.tanh(out, out=out)

    rng = np.random.default_rng(0)
    h = rng.standard_normal((N, H), dtype=np.float32)
    W = rng.standard_normal((H, H), dtype=np.float32)
    buf = np.empty((N, H), dtype=np.float32)

    def matmuls() -> None:
        for _ in range(T * L):
            np.matmul(h, W, out=buf)

    h_t, W_t, buf_t = torch.from_numpy(h), torch.from_numpy(W), torch.from_numpy(buf)

    def torch_matmuls() -> None:
        with torch.no_grad():
            for _ in range(T * L):
                torch.mm(h_t, W_t, out=buf_t)

    return {"calls": calls, "matmuls": matmuls, "torch_matmuls": torch_matmuls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[MEDIUM, LARGE], metavar="TxNxDxHxL",
                        help=f"sizes to time (default: {fmt_size(MEDIUM)} {fmt_size(LARGE)})")
    parser.add_argument("--repeats", type=positive_int, default=15,
                        help="timed repeats per size; the median is shown (default 15)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="threads for torch and for NumPy's BLAS (default 1: see the module docstring)")
    parser.add_argument("--check", action="store_true", help="verify NumPy and torch agree before timing")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    blas_threads = set_numpy_blas_threads(args.threads)
    print(f"numpy {np.__version__} (BLAS: {numpy_blas_name()}, threads: "
          f"{blas_threads if blas_threads is not None else 'unknown'}); "
          f"torch {torch.__version__} (threads: {torch.get_num_threads()}); float32; "
          f"median of {args.repeats} repeats; {os.cpu_count()} cores")

    cases = [Case(size) for size in args.sizes]
    if args.check:
        for case in cases:
            errors = case.check()
            worst_out = max(errors["output"], errors["h_n"])
            worst_grad = max(v for k, v in errors.items() if k not in ("output", "h_n"))
            print(f"check {fmt_size(case.size)}: max |out - torch| = {worst_out:.1e}, "
                  f"max gradient error (relative to its largest entry) = {worst_grad:.1e}")
            if worst_out > 1e-5 or worst_grad > 1e-4:
                print("NumPy and torch disagree beyond float32 rounding", file=sys.stderr)
                return 1

    header = (f"{'size TxNxDxHxL':>18} | {'numpy fwd':>9} {'torch fwd':>9} {'ratio':>5} | "
              f"{'numpy f+b':>9} {'torch f+b':>9} {'ratio':>5}")
    print(header + "\n" + "-" * len(header))
    ratios, timings = {}, {}
    for case in cases:
        # The floors are timed in the same shuffled rounds as the models, so the same load hits both.
        ms = time_interleaved({"nf": case.numpy_forward, "tf": case.torch_forward,
                               "nfb": case.numpy_forward_backward, "tfb": case.torch_forward_backward,
                               **floors(case)}, args.repeats)
        ratios[case.size] = (ms["nf"] / ms["tf"], ms["nfb"] / ms["tfb"])
        timings[case.size] = ms
        print(f"{fmt_size(case.size):>18} | {ms['nf']:7.2f}ms {ms['tf']:7.2f}ms {ratios[case.size][0]:5.2f} | "
              f"{ms['nfb']:7.2f}ms {ms['tfb']:7.2f}ms {ratios[case.size][1]:5.2f}")

    print("\nwhere the forward's time goes: its time loop's two floors, as shares of the forward times above")
    for case in cases:
        T, N, D, H, L = case.size
        ms = timings[case.size]
        print(f"{fmt_size(case.size):>18} | the {T * L} products (N,H)@(H,H) alone: "
              f"numpy {ms['matmuls']:.2f} ms = {ms['matmuls'] / ms['nf']:.0%}, "
              f"torch.mm {ms['torch_matmuls']:.2f} ms = {ms['torch_matmuls'] / ms['tf']:.0%}; "
              f"{3 * T * L} NumPy calls on 1-element arrays: {ms['calls']:.2f} ms = {ms['calls'] / ms['nf']:.0%}")

    if MEDIUM in ratios:
        fwd, fwd_bwd = ratios[MEDIUM]
        ok = fwd <= GOAL_FWD and fwd_bwd <= GOAL_FWD_BWD
        print(f"\nverdict at {fmt_size(MEDIUM)}: NumPy/torch forward {fwd:.2f} (goal <= {GOAL_FWD}), "
              f"forward+backward {fwd_bwd:.2f} (goal <= {GOAL_FWD_BWD}): {'goals met' if ok else 'goals NOT met'}")
    else:
        print(f"\nverdict: the goals are set at {fmt_size(MEDIUM)}, which was not timed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
