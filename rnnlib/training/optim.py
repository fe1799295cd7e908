"""Optimizers for dicts of NumPy arrays, update for update equal to ``torch.optim``.

A NumPy model keeps its parameters in a dict ``{name: array}`` and its gradients in
a dict with the same keys (``NumpyRNN.params`` / ``NumpyRNN.grads``). The optimizers
here hold on to the parameter *arrays* and update them **in place** on every
:meth:`step`, so the model sees the new values without being told. (Build the
optimizer after loading weights: ``load_state_dict`` replaces the arrays.)

Each class has the hyper-parameters of its ``torch.optim`` namesake, with the same
names and defaults, and performs the same arithmetic in the same order as torch's
single-tensor CPU implementation, so that in float64 the parameters after any number
of steps agree with torch's to rounding (``tests/test_optim.py`` checks 1e-12).

* :class:`SGD`: ``torch.optim.SGD`` (momentum, dampening, Nesterov, weight decay, maximize).
* :class:`Adam`: ``torch.optim.Adam`` (bias correction, L2 or decoupled weight decay
  (AdamW), AMSGrad, maximize).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

Array = np.ndarray


class Optimizer:
    """Base class: remembers the parameter arrays and a per-parameter ``state`` dict.

    Args:
        params: ``{name: array}``; the arrays are updated in place by :meth:`step`.
    """

    def __init__(self, params: Mapping[str, Array]) -> None:
        if not params:
            raise ValueError("optimizer got an empty parameter dict")
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"parameter {name!r} must be a floating NumPy array, got {type(p).__name__}")
        self.params: dict[str, Array] = dict(params)
        self.state: dict[str, dict[str, Any]] = {name: {} for name in self.params}

    def _check_grads(self, grads: Mapping[str, Array]) -> None:
        missing = [k for k in self.params if k not in grads]
        if missing:
            raise KeyError(f"no gradient for parameters {missing}")
        for k, p in self.params.items():
            if np.shape(grads[k]) != p.shape:
                raise ValueError(f"gradient of {k!r} has shape {np.shape(grads[k])}, parameter has {p.shape}")

    def step(self, grads: Mapping[str, Array]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    For each parameter ``p`` with gradient ``g``::

        g = g + weight_decay * p                       (if weight_decay)
        b = g  (first step)  or  momentum * b + (1 - dampening) * g
        g = g + momentum * b  (nesterov)  or  b         (if momentum)
        p = p - lr * g

    Args:
        params: ``{name: array}``, updated in place.
        lr: learning rate (torch's default ``1e-3``).
        momentum: heavy-ball coefficient; 0 turns momentum off.
        dampening: scales the new gradient in the momentum buffer by ``1 - dampening``.
        weight_decay: L2 penalty coefficient added to the gradient.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Mapping[str, Array],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov, self.maximize = weight_decay, nesterov, maximize

    def step(self, grads: Mapping[str, Array]) -> None:
        """Update every parameter in place from ``grads`` (same keys and shapes)."""
        self._check_grads(grads)
        for name, p in self.params.items():
            g = np.asarray(grads[name], dtype=p.dtype)
            g = -g if self.maximize else g
            if self.weight_decay != 0:
                g = g + self.weight_decay * p
            if self.momentum != 0:
                buf = self.state[name].get("momentum_buffer")
                if buf is None:
                    buf = np.array(g, dtype=p.dtype)  # a copy, and an array even for 0-d parameters
                    self.state[name]["momentum_buffer"] = buf
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``.

    For each parameter, at step ``k = 1, 2, ...``::

        g = g + weight_decay * p                        (L2, if weight_decay)
        p = p * (1 - lr * weight_decay)                 (instead, if decoupled_weight_decay)
        m = m + (1 - beta1) * (g - m)                   (= beta1 m + (1 - beta1) g)
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1**k) * m / (sqrt(v) / sqrt(1 - beta2**k) + eps)

    The two divisions by ``1 - beta**k`` are the bias corrections: ``m`` and ``v``
    start at zero, so without them the first steps would be too small.

    Args:
        params: ``{name: array}``, updated in place.
        lr: learning rate (default ``1e-3``).
        betas: ``(beta1, beta2)``, decay rates of the two moving averages.
        eps: added to the denominator.
        weight_decay: L2 coefficient (added to the gradient), or, with
            ``decoupled_weight_decay=True``, the AdamW shrinkage rate.
        amsgrad: divide by the running maximum of ``v`` instead of ``v``.
        maximize: ascend instead of descend.
        decoupled_weight_decay: AdamW (Loshchilov & Hutter, 2019).
    """

    def __init__(
        self,
        params: Mapping[str, Array],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid betas: {betas}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params)
        self.lr, self.betas, self.eps = lr, (float(betas[0]), float(betas[1])), eps
        self.weight_decay, self.amsgrad = weight_decay, amsgrad
        self.maximize, self.decoupled_weight_decay = maximize, decoupled_weight_decay
        for name, p in self.params.items():
            st = self.state[name]
            st["step"] = 0
            st["exp_avg"] = np.zeros_like(p)
            st["exp_avg_sq"] = np.zeros_like(p)
            if amsgrad:
                st["max_exp_avg_sq"] = np.zeros_like(p)

    def step(self, grads: Mapping[str, Array]) -> None:
        """Update every parameter in place from ``grads`` (same keys and shapes)."""
        self._check_grads(grads)
        beta1, beta2 = self.betas
        lr = self.lr
        for name, p in self.params.items():
            st = self.state[name]
            g = np.asarray(grads[name], dtype=p.dtype)
            g = -g if self.maximize else g
            st["step"] = k = int(st["step"]) + 1
            if self.weight_decay != 0:
                if self.decoupled_weight_decay:
                    p *= 1 - lr * self.weight_decay
                else:
                    g = g + self.weight_decay * p
            m: Array = st["exp_avg"]
            v: Array = st["exp_avg_sq"]
            m += (1 - beta1) * (g - m)  # torch's lerp_(g, 1 - beta1) for a weight below 0.5
            v *= beta2
            v += (1 - beta2) * (g * g)
            bias_correction1 = 1 - beta1**k
            bias_correction2 = 1 - beta2**k
            step_size = lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            if self.amsgrad:
                v_max: Array = st["max_exp_avg_sq"]
                np.maximum(v_max, v, out=v_max)
                denom = np.sqrt(v_max) / bias_correction2_sqrt + self.eps
            else:
                denom = np.sqrt(v) / bias_correction2_sqrt + self.eps
            p -= step_size * (m / denom)
