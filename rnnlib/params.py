"""Parameters of a stacked RNN: names, shapes, initialisation and validation.

Everything here follows ``torch.nn.RNN`` exactly, so that weights move between
``torch.nn.RNN``, :class:`rnnlib.TorchRNN` and :class:`rnnlib.NumpyRNN` by name:

=====================  ==========================================================
name                   shape
=====================  ==========================================================
``weight_ih_l0``       ``(H, D)``  (layer 0 reads the input, width ``D``)
``weight_ih_l{k}``     ``(H, H)``, or ``(H, 2H)`` when bidirectional (k >= 1)
``weight_hh_l{k}``     ``(H, H)``
``bias_ih_l{k}``       ``(H,)``
``bias_hh_l{k}``       ``(H,)``
``..._reverse``        the same, for the backward direction of a bidirectional RNN
=====================  ==========================================================

The gated cells stack ``G`` gate blocks in the rows (``G = 4`` for the LSTM's ``i, f, g, o``,
``G = 3`` for the GRU's ``r, z, n``): ``weight_ih_l{k}`` is ``(G*H, D_in)``, ``weight_hh_l{k}``
``(G*H, H)`` and the biases ``(G*H,)``. An LSTM with ``proj_size = P > 0`` adds
``weight_hr_l{k}`` of shape ``(P, H)``, its state ``h`` is ``P`` wide (so ``weight_hh`` is
``(4H, P)`` and a layer above reads ``P*dirs`` features), and its cell state ``c`` stays ``H`` wide.

The module also holds the checks of constructor arguments and of the shapes of
``input``/``h0``, shared by both implementations so that they fail the same way,
with a message that says what was expected and what came.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

NONLINEARITIES = ("tanh", "relu")
KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
PROJECTION = "weight_hr"  # an LSTM's projection, registered after the biases (nn.LSTM's order)


def param_name(kind: str, layer: int, reverse: bool = False) -> str:
    """The ``torch.nn.RNN`` name of one parameter, e.g. ``weight_hh_l1_reverse``."""
    return f"{kind}_l{layer}{'_reverse' if reverse else ''}"


def param_shapes(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bias: bool = True,
    bidirectional: bool = False,
    *,
    gates: int = 1,
    proj_size: int = 0,
) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in ``torch.nn.RNN``'s registration order.

    The order (layer by layer, forward direction before reverse, then
    ``weight_ih, weight_hh, bias_ih, bias_hh`` and, for a projected LSTM, ``weight_hr``)
    matters: PyTorch initialises the parameters in this order, so drawing them in the
    same order from the same seeded generator gives the same weights.

    Args:
        gates: ``G``, gate blocks stacked in the rows: 1 (Elman), 3 (GRU), 4 (LSTM).
        proj_size: ``P``, an LSTM's projection of ``h`` (0: none); the state is then ``P`` wide.
    """
    num_directions = 2 if bidirectional else 1
    state_size = proj_size if proj_size > 0 else hidden_size  # the width of h, what the layer outputs
    rows = gates * hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else state_size * num_directions
        for direction in range(num_directions):
            reverse = direction == 1
            shapes[param_name("weight_ih", layer, reverse)] = (rows, layer_input)
            shapes[param_name("weight_hh", layer, reverse)] = (rows, state_size)
            if bias:
                shapes[param_name("bias_ih", layer, reverse)] = (rows,)
                shapes[param_name("bias_hh", layer, reverse)] = (rows,)
            if proj_size > 0:
                shapes[param_name(PROJECTION, layer, reverse)] = (proj_size, hidden_size)
    return shapes


def all_weight_names(
    num_layers: int, bias: bool = True, bidirectional: bool = False, *, proj: bool = False
) -> list[list[str]]:
    """``nn.RNN._all_weights``: one list per layer and direction (index ``layer*dirs + direction``).

    Each list is ``[weight_ih, weight_hh, bias_ih, bias_hh]`` (the two weights only
    when ``bias=False``; ``weight_hr`` last for a projected LSTM), the order of ``nn.RNN.all_weights``.
    """
    kinds = (KINDS if bias else KINDS[:2]) + ((PROJECTION,) if proj else ())
    return [
        [param_name(kind, layer, direction == 1) for kind in kinds]
        for layer in range(num_layers)
        for direction in range(2 if bidirectional else 1)
    ]


def num_parameters(
    input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, bidirectional: bool = False
) -> int:
    """Closed form of the parameter count, checked against ``sum(p.numel())`` in the tests.

    Per direction, layer 0 has ``H*D + H*H (+ 2H)`` and a layer above has
    ``H*(H*dirs) + H*H (+ 2H)``.
    """
    D, H, L = input_size, hidden_size, num_layers
    dirs = 2 if bidirectional else 1
    per_bias = 2 * H if bias else 0
    first = H * D + H * H + per_bias
    upper = H * (H * dirs) + H * H + per_bias
    return dirs * (first + (L - 1) * upper)


def init_params(
    shapes: Mapping[str, tuple[int, ...]],
    hidden_size: int,
    rng: np.random.Generator,
    dtype: Any = np.float64,
) -> dict[str, np.ndarray]:
    """PyTorch's initialisation: every entry uniform in ``[-1/sqrt(H), 1/sqrt(H)]``."""
    bound = 1.0 / math.sqrt(hidden_size)
    return {name: rng.uniform(-bound, bound, size=shape).astype(dtype) for name, shape in shapes.items()}


def to_numpy(value: Any) -> np.ndarray:
    """An array from a NumPy array, a nested list or a (possibly grad-tracking) torch tensor."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def check_state_dict(state_dict: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Convert a state dict to arrays, refusing missing, unexpected or mis-shaped entries.

    Accepts the ``state_dict()`` of ``torch.nn.RNN``/:class:`rnnlib.TorchRNN`
    (tensors) or a dict of arrays. Every problem is listed in one message.
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    arrays = {k: to_numpy(v) for k, v in state_dict.items() if k in expected}
    misshaped = [
        f"{k}: expected shape {tuple(expected[k])}, got {tuple(a.shape)}"
        for k, a in arrays.items()
        if tuple(a.shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if misshaped:
        problems.append("wrong shapes: " + "; ".join(misshaped))
    if problems:
        raise ValueError("state dict does not fit this RNN: " + "; ".join(problems))
    return arrays


def check_config(input_size: int, hidden_size: int, num_layers: int, nonlinearity: str, dropout: float) -> None:
    """Refuse constructor arguments that ``torch.nn.RNN`` would refuse (and a few it lets through)."""
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
        if value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value}")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}: expected one of {NONLINEARITIES}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)):
        raise TypeError(f"dropout must be a float in [0, 1), got {type(dropout).__name__} ({dropout!r})")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def check_proj_size(proj_size: Any, hidden_size: int) -> int:
    """An LSTM's ``proj_size``: an int in ``[0, hidden_size)``, refused with ``torch.nn.LSTM``'s messages."""
    if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)):
        raise TypeError(f"proj_size must be an int, got {type(proj_size).__name__} ({proj_size!r})")
    if proj_size < 0:
        raise ValueError(f"proj_size should be a positive integer or zero to disable projections, got {proj_size}")
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} and hidden_size={hidden_size}"
        )
    return int(proj_size)


def refuse_proj_size(proj_size: Any) -> None:
    """A GRU (or Elman RNN) has no projection: ``torch.nn.GRU(..., proj_size=2)`` raises this ``ValueError``."""
    if proj_size != 0:
        raise ValueError(f"proj_size argument is only supported for LSTM, not RNN or GRU (got proj_size={proj_size!r})")


FLAGS = ("bias", "batch_first", "bidirectional")


def check_flags(bias: Any, batch_first: Any, bidirectional: Any) -> tuple[bool, bool, bool]:
    """Refuse a flag that is not a bool; return the three as Python bools.

    A truthy stand-in would be read silently: ``batch_first='False'`` reads the input
    batch-first, ``bias=0`` builds a model without biases. ``torch.nn.RNN`` (2.13)
    raises ``TypeError: bias should be of type bool, got: int`` for ``bias`` and
    ``batch_first``; the message here starts the same and adds the value. PyTorch does
    not check ``bidirectional`` (``bidirectional='x'`` builds a bidirectional RNN);
    this library refuses it the same way, for the same reason. A NumPy bool is
    accepted (PyTorch refuses it), as NumPy integers are for the sizes.
    """
    values = (bias, batch_first, bidirectional)
    for name, value in zip(FLAGS, values, strict=True):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__} ({value!r})")
    return bool(bias), bool(batch_first), bool(bidirectional)


def check_dropout_at_forward(dropout: float) -> None:
    """The dropout probability as it is about to be applied (training mode, between layers).

    ``model.dropout`` can be set after construction, past :func:`check_config`
    (PyTorch's own ``test_RNN_change_dropout`` steps it through 0, 0.5, 1 and back).
    There ``torch.nn.RNN`` (2.13) takes any value in ``[0, 1]``, 1 included, and raises
    ``RuntimeError: dropout probability has to be between 0 and 1, but got 1.5``
    otherwise, only when it would apply dropout; this raises the same.
    """
    if not 0.0 <= dropout <= 1.0:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {dropout}")


def dropout_warning_needed(dropout: float, num_layers: int) -> bool:
    """PyTorch warns when dropout is set on a single layer: it applies only *between* layers."""
    return dropout > 0 and num_layers == 1


DROPOUT_WARNING = (
    "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
    "expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}"
)


def check_input_shape(shape: tuple[int, ...], input_size: int, batch_first: bool) -> tuple[bool, int, int]:
    """Check an input's shape and say how to read it.

    Accepts ``(T, N, D)`` (time-major), ``(N, T, D)`` (``batch_first=True``) or
    unbatched ``(T, D)``. Returns ``(batched, T, N)``; ``N`` is 1 when unbatched.

    An empty batch (``N = 0``) is accepted, as by ``torch.nn.RNN``: its output is
    ``(T, 0, H*dirs)``. No time step (``T = 0``) is refused: there is no last state to
    return (``nn.RNN`` raises ``RuntimeError: Expected sequence length to be larger than 0``).
    """
    if len(shape) not in (2, 3):
        layout = "(N, T, D)" if batch_first else "(T, N, D)"
        raise ValueError(
            f"input must be 3-D {layout} or unbatched 2-D (T, D) with D={input_size}, "
            f"got a {len(shape)}-D array of shape {tuple(shape)}"
        )
    if shape[-1] != input_size:
        raise ValueError(
            f"input's last dimension must be input_size={input_size}, got {shape[-1]} (input shape {tuple(shape)})"
        )
    batched = len(shape) == 3
    if batched:
        T, N = (shape[1], shape[0]) if batch_first else (shape[0], shape[1])
    else:
        T, N = shape[0], 1
    if T == 0:
        raise ValueError(f"input must have at least one time step (T >= 1), got T=0 in shape {tuple(shape)}")
    return batched, T, N


def check_h0_shape(
    shape: tuple[int, ...],
    batched: bool,
    num_states: int,
    batch: int,
    hidden_size: int,
    name: str = "h0",
    size_name: str = "H",
) -> None:
    """``h0`` must be ``(L*dirs, N, H)`` for batched input and ``(L*dirs, H)`` for unbatched input.

    ``h0`` is never batch-first, whatever ``batch_first`` says (as in PyTorch). ``name`` and
    ``size_name`` name the state in the message (an LSTM's ``c0``; ``P`` for a projected ``h0``).
    """
    if batched:
        expected: tuple[int, ...] = (num_states, batch, hidden_size)
        if len(shape) != 3:
            raise ValueError(
                f"for batched 3-D input, {name} must be 3-D (num_layers*num_directions, N, {size_name}) = {expected}, "
                f"got a {len(shape)}-D array of shape {tuple(shape)}"
            )
    else:
        expected = (num_states, hidden_size)
        if len(shape) != 2:
            raise ValueError(
                f"for unbatched 2-D input, {name} must be 2-D (num_layers*num_directions, {size_name}) = {expected}, "
                f"got a {len(shape)}-D array of shape {tuple(shape)}"
            )
    if tuple(shape) != expected:
        raise ValueError(
            f"{name} must have shape (num_layers*num_directions, {'N, ' if batched else ''}{size_name}) = {expected}, "
            f"got {tuple(shape)}"
        )


def check_lengths(lengths: Any, batched: bool, T: int, N: int) -> np.ndarray:
    """Per-sequence lengths: ``N`` integers in ``[1, T]`` (a packed batch's lengths).

    An empty batch takes empty lengths, of any dtype: ``lengths=[]`` is a float64 array
    to NumPy, but holds no value that could be a fraction.
    """
    if not batched:
        raise ValueError("lengths are for batched input; unbatched 2-D input is one sequence of length T")
    arr = to_numpy(lengths)
    if arr.shape != (N,):
        raise ValueError(f"lengths must have shape (N,) = ({N},), got {arr.shape}")
    if N == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    if arr.min() < 1 or arr.max() > T:
        raise ValueError(f"every length must be in [1, T={T}], got {arr.tolist()}")
    return arr.astype(np.int64)
