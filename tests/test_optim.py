"""rnnlib.training.optim: SGD and Adam for dicts of NumPy arrays make torch.optim's updates, step for step."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from rnnlib.training.optim import SGD, Adam

SHAPES = {"weight": (4, 3), "bias": (4,), "scalar": ()}
STEPS = 7


def _start(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: np.asarray(rng.standard_normal(s)) for k, s in SHAPES.items()}


def _numpy_grad(p: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Gradient of sum(a * p**2 + sin(p)): depends on p, so errors in an update would compound."""
    return 2 * a * p + np.cos(p)


def _run_both(make_numpy, make_torch, steps: int = STEPS) -> tuple[dict, dict]:
    start = _start()
    coefs = {k: np.abs(v) + 0.5 for k, v in _start(1).items()}
    params = {k: v.copy() for k, v in start.items()}
    opt = make_numpy(params)
    for _ in range(steps):
        opt.step({k: _numpy_grad(p, coefs[k]) for k, p in params.items()})

    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in start.items()}
    topt = make_torch(list(tparams.values()))
    for _ in range(steps):
        topt.zero_grad()
        loss = sum((torch.as_tensor(coefs[k]) * p**2 + torch.sin(p)).sum() for k, p in tparams.items())
        loss.backward()
        topt.step()
    return params, {k: v.detach().numpy() for k, v in tparams.items()}


def _max_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, weight_decay=0.01),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    dict(lr=0.05, weight_decay=0.1, maximize=True),
]


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_makes_the_same_updates_as_torch(kwargs):
    ours, theirs = _run_both(lambda p: SGD(p, **kwargs), lambda p: torch.optim.SGD(p, **kwargs))
    assert _max_diff(ours, theirs) < 1e-12


ADAM_CASES = [
    dict(),
    dict(lr=0.05),
    dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True),
    dict(lr=0.05, amsgrad=True),
    dict(lr=0.05, maximize=True),
]


@pytest.mark.parametrize("kwargs", ADAM_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
def test_adam_makes_the_same_updates_as_torch(kwargs):
    ours, theirs = _run_both(lambda p: Adam(p, **kwargs), lambda p: torch.optim.Adam(p, **kwargs), steps=12)
    assert _max_diff(ours, theirs) < 1e-12


def test_adam_bias_correction_makes_the_first_step_lr_sized():
    # After one step, m_hat / sqrt(v_hat) = g / |g| = sign(g): every weight moves by lr (up to eps).
    params = _start()
    before = {k: v.copy() for k, v in params.items()}
    grads = {k: np.full(v.shape, 1e-3) for k, v in params.items()}
    Adam(params, lr=0.01).step(grads)
    for k in params:
        np.testing.assert_allclose(before[k] - params[k], 0.01, rtol=1e-4)


def test_optimizers_update_the_model_arrays_in_place():
    params = _start()
    ids = {k: id(v) for k, v in params.items()}
    view = params["weight"]
    SGD(params, lr=0.1).step({k: np.ones_like(v) for k, v in params.items()})
    assert {k: id(v) for k, v in params.items()} == ids
    assert view is params["weight"] and np.shares_memory(view, params["weight"])


@pytest.mark.parametrize("ours, theirs", [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam)])
def test_hyperparameter_names_and_defaults_match_torch(ours, theirs):
    torch_params = inspect.signature(theirs.__init__).parameters
    for name, p in inspect.signature(ours.__init__).parameters.items():
        if name in ("self", "params"):
            continue
        assert name in torch_params, name
        assert p.default == torch_params[name].default, name


def test_optimizer_rejects_missing_or_misshaped_gradients():
    params = _start()
    opt = Adam(params)
    with pytest.raises(KeyError):
        opt.step({"weight": np.zeros((4, 3))})
    with pytest.raises(ValueError):
        opt.step({k: np.zeros(3) for k in params})
    with pytest.raises(ValueError):
        SGD(params, lr=0.1, nesterov=True)  # Nesterov needs momentum
