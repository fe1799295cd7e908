"""A4 (chapters/coursework/A4_training.ipynb): a stacked RNN regressor for the adding problem.

The checks of the model class ``AddingRegressor`` (:func:`check_adding_model`), ``train_step``
(:func:`check_train_step`) and the trained model (:func:`check_trained_adding_model`), each
with its ``diagnose_*`` twin, and :func:`heldout_adding_mse`. These do not run a function on
probe arrays: each gives the engine its own three sides (plan on the trusted side, collect
in the submission's kernel, judge on the trusted side; see :func:`rnnlib.coursework.engine.register`).
The notebook imports these through :mod:`rnnlib.coursework.checks`.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .engine import (
    MAX_MESSAGE,
    NOT_IMPLEMENTED,
    Array,
    Plan,
    _caught,
    _first_line,
    _note_warnings,
    _raise,
    _text,
    _user_frame,
    collect,
    judge,
    plan,
    register,
)

__all__ = [
    "check_adding_model",
    "check_train_step",
    "check_trained_adding_model",
    "diagnose_adding_model",
    "diagnose_train_step",
    "diagnose_trained_adding_model",
    "heldout_adding_mse",
]


# --------------------------------------------------------------------------------------
# A4: a stacked RNN regressor for the adding problem
# --------------------------------------------------------------------------------------


def _adding_batch(T: int, N: int, seed: int, dtype: Any = np.float32) -> tuple[torch.Tensor, torch.Tensor]:
    from ..training.data import adding_problem

    x, y = adding_problem(T, N, np.random.default_rng(seed), dtype=dtype)
    return torch.from_numpy(x), torch.from_numpy(y)


def _structure_of(model: Any) -> dict[str, Any]:
    """What the A4 checks need to know of a model's structure, as plain data (collected in the kernel)."""
    info: dict[str, Any] = {
        "type": f"{type(model).__module__}.{type(model).__qualname__}",
        "type_name": type(model).__name__,
        "is_module": isinstance(model, nn.Module),
    }
    rnn, fc = getattr(model, "rnn", None), getattr(model, "fc", None)
    info["rnn_type"], info["fc_type"] = type(rnn).__name__, type(fc).__name__
    if isinstance(rnn, nn.RNN):
        info["rnn"] = {
            "input_size": int(rnn.input_size),
            "hidden_size": int(rnn.hidden_size),
            "num_layers": int(rnn.num_layers),
            "batch_first": bool(rnn.batch_first),
            "bidirectional": bool(rnn.bidirectional),
            "nonlinearity": str(rnn.nonlinearity),
            "bias": bool(rnn.bias),
        }
    if isinstance(fc, nn.Linear):
        info["fc"] = {
            "in_features": int(fc.in_features),
            "out_features": int(fc.out_features),
            "bias": fc.bias is not None,
        }
    if isinstance(model, nn.Module):
        params = list(model.parameters())
        info["dtype"] = str(params[0].dtype) if params else ""
    return info


def _state_of(model: Any) -> dict[str, Array]:
    """The ``rnn`` and ``fc`` weights of a model, as arrays (collected in the kernel)."""
    state: dict[str, Array] = {}
    for part in ("rnn", "fc"):
        module = getattr(model, part, None)
        if isinstance(module, nn.Module):
            for key, value in module.state_dict().items():
                if isinstance(value, torch.Tensor):
                    state[f"{part}.{key}"] = value.detach().cpu().numpy().copy()
    return state


def _structure_problem(
    info: dict[str, Any],
    name: str,
    *,
    input_size: int = 2,
    hidden_size: int | None = None,
    num_layers: int | None = None,
    min_layers: int = 1,
) -> str | None:
    if not info.get("is_module"):
        return f"{name} should be an nn.Module, got {info.get('type_name')}"
    rnn, fc = info.get("rnn"), info.get("fc")
    if not isinstance(rnn, dict):
        return (
            f"{name} should keep its recurrent stack in an attribute `rnn` that is an nn.RNN "
            f"(got {info.get('rnn_type')}): the tests read it to check what the prediction is computed from"
        )
    if not isinstance(fc, dict):
        return (
            f"{name} should keep its output layer in an attribute `fc` that is an nn.Linear (got {info.get('fc_type')})"
        )
    if rnn["input_size"] != input_size:
        return f"{name}.rnn has input_size={rnn['input_size']}; the adding problem has {input_size} features per step"
    if hidden_size is not None and rnn["hidden_size"] != hidden_size:
        return f"{name}.rnn has hidden_size={rnn['hidden_size']}, expected {hidden_size} (the hidden_size argument)"
    if num_layers is not None and rnn["num_layers"] != num_layers:
        return (
            f"{name}.rnn has num_layers={rnn['num_layers']}, expected {num_layers}: pass the num_layers argument "
            f"on to nn.RNN"
        )
    if rnn["num_layers"] < min_layers:
        return (
            f"{name}.rnn has num_layers={rnn['num_layers']}; this assignment asks for a stacked RNN (at least "
            f"{min_layers})"
        )
    if rnn["batch_first"]:
        return (
            f"{name}.rnn was built with batch_first=True, but the adding-problem batches are time-major "
            f"(T, N, 2): leave batch_first=False"
        )
    if rnn["bidirectional"]:
        return f"{name}.rnn is bidirectional; this assignment uses a unidirectional stack"
    if fc["in_features"] != rnn["hidden_size"] or fc["out_features"] != 1:
        return (
            f"{name}.fc maps {fc['in_features']} -> {fc['out_features']} features; it should map the top layer's "
            f"state ({rnn['hidden_size']} features) to 1 number: nn.Linear(hidden_size, 1)"
        )
    return None


_DTYPES = {"torch.float32": torch.float32, "torch.float64": torch.float64}


def _rebuild(info: dict[str, Any], state: Any) -> tuple[nn.RNN, nn.Linear]:
    """The model's ``rnn`` and ``fc``, rebuilt from its reported structure and weights (trusted side).

    Raises ``ValueError`` when they do not describe an ``nn.RNN`` and an ``nn.Linear`` of sane sizes.
    """
    rnn_info, fc_info, dtype = info.get("rnn"), info.get("fc"), _DTYPES.get(info.get("dtype", ""))
    if not isinstance(rnn_info, dict) or not isinstance(fc_info, dict) or dtype is None or not isinstance(state, dict):
        raise ValueError("not an nn.RNN and an nn.Linear in float32 or float64")
    reported = [rnn_info.get(k) for k in ("input_size", "hidden_size", "num_layers")] + [fc_info.get("out_features")]
    sizes = [v for v in reported if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096]
    if len(sizes) != len(reported) or sizes[2] > 16:
        raise ValueError(f"implausible sizes {reported}")
    if rnn_info.get("nonlinearity") not in ("tanh", "relu"):
        raise ValueError("unknown nonlinearity")
    rnn = nn.RNN(
        sizes[0],
        sizes[1],
        sizes[2],
        nonlinearity=rnn_info["nonlinearity"],
        bias=bool(rnn_info.get("bias")),
        dtype=dtype,
    )
    fc = nn.Linear(sizes[1], sizes[3], bias=bool(fc_info.get("bias")), dtype=dtype)
    for module, prefix in ((rnn, "rnn."), (fc, "fc.")):
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not all(isinstance(v, np.ndarray) for v in own.values()):
            raise ValueError("weights are not arrays")
        module.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64)).to(dtype) for k, v in own.items()})
    return rnn.eval(), fc.eval()


def _predict(model: Any, x: Array, name: str) -> Array | str:
    """Kernel side: ``model(x)`` in the model's own dtype, as an array, or what went wrong."""
    try:
        params = list(model.parameters())
        dtype = params[0].dtype if params else torch.float32
    except Exception:  # noqa: BLE001
        dtype = torch.float32
    xt = torch.from_numpy(np.asarray(x)).to(dtype)
    try:
        with torch.no_grad():
            pred = model(xt)
    except NotImplementedError:
        return f"`{name}.forward` {NOT_IMPLEMENTED}: it raises NotImplementedError"
    except Exception as err:  # noqa: BLE001
        line = _user_frame(err)
        return f"calling {name}(x) with x of shape {tuple(xt.shape)} (T, N, 2) raised {type(err).__name__}: {err}" + (
            f"\n  at: {line}" if line else ""
        )
    if not isinstance(pred, torch.Tensor):
        return f"{name}(x) should return a tensor of shape (N,), got {type(pred).__name__}"
    return pred.detach().cpu().numpy().copy()


def _forward_problem(pred: Any, info: dict[str, Any], state: Any, x: Array, name: str) -> str | None:
    """Is ``pred`` (what ``model(x)`` returned) ``fc(top layer's last state)``, computed here from the
    model's own weights? Names the mistake if not."""
    if isinstance(pred, str):
        return pred[:MAX_MESSAGE]
    if not isinstance(pred, np.ndarray) or pred.dtype.kind != "f":
        return f"{name}(x) should return a tensor of shape (N,)"
    try:
        rnn, fc = _rebuild(info, state)
    except (ValueError, RuntimeError, KeyError) as err:
        return f"the grader could not rebuild {name}'s rnn and fc from its weights ({_first_line(str(err))})"
    T, N = x.shape[0], x.shape[1]
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64)).to(next(rnn.parameters()).dtype)
    with torch.no_grad():
        out, h_n = rnn(xt)
        expected = fc(out[-1]).squeeze(-1).numpy()
        variants = {
            "the bottom layer's final state h_n[0] is read instead of the top layer's (h_n[-1] or output[-1])": fc(
                h_n[0]
            )
            .squeeze(-1)
            .numpy(),
            "the first step's output (output[0]) is read instead of the last one's (output[-1])": fc(out[0])
            .squeeze(-1)
            .numpy(),
            "the outputs are averaged over time instead of reading the last step": fc(out.mean(0)).squeeze(-1).numpy(),
        }
    if tuple(pred.shape) != (N,):
        hint = ""
        if tuple(pred.shape) == (N, 1):
            hint = " Remove the trailing axis: .squeeze(-1)."
        elif tuple(pred.shape[:2]) == (T, N):
            hint = " You apply fc at every step: the prediction is made once, after the last step (fc(output[-1]))."
        return f"{name}(x) returned shape {tuple(pred.shape)}; expected (N,) = ({N},), one number per sequence.{hint}"

    def close(a: Array, b: Array) -> bool:
        return bool(np.all(np.isfinite(a))) and np.allclose(a, b, rtol=1e-5, atol=1e-6)

    if close(pred, expected):
        return None
    for what, value in variants.items():
        if close(pred, value):
            return f"{name}(x) is wrong: it matches what you get when {what}."
    return (
        f"{name}(x) is not fc(rnn(x)[0][-1]).squeeze(-1): the prediction must be the output layer applied "
        f"to the top layer's state after the last step (max |yours - expected| = "
        f"{float(np.max(np.abs(pred.astype(np.float64) - expected))):.1e})"
    )


def _adding_model_plan(*, seed: int, extended: bool = False) -> tuple[dict[str, Any], Any]:
    configs = [(2, 8, 2), (2, 5, 3)] + ([(2, 3, 1), (2, 16, 4)] if extended else [])
    xs = [_adding_batch(6 + k, 3 + k, seed + 100 + k)[0].numpy() for k in range(len(configs))]
    return {"configs": [list(c) for c in configs], "torch_seed": seed, "xs": xs}, None


def _adding_model_collect(request: dict[str, Any], model_cls: Any) -> dict[str, Any]:
    name = getattr(model_cls, "__name__", "the model class")
    results = []
    for (D, H, L), x in zip(request["configs"], request["xs"], strict=True):
        entry: dict[str, Any] = {"name": f"{name}({D}, {H}, {L})"}
        results.append(entry)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                torch.manual_seed(request["torch_seed"])
                model = model_cls(D, H, L)
            except NotImplementedError:
                entry["problem"] = (
                    f"`{name}` {NOT_IMPLEMENTED}: building {name}({D}, {H}, {L}) raises NotImplementedError"
                )
            except Exception as err:  # noqa: BLE001
                entry["problem"] = (
                    f"{name}(input_size={D}, hidden_size={H}, num_layers={L}) raised {type(err).__name__}: {err}"
                )
            else:
                entry["info"] = _structure_of(model)
                entry["state"] = _state_of(model)
                if isinstance(model, nn.Module):
                    entry["pred"] = _predict(copy.deepcopy(model).eval(), x, entry["name"])
        entry["warnings"] = _caught(caught)
        if "problem" in entry:
            break
    return {"models": results}


def _adding_model_judge(plan_: Plan, result: Any) -> tuple[str | None, list[str]]:
    models = result.get("models") if isinstance(result, dict) else None
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        return "the grader could not read the result of the probes (malformed data)", []
    caught = list(dict.fromkeys(_text(w) for m in models for w in (m.get("warnings") or [])))[:5]
    for k, (D, H, L) in enumerate(plan_.request["configs"]):
        if k >= len(models):
            return "the grader received no result for some of the probes", caught
        m = models[k]
        name = _text(m.get("name"), f"AddingRegressor({D}, {H}, {L})")
        if "problem" in m:
            return _text(m["problem"]), caught
        info = m.get("info") if isinstance(m.get("info"), dict) else {}
        if info.get("type") == "rnnlib.training.models.TorchRNNRegressor":
            return f"{name} is rnnlib's TorchRNNRegressor; write the model yourself", caught
        problem = _structure_problem(info, name, input_size=D, hidden_size=H, num_layers=L)
        if problem:
            return problem, caught
        problem = _forward_problem(m.get("pred"), info, m.get("state"), plan_.request["xs"][k], name)
        if problem:
            return problem, caught
    return None, caught


def diagnose_adding_model(model_cls: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose an ``nn.Module`` class ``model_cls(input_size, hidden_size, num_layers)`` for the adding problem.

    Its instances must hold ``rnn`` (an ``nn.RNN``, time-major) and ``fc`` (``nn.Linear(H, 1)``),
    and ``forward(x (T, N, 2)) -> (N,)`` must be ``fc(output[-1]).squeeze(-1)``, computed here
    from the model's own weights (in the model's dtype).
    """
    p = plan("adding_model", seed=seed, extended=extended)
    diagnosis, caught = judge(p, collect(p.request, model_cls))
    _note_warnings(getattr(model_cls, "__name__", "the model class"), caught)
    return diagnosis


def check_adding_model(model_cls: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``model_cls`` builds a correct regressor."""
    _raise(diagnose_adding_model(model_cls, seed=seed, extended=extended))


def _reference_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    max_norm: float,
    mistake: str | None = None,
) -> float:
    if mistake != "no_zero_grad":
        optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y, reduction="sum" if mistake == "sum_loss" else "mean")
    loss.backward()
    if mistake == "zero_grad_after_backward":
        optimizer.zero_grad()
    if mistake != "no_clipping":
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return float(loss.item())


TRAIN_STEP_MISTAKES: dict[str, str] = {
    "no_zero_grad": "optimizer.zero_grad() is never called, so each step adds its gradients to the previous "
    "steps' (PyTorch accumulates .grad)",
    "no_clipping": "the gradient is not clipped before optimizer.step() (or is clipped after it, which is too "
    "late): call nn.utils.clip_grad_norm_(model.parameters(), max_norm) between backward() and step()",
    "sum_loss": "the loss is the sum of squared errors instead of the mean (use nn.functional.mse_loss with its "
    "default reduction='mean')",
    "zero_grad_after_backward": "optimizer.zero_grad() is called after loss.backward(), which wipes the gradients "
    "before the step (call it before the forward pass)",
}


def _params_vector(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def _train_step_model(state: Mapping[str, Array], lr: float) -> tuple[nn.Module, torch.optim.Optimizer]:
    from ..training.models import TorchRNNRegressor

    model = TorchRNNRegressor(2, 6, 2, dtype=torch.float64)
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in state.items()})
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def _train_step_plan(*, seed: int, extended: bool = False) -> tuple[dict[str, Any], Any]:
    from ..training.models import TorchRNNRegressor

    steps = 4 if extended else 3
    batches = [tuple(t.numpy() for t in _adding_batch(5, 4, seed + 200 + s, np.float64)) for s in range(steps)]
    torch.manual_seed(seed)
    model = TorchRNNRegressor(2, 6, 2, dtype=torch.float64)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    # max_norm far below the gradient norms of these batches: clipping always acts
    return {"state": state, "batches": batches, "max_norm": 0.05, "lr": 0.5}, None


def _train_step_collect(request: dict[str, Any], fn: Any) -> dict[str, Any]:
    if not callable(fn):
        return {"problem": f"`train_step` should be a function, got {type(fn).__name__}"}
    model, opt = _train_step_model(request["state"], request["lr"])
    losses: list[Any] = []
    params: list[Array] = []
    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for x, y in request["batches"]:
                loss = fn(model, opt, torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y)), request["max_norm"])
                if isinstance(loss, torch.Tensor):
                    losses.append({"tensor": True})
                elif isinstance(loss, bool) or not isinstance(loss, (float, int, np.floating)):
                    losses.append({"type": type(loss).__name__})
                else:
                    losses.append(float(loss))
                params.append(_params_vector(model))
        except NotImplementedError:
            out["problem"] = f"`train_step` {NOT_IMPLEMENTED}: it raises NotImplementedError"
        except Exception as err:  # noqa: BLE001
            line = _user_frame(err)
            out["problem"] = f"`train_step` raised {type(err).__name__}: {err}" + (f"\n  at: {line}" if line else "")
    out.update(losses=losses, params=params, warnings=_caught(caught))
    return out


def _train_step_judge(plan_: Plan, result: Any) -> tuple[str | None, list[str]]:
    if not isinstance(result, dict):
        return "the grader could not read the result of the probes (malformed data)", []
    caught = [_text(w) for w in (result.get("warnings") or [])][:5]
    if "problem" in result:
        return _text(result["problem"]), caught
    req = plan_.request
    steps, max_norm = len(req["batches"]), req["max_norm"]
    losses, params = result.get("losses"), result.get("params")
    if not isinstance(losses, list) or not isinstance(params, list) or len(losses) != steps or len(params) != steps:
        return "the grader could not read the result of the probes (malformed data)", caught
    for loss in losses:
        if isinstance(loss, dict) and loss.get("tensor"):
            return (
                "`train_step` returns a tensor; return the loss as a Python float with loss.item() (a tensor "
                "would keep the whole autograd graph alive)"
            ), caught
        if isinstance(loss, dict):
            return f"`train_step` should return the loss as a float, got {_text(loss.get('type'), '?')}", caught
        if not isinstance(loss, (int, float)):
            return "the grader could not read the result of the probes (malformed data)", caught
    if not all(isinstance(p, np.ndarray) and p.dtype.kind == "f" for p in params):
        return "the grader could not read the result of the probes (malformed data)", caught

    def trajectory(mistake: str | None) -> tuple[list[float], list[np.ndarray]]:
        model, opt = _train_step_model(req["state"], req["lr"])
        ls, ps = [], []
        for x, y in req["batches"]:
            ls.append(_reference_train_step(model, opt, torch.from_numpy(x), torch.from_numpy(y), max_norm, mistake))
            ps.append(_params_vector(model))
        return ls, ps

    ref_losses, ref_params = trajectory(None)
    variants = {m: trajectory(m) for m in TRAIN_STEP_MISTAKES}

    def same_params(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=1e-12))

    def matches(trace: tuple[list[float], list[np.ndarray]], upto: int) -> bool:
        ls, ps = trace
        return all(
            math.isclose(float(losses[i]), ls[i], rel_tol=1e-9, abs_tol=1e-12) and same_params(params[i], ps[i])
            for i in range(upto)
        )

    initial = _params_vector(_train_step_model(req["state"], req["lr"])[0])
    for s in range(steps):
        loss_ok = math.isclose(float(losses[s]), ref_losses[s], rel_tol=1e-9, abs_tol=1e-12)
        params_ok = same_params(params[s], ref_params[s])
        if loss_ok and params_ok:
            continue
        found = [m for m, trace in variants.items() if matches(trace, s + 1)]
        where = f"on step {s + 1} of {steps} consecutive calls"
        if found:
            return (
                f"`train_step` is wrong {where}: it behaves as if "
                + "; or ".join(TRAIN_STEP_MISTAKES[m] for m in found)
                + "."
            ), caught
        if not loss_ok:
            return (
                f"`train_step` returns the loss {float(losses[s]):.6f} {where}; expected {ref_losses[s]:.6f}, the "
                "mean squared error of model(x) against y before the update"
            ), caught
        if same_params(params[s], params[s - 1] if s else initial):
            return (
                f"`train_step` does not change the parameters {where}: call loss.backward() and optimizer.step()"
            ), caught
        same_shape = params[s].shape == ref_params[s].shape
        gap = float(np.max(np.abs(params[s] - ref_params[s]))) if same_shape else float("nan")
        return (
            f"`train_step` updates the parameters differently from zero_grad -> mse_loss -> backward -> "
            f"clip_grad_norm_(max_norm) -> step {where} (max |yours - expected| = {gap:.1e})"
        ), caught
    return None, caught


def diagnose_train_step(fn: Any, *, seed: int = 0, extended: bool = False) -> str | None:
    """Diagnose ``train_step(model, optimizer, x (T, N, 2), y (N,), max_norm) -> float``.

    One step: zero the gradients, mean squared error of ``model(x)`` against ``y``,
    backward, clip the global gradient norm to ``max_norm``, optimizer step; returns the
    loss (a Python float, before the update). Checked on rnnlib's ``TorchRNNRegressor``
    in float64 with SGD, over ``3`` consecutive steps, against the same steps done here.
    Warnings the function raises are caught (and shown), not failures.
    """
    p = plan("train_step", seed=seed, extended=extended)
    diagnosis, caught = judge(p, collect(p.request, fn))
    _note_warnings("train_step", caught)
    return diagnosis


def check_train_step(fn: Any, *, seed: int = 0, extended: bool = False) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``fn`` is a correct ``train_step``."""
    _raise(diagnose_train_step(fn, seed=seed, extended=extended))


def heldout_adding_mse(model: nn.Module, *, seq_len: int, num: int = 2000, seed: int = 2024) -> float:
    """Mean squared error of a copy of ``model`` (eval mode, no gradients) on fresh adding-problem data."""
    dtype = next(model.parameters()).dtype
    x, y = _adding_batch(seq_len, num, seed, np.float64 if dtype == torch.float64 else np.float32)
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        return float(nn.functional.mse_loss(probe(x), y))


def _trained_plan(
    *, seed: int = 2024, extended: bool = False, seq_len: int = 20, threshold: float = 0.05, num: int = 2000
) -> tuple[dict[str, Any], Any]:
    x, y = _adding_batch(seq_len, num, seed, np.float64)
    x_small = _adding_batch(seq_len, 8, seed + 1, np.float64)[0].numpy()
    # The held-out sequences stay here: the error is measured on a model rebuilt from the learner's
    # weights, so the kernel needs none of them (and the adding problem's targets follow from its
    # inputs, so held-out inputs in the kernel could be trained on).
    return {"x_small": x_small}, {
        "x": x.numpy(),
        "y": y.numpy(),
        "seq_len": seq_len,
        "threshold": threshold,
        "num": num,
    }


def _trained_collect(request: dict[str, Any], model: Any, reported_val_mse: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"info": _structure_of(model)}
    if isinstance(reported_val_mse, torch.Tensor) and reported_val_mse.numel() == 1:
        reported_val_mse = reported_val_mse.item()
    if isinstance(reported_val_mse, bool) or not isinstance(reported_val_mse, (float, int, np.floating)):
        out["reported"] = {"type": type(reported_val_mse).__name__, "repr": repr(reported_val_mse)[:80]}
    else:
        out["reported"] = float(reported_val_mse)
    if isinstance(model, nn.Module):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["state"] = _state_of(model)
            probe = copy.deepcopy(model).eval()
            out["pred_small"] = _predict(probe, request["x_small"], "trained_model")
        out["warnings"] = _caught(caught)
    return out


def _trained_judge(plan_: Plan, result: Any) -> tuple[str | None, list[str]]:
    if not isinstance(result, dict) or not isinstance(result.get("info"), dict):
        return "the grader could not read the result of the probes (malformed data)", []
    caught = [_text(w) for w in (result.get("warnings") or [])][:5]
    info, private = result["info"], plan_.private
    problem = _structure_problem(info, "trained_model", min_layers=2)
    if problem:
        return problem, caught
    reported = result.get("reported")
    if not isinstance(reported, (int, float)) or isinstance(reported, bool) or not math.isfinite(float(reported)):
        what = reported if isinstance(reported, dict) else {}
        return (
            f"final_val_mse should be your validation mean squared error as a float, got "
            f"{_text(what.get('type'), type(reported).__name__)} ({_text(what.get('repr'), repr(reported))})"
        ), caught
    problem = _forward_problem(
        result.get("pred_small"), info, result.get("state"), plan_.request["x_small"], "trained_model"
    )
    if problem:
        return problem, caught
    # The error is measured on a model rebuilt here from the learner's weights: the kernel's own
    # predictions are never used for it.
    rnn, fc = _rebuild(info, result.get("state"))
    dtype = next(rnn.parameters()).dtype
    x = torch.from_numpy(private["x"]).to(dtype)
    y = torch.from_numpy(private["y"]).to(dtype)
    with torch.no_grad():
        out, _ = rnn(x)
        mse = float(nn.functional.mse_loss(fc(out[-1]).squeeze(-1), y))
    num, seq_len, threshold = private["num"], private["seq_len"], private["threshold"]
    if not math.isfinite(mse):
        return (
            "trained_model predicts NaN or inf on held-out data: the training diverged (lower the learning rate?)",
            caught,
        )
    if mse >= threshold:
        return (
            f"On {num} fresh held-out sequences of length {seq_len}, trained_model's mean squared error is "
            f"{mse:.4f}, not below the threshold {threshold} (you reported final_val_mse = "
            f"{float(reported):.4f}). For scale: always answering 1.0 scores 1/6 = 0.1667. Train longer "
            "or with a larger learning rate, keep gradient clipping, and evaluate on data the model has not "
            "trained on."
        ), caught
    return None, caught


def diagnose_trained_adding_model(
    model: Any, reported_val_mse: Any, *, seq_len: int = 20, threshold: float = 0.05, num: int = 2000, seed: int = 2024
) -> str | None:
    """Diagnose a trained adding-problem model: a stacked ``nn.RNN`` whose held-out MSE is below ``threshold``.

    The MSE is recomputed here on ``num`` fresh sequences of length ``seq_len`` drawn with
    ``seed`` (data the model has never seen), by an ``nn.RNN`` and ``nn.Linear`` rebuilt from
    the model's weights; ``reported_val_mse`` (the learner's own number) only appears in the
    message.
    """
    p = plan("trained_adding_model", seed=seed, seq_len=seq_len, threshold=threshold, num=num)
    diagnosis, caught = judge(p, collect(p.request, model, reported_val_mse))
    _note_warnings("trained_model", caught)
    return diagnosis


def check_trained_adding_model(
    model: Any, reported_val_mse: Any, *, seq_len: int = 20, threshold: float = 0.05, num: int = 2000, seed: int = 2024
) -> None:
    """Raise ``AssertionError`` with a diagnosis unless ``model`` beats ``threshold`` on held-out data."""
    _raise(
        diagnose_trained_adding_model(model, reported_val_mse, seq_len=seq_len, threshold=threshold, num=num, seed=seed)
    )


register(
    globals(),
    custom={
        "adding_model": (_adding_model_plan, _adding_model_collect, _adding_model_judge),
        "train_step": (_train_step_plan, _train_step_collect, _train_step_judge),
        "trained_adding_model": (_trained_plan, _trained_collect, _trained_judge),
    },
)
