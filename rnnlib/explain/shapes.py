"""The shapes of ``nn.RNN``'s inputs and outputs for every layout flag, measured by running it.

:func:`shape_table` runs ``torch.nn.RNN``, :class:`rnnlib.TorchRNN` and
:class:`rnnlib.NumpyRNN` (same weights, float64) on one random input per
configuration of ``batched x batch_first x bidirectional x num_layers`` and
records the shapes they return, whether the three agree with each other and with
the closed-form rule :func:`expected_shapes`, and how far apart their numbers
are. :func:`format_shape_table` prints the result as an aligned text table.

Sizes: ``T`` steps, ``N`` batch, ``D`` input features, ``H`` hidden, ``L`` layers,
``dirs`` = 2 when bidirectional, else 1.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..numpy_rnn import NumpyRNN
from ..torch_rnn import TorchRNN

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeRow:
    """One configuration and the shapes measured for it.

    Attributes:
        batched, batch_first, bidirectional, num_layers: the configuration.
        input, h0: the shapes fed to the three implementations.
        output, h_n: the shapes ``torch.nn.RNN`` returned.
        agree: the three implementations returned the same ``output`` and ``h_n``
            shapes, and those equal :func:`expected_shapes`.
        max_abs_diff: the largest ``|rnnlib - torch|`` over ``output`` and ``h_n``
            of both rnnlib implementations (float64).
    """

    batched: bool
    batch_first: bool
    bidirectional: bool
    num_layers: int
    input: Shape
    h0: Shape
    output: Shape
    h_n: Shape
    agree: bool
    max_abs_diff: float


def expected_shapes(
    T: int, N: int, D: int, H: int, num_layers: int, bidirectional: bool, batch_first: bool, batched: bool
) -> dict[str, Shape]:
    """The rule, as a formula: ``{'input', 'h0', 'output', 'h_n'}`` -> shape.

    ``h0`` and ``h_n`` are ``(L*dirs, N, H)`` whatever ``batch_first`` says; only
    ``input`` and ``output`` swap their first two axes. Unbatched input drops the
    ``N`` axis everywhere (and ``batch_first`` then has no effect).
    """
    dirs = 2 if bidirectional else 1
    if not batched:
        return {"input": (T, D), "h0": (num_layers * dirs, H), "output": (T, dirs * H), "h_n": (num_layers * dirs, H)}
    lead = (N, T) if batch_first else (T, N)
    return {
        "input": (*lead, D),
        "h0": (num_layers * dirs, N, H),
        "output": (*lead, dirs * H),
        "h_n": (num_layers * dirs, N, H),
    }


def run_three(
    T: int,
    N: int,
    D: int,
    H: int,
    num_layers: int,
    bidirectional: bool,
    batch_first: bool,
    batched: bool,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run ``nn.RNN``, ``TorchRNN`` and ``NumpyRNN`` (shared float64 weights) on one seeded input and ``h0``.

    Returns:
        ``{'nn.RNN' | 'TorchRNN' | 'NumpyRNN': (output, h_n)}`` as NumPy arrays.
    """
    shapes = expected_shapes(T, N, D, H, num_layers, bidirectional, batch_first, batched)
    torch.manual_seed(seed)
    reference = nn.RNN(D, H, num_layers, bidirectional=bidirectional, batch_first=batch_first).double()
    ours = TorchRNN(D, H, num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=torch.float64)
    ours.load_state_dict(reference.state_dict())
    numpy_rnn = NumpyRNN.from_torch(reference)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shapes["input"], generator=gen, dtype=torch.float64)
    h0 = torch.randn(shapes["h0"], generator=gen, dtype=torch.float64)
    results = {}
    with torch.no_grad():
        for name, module in (("nn.RNN", reference), ("TorchRNN", ours)):
            out, h_n = module(x, h0)
            results[name] = (out.numpy(), h_n.numpy())
    results["NumpyRNN"] = numpy_rnn.forward(x.numpy(), h0.numpy())
    return results


def shape_table(T: int = 6, N: int = 3, D: int = 7, H: int = 5, seed: int = 0) -> list[ShapeRow]:
    """Measure the shapes for all 16 configurations (batched, batch_first, bidirectional, L in {1, 2}).

    The default sizes are all different (and different from ``L*dirs`` and
    ``2H``), so every number in a shape names one size.
    """
    rows = []
    for batched, batch_first, bidirectional, num_layers in itertools.product(
        (True, False), (False, True), (False, True), (1, 2)
    ):
        want = expected_shapes(T, N, D, H, num_layers, bidirectional, batch_first, batched)
        got = run_three(T, N, D, H, num_layers, bidirectional, batch_first, batched, seed)
        out_ref, hn_ref = got["nn.RNN"]
        agree = all(out.shape == want["output"] and h_n.shape == want["h_n"] for out, h_n in got.values())
        diff = (
            max(
                float(np.max(np.abs(a - b)))
                for name in ("TorchRNN", "NumpyRNN")
                for a, b in zip(got[name], (out_ref, hn_ref), strict=True)
            )
            if agree
            else float("inf")
        )
        rows.append(
            ShapeRow(
                batched,
                batch_first,
                bidirectional,
                num_layers,
                want["input"],
                want["h0"],
                tuple(out_ref.shape),
                tuple(hn_ref.shape),
                agree,
                diff,
            )
        )
    return rows


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def format_shape_table(rows: list[ShapeRow]) -> str:
    """An aligned plain-text table of :func:`shape_table`'s rows (one line per configuration)."""
    header = ("batched", "batch_first", "bidirectional", "L", "input", "h0", "output", "h_n", "agree")
    lines = [header] + [
        (
            str(r.batched),
            str(r.batch_first),
            str(r.bidirectional),
            str(r.num_layers),
            _fmt(r.input),
            _fmt(r.h0),
            _fmt(r.output),
            _fmt(r.h_n),
            "yes" if r.agree else "NO",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)
