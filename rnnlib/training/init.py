"""Initialisations of the recurrent weights that control how gradients flow through time.

The Jacobian of one step, ``dh_t/dh_{t-1} = diag(act'(a_t)) W_hh``, is what BPTT multiplies
``T - t`` times; its size is set mostly by ``W_hh``. This module makes ``W_hh`` with a chosen
spectral radius ``rho`` (largest ``|eigenvalue|``):

* :func:`orthogonal`: a random orthogonal ``Q`` (``Q.T @ Q = I``, every singular value 1),
  drawn like ``torch.nn.init.orthogonal_``; ``rho * Q`` is *normal*, so
  ``||(rho Q)^k||_2 = rho**k`` exactly for every ``k``.
* :func:`scale_to_spectral_radius`: any square matrix rescaled to spectral radius ``rho``
  (for a non-normal matrix the norm of ``W^k`` approaches ``rho**k`` only as ``k`` grows).
* :func:`irnn_init`: Le, Jaitly & Hinton (2015), "A Simple Way to Initialize Recurrent
  Networks of Rectified Linear Units": ``W_hh = I``, biases 0, relu.
* :func:`set_recurrent_weights`: put such matrices into every layer of a :class:`~rnnlib.NumpyRNN`.

All functions work on NumPy arrays; a torch module gets the result through
``module.load_state_dict({k: torch.from_numpy(v) for k, v in model.params.items()})``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..numpy_rnn import NumpyRNN

Array = np.ndarray


def spectral_radius(W: Array) -> float:
    """``max |eigenvalue|`` of a square matrix ``W (H, H)``."""
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def orthogonal(H: int, rng: np.random.Generator, gain: float = 1.0, dtype=np.float64) -> Array:
    """A random orthogonal ``(H, H)`` matrix times ``gain``, Haar-distributed.

    The QR decomposition of a Gaussian matrix, with the signs of ``R``'s diagonal moved into
    ``Q`` so that the distribution is uniform over orthogonal matrices (what
    ``torch.nn.init.orthogonal_`` does). Its spectral radius and its 2-norm are both ``gain``.
    """
    A = rng.standard_normal((H, H))
    Q, R = np.linalg.qr(A)
    Q = Q * np.sign(np.diag(R))[None, :]
    return (gain * Q).astype(dtype)


def scale_to_spectral_radius(W: Array, rho: float) -> Array:
    """``W (H, H)`` rescaled so that its spectral radius is ``rho`` (a new array)."""
    return W * (rho / spectral_radius(W))


def irnn_init(model: NumpyRNN, input_std: float = 0.001, identity_scale: float = 1.0, seed: int = 0) -> NumpyRNN:
    """Le, Jaitly & Hinton's IRNN initialisation, in place: returns ``model``.

    Every ``weight_hh_l{k} = identity_scale * I``, every bias 0, and every ``weight_ih_l{k}``
    Gaussian with standard deviation ``input_std`` (the paper uses 0.001). With relu and
    non-negative states, the recurrence starts out as ``h_t = h_{t-1} + (small input term)``:
    the state is copied forward and the gradient copied backward unchanged.

    Raises ``ValueError`` unless ``model.nonlinearity == 'relu'`` (the identity trick relies
    on relu being the identity on positive states).
    """
    if model.nonlinearity != "relu":
        raise ValueError(f"the IRNN initialisation is for relu RNNs, this model uses {model.nonlinearity!r}")
    rng = np.random.default_rng(seed)
    H = model.hidden_size
    for name, value in model.params.items():
        if name.startswith("weight_hh"):
            model.params[name] = (identity_scale * np.eye(H)).astype(model.dtype)
        elif name.startswith("bias"):
            model.params[name] = np.zeros_like(value)
        else:  # weight_ih
            model.params[name] = (input_std * rng.standard_normal(value.shape)).astype(model.dtype)
    return model


def set_recurrent_weights(model: NumpyRNN, rho: float, kind: str = "orthogonal", seed: int = 0) -> NumpyRNN:
    """Replace every ``weight_hh_*`` of ``model`` by a matrix of spectral radius ``rho``, in place.

    Args:
        kind: ``'orthogonal'`` (``rho * Q``, normal: norm = spectral radius), ``'gaussian'``
            (i.i.d. normal entries rescaled to spectral radius ``rho``, not normal) or
            ``'identity'`` (``rho * I``).
        seed: seeds one generator used for all layers, in the parameters' order.

    Returns ``model``. Input weights and biases are left as they are.
    """
    rng = np.random.default_rng(seed)
    H = model.hidden_size
    for name in model.params:
        if not name.startswith("weight_hh"):
            continue
        if kind == "orthogonal":
            W = orthogonal(H, rng, gain=rho)
        elif kind == "gaussian":
            W = scale_to_spectral_radius(rng.standard_normal((H, H)), rho)
        elif kind == "identity":
            W = rho * np.eye(H)
        else:
            raise ValueError(f"unknown kind {kind!r}: expected 'orthogonal', 'gaussian' or 'identity'")
        model.params[name] = W.astype(model.dtype)
    return model
