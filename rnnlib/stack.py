"""The stack around a recurrent cell, in NumPy: layers, directions, dropout, lengths, validation.

:class:`NumpyStack` runs any cell whose one-layer, one-direction pass is a pair of functions
(forward with a cache, backward from it). :class:`rnnlib.NumpyRNN` (Elman),
:class:`rnnlib.NumpyLSTM` and :class:`rnnlib.NumpyGRU` are subclasses that only say which
parameters their cell has and how one layer runs; everything between the layers (the input
layouts, ``h0``, per-sequence lengths, the bidirectional concatenation, dropout, ``h_n``, the
backward pass through the stack, the checks and their messages) is written once, here.

Shapes: ``T`` steps, ``N`` batch, ``D`` input features, ``H`` hidden size, ``L`` layers,
``dirs`` (1, or 2 when bidirectional), ``S`` the width of the state a layer outputs
(``H``, or an LSTM's ``proj_size``).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from .cell_config import StackConfig
from .params import (
    all_weight_names,
    check_dropout_at_forward,
    check_h0_shape,
    check_input_shape,
    check_lengths,
    check_state_dict,
    init_params,
    param_name,
    to_numpy,
)

Array = np.ndarray
States = tuple[Array, ...]
"""A cell's state, one array per part: ``(h,)`` for Elman and GRU, ``(h, c)`` for the LSTM."""


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float, dtype: Any) -> Array:
    """An inverted-dropout mask of ``shape``: 0 with probability ``p``, else ``1/(1-p)``.

    At ``p = 1`` the mask is all zeros, as ``torch.nn.RNN`` gives: the layer above then
    reads zeros, and the output is finite and the same on every call. The formula would
    give ``0/0 = NaN`` everywhere. We match ``nn.RNN`` rather than refuse ``p = 1`` (the
    constructor still does, as a likely slip): ``model.dropout = 1`` set after
    construction is legal in PyTorch and its own tests rely on it.
    """
    if p >= 1.0:
        return np.zeros(shape, dtype=dtype)
    keep = rng.random(shape) >= p
    return keep.astype(dtype) / (1.0 - p)


class NumpyStack(StackConfig):
    """A stack of recurrent layers in NumPy, with ``torch.nn.RNN``'s semantics for everything but the cell.

    A subclass mixes in its cell kind's configuration (:mod:`rnnlib.cell_config`: gate blocks, state
    parts, constructor arguments) and implements :meth:`_layer_forward` and :meth:`_layer_backward`
    (one layer, one direction, the whole sequence).

    Attributes:
        params: ``{name: array}`` keyed like the torch module's ``state_dict()``.
        grads: the same keys, filled by :meth:`backward`.
        training: ``True`` after :meth:`train` (the default, as in torch), ``False`` after :meth:`eval`.
        last_dropout_masks: the masks of the last forward pass, ``{layer: (T, N, S*dirs)}``.
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
        dtype: Any,
        seed: int | None,
        proj_size: int = 0,
    ) -> None:
        """Check and store the configuration (:class:`rnnlib.cell_config.StackConfig`), then draw the parameters
        (the subclasses' shared constructor)."""
        self.shapes = self._configure(
            input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional, proj_size
        )
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"dtype must be a floating type such as np.float64 or np.float32, got {self.dtype}")
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, Array] = init_params(self.shapes, hidden_size, self.rng, self.dtype)
        self.grads: dict[str, Array] = {}
        self.training = True
        self.last_dropout_masks: dict[int, Array] = {}
        self._cache: dict[str, Any] | None = None

    # -- what a subclass provides ------------------------------------------------------------

    def _layer_forward(
        self, x: Array, state0: States, layer: int, reverse: bool, mask: Array | None
    ) -> tuple[Array, States, Any]:
        """One layer, one direction: ``x (T, N, D_in)``, ``state0`` (each ``(N, size)``) ->
        ``out (T, N, S)``, the last state read (each ``(N, size)``, new arrays) and a cache.

        ``mask (T, N)``: ``True`` inside each sequence; outside, the state is held and the output is 0.
        """
        raise NotImplementedError

    def _layer_backward(self, d_out: Array, d_state_last: States, cache: Any) -> tuple[Array, States, dict[str, Array]]:
        """Backward of :meth:`_layer_forward`: ``d_out (T, N, S)`` and the last state's gradients ->
        ``dx (T, N, D_in)``, the initial state's gradients and ``{kind: gradient}`` (``weight_ih``, ...)."""
        raise NotImplementedError

    # -- torch-like conveniences ---------------------------------------------------------

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._config_repr()})"

    def train(self, mode: bool = True) -> Self:
        """Training mode (dropout active). Returns ``self``, like ``nn.Module.train``."""
        self.training = mode
        return self

    def eval(self) -> Self:
        """Evaluation mode (no dropout). Returns ``self``."""
        return self.train(False)

    def state_dict(self) -> dict[str, Array]:
        """Copies of the parameters, keyed like the torch module's ``state_dict()``."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load parameters from a torch state dict (tensors) or a dict of arrays.

        Raises ``ValueError`` naming every missing, unexpected or mis-shaped entry.
        """
        arrays = check_state_dict(state_dict, self.shapes)
        self.params = {k: np.array(arrays[k], dtype=self.dtype) for k in self.shapes}

    @classmethod
    def from_torch(cls, module: Any, *, dtype: Any = np.float64, seed: int | None = None) -> Self:
        """A model with the configuration, weights and train/eval mode of a torch module of the same kind."""
        model = cls(*(getattr(module, name) for name in cls.CONFIG), dtype=dtype, seed=seed)  # type: ignore[call-arg]
        model.load_state_dict(module.state_dict())
        model.train(module.training)
        return model

    @property
    def all_weights(self) -> list[list[Array]]:
        """As ``nn.RNN.all_weights``: ``L*dirs`` lists (index ``layer*dirs + direction``) of
        ``[weight_ih (G*H, D_in), weight_hh (G*H, S), bias_ih (G*H,), bias_hh (G*H,)]`` (the weights only
        without bias; ``weight_hr (P, H)`` last for a projected LSTM).

        The arrays of :attr:`params` themselves, not copies (``nn.RNN`` returns its live parameters).
        """
        return [
            [self.params[name] for name in names]
            for names in all_weight_names(self.num_layers, self.bias, self.bidirectional, proj=self.proj_size > 0)
        ]

    def num_parameters(self) -> int:
        """Total number of scalars in :attr:`params`."""
        return sum(p.size for p in self.params.values())

    def __call__(self, x: Any, h0: Any = None, **kwargs: Any) -> tuple[Array, Any]:
        return self.forward(x, h0, **kwargs)

    # -- forward ---------------------------------------------------------------------------

    def _as_array(self, value: Any, what: str) -> Array:
        arr = to_numpy(value)
        if arr.dtype != self.dtype:
            name = type(self).__name__
            raise TypeError(
                f"{what} has dtype {arr.dtype} but this {name} computes in {self.dtype}: "
                f"convert it (e.g. .astype(np.{self.dtype})) or build {name}(..., dtype=np.{arr.dtype})"
            )
        return arr

    def _param(self, kind: str, layer: int, reverse: bool) -> Array | None:
        """One layer and direction's parameter of ``kind``, or ``None`` when absent (``bias=False``, no projection)."""
        return self.params.get(param_name(kind, layer, reverse))

    def _bias(self, kind: str, layer: int, reverse: bool) -> Array | None:
        """``bias_ih``/``bias_hh`` of one layer and direction, or ``None`` when ``bias=False``."""
        return self._param(kind, layer, reverse)

    def _state_parts(self, h0: Any) -> tuple[Any, ...]:
        """``h0`` as one entry per part of the state; an LSTM's must be the pair ``(h0, c0)``."""
        if len(self.STATE_NAMES) == 1:
            return (h0,)
        names = ", ".join(self.STATE_NAMES)
        if not isinstance(h0, (tuple, list)) or len(h0) != len(self.STATE_NAMES):
            got = (
                f"a {type(h0).__name__} of length {len(h0)}"
                if isinstance(h0, (tuple, list))
                else f"a {type(h0).__name__}" + (f" of shape {tuple(h0.shape)}" if hasattr(h0, "shape") else "")
            )
            raise TypeError(f"h0 of a {type(self).__name__} must be a tuple ({names}), got {got}")
        return tuple(h0)

    def _initial_states(self, h0: Any, batched: bool, N: int) -> list[Array]:
        """Each part of the initial state as ``(L*dirs, N, size)``: zeros when ``h0`` is ``None``."""
        num_states = self.num_layers * self.num_directions
        sizes = self._state_sizes()
        if h0 is None:
            return [np.zeros((num_states, N, size), dtype=self.dtype) for size in sizes]
        states = []
        for name, size, part in zip(self.STATE_NAMES, sizes, self._state_parts(h0), strict=True):
            if part is None:
                raise TypeError(f"{name} is None: give every part of the initial state, or h0=None for zeros")
            arr = self._as_array(part, name)
            size_name = "P" if (name == "h0" and self.proj_size > 0) else "H"
            check_h0_shape(arr.shape, batched, num_states, N, size, name, size_name)
            states.append(arr if batched else arr[:, None, :])
        return states

    def _pack_states(self, states: list[Array]) -> Any:
        """What ``forward`` returns as the state: ``h_n`` alone, or the tuple ``(h_n, c_n)``."""
        return states[0] if len(states) == 1 else tuple(states)

    def forward(
        self,
        x: Any,
        h0: Any = None,
        *,
        lengths: Any = None,
        dropout_masks: dict[int, Array] | None = None,
    ) -> tuple[Array, Any]:
        """Run the stack over a sequence.

        Args:
            x: ``(T, N, D)``, or ``(N, T, D)`` with ``batch_first``, or unbatched ``(T, D)``.
                ``T >= 1``; ``N = 0`` (an empty batch) gives empty outputs, as in ``nn.RNN``.
            h0: ``(L*dirs, N, H)`` (``(L*dirs, H)`` when unbatched), zeros when ``None``;
                for an LSTM the tuple ``(h0, c0)``, ``h0`` being ``(L*dirs, N, S)``.
            lengths: optional ``(N,)`` lengths of the sequences in a padded batch.
                Matches the torch module on ``pack_padded_sequence(x, lengths)``, unpacked
                with zeros past each end; ``h_n`` holds each sequence's own last state.
            dropout_masks: reuse masks (``{layer: (T, N, S*dirs)}``, already scaled by
                ``1/(1-p)``) instead of drawing new ones: how a gradient check holds
                dropout fixed.

        Returns:
            ``output``: ``(T, N, S*dirs)`` (``(N, T, S*dirs)`` with ``batch_first``,
            ``(T, S*dirs)`` unbatched), the top layer's state at every step, directions
            concatenated ``[forward, backward]``; ``h_n``: ``(L*dirs, N, S)``
            (``(L*dirs, S)`` unbatched), the last state of every layer and direction,
            indexed ``layer*dirs + direction``; for an LSTM the tuple ``(h_n, c_n)``,
            ``c_n`` being ``(L*dirs, N, H)``.
        """
        x = self._as_array(x, "input")
        batched, T, N = check_input_shape(x.shape, self.input_size, self.batch_first)
        L, dirs = self.num_layers, self.num_directions
        state0 = self._initial_states(h0, batched, N)
        mask = None
        if lengths is not None:
            lens = check_lengths(lengths, batched, T, N)
            mask = np.arange(T)[:, None] < lens[None, :]  # (T, N)
        if not batched:
            x_tm = x[:, None, :]
        else:
            x_tm = x.transpose(1, 0, 2) if self.batch_first else x

        if self.training and L > 1:
            check_dropout_at_forward(self.dropout)  # model.dropout may have been set after construction
        finals = [np.empty((L * dirs, N, size), dtype=self.dtype) for size in self._state_sizes()]
        caches: list[list[Any]] = []
        masks: dict[int, Array] = {}
        layer_input = x_tm
        for layer in range(L):
            outs, layer_caches = [], []
            for direction in range(dirs):
                k = layer * dirs + direction
                out, last, cache = self._layer_forward(
                    layer_input, tuple(s[k] for s in state0), layer, direction == 1, mask
                )
                for final, part in zip(finals, last, strict=True):
                    final[k] = part
                outs.append(out)
                layer_caches.append(cache)
            layer_output = outs[0] if dirs == 1 else np.concatenate(outs, axis=-1)
            if self.training and self.dropout > 0 and layer < L - 1:
                if dropout_masks is not None:
                    if layer not in dropout_masks:
                        raise ValueError(
                            f"dropout_masks has no mask for layer {layer}: expected one per layer "
                            f"below the top, keys {list(range(L - 1))}, got keys {sorted(dropout_masks)}"
                        )
                    drop = np.asarray(dropout_masks[layer], dtype=self.dtype)
                    if drop.shape != layer_output.shape:
                        raise ValueError(
                            f"dropout mask for layer {layer} must have shape {layer_output.shape}, got {drop.shape}"
                        )
                else:
                    drop = dropout_mask(self.rng, layer_output.shape, self.dropout, self.dtype)
                masks[layer] = drop
                layer_output = layer_output * drop
            caches.append(layer_caches)
            layer_input = layer_output

        self.last_dropout_masks = masks
        self._cache = {"caches": caches, "masks": masks, "batched": batched, "T": T, "N": N, "D": x.shape[-1]}
        # A copy: the top layer's states are also backward's cache, and a caller who edits
        # the output in place must not change the gradients.
        output = layer_input.copy()
        if not batched:
            return output[:, 0, :], self._pack_states([f[:, 0, :] for f in finals])
        return (output.transpose(1, 0, 2) if self.batch_first else output), self._pack_states(finals)

    # -- backward --------------------------------------------------------------------------

    def backward(self, d_output: Any, d_h_n: Any = None) -> tuple[Array, Any]:
        """Backpropagation through time through the whole stack, for the last :meth:`forward`.

        Args:
            d_output: gradient of the loss w.r.t. ``output``, same shape as ``output``.
            d_h_n: gradient w.r.t. ``h_n``, same shape as ``h_n``; zeros when ``None``.
                For an LSTM the tuple ``(d_h_n, d_c_n)``, either part ``None`` for zeros.

        Returns:
            ``d_input`` (the input's shape and layout) and ``d_h0`` (``h0``'s shape,
            also when ``h0`` was ``None``: the gradient w.r.t. the zero initial state;
            for an LSTM the tuple ``(d_h0, d_c0)``).
            Fills :attr:`grads` with one array per parameter, keyed like :attr:`params`.
        """
        if self._cache is None:
            raise ValueError("backward() needs a forward() first: there is no stored forward pass to differentiate")
        c = self._cache
        L, dirs = self.num_layers, self.num_directions
        sizes = self._state_sizes()
        S = sizes[0]
        T, N, batched = c["T"], c["N"], c["batched"]
        out_shape: tuple[int, ...] = (T, N, S * dirs) if not self.batch_first else (N, T, S * dirs)
        if not batched:
            out_shape = (T, S * dirs)
        d_output = self._as_array(d_output, "d_output")
        if d_output.shape != out_shape:
            raise ValueError(f"d_output must have the shape of output, {out_shape}, got {d_output.shape}")
        d_parts = (None,) * len(sizes) if d_h_n is None else self._d_state_parts(d_h_n)
        d_last: list[Array] = []
        for name, size, part in zip(self.STATE_NAMES, sizes, d_parts, strict=True):
            d_name = "d_" + name[0] + "_n"  # d_h_n, d_c_n
            if part is None:
                d_last.append(np.zeros((L * dirs, N, size), dtype=self.dtype))
                continue
            arr = self._as_array(part, d_name)
            expected = (L * dirs, N, size) if batched else (L * dirs, size)
            if arr.shape != expected:
                what = "h_n" if d_name == "d_h_n" else "c_n"
                raise ValueError(f"{d_name} must have the shape of {what}, {expected}, got {arr.shape}")
            d_last.append(arr if batched else arr[:, None, :])
        if not batched:
            d_layer_output = d_output[:, None, :]
        else:
            d_layer_output = d_output.transpose(1, 0, 2) if self.batch_first else d_output

        grads: dict[str, Array] = {}
        d_first = [np.empty((L * dirs, N, size), dtype=self.dtype) for size in sizes]
        for layer in range(L - 1, -1, -1):
            if layer in c["masks"]:  # through the dropout between this layer and the next
                d_layer_output = d_layer_output * c["masks"][layer]
            d_input = None
            for direction in range(dirs):
                k = layer * dirs + direction
                dx, d_state0, g = self._layer_backward(
                    d_layer_output[..., direction * S : (direction + 1) * S],
                    tuple(d[k] for d in d_last),
                    c["caches"][layer][direction],
                )
                for first, part in zip(d_first, d_state0, strict=True):
                    first[k] = part
                d_input = dx if d_input is None else d_input + dx
                for kind, value in g.items():
                    grads[param_name(kind, layer, direction == 1)] = value
            d_layer_output = d_input
        self.grads = {k: grads[k] for k in self.params}  # in the parameters' order
        if not batched:
            return d_layer_output[:, 0, :], self._pack_states([d[:, 0, :] for d in d_first])
        return (d_layer_output.transpose(1, 0, 2) if self.batch_first else d_layer_output), self._pack_states(d_first)

    def _d_state_parts(self, d_h_n: Any) -> tuple[Any, ...]:
        """``d_h_n`` as one entry per part of the state (an LSTM's must be the pair ``(d_h_n, d_c_n)``)."""
        if len(self.STATE_NAMES) == 1:
            return (d_h_n,)
        if not isinstance(d_h_n, (tuple, list)) or len(d_h_n) != len(self.STATE_NAMES):
            raise TypeError(
                f"d_h_n of a {type(self).__name__} must be a tuple (d_h_n, d_c_n) (or None), "
                f"got a {type(d_h_n).__name__}"
            )
        return tuple(d_h_n)
