"""What a stack of one cell kind is, shared by its NumPy and its torch class.

A stack's configuration (sizes, flags, the number of gate blocks, the parts of its state, the
constructor arguments ``from_torch`` reads, what ``repr`` shows) does not depend on whether it
computes in NumPy or in torch. :class:`StackConfig` checks and stores it once for
:class:`rnnlib.stack.NumpyStack` and :class:`rnnlib.torch_stack.TorchStack`; :class:`ElmanConfig`,
:class:`GRUConfig` and :class:`LSTMConfig` say what each cell kind adds, and each is mixed into
both of its classes (``NumpyLSTM(NumpyStack, LSTMConfig)``, ``TorchLSTM(TorchStack, LSTMConfig)``).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from .params import (
    DROPOUT_WARNING,
    check_config,
    check_flags,
    check_proj_size,
    dropout_warning_needed,
    param_shapes,
)

_BASE_DEFAULTS: dict[str, Any] = {"bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False}
_BASE_CONFIG = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")


class StackConfig:
    """The configuration of a stack, checked and stored by :meth:`_configure`."""

    GATES: ClassVar[int] = 1
    """Gate blocks stacked in the rows of ``weight_ih``/``weight_hh`` (1 Elman, 3 GRU, 4 LSTM)."""
    STATE_NAMES: ClassVar[tuple[str, ...]] = ("h0",)
    """The initial state's parts, ``h`` first; more than one (the LSTM's ``("h0", "c0")``) makes it a tuple."""
    CONFIG: ClassVar[tuple[str, ...]] = ()
    """Constructor arguments in positional order, read from a torch module by ``from_torch``."""
    DEFAULTS: ClassVar[dict[str, Any]] = _BASE_DEFAULTS
    """Arguments shown by ``repr`` only when they differ from these."""

    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    dropout: float
    bidirectional: bool
    num_directions: int
    proj_size: int

    def _configure(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        nonlinearity: str,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int = 0,
    ) -> dict[str, tuple[int, ...]]:
        """Check the arguments (as ``torch.nn.RNN`` does, with its messages), store them, and return the
        parameters' shapes ``{name: shape}`` in registration order. Called by the stacks' ``_setup``."""
        check_config(input_size, hidden_size, num_layers, nonlinearity, dropout)
        proj_size = check_proj_size(proj_size, hidden_size)  # 0 unless an LSTM asks for a projection
        bias, batch_first, bidirectional = check_flags(bias, batch_first, bidirectional)
        if dropout_warning_needed(dropout, num_layers):  # stacklevel: _configure, _setup, __init__, the caller
            warnings.warn(DROPOUT_WARNING.format(dropout=dropout, num_layers=num_layers), UserWarning, stacklevel=4)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.proj_size = proj_size
        return param_shapes(
            input_size, hidden_size, num_layers, bias, bidirectional, gates=self.GATES, proj_size=proj_size
        )

    def _state_sizes(self) -> tuple[int, ...]:
        """The width of each part of the state: ``h`` (``proj_size`` if set, else ``hidden_size``; also what a
        layer outputs), then ``hidden_size`` for each further part (the LSTM's ``c``)."""
        h = self.proj_size if self.proj_size > 0 else self.hidden_size
        return (h,) + (self.hidden_size,) * (len(self.STATE_NAMES) - 1)

    def _config_repr(self) -> str:
        """``"D, H[, num_layers=L][, key=value ...]"``: the arguments that differ from the defaults, as torch shows
        them."""
        parts = [str(self.input_size), str(self.hidden_size)]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        parts += [f"{k}={getattr(self, k)!r}" for k, v in self.DEFAULTS.items() if getattr(self, k) != v]
        return ", ".join(parts)


class ElmanConfig(StackConfig):
    """``nn.RNN``: one gate block, a ``nonlinearity``."""

    CONFIG = ("input_size", "hidden_size", "num_layers", "nonlinearity", *_BASE_CONFIG[3:])
    DEFAULTS = {"nonlinearity": "tanh", **_BASE_DEFAULTS}


class GRUConfig(StackConfig):
    """``nn.GRU``: three gate blocks ``r, z, n``."""

    GATES = 3
    CONFIG = _BASE_CONFIG


class LSTMConfig(StackConfig):
    """``nn.LSTM``: four gate blocks ``i, f, g, o``, a second state ``c``, and ``proj_size``."""

    GATES = 4
    STATE_NAMES = ("h0", "c0")
    CONFIG = (*_BASE_CONFIG, "proj_size")
    DEFAULTS = {**_BASE_DEFAULTS, "proj_size": 0}
