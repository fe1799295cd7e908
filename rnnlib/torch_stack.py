"""The stack around a recurrent cell, in torch: layers, directions, dropout, lengths, packing, validation.

:class:`TorchStack` is an ``nn.Module`` that runs any cell given as one layer's forward
over a sequence. :class:`rnnlib.TorchRNN`, :class:`rnnlib.TorchLSTM` and
:class:`rnnlib.TorchGRU` are subclasses that only say which parameters their cell has and
how one layer runs; the input layouts, ``hx``, lengths and ``PackedSequence``, the
bidirectional concatenation, dropout between layers, ``h_n`` and the checks are written
once, here. Autograd differentiates it: no tensor that backward needs is updated in place.

Shapes: ``T`` steps, ``N`` batch, ``D`` input features, ``H`` hidden, ``L`` layers,
``dirs`` directions, ``S`` the width of the state a layer outputs (``H``, or ``proj_size``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Self, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .cell_config import StackConfig
from .params import (
    all_weight_names,
    check_dropout_at_forward,
    check_h0_shape,
    check_input_shape,
    check_lengths,
    param_name,
)

TensorStates = tuple[Tensor, ...]
"""A cell's state, one tensor per part: ``(h,)`` for Elman and GRU, ``(h, c)`` for the LSTM."""


def run_over_time(
    step: Callable[[Tensor, TensorStates], TensorStates],
    pre: Tensor,
    state0: TensorStates,
    reverse: bool = False,
    mask: Tensor | None = None,
) -> tuple[Tensor, TensorStates]:
    """The time loop every cell shares: ``state = step(pre[t], state)`` for each step, backwards when ``reverse``.

    ``pre (T, N, ...)``: what the cell computed for all steps at once (its input projection);
    ``state0``: each part ``(N, size)``, ``h`` first. ``mask (T, N)``, when given, marks the steps
    inside each sequence: outside, every part of the state is held and the output is zero
    (packed-sequence semantics). Returns ``out (T, N, S)``, each step's ``h``, and the last state.
    States are collected in a list and stacked: nothing autograd needs is written in place.
    """
    T = pre.shape[0]
    outs: list[Tensor] = [state0[0]] * T
    state = state0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        new = step(pre[t], state)
        if mask is not None:  # past a sequence's end: hold the state
            new = tuple(torch.where(mask[t, :, None], n, s) for n, s in zip(new, state, strict=True))
        outs[t] = new[0]
        state = new
    out = torch.stack(outs)
    if mask is not None:
        out = out * mask[:, :, None]
    return out, state


class TorchStack(StackConfig, nn.Module):
    """A stack of recurrent layers from tensor operations, with ``torch.nn.RNN``'s semantics for all but the cell.

    A subclass mixes in its cell kind's configuration (:mod:`rnnlib.cell_config`) and implements
    :meth:`_layer_forward`. Parameters are
    registered in ``torch.nn.RNN``'s order and initialised the same way (uniform in
    ``[-1/sqrt(H), 1/sqrt(H)]``, one after the other), so after ``torch.manual_seed(s)`` a
    subclass and its torch counterpart built with the same arguments hold identical weights.
    """

    def _setup(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        nonlinearity: str,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        device: Any,
        dtype: Any,
        proj_size: int = 0,
    ) -> None:
        """Check and store the configuration (:class:`rnnlib.cell_config.StackConfig`), register and initialise
        the parameters."""
        shapes = self._configure(
            input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional, proj_size
        )
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()

    def _layer_forward(
        self, x: Tensor, state0: TensorStates, layer: int, reverse: bool, mask: Tensor | None
    ) -> tuple[Tensor, TensorStates]:
        """One layer, one direction: ``x (T, N, D_in)``, ``state0`` (each ``(N, size)``) ->
        ``out (T, N, S)`` and the last state read (each ``(N, size)``).

        ``mask (T, N)``: ``True`` inside each sequence; outside, the state is held and the output is 0.
        """
        raise NotImplementedError

    @classmethod
    def from_torch(cls, module: nn.Module, *, dtype: Any = torch.float64) -> Self:
        """A model with the configuration, weights and train/eval mode of a torch module of the same kind."""
        model = cls(*(getattr(module, name) for name in cls.CONFIG), dtype=dtype)
        model.load_state_dict(module.state_dict())
        return model.train(module.training)

    def reset_parameters(self) -> None:
        """Uniform in ``[-1/sqrt(H), 1/sqrt(H)]``, parameter by parameter in registration order."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        return self._config_repr()

    def flatten_parameters(self) -> None:
        """Nothing to do: ``nn.RNN`` packs its weights into one buffer for cuDNN; these stay separate.

        Here so that code written for ``nn.RNN`` (which calls it after ``.to(device)``) runs unchanged.
        """

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """As ``nn.RNN.all_weights``: ``L*dirs`` lists (index ``layer*dirs + direction``) of
        ``[weight_ih (G*H, D_in), weight_hh (G*H, S), bias_ih (G*H,), bias_hh (G*H,)]`` (the weights only
        without bias; ``weight_hr (P, H)`` last for a projected LSTM).

        Read as attributes, so a parametrized weight appears as its computed value (as in ``nn.RNN``).
        """
        return [
            [getattr(self, name) for name in names]
            for names in all_weight_names(self.num_layers, self.bias, self.bidirectional, proj=self.proj_size > 0)
        ]

    def _weight(self, kind: str, layer: int, reverse: bool) -> Tensor:
        """``weight_ih``/``weight_hh`` of one layer and direction.

        A plain attribute read, not ``get_parameter``: under ``torch.func.functional_call`` the
        attribute is the caller's tensor, and under ``torch.nn.utils.parametrize`` it is the
        parametrization's output, neither of which is an ``nn.Parameter``.
        """
        return cast(Tensor, getattr(self, param_name(kind, layer, reverse)))

    def _bias(self, kind: str, layer: int, reverse: bool) -> Tensor | None:
        """``bias_ih``/``bias_hh`` (or ``weight_hr``) of one layer and direction, or ``None`` when absent."""
        return getattr(self, param_name(kind, layer, reverse), None)

    def _initial_states(self, hx: Any, input: Tensor, batched: bool, N: int) -> list[Tensor]:
        """Each part of the initial state as ``(L*dirs, N, size)``: zeros when ``hx`` is ``None``."""
        num_states = self.num_layers * self.num_directions
        sizes = self._state_sizes()
        if hx is None:
            return [input.new_zeros((num_states, N, size)) for size in sizes]
        if len(sizes) == 1:
            parts: tuple[Any, ...] = (hx,)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != len(sizes):
                got = (
                    f"a {type(hx).__name__} of length {len(hx)}"
                    if isinstance(hx, (tuple, list))
                    else f"a {type(hx).__name__}" + (f" of shape {tuple(hx.shape)}" if hasattr(hx, "shape") else "")
                )
                raise TypeError(
                    f"hx of a {type(self).__name__} must be a tuple ({', '.join(self.STATE_NAMES)}), got {got}"
                )
            parts = tuple(hx)
        dtype = self.weight_ih_l0.dtype
        states = []
        for name, size, part in zip(self.STATE_NAMES, sizes, parts, strict=True):
            if not isinstance(part, Tensor):
                raise TypeError(
                    f"{'hx' if len(sizes) == 1 else name} must be a torch.Tensor, got {type(part).__name__}"
                )
            if part.dtype != dtype:
                what = "hx" if len(sizes) == 1 else name
                raise TypeError(f"{what} has dtype {part.dtype} but the parameters are {dtype}")
            size_name = "P" if (name != "c0" and self.proj_size > 0) else "H"
            check_h0_shape(tuple(part.shape), batched, num_states, N, size, name, size_name)
            states.append(part if batched else part.unsqueeze(1))
        return states

    def forward(
        self, input: Tensor | PackedSequence, hx: Any = None, lengths: Any = None
    ) -> tuple[Tensor | PackedSequence, Any]:
        """Run the stack.

        Args:
            input: ``(T, N, D)``, ``(N, T, D)`` with ``batch_first``, unbatched ``(T, D)``
                (``T >= 1``; ``N = 0`` gives empty outputs, as in ``nn.RNN``),
                or a ``PackedSequence`` (then the output is packed the same way).
            hx: ``(L*dirs, N, H)`` (``(L*dirs, H)`` unbatched), zeros when ``None``;
                for an LSTM the tuple ``(h0 (L*dirs, N, S), c0 (L*dirs, N, H))``.
            lengths: optional ``(N,)`` lengths for a padded batch (the same as packing it).

        Returns:
            ``output (T, N, S*dirs)`` (layout as the input) and ``h_n (L*dirs, N, S)``
            (an LSTM: ``(h_n, c_n)``, ``c_n`` being ``(L*dirs, N, H)``).
        """
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("pass lengths or a PackedSequence, not both")
            padded, lens = pad_packed_sequence(input, batch_first=self.batch_first)  # original batch order
            output, h_n = self.forward(padded, hx, lengths=lens)  # padded in, padded out
            output = cast(Tensor, output)
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
            raise TypeError(
                f"input has dtype {input.dtype} but the parameters are {weight.dtype}: "
                f"convert one of them (e.g. input.to({weight.dtype}) or model.to({input.dtype}))"
            )
        batched, T, N = check_input_shape(tuple(input.shape), self.input_size, self.batch_first)
        L, dirs = self.num_layers, self.num_directions
        state0 = self._initial_states(hx, input, batched, N)
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
        lasts: list[TensorStates] = []
        for layer in range(L):
            outs = []
            for direction in range(dirs):
                k = layer * dirs + direction
                out, last = self._layer_forward(x, tuple(s[k] for s in state0), layer, direction == 1, mask)
                outs.append(out)
                lasts.append(last)
            x = outs[0] if dirs == 1 else torch.cat(outs, dim=-1)
            if layer < L - 1 and self.dropout > 0 and self.training:
                x = nn.functional.dropout(x, self.dropout, training=True)  # between layers only
        finals = [torch.stack([last[part] for last in lasts]) for part in range(len(state0))]
        if not batched:
            x, finals = x.squeeze(1), [f.squeeze(1) for f in finals]
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, (finals[0] if len(finals) == 1 else tuple(finals))
