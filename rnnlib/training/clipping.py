"""Gradient norm clipping for NumPy gradients, computed exactly as ``torch.nn.utils.clip_grad_norm_``.

Clipping rescales *all* gradients by one factor when their joint norm exceeds ``max_norm``::

    total_norm = || (||g_1||, ||g_2||, ...) ||      # the norm of every gradient, concatenated
    g_k <- g_k * min(max_norm / (total_norm + 1e-6), 1)

The direction of the update is kept; only its length is capped (Pascanu, Mikolov & Bengio, 2013,
"On the difficulty of training recurrent neural networks"). The ``1e-6`` is PyTorch's guard
against dividing by zero: it also means a clipped norm comes out a hair below ``max_norm``.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping

import numpy as np

Array = np.ndarray


def total_grad_norm(grads: MutableMapping[str, Array], norm_type: float = 2.0) -> float:
    """The norm of all gradients viewed as one vector: the norm of their individual norms.

    Args:
        grads: ``{name: array}`` of any shapes (e.g. ``NumpyRNN.grads``).
        norm_type: ``p`` of the p-norm, or ``math.inf`` for the largest absolute entry.
    """
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        norms = np.array([np.max(np.abs(g)) if g.size else 0.0 for g in grads.values()])
        return float(np.max(norms))
    norms = np.array([np.sum(np.abs(g) ** norm_type) ** (1.0 / norm_type) for g in grads.values()])
    return float(np.sum(norms**norm_type) ** (1.0 / norm_type))


def clip_grad_norm(
    grads: MutableMapping[str, Array], max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Rescale ``grads`` in place so that their total norm is at most ``max_norm``; return the norm before.

    Same arithmetic as ``torch.nn.utils.clip_grad_norm_``: every gradient is multiplied by
    ``min(max_norm / (total_norm + 1e-6), 1)``, also when that factor is 1 (then nothing
    changes).

    Args:
        grads: ``{name: float array}``; the arrays are scaled in place (like ``p.grad.mul_``).
        max_norm: the largest total norm allowed.
        norm_type: ``2.0`` by default; any ``p > 0`` or ``math.inf``.
        error_if_nonfinite: raise ``RuntimeError`` when the total norm is ``nan`` or ``inf``
            (otherwise the gradients are scaled by a ``nan``/``0`` factor, as torch does).

    Returns:
        The total norm of the gradients *before* clipping (what torch returns).
    """
    total = total_grad_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is non-finite ({total}), "
            "so it cannot be clipped; pass error_if_nonfinite=False to scale anyway"
        )
    coef = min(float(max_norm) / (total + 1e-6), 1.0) if not math.isnan(total) else math.nan
    seen: set[int] = set()
    for g in grads.values():
        if id(g) not in seen:  # an array listed under two names is scaled once
            seen.add(id(g))
            g *= coef
    return total
