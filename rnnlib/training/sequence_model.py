"""The model a learner builds around a stack: embedding, RNN, output layer, per-step masked cross-entropy.

``nn.Embedding(V, D)`` -> ``nn.RNN(D, H, L)`` -> ``nn.Linear(H, O)`` -> ``F.cross_entropy`` at every real
step, in NumPy with hand-written backward passes. Each piece is a pair of small functions with an explicit
cache, in the style of CS231n's assignment 3 (``word_embedding_forward/backward``,
``temporal_affine_forward/backward``, ``temporal_softmax_loss``), with three differences:

* arrays are time-major, ``(T, N, ...)``, as ``nn.RNN`` and the course use them;
* the output layer keeps ``nn.Linear``'s layout, ``W_ho`` of shape ``(O, H)`` (CS231n stores ``(H, O)``);
* the loss is the mean over the **real** tokens (``F.cross_entropy`` with ``ignore_index``); CS231n's
  ``temporal_softmax_loss`` divides the masked sum by the batch size ``N`` instead.

The stack in between is :class:`~rnnlib.NumpyRNN`; :func:`sequence_loss` chains the four.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numpy_rnn import NumpyRNN

Array = np.ndarray


def _integer_ids(ids: Any, what: str) -> Array:
    ids = np.asarray(ids)
    if ids.dtype == bool or ids.dtype.kind not in "iu":
        raise TypeError(f"{what} must be an array of integers, got dtype {ids.dtype}")
    return ids


def word_embedding_forward(ids: Any, W: Array) -> tuple[Array, dict[str, Any]]:
    """Look up one row of the table per token: ``out[t, n] = W[ids[t, n]]``.

    Args:
        ids: ``(T, N)`` integers in ``[0, V)`` (any shape works; the output adds a last axis ``D``).
        W: ``(V, D)``, the embedding table (``nn.Embedding.weight``).

    Returns:
        ``out``: ``(T, N, D)``; ``cache`` for :func:`word_embedding_backward`.

    Raises:
        TypeError: ``ids`` not integers. ValueError: ``W`` not 2-D, or an id outside ``[0, V)``.
    """
    ids = _integer_ids(ids, "ids")
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"the embedding table must be 2-D (V, D), got shape {W.shape}")
    V = W.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        bad = ids[(ids < 0) | (ids >= V)]
        raise ValueError(f"ids must be in [0, {V}) for a table of {V} rows, got {bad.ravel()[0]}")
    return W[ids], {"ids": ids, "V": V, "dtype": W.dtype}


def word_embedding_backward(dout: Array, cache: dict[str, Any]) -> Array:
    """Gradient of the table: every position's ``dout`` is added to its token's row.

    ``np.add.at`` accumulates: an id read at ``k`` positions gets the sum of ``k`` gradients.
    (``dW[ids] += dout`` would keep only one of them, since fancy-index assignment does not accumulate.)
    Rows of ids never read get zeros.

    Args:
        dout: ``(T, N, D)``, gradient w.r.t. the looked-up vectors.
        cache: from :func:`word_embedding_forward`.

    Returns:
        ``dW``: ``(V, D)``.
    """
    ids = cache["ids"]
    dout = np.asarray(dout)
    if dout.shape[:-1] != ids.shape:
        raise ValueError(f"dout must have shape {ids.shape} + (D,), got {dout.shape}")
    dW = np.zeros((cache["V"], dout.shape[-1]), dtype=np.result_type(dout.dtype, cache["dtype"]))
    np.add.at(dW, ids, dout)
    return dW


def temporal_affine_forward(x: Array, w: Array, b: Array) -> tuple[Array, dict[str, Any]]:
    """The output layer at every step: ``out[t, n] = w @ x[t, n] + b`` (``y_t = W_ho h_t^(L) + b_ho``).

    Args:
        x: ``(T, N, H)``, the top layer's states (``nn.RNN``'s ``output``).
        w: ``(O, H)``, ``nn.Linear``'s ``weight``.
        b: ``(O,)``, ``nn.Linear``'s ``bias``.

    Returns:
        ``out``: ``(T, N, O)``; ``cache`` for :func:`temporal_affine_backward`.
    """
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    if x.ndim != 3 or w.ndim != 2 or b.shape != (w.shape[0],) or x.shape[-1] != w.shape[1]:
        raise ValueError(f"expected x (T, N, H), w (O, H), b (O,); got {x.shape}, {w.shape}, {b.shape}")
    return x @ w.T + b, {"x": x, "w": w}


def temporal_affine_backward(dout: Array, cache: dict[str, Any]) -> tuple[Array, Array, Array]:
    """Backward of :func:`temporal_affine_forward`: the weights' gradients are sums over all ``T * N`` positions.

    Args:
        dout: ``(T, N, O)``.
        cache: from :func:`temporal_affine_forward`.

    Returns:
        ``dx`` ``(T, N, H)``, ``dw`` ``(O, H)``, ``db`` ``(O,)``.
    """
    x, w = cache["x"], cache["w"]
    if dout.shape != x.shape[:2] + (w.shape[0],):
        raise ValueError(f"dout must have shape {x.shape[:2] + (w.shape[0],)}, got {dout.shape}")
    dx = dout @ w
    dw = np.einsum("tno,tnh->oh", dout, x)
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def temporal_softmax_loss(scores: Array, targets: Any, mask: Any) -> tuple[float, Array]:
    """Softmax cross-entropy at every step, averaged over the real (unmasked) tokens.

    ``loss = sum_{t,n} mask[t,n] * -log softmax(scores[t,n])[targets[t,n]] / sum_{t,n} mask[t,n]``,
    which is ``F.cross_entropy(scores.reshape(-1, O), targets.reshape(-1), ignore_index=pad)`` when
    ``mask = targets != pad``. Padded positions contribute nothing, to the loss or to the gradient,
    and their targets are not read (any integer will do).

    Args:
        scores: ``(T, N, O)``, the unnormalised outputs ``y_t``.
        targets: ``(T, N)`` integers; in ``[0, O)`` wherever ``mask`` is true.
        mask: ``(T, N)`` booleans (or 0/1), true at real tokens; at least one must be true.

    Returns:
        ``loss`` (a float) and ``dscores`` ``(T, N, O)``.

    Raises:
        ValueError: shapes that do not match, a mask without real tokens, a real target out of range.
        TypeError: non-integer targets, a mask that is not boolean or 0/1.
    """
    scores = np.asarray(scores)
    targets = _integer_ids(targets, "targets")
    mask = np.asarray(mask)
    if scores.ndim != 3:
        raise ValueError(f"scores must be (T, N, O), got shape {scores.shape}")
    if targets.shape != scores.shape[:2]:
        raise ValueError(f"targets must have shape {scores.shape[:2]} (T, N) to match scores, got {targets.shape}")
    if mask.shape != targets.shape:
        raise ValueError(f"mask must have the shape of targets, {targets.shape}, got {mask.shape}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise TypeError("mask must be boolean (or 0/1): true at real tokens, false at padding")
        mask = mask.astype(bool)
    count = int(mask.sum())
    if count == 0:
        raise ValueError("mask has no real token: the mean over real tokens is undefined")
    O = scores.shape[-1]
    real = targets[mask]
    if real.min() < 0 or real.max() >= O:
        raise ValueError(f"targets at real tokens must be in [0, {O}), got {real[(real < 0) | (real >= O)][0]}")
    safe = np.where(mask, targets, 0)  # padded targets are never read
    shifted = scores - scores.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, safe[..., None], axis=-1)[..., 0]  # (T, N)
    loss = float(-(picked * mask).sum() / count)
    dscores = np.exp(log_probs)  # softmax
    np.put_along_axis(dscores, safe[..., None], np.take_along_axis(dscores, safe[..., None], -1) - 1, -1)
    dscores *= mask[..., None] / count  # padding: exactly zero
    return loss, dscores


def sequence_loss(
    ids: Any,
    targets: Any,
    mask: Any,
    W_emb: Array,
    rnn: NumpyRNN,
    W_ho: Array,
    b_ho: Array,
    h0: Any = None,
) -> tuple[float, dict[str, Array]]:
    """Loss and every gradient of embedding -> stack -> output layer -> masked per-step cross-entropy.

    Args:
        ids: ``(T, N)`` input token ids in ``[0, V)``.
        targets: ``(T, N)`` target ids in ``[0, O)`` at real tokens.
        mask: ``(T, N)``, true at real tokens.
        W_emb: ``(V, D)``; rnn: a time-major :class:`~rnnlib.NumpyRNN` with ``input_size = D``;
        W_ho: ``(O, H)``; b_ho: ``(O,)``.
        h0: ``(L, N, H)``, zeros when ``None``.

    Returns:
        ``loss`` and ``grads`` keyed like the ``state_dict`` of a module with attributes ``embedding``,
        ``rnn`` and ``linear``: ``"embedding.weight"`` ``(V, D)``, ``"rnn.weight_ih_l0"``, ...,
        ``"linear.weight"`` ``(O, H)``, ``"linear.bias"`` ``(O,)``.
    """
    if rnn.batch_first or rnn.bidirectional:
        raise ValueError("sequence_loss expects a time-major, unidirectional NumpyRNN")
    ids = _integer_ids(ids, "ids")
    if ids.ndim != 2:
        raise ValueError(f"ids must be (T, N), got shape {ids.shape}")
    x, emb_cache = word_embedding_forward(ids, W_emb)  # (T, N, D)
    out, _ = rnn.forward(x, h0)  # (T, N, H): h_t^(L)
    scores, aff_cache = temporal_affine_forward(out, W_ho, b_ho)  # (T, N, O): y_t
    loss, dscores = temporal_softmax_loss(scores, targets, mask)
    d_out, dW_ho, db_ho = temporal_affine_backward(dscores, aff_cache)
    dx, _ = rnn.backward(d_out)  # BPTT through the stack
    dW_emb = word_embedding_backward(dx, emb_cache)
    grads = {"embedding.weight": dW_emb}
    grads.update({f"rnn.{k}": v for k, v in rnn.grads.items()})
    grads.update({"linear.weight": dW_ho, "linear.bias": db_ho})
    return loss, grads
