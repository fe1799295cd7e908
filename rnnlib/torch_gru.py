"""A stacked GRU written from scratch with torch tensor operations, at parity with ``torch.nn.GRU``.

:class:`TorchGRU` has ``torch.nn.GRU``'s constructor, parameter names, shapes, initialisation
order and forward semantics, but computes with plain matrix products and
``torch.sigmoid``/``torch.tanh``, so autograd differentiates it like any other code. It uses
neither ``nn.GRU``, ``nn.GRUCell`` nor the fused ``_VF`` kernels. The stack around the cell is
:class:`rnnlib.torch_stack.TorchStack`'s, shared with :class:`rnnlib.TorchRNN`.

Shapes: ``T`` steps, ``N`` batch, ``D_in`` a layer's input width, ``H`` hidden size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .cell_config import GRUConfig
from .params import refuse_proj_size
from .torch_stack import TensorStates, TorchStack, run_over_time


def torch_gru_layer_forward(
    x: Tensor,
    h0: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    reverse: bool = False,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One GRU layer in one direction: ``x (T, N, D_in)``, ``h0 (N, H)`` -> ``out (T, N, H)``, ``h_last (N, H)``.

    Gate order ``r, z, n`` in the rows of ``W_ih (3H, D_in)``, ``W_hh (3H, H)`` and the biases
    ``(3H,)``; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` (``b_hn`` inside the product, as in
    PyTorch), ``h' = (1 - z) * n + z * h``. ``mask (T, N)``, when given, marks the steps inside each
    sequence: outside, the state is held and the output is zero.
    """
    gi = x @ W_ih.T  # the input side of every step at once: (T, N, 3H)
    if b_ih is not None:
        gi = gi + b_ih

    def step(gi_t: Tensor, state: TensorStates) -> TensorStates:
        (h,) = state
        gh = h @ W_hh.T
        if b_hh is not None:
            gh = gh + b_hh  # kept apart from b_ih: b_hn is multiplied by r
        i_r, i_z, i_n = gi_t.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return ((1 - z) * n + z * h,)

    out, (h,) = run_over_time(step, gi, (h0,), reverse, mask)
    return out, h


class TorchGRU(TorchStack, GRUConfig):
    """``torch.nn.GRU`` rebuilt from tensor operations.

    Same arguments as ``torch.nn.GRU``; ``proj_size`` other than 0 raises ``nn.GRU``'s ``ValueError``.
    Parameters are registered in the same order and initialised the same way, so after
    ``torch.manual_seed(s)`` a ``TorchGRU`` and an ``nn.GRU`` built with the same arguments hold
    identical weights. ``forward(input, h0)`` returns ``(output (T, N, H*dirs), h_n (L*dirs, N, H))``.
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
        device: Any = None,
        dtype: Any = None,
        *,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        refuse_proj_size(proj_size)
        self._setup(
            input_size, hidden_size, num_layers, "tanh", bias, batch_first, dropout, bidirectional, device, dtype
        )

    def _layer_forward(
        self, x: Tensor, state0: TensorStates, layer: int, reverse: bool, mask: Tensor | None
    ) -> tuple[Tensor, TensorStates]:
        """:func:`torch_gru_layer_forward` with this layer's parameters: ``(h0 (N, H),)``."""
        out, h_last = torch_gru_layer_forward(
            x,
            state0[0],
            self._weight("weight_ih", layer, reverse),
            self._weight("weight_hh", layer, reverse),
            self._bias("bias_ih", layer, reverse),
            self._bias("bias_hh", layer, reverse),
            reverse,
            mask,
        )
        return out, (h_last,)
