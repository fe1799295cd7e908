"""A stacked Elman RNN written from scratch with torch tensor operations.

:class:`TorchRNN` has ``torch.nn.RNN``'s constructor, parameter names, shapes,
initialisation order and forward semantics, but computes with plain matrix
products, so autograd differentiates it like any other code. It uses neither
``nn.RNN`` nor the fused ``_VF`` kernels; no tensor that backward needs is
updated in place (states are collected in lists and stacked).

Shapes: ``T`` steps, ``N`` batch, ``D`` input features, ``H`` hidden, ``L`` layers,
``dirs`` directions.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from .cell_config import ElmanConfig
from .torch_stack import TensorStates, TorchStack, run_over_time

_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def torch_layer_forward(
    x: Tensor,
    h0: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    nonlinearity: str = "tanh",
    reverse: bool = False,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One layer in one direction: ``x (T, N, D_in)``, ``h0 (N, H)`` -> ``out (T, N, H)``, ``h_last (N, H)``.

    ``mask (T, N)``, when given, marks the steps inside each sequence: outside,
    the state is held and the output is zero (packed-sequence semantics).
    """
    act = _ACTIVATIONS[nonlinearity]
    pre = x @ W_ih.T  # the input projection of every step at once: (T, N, H)
    if b_ih is not None:
        pre = pre + b_ih + cast(Tensor, b_hh)  # the biases come in pairs
    out, (h,) = run_over_time(lambda pre_t, state: (act(pre_t + state[0] @ W_hh.T),), pre, (h0,), reverse, mask)
    return out, h


class TorchRNN(TorchStack, ElmanConfig):
    """``torch.nn.RNN`` rebuilt from tensor operations.

    Same arguments as ``torch.nn.RNN``. Parameters are registered in the same
    order and initialised the same way (uniform in ``[-1/sqrt(H), 1/sqrt(H)]``),
    so after ``torch.manual_seed(s)`` a ``TorchRNN`` and an ``nn.RNN`` built with
    the same arguments hold identical weights, and their state dicts load into
    each other. The stack is :class:`rnnlib.torch_stack.TorchStack`'s; the cell is
    :func:`torch_layer_forward`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.nonlinearity = nonlinearity  # before _setup's checks: they do not read it from here
        self._setup(
            input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional, device, dtype
        )

    def _layer_forward(
        self, x: Tensor, state0: TensorStates, layer: int, reverse: bool, mask: Tensor | None
    ) -> tuple[Tensor, TensorStates]:
        """:func:`torch_layer_forward` with this layer's parameters: ``x (T, N, D_in)``, ``(h0 (N, H),)``."""
        out, h_last = torch_layer_forward(
            x,
            state0[0],
            self._weight("weight_ih", layer, reverse),
            self._weight("weight_hh", layer, reverse),
            self._bias("bias_ih", layer, reverse),
            self._bias("bias_hh", layer, reverse),
            self.nonlinearity,
            reverse,
            mask,
        )
        return out, (h_last,)
