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

import math
import warnings
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .params import (
    DROPOUT_WARNING,
    all_weight_names,
    check_config,
    check_dropout_at_forward,
    check_flags,
    check_h0_shape,
    check_input_shape,
    check_lengths,
    dropout_warning_needed,
    param_name,
    param_shapes,
)

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
    T = x.shape[0]
    states: list[Tensor] = [h0] * T
    h = h0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        h_new = act(pre[t] + h @ W_hh.T)
        if mask is not None:
            h_new = torch.where(mask[t, :, None], h_new, h)
        states[t] = h_new
        h = h_new
    out = torch.stack(states)
    if mask is not None:
        out = out * mask[:, :, None]
    return out, h


class TorchRNN(nn.Module):
    """``torch.nn.RNN`` rebuilt from tensor operations.

    Same arguments as ``torch.nn.RNN``. Parameters are registered in the same
    order and initialised the same way (uniform in ``[-1/sqrt(H), 1/sqrt(H)]``),
    so after ``torch.manual_seed(s)`` a ``TorchRNN`` and an ``nn.RNN`` built with
    the same arguments hold identical weights, and their state dicts load into
    each other.
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
        check_config(input_size, hidden_size, num_layers, nonlinearity, dropout)
        bias, batch_first, bidirectional = check_flags(bias, batch_first, bidirectional)
        if dropout_warning_needed(dropout, num_layers):
            warnings.warn(DROPOUT_WARNING.format(dropout=dropout, num_layers=num_layers), UserWarning, stacklevel=2)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        for name, shape in param_shapes(input_size, hidden_size, num_layers, bias, bidirectional).items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()

    @classmethod
    def from_torch(cls, module: nn.RNN, *, dtype: Any = torch.float64) -> "TorchRNN":
        """A ``TorchRNN`` with the configuration, weights and train/eval mode of a ``torch.nn.RNN``."""
        model = cls(module.input_size, module.hidden_size, module.num_layers, module.nonlinearity, module.bias,
                    module.batch_first, module.dropout, module.bidirectional, dtype=dtype)
        model.load_state_dict(module.state_dict())
        return model.train(module.training)

    def reset_parameters(self) -> None:
        """Uniform in ``[-1/sqrt(H), 1/sqrt(H)]``, parameter by parameter in registration order."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for key, default in (("nonlinearity", "tanh"), ("bias", True), ("batch_first", False),
                             ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)!r}"
        return s

    def flatten_parameters(self) -> None:
        """Nothing to do: ``nn.RNN`` packs its weights into one buffer for cuDNN; these stay separate.

        Here so that code written for ``nn.RNN`` (which calls it after ``.to(device)``) runs unchanged.
        """

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """As ``nn.RNN.all_weights``: ``L*dirs`` lists (index ``layer*dirs + direction``) of
        ``[weight_ih (H, D_in), weight_hh (H, H), bias_ih (H,), bias_hh (H,)]`` (the weights only without bias).

        Read as attributes, so a parametrized weight appears as its computed value (as in ``nn.RNN``).
        """
        return [[getattr(self, name) for name in names]
                for names in all_weight_names(self.num_layers, self.bias, self.bidirectional)]

    def _weight(self, kind: str, layer: int, reverse: bool) -> Tensor:
        """``weight_ih``/``weight_hh`` of one layer and direction.

        A plain attribute read, not ``get_parameter``: under ``torch.func.functional_call`` the
        attribute is the caller's tensor, and under ``torch.nn.utils.parametrize`` it is the
        parametrization's output, neither of which is an ``nn.Parameter``.
        """
        return cast(Tensor, getattr(self, param_name(kind, layer, reverse)))

    def _bias(self, kind: str, layer: int, reverse: bool) -> Tensor | None:
        """``bias_ih``/``bias_hh`` of one layer and direction, or ``None`` when ``bias=False``."""
        return getattr(self, param_name(kind, layer, reverse), None)

    def forward(
        self, input: Tensor | PackedSequence, hx: Tensor | None = None, lengths: Any = None
    ) -> tuple[Tensor | PackedSequence, Tensor]:
        """Run the stack.

        Args:
            input: ``(T, N, D)``, ``(N, T, D)`` with ``batch_first``, unbatched ``(T, D)``
                (``T >= 1``; ``N = 0`` gives empty outputs, as in ``nn.RNN``),
                or a ``PackedSequence`` (then the output is packed the same way).
            hx: ``(L*dirs, N, H)`` (``(L*dirs, H)`` unbatched), zeros when ``None``.
            lengths: optional ``(N,)`` lengths for a padded batch (the same as packing it).

        Returns:
            ``output (T, N, H*dirs)`` (layout as the input) and ``h_n (L*dirs, N, H)``.
        """
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("pass lengths or a PackedSequence, not both")
            padded, lens = pad_packed_sequence(input, batch_first=self.batch_first)  # original batch order
            output, h_n = cast("tuple[Tensor, Tensor]", self.forward(padded, hx, lengths=lens))  # padded in, padded out
            # Re-pack in the input's own sorted order, so that .data lines up with input.data.
            order = input.sorted_indices
            if order is not None:
                output = output.index_select(0 if self.batch_first else 1, order)
                lens = lens.index_select(0, order.cpu())
            packed = pack_padded_sequence(output, lens, batch_first=self.batch_first, enforce_sorted=True)
            return PackedSequence(packed.data, input.batch_sizes, input.sorted_indices, input.unsorted_indices), h_n

        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a torch.Tensor or PackedSequence, got {type(input).__name__}")
        weight = self.weight_ih_l0
        if input.dtype != weight.dtype:
            raise TypeError(f"input has dtype {input.dtype} but the parameters are {weight.dtype}: "
                            f"convert one of them (e.g. input.to({weight.dtype}) or model.to({input.dtype}))")
        batched, T, N = check_input_shape(tuple(input.shape), self.input_size, self.batch_first)
        L, dirs, H = self.num_layers, self.num_directions, self.hidden_size
        if hx is None:
            h0 = input.new_zeros((L * dirs, N, H))
        else:
            if hx.dtype != weight.dtype:
                raise TypeError(f"hx has dtype {hx.dtype} but the parameters are {weight.dtype}")
            check_h0_shape(tuple(hx.shape), batched, L * dirs, N, H)
            h0 = hx if batched else hx.unsqueeze(1)
        mask = None
        if lengths is not None:
            lens = torch.as_tensor(check_lengths(lengths, batched, T, N), device=input.device)
            mask = torch.arange(T, device=input.device)[:, None] < lens[None, :]
        if not batched:
            x = input.unsqueeze(1)
        else:
            x = input.transpose(0, 1) if self.batch_first else input

        if self.training and L > 1:
            # model.dropout may have been set after construction. Checked here so the error is nn.RNN's
            # RuntimeError, not F.dropout's ValueError; at p = 1, F.dropout gives zeros, as nn.RNN does.
            check_dropout_at_forward(self.dropout)
        h_lasts: list[Tensor] = []
        for layer in range(L):
            outs = []
            for direction in range(dirs):
                reverse = direction == 1
                out, h_last = torch_layer_forward(
                    x, h0[layer * dirs + direction],
                    self._weight("weight_ih", layer, reverse), self._weight("weight_hh", layer, reverse),
                    self._bias("bias_ih", layer, reverse), self._bias("bias_hh", layer, reverse),
                    self.nonlinearity, reverse, mask,
                )
                outs.append(out)
                h_lasts.append(h_last)
            x = outs[0] if dirs == 1 else torch.cat(outs, dim=-1)
            if layer < L - 1 and self.dropout > 0 and self.training:
                x = nn.functional.dropout(x, self.dropout, training=True)  # between layers only
        hn = torch.stack(h_lasts)
        if not batched:
            return x.squeeze(1), hn.squeeze(1)
        return (x.transpose(0, 1) if self.batch_first else x), hn
