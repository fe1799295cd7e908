"""A stacked Elman RNN in pure NumPy, forward and backward, at parity with ``torch.nn.RNN``.

Shapes use ``T`` (time steps), ``N`` (batch), ``D`` (input features), ``H``
(hidden size), ``L`` (layers) and ``dirs`` (1, or 2 when bidirectional).
Weights are stored PyTorch's way, ``W_ih: (H, D)``, and applied as ``x @ W_ih.T``.

Three levels, each usable on its own:

* :func:`rnn_cell_forward` / :func:`rnn_cell_backward`: one time step, with an
  explicit cache (the CS231n style). The readable reference.
* :func:`layer_forward` / :func:`layer_backward`: one layer in one direction over
  the whole sequence. The input projection of all steps is one matrix product
  before the time loop (what cuDNN does); only ``h @ W_hh.T`` stays in the loop.
* :class:`NumpyRNN`: the stack, with ``batch_first``, unbatched input,
  bidirectional layers, dropout between layers and per-sequence lengths.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .params import (
    DROPOUT_WARNING,
    all_weight_names,
    check_config,
    check_dropout_at_forward,
    check_flags,
    check_h0_shape,
    check_input_shape,
    check_lengths,
    check_state_dict,
    dropout_warning_needed,
    init_params,
    param_name,
    param_shapes,
    to_numpy,
)

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    """A nonlinearity and its derivative written in terms of its *output* ``h = f(a)``.

    Using the output means backward needs no stored pre-activations:
    ``tanh'(a) = 1 - h**2`` and ``relu'(a) = [h > 0]``.
    """

    forward: Callable[..., Array]
    derivative_from_output: Callable[[Array], Array]


def _tanh_derivative_from_output(h: Array) -> Array:
    """``1 - h**2`` in one new array: no temporary ``h*h``, since backward calls it on all ``(T, N, H)`` states."""
    d = np.square(h)
    return np.subtract(1.0, d, out=d)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(np.tanh, _tanh_derivative_from_output),
    "relu": Activation(lambda a, out=None: np.maximum(a, 0.0, out=out), lambda h: (h > 0).astype(h.dtype)),
}


def get_activation(nonlinearity: str) -> Activation:
    """The :class:`Activation` called ``nonlinearity`` (``'tanh'`` or ``'relu'``)."""
    try:
        return ACTIVATIONS[nonlinearity]
    except KeyError:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}: expected one of {tuple(ACTIVATIONS)}") from None


# --------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------


def rnn_cell_forward(
    x: Array,
    h_prev: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array | None = None,
    b_hh: Array | None = None,
    nonlinearity: str = "tanh",
) -> tuple[Array, dict[str, Any]]:
    """One step: ``h = act(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)``.

    Args:
        x: ``(N, D)`` input at this step.
        h_prev: ``(N, H)`` hidden state from the previous step.
        W_ih: ``(H, D)``; W_hh: ``(H, H)``; b_ih, b_hh: ``(H,)`` or ``None`` (``bias=False``).

    Returns:
        ``h``: ``(N, H)``, and the cache that :func:`rnn_cell_backward` needs.
    """
    act = get_activation(nonlinearity)
    a = x @ W_ih.T + h_prev @ W_hh.T
    if b_ih is not None:
        a = a + b_ih + b_hh
    h = act.forward(a)
    cache = {"x": x, "h_prev": h_prev, "h": h, "W_ih": W_ih, "W_hh": W_hh,
             "bias": b_ih is not None, "nonlinearity": nonlinearity}
    return h, cache


def rnn_cell_backward(dh: Array, cache: dict[str, Any]) -> dict[str, Any]:
    """Backward of :func:`rnn_cell_forward`.

    Args:
        dh: ``(N, H)`` gradient of the loss with respect to this step's ``h``
            (from the output at this step *plus* from the next step).

    Returns:
        ``dx (N, D)``, ``dh_prev (N, H)``, ``dW_ih (H, D)``, ``dW_hh (H, H)``,
        ``db_ih (H,)`` and ``db_hh (H,)`` (both ``None`` without bias). The two
        biases get the same gradient: they enter the sum the same way.
    """
    act = get_activation(cache["nonlinearity"])
    da = dh * act.derivative_from_output(cache["h"])  # (N, H): through the nonlinearity
    db = da.sum(axis=0) if cache["bias"] else None
    return {
        "dx": da @ cache["W_ih"],
        "dh_prev": da @ cache["W_hh"],
        "dW_ih": da.T @ cache["x"],
        "dW_hh": da.T @ cache["h_prev"],
        "db_ih": db,
        "db_hh": None if db is None else db.copy(),
    }


# --------------------------------------------------------------------------------------
# One layer, one direction, the whole sequence
# --------------------------------------------------------------------------------------


def layer_forward(
    x: Array,
    h0: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array | None = None,
    b_hh: Array | None = None,
    nonlinearity: str = "tanh",
    reverse: bool = False,
    mask: Array | None = None,
) -> tuple[Array, Array, dict[str, Any]]:
    """Run one layer in one direction over a sequence.

    Args:
        x: ``(T, N, D_in)`` the layer's input (the data, or the layer below's output).
        h0: ``(N, H)`` initial state.
        W_ih: ``(H, D_in)``; W_hh: ``(H, H)``; b_ih, b_hh: ``(H,)`` or ``None``.
        reverse: read the sequence from ``t = T-1`` down to 0. Outputs stay aligned
            with time: ``out[t]`` is the state after reading ``x[t]``.
        mask: ``(T, N)`` booleans, ``True`` where step ``t`` lies inside sequence ``n``
            (per-sequence lengths). Outside, the state is held and the output is 0,
            as ``pack_padded_sequence`` + ``nn.RNN`` + ``pad_packed_sequence`` give.

    Returns:
        ``out (T, N, H)``, ``h_last (N, H)`` (the state after the last step read:
        ``t = length-1`` forward, ``t = 0`` in reverse) and a cache for backward.
    """
    T, N, D_in = x.shape
    H = W_hh.shape[0]
    act = get_activation(nonlinearity)
    # The input projection of every step at once: one (T*N, D_in) @ (D_in, H) product.
    pre = (x.reshape(T * N, D_in) @ W_ih.T).reshape(T, N, H)
    if b_ih is not None:
        pre += b_ih + b_hh
    W_hh_T = np.ascontiguousarray(W_hh.T)  # transposed once, not at every step
    # pre[t] is read only at step t, so the state h_t can overwrite it in place: one (T, N, H) array
    # instead of two, so less fresh memory to page in (a page fault per 4 KiB) and to keep in cache.
    states = pre  # states[t]: a_t's input part before step t, the state h_t after it
    h = h0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        a = states[t]  # a view: the in-place updates below write into `states`
        a += h @ W_hh_T  # the only product that must wait for the previous step
        act.forward(a, out=a)
        if mask is not None:  # past a sequence's end: hold its state
            a[...] = np.where(mask[t, :, None], a, h)
        h = a
    out = states if mask is None else states * mask[:, :, None]
    cache = {"x": x, "h0": h0, "states": states, "W_ih": W_ih, "W_hh": W_hh,
             "bias": b_ih is not None, "nonlinearity": nonlinearity, "reverse": reverse, "mask": mask}
    return out, h.copy(), cache


def layer_backward(d_out: Array, d_h_last: Array, cache: dict[str, Any]) -> tuple[Array, Array, dict[str, Array]]:
    """Backpropagation through time for :func:`layer_forward`.

    Args:
        d_out: ``(T, N, H)`` gradient with respect to ``out``.
        d_h_last: ``(N, H)`` gradient with respect to ``h_last``.

    Returns:
        ``dx (T, N, D_in)``, ``dh0 (N, H)`` and the parameter gradients keyed
        ``weight_ih``, ``weight_hh`` (and ``bias_ih``, ``bias_hh`` with bias).
    """
    x, h0, states, mask = cache["x"], cache["h0"], cache["states"], cache["mask"]
    W_ih, W_hh, reverse = cache["W_ih"], cache["W_hh"], cache["reverse"]
    T, N, D_in = x.shape
    H = W_hh.shape[0]
    # The activation's derivative at every step in one vectorised call, in a new (T, N, H) array that then
    # becomes d_pre, the gradient w.r.t. each step's pre-activation: d_pre[t] = f'(a_t) * dL/dh_t, in place.
    # As in layer_forward, the loop writes in place and allocates nothing (see benchmarks/rnn_speed.py).
    d_pre = get_activation(cache["nonlinearity"]).derivative_from_output(states)  # f'(a_t) until step t runs
    dh = d_h_last.copy()  # dL/dh_t: from the step read after this one, then plus this step's output's
    for t in range(T) if reverse else range(T - 1, -1, -1):
        if mask is None:
            dh += d_out[t]
            d_pre[t] *= dh
            np.matmul(d_pre[t], W_hh, out=dh)  # on to the state read before this step
        else:
            m = mask[t, :, None]
            g = dh + np.where(m, d_out[t], 0.0)
            d_pre[t] = np.where(m, g * d_pre[t], 0.0)
            dh = d_pre[t] @ W_hh + np.where(m, 0.0, g)  # a held state passes its gradient on
    # dW_hh = sum over t of d_pre[t].T @ (the state read before step t): that is `states` shifted by one
    # step, with h0 for the first step read. Two products, rather than building a shifted copy of `states`.
    if reverse:  # step t read h_{t+1}; step T-1 read h0
        dW_hh = d_pre[:-1].reshape(-1, H).T @ states[1:].reshape(-1, H) + d_pre[-1].T @ h0
    else:  # step t read h_{t-1}; step 0 read h0
        dW_hh = d_pre[1:].reshape(-1, H).T @ states[:-1].reshape(-1, H) + d_pre[0].T @ h0
    flat = d_pre.reshape(T * N, H)
    grads = {"weight_ih": flat.T @ x.reshape(T * N, D_in), "weight_hh": dW_hh}
    if cache["bias"]:
        grads["bias_ih"] = flat.sum(axis=0)
        grads["bias_hh"] = grads["bias_ih"].copy()
    dx = (flat @ W_ih).reshape(T, N, D_in)
    return dx, dh, grads


# --------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------


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


class NumpyRNN:
    """A stacked Elman RNN in NumPy with ``torch.nn.RNN``'s constructor, names and semantics.

    Args:
        input_size: ``D``, features per time step.
        hidden_size: ``H``.
        num_layers: ``L``; layer ``l > 0`` reads layer ``l-1``'s output at the same step.
        nonlinearity: ``'tanh'`` or ``'relu'``.
        bias: with ``False``, no ``bias_ih_*``/``bias_hh_*``.
        batch_first: input and output are ``(N, T, ·)`` instead of ``(T, N, ·)``.
            ``h0`` and ``h_n`` are ``(L*dirs, N, H)`` either way.
        dropout: probability of zeroing each output of every layer but the last,
            in training mode only, survivors scaled by ``1/(1-p)``. In ``[0, 1)``; may be
            set to 1 afterwards, as in PyTorch (see :func:`dropout_mask`).
        bidirectional: add a reverse direction per layer; outputs ``[forward, backward]``.
        dtype: of parameters and computations; inputs must match it.
        seed: seeds the ``np.random.Generator`` used for initialisation and dropout.

    Attributes:
        params: ``{name: array}`` keyed like ``torch.nn.RNN.state_dict()``.
        grads: the same keys, filled by :meth:`backward`.
        training: ``True`` after :meth:`train` (the default, as in torch), ``False`` after :meth:`eval`.
        last_dropout_masks: the masks of the last forward pass, ``{layer: (T, N, H*dirs)}``.
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
        *,
        dtype: Any = np.float64,
        seed: int | None = None,
    ) -> None:
        check_config(input_size, hidden_size, num_layers, nonlinearity, dropout)
        bias, batch_first, bidirectional = check_flags(bias, batch_first, bidirectional)
        if dropout_warning_needed(dropout, num_layers):
            warnings.warn(DROPOUT_WARNING.format(dropout=dropout, num_layers=num_layers), UserWarning, stacklevel=2)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"dtype must be a floating type such as np.float64 or np.float32, got {self.dtype}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.rng = np.random.default_rng(seed)
        self.shapes = param_shapes(input_size, hidden_size, num_layers, bias, bidirectional)
        self.params: dict[str, Array] = init_params(self.shapes, hidden_size, self.rng, self.dtype)
        self.grads: dict[str, Array] = {}
        self.training = True
        self.last_dropout_masks: dict[int, Array] = {}
        self._cache: dict[str, Any] | None = None

    # -- torch-like conveniences ---------------------------------------------------------

    def __repr__(self) -> str:
        extra = [f"num_layers={self.num_layers}"] if self.num_layers != 1 else []
        defaults = {"nonlinearity": "tanh", "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False}
        extra += [f"{k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v]
        return f"NumpyRNN({', '.join([str(self.input_size), str(self.hidden_size), *extra])})"

    def train(self, mode: bool = True) -> "NumpyRNN":
        """Training mode (dropout active). Returns ``self``, like ``nn.Module.train``."""
        self.training = mode
        return self

    def eval(self) -> "NumpyRNN":
        """Evaluation mode (no dropout). Returns ``self``."""
        return self.train(False)

    def state_dict(self) -> dict[str, Array]:
        """Copies of the parameters, keyed like ``torch.nn.RNN.state_dict()``."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load parameters from a ``torch.nn.RNN``/``TorchRNN`` state dict (tensors) or a dict of arrays.

        Raises ``ValueError`` naming every missing, unexpected or mis-shaped entry.
        """
        arrays = check_state_dict(state_dict, self.shapes)
        self.params = {k: np.array(arrays[k], dtype=self.dtype) for k in self.shapes}

    @classmethod
    def from_torch(cls, module: Any, *, dtype: Any = np.float64, seed: int | None = None) -> "NumpyRNN":
        """A ``NumpyRNN`` with the configuration and weights of a ``torch.nn.RNN`` (or ``TorchRNN``)."""
        model = cls(module.input_size, module.hidden_size, module.num_layers, module.nonlinearity,
                    module.bias, module.batch_first, module.dropout, module.bidirectional, dtype=dtype, seed=seed)
        model.load_state_dict(module.state_dict())
        model.train(module.training)
        return model

    @property
    def all_weights(self) -> list[list[Array]]:
        """As ``nn.RNN.all_weights``: ``L*dirs`` lists (index ``layer*dirs + direction``) of
        ``[weight_ih (H, D_in), weight_hh (H, H), bias_ih (H,), bias_hh (H,)]`` (the weights only without bias).

        The arrays of :attr:`params` themselves, not copies (``nn.RNN`` returns its live parameters).
        """
        return [[self.params[name] for name in names]
                for names in all_weight_names(self.num_layers, self.bias, self.bidirectional)]

    def num_parameters(self) -> int:
        """Total number of scalars in :attr:`params`."""
        return sum(p.size for p in self.params.values())

    def __call__(self, x: Any, h0: Any = None, **kwargs: Any) -> tuple[Array, Array]:
        return self.forward(x, h0, **kwargs)

    # -- forward ---------------------------------------------------------------------------

    def _as_array(self, value: Any, what: str) -> Array:
        arr = to_numpy(value)
        if arr.dtype != self.dtype:
            raise TypeError(
                f"{what} has dtype {arr.dtype} but this NumpyRNN computes in {self.dtype}: "
                f"convert it (e.g. .astype(np.{self.dtype})) or build NumpyRNN(..., dtype=np.{arr.dtype})"
            )
        return arr

    def _bias(self, kind: str, layer: int, reverse: bool) -> Array | None:
        """``bias_ih``/``bias_hh`` of one layer and direction, or ``None`` when ``bias=False``."""
        return self.params.get(param_name(kind, layer, reverse))

    def forward(
        self,
        x: Any,
        h0: Any = None,
        *,
        lengths: Any = None,
        dropout_masks: dict[int, Array] | None = None,
    ) -> tuple[Array, Array]:
        """Run the stack over a sequence.

        Args:
            x: ``(T, N, D)``, or ``(N, T, D)`` with ``batch_first``, or unbatched ``(T, D)``.
                ``T >= 1``; ``N = 0`` (an empty batch) gives empty outputs, as in ``nn.RNN``.
            h0: ``(L*dirs, N, H)`` (``(L*dirs, H)`` when unbatched), zeros when ``None``.
            lengths: optional ``(N,)`` lengths of the sequences in a padded batch.
                Matches ``nn.RNN`` on ``pack_padded_sequence(x, lengths)``, unpacked
                with zeros past each end; ``h_n`` holds each sequence's own last state.
            dropout_masks: reuse masks (``{layer: (T, N, H*dirs)}``, already scaled by
                ``1/(1-p)``) instead of drawing new ones: how a gradient check holds
                dropout fixed.

        Returns:
            ``output``: ``(T, N, H*dirs)`` (``(N, T, H*dirs)`` with ``batch_first``,
            ``(T, H*dirs)`` unbatched), the top layer's state at every step, directions
            concatenated ``[forward, backward]``; ``h_n``: ``(L*dirs, N, H)``
            (``(L*dirs, H)`` unbatched), the last state of every layer and direction,
            indexed ``layer*dirs + direction``.
        """
        x = self._as_array(x, "input")
        batched, T, N = check_input_shape(x.shape, self.input_size, self.batch_first)
        L, dirs, H = self.num_layers, self.num_directions, self.hidden_size
        if h0 is None:
            h0_3d = np.zeros((L * dirs, N, H), dtype=self.dtype)
        else:
            h0 = self._as_array(h0, "h0")
            check_h0_shape(h0.shape, batched, L * dirs, N, H)
            h0_3d = h0 if batched else h0[:, None, :]
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
        h_n = np.empty((L * dirs, N, H), dtype=self.dtype)
        caches: list[list[dict[str, Any]]] = []
        masks: dict[int, Array] = {}
        layer_input = x_tm
        for layer in range(L):
            outs, layer_caches = [], []
            for direction in range(dirs):
                reverse = direction == 1
                k = layer * dirs + direction
                out, h_n[k], cache = layer_forward(
                    layer_input, h0_3d[k],
                    self.params[param_name("weight_ih", layer, reverse)],
                    self.params[param_name("weight_hh", layer, reverse)],
                    self._bias("bias_ih", layer, reverse), self._bias("bias_hh", layer, reverse),
                    self.nonlinearity, reverse, mask,
                )
                outs.append(out)
                layer_caches.append(cache)
            layer_output = outs[0] if dirs == 1 else np.concatenate(outs, axis=-1)
            if self.training and self.dropout > 0 and layer < L - 1:
                if dropout_masks is not None:
                    if layer not in dropout_masks:
                        raise ValueError(f"dropout_masks has no mask for layer {layer}: expected one per layer "
                                         f"below the top, keys {list(range(L - 1))}, got keys {sorted(dropout_masks)}")
                    drop = np.asarray(dropout_masks[layer], dtype=self.dtype)
                    if drop.shape != layer_output.shape:
                        raise ValueError(f"dropout mask for layer {layer} must have shape {layer_output.shape}, "
                                         f"got {drop.shape}")
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
            return output[:, 0, :], h_n[:, 0, :]
        return (output.transpose(1, 0, 2) if self.batch_first else output), h_n

    # -- backward --------------------------------------------------------------------------

    def backward(self, d_output: Any, d_h_n: Any = None) -> tuple[Array, Array]:
        """Backpropagation through time through the whole stack, for the last :meth:`forward`.

        Args:
            d_output: gradient of the loss w.r.t. ``output``, same shape as ``output``.
            d_h_n: gradient w.r.t. ``h_n``, same shape as ``h_n``; zeros when ``None``.

        Returns:
            ``d_input`` (the input's shape and layout) and ``d_h0`` (``h0``'s shape,
            also when ``h0`` was ``None``: the gradient w.r.t. the zero initial state).
            Fills :attr:`grads` with one array per parameter, keyed like :attr:`params`.
        """
        if self._cache is None:
            raise ValueError("backward() needs a forward() first: there is no stored forward pass to differentiate")
        c = self._cache
        L, dirs, H = self.num_layers, self.num_directions, self.hidden_size
        T, N, batched = c["T"], c["N"], c["batched"]
        out_shape: tuple[int, ...] = (T, N, H * dirs) if not self.batch_first else (N, T, H * dirs)
        hn_shape: tuple[int, ...] = (L * dirs, N, H)
        if not batched:
            out_shape, hn_shape = (T, H * dirs), (L * dirs, H)
        d_output = self._as_array(d_output, "d_output")
        if d_output.shape != out_shape:
            raise ValueError(f"d_output must have the shape of output, {out_shape}, got {d_output.shape}")
        if d_h_n is None:
            d_hn = np.zeros((L * dirs, N, H), dtype=self.dtype)
        else:
            d_h_n = self._as_array(d_h_n, "d_h_n")
            if d_h_n.shape != hn_shape:
                raise ValueError(f"d_h_n must have the shape of h_n, {hn_shape}, got {d_h_n.shape}")
            d_hn = d_h_n if batched else d_h_n[:, None, :]
        if not batched:
            d_layer_output = d_output[:, None, :]
        else:
            d_layer_output = d_output.transpose(1, 0, 2) if self.batch_first else d_output

        grads: dict[str, Array] = {}
        d_h0 = np.empty((L * dirs, N, H), dtype=self.dtype)
        for layer in range(L - 1, -1, -1):
            if layer in c["masks"]:  # through the dropout between this layer and the next
                d_layer_output = d_layer_output * c["masks"][layer]
            d_input = None
            for direction in range(dirs):
                reverse = direction == 1
                k = layer * dirs + direction
                dx, d_h0[k], g = layer_backward(
                    d_layer_output[..., direction * H:(direction + 1) * H], d_hn[k], c["caches"][layer][direction]
                )
                d_input = dx if d_input is None else d_input + dx
                for kind, value in g.items():
                    grads[param_name(kind, layer, reverse)] = value
            d_layer_output = d_input
        self.grads = {k: grads[k] for k in self.params}  # in the parameters' order
        if not batched:
            return d_layer_output[:, 0, :], d_h0[:, 0, :]
        return (d_layer_output.transpose(1, 0, 2) if self.batch_first else d_layer_output), d_h0
