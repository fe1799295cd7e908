"""A stacked LSTM written from scratch with torch tensor operations, at parity with ``torch.nn.LSTM``.

:class:`TorchLSTM` has ``torch.nn.LSTM``'s constructor, parameter names, shapes, initialisation
order and forward semantics (``(output, (h_n, c_n))``, ``proj_size``), but computes with plain
matrix products and ``torch.sigmoid``/``torch.tanh``, so autograd differentiates it like any other
code. It uses neither ``nn.LSTM``, ``nn.LSTMCell`` nor the fused ``_VF`` kernels. The stack
around the cell is :class:`rnnlib.torch_stack.TorchStack`'s, shared with :class:`rnnlib.TorchRNN`.

Shapes: ``T`` steps, ``N`` batch, ``D_in`` a layer's input width, ``H`` hidden size, ``P``
``proj_size``, ``S`` the width of ``h`` (``P`` with a projection, else ``H``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .cell_config import LSTMConfig
from .torch_stack import TensorStates, TorchStack, run_over_time


def torch_lstm_layer_forward(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    W_hr: Tensor | None = None,
    reverse: bool = False,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer in one direction: ``x (T, N, D_in)``, ``h0 (N, S)``, ``c0 (N, H)`` ->
    ``out (T, N, S)``, ``h_last (N, S)``, ``c_last (N, H)``.

    Gate order ``i, f, g, o`` in the rows of ``W_ih (4H, D_in)``, ``W_hh (4H, S)`` and the biases
    ``(4H,)``; ``W_hr (P, H)`` projects ``o * tanh(c)`` to the state. ``mask (T, N)``, when given,
    marks the steps inside each sequence: outside, ``h`` and ``c`` are held and the output is zero.
    """
    pre = x @ W_ih.T  # the input projection of every step at once: (T, N, 4H)
    if b_ih is not None and b_hh is not None:
        pre = pre + b_ih + b_hh

    def step(pre_t: Tensor, state: TensorStates) -> TensorStates:
        h, c = state
        i, f, g, o = (pre_t + h @ W_hh.T).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        if W_hr is not None:
            h_new = h_new @ W_hr.T
        return h_new, c_new

    out, (h, c) = run_over_time(step, pre, (h0, c0), reverse, mask)
    return out, h, c


class TorchLSTM(TorchStack, LSTMConfig):
    """``torch.nn.LSTM`` rebuilt from tensor operations.

    Same arguments as ``torch.nn.LSTM`` (``proj_size`` included). Parameters are registered in
    the same order (``weight_ih, weight_hh, bias_ih, bias_hh, weight_hr`` per layer and direction)
    and initialised the same way, so after ``torch.manual_seed(s)`` a ``TorchLSTM`` and an
    ``nn.LSTM`` built with the same arguments hold identical weights.

    ``forward(input, (h0, c0))`` returns ``(output, (h_n, c_n))``: ``output (T, N, S*dirs)``,
    ``h_n (L*dirs, N, S)``, ``c_n (L*dirs, N, H)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self._setup(
            input_size,
            hidden_size,
            num_layers,
            "tanh",
            bias,
            batch_first,
            dropout,
            bidirectional,
            device,
            dtype,
            proj_size,
        )

    def _layer_forward(
        self, x: Tensor, state0: TensorStates, layer: int, reverse: bool, mask: Tensor | None
    ) -> tuple[Tensor, TensorStates]:
        """:func:`torch_lstm_layer_forward` with this layer's parameters: ``(h0 (N, S), c0 (N, H))``."""
        out, h_last, c_last = torch_lstm_layer_forward(
            x,
            state0[0],
            state0[1],
            self._weight("weight_ih", layer, reverse),
            self._weight("weight_hh", layer, reverse),
            self._bias("bias_ih", layer, reverse),
            self._bias("bias_hh", layer, reverse),
            self._bias("weight_hr", layer, reverse),
            reverse,
            mask,
        )
        return out, (h_last, c_last)
