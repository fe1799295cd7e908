"""The diagnosis engine of the coursework checks: what every assignment's checks share.

The assignment modules (:mod:`~rnnlib.coursework.a1` to :mod:`~rnnlib.coursework.a4`) hold
each assignment's known-wrong variants, probes and ``diagnose_*``/``check_*`` functions;
:mod:`rnnlib.coursework.checks` re-exports them for the notebooks. This module holds the
rest:

* the classic mistakes (:class:`Mistake`, :data:`MISTAKES`, filled by the assignment
  modules with :func:`add_mistakes`);
* library call-through detection (:data:`FORWARD_IMPLEMENTATIONS`,
  :data:`BACKWARD_IMPLEMENTATIONS`, ``_off_limits``: recording stubs while the learner's
  function runs) and the NumPy-only rule read from the source (:func:`library_uses`);
* running a learner's function and describing what came back (:class:`Probe`,
  :class:`Outcome`, :class:`Task`, the unpackers ``_unpack_array``/``_unpack_tuple``/
  ``_unpack_dict``, ``_run``, ``_call``), and the diagnosis itself (``_diagnose``,
  ``_explain_wrong``, ``_raise``);
* the probe helpers every assignment uses (``_rng``, ``_layer_params``, ``_stack_params``,
  ``_layer_weights``, ``_torch_rnn``, ``_torch_forward``, ``_safe``);
* the grader's trust boundary: :func:`plan` (trusted), :func:`collect` (the submission's
  kernel), :func:`judge` (trusted), :class:`Plan`, :func:`checks_available`, and the hidden
  tests' referee (``check_x(..., refereed=True)``);
* the registry of checks (:func:`register`), which replaces a lookup in one module's globals.

How a diagnosis is made:

1. The correct answer for each probe is computed from ``torch`` in float64 (``nn.RNNCell``,
   ``nn.RNN``, autograd), never from anything the learner can redefine.
2. Each *known-wrong variant* of the function (a classic mistake) is computed on the same
   probe; :class:`Probe` drops the variants that equal the correct answer there.
3. :func:`_diagnose` compares the learner's output with the correct answer and with every
   variant. A match with a variant names the mistake (``MISTAKES[key].what`` and ``.fix``);
   otherwise the message says which part is wrong and by how much. Generic problems are
   reported first: not implemented yet, ``None`` returned, wrong type, wrong shape, NaN, an
   input modified in place, an exception, a library function called (off-limits).

Adding an assignment (say A5, ``rnnlib/coursework/a5.py``; :mod:`~rnnlib.coursework.a1` is
the model to copy, :mod:`~rnnlib.coursework.a4` for checks that are not "a function on
probe arrays"):

1. The module's docstring says which notebook it serves. It imports what it uses from here
   (``from .engine import Array, Mistake, Probe, Task, add_mistakes, register, _diagnose,
   _raise, _rng, _safe, _unpack_tuple, ...``); it may import another assignment's variants
   (a2 uses a1's ``_layer_variant``).
2. ``add_mistakes({"key": Mistake(what, fix), ...})`` declares its classic mistakes. ``what``
   completes "your output matches what you get when ..."; keys are shared by every
   assignment, so :func:`add_mistakes` refuses a key that another assignment gave a
   different :class:`Mistake` (reuse a key only for the same mistake). A variant key may
   carry a ``#suffix`` (``"h_n_top_only#3d"``) for a second form of the same mistake.
3. For each learner function:

   * the known-wrong variants, ``_x_variant(..., mistake: str | None = None)`` (``None``:
     the correct computation), and a tuple ``X_MISTAKES`` of the keys it knows;
   * a probe builder returning :class:`Probe` (``label`` unique among the probes of one
     call; ``args`` exactly what the learner's function gets; ``expected`` from torch in
     float64, as named parts; ``variants``, each wrapped in ``_safe``; sizes all different
     so that a shape names the axis);
   * a module-level :class:`Task` (the function's name in the notebook, the unpacker, the
     symbolic shapes for messages, ``forbid``: ``(module, qualname)`` pairs that are
     off-limits while it runs, e.g. ``FORWARD_IMPLEMENTATIONS + (("torch.nn.modules.rnn",
     "LSTMCell.forward"), ("rnnlib.coursework.a5", "_lstm_step_variant"))``: include the
     module's own variants, so that a learner cannot call them);
   * ``diagnose_x(fn, *, seed: int = 0, extended: bool = False) -> str | None``, which
     builds the probes (more of them when ``extended``, the hidden tests) and returns
     ``_diagnose(TASK, fn, probes, arg_names)``;
   * ``check_x(fn, *, seed: int = 0, extended: bool = False) -> None``:
     ``_raise(diagnose_x(fn, seed=seed, extended=extended))``.

   The probes must not depend on anything but ``seed``/``extended``/keyword arguments:
   :func:`plan` (trusted side) and :func:`judge` replay ``diagnose_x`` with a placeholder
   instead of the learner's function.
4. ``__all__`` lists every ``check_x`` and its ``diagnose_x`` twin.
5. The module's last statement is ``register(globals())``: it records each ``diagnose_x``
   (so that :func:`plan`, :func:`judge` and :func:`checks_available` know ``x``), every
   :class:`Task` of the module (by its name, for :func:`collect`), the module's file (left
   out of the "at: <line>" of error messages), and replaces each ``check_x`` by a wrapper
   that takes ``refereed=True`` (the hidden tests: plan and judge in the referee process).
   A check that does not fit the probe model passes its three sides instead:
   ``register(globals(), custom={"x": (plan_x, collect_x, judge_x)})`` (see a4.py), and its
   ``diagnose_x`` calls ``judge(p, collect(p.request, obj))`` on ``p = plan("x", ...)``.
6. In :mod:`rnnlib.coursework.checks`: add ``"a5"`` to ``ASSIGNMENTS`` (the modules run again
   when the notebooks' test cells reload the checks) and one line ``from .a5 import check_x,
   diagnose_x, ...`` (the notebooks call ``_checks.check_x``), and add the names to its
   ``__all__``.
7. Tests: a fixture per mistake in ``tests/fixtures/mistakes/`` (``test_every_known_mistake_has_a_fixture``
   compares the keys of :data:`MISTAKES` with them) and the notebook in ``tests/test_checks.py``'s tables.
"""

from __future__ import annotations

import copy
import importlib
import math
import threading
import traceback
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

Array = np.ndarray

# Two float64 implementations of the same formula agree to ~1e-15; 1e-9 leaves room for
# any summation order while rejecting float32 arithmetic (~1e-7) and finite differences.
RTOL, ATOL = 1e-9, 1e-10
NOT_IMPLEMENTED = "is not implemented yet"


# --------------------------------------------------------------------------------------
# The classic mistakes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A classic mistake: ``what`` completes "your output matches what you get when ..."."""

    what: str
    fix: str


MISTAKES: dict[str, Mistake] = {}
"""Every classic mistake the checkers recognise, by key (each assignment module adds its own with
:func:`add_mistakes`)."""


def add_mistakes(mistakes: Mapping[str, Mistake]) -> None:
    """Add an assignment's classic mistakes to :data:`MISTAKES` (called by each assignment module).

    A key already taken by a different :class:`Mistake` is refused: the keys are shared by every
    assignment, and a diagnosis names the mistake by its key.
    """
    for key, mistake in mistakes.items():
        if MISTAKES.get(key, mistake) != mistake:
            raise ValueError(f"mistake {key!r} is already defined differently: {MISTAKES[key]}")
        MISTAKES[key] = mistake


def _mistake(key: str) -> Mistake:
    return MISTAKES[key.split("#", 1)[0]]


# --------------------------------------------------------------------------------------
# Library call-through detection
# --------------------------------------------------------------------------------------

FORWARD_IMPLEMENTATIONS: tuple[tuple[str, str], ...] = (
    ("rnnlib.numpy_rnn", "rnn_cell_forward"),
    ("rnnlib.numpy_rnn", "layer_forward"),
    ("rnnlib.numpy_rnn", "NumpyRNN.forward"),
    ("rnnlib.torch_rnn", "torch_layer_forward"),
    ("rnnlib.torch_rnn", "TorchRNN.forward"),
    ("rnnlib.explain.dataflow", "run_schedule"),
    ("rnnlib.explain.gradient_flow", "stack_forward"),
    ("rnnlib.coursework.a1", "_step_variant"),
    ("rnnlib.coursework.a1", "_layer_variant"),
    ("rnnlib.coursework.a2", "_stack_variant"),
    ("rnnlib.coursework.a2", "_bidirectional_variant"),
    ("torch.nn.modules.rnn", "RNN.forward"),
    ("torch.nn.modules.rnn", "RNNCell.forward"),
)
"""The forward implementations a learner's A1/A2 function must not call."""

BACKWARD_IMPLEMENTATIONS: tuple[tuple[str, str], ...] = (
    ("rnnlib.numpy_rnn", "rnn_cell_backward"),
    ("rnnlib.numpy_rnn", "layer_backward"),
    ("rnnlib.numpy_rnn", "NumpyRNN.backward"),
    ("rnnlib.explain.gradient_flow", "stack_backward"),
    ("rnnlib.training.models", "NumpyRNNLM.backward"),
    ("rnnlib.training.tbptt", "truncated_bptt_gradients"),
    ("rnnlib.gradcheck", "numerical_gradient"),
    ("rnnlib.gradcheck", "numerical_gradient_array"),
    ("rnnlib.gradcheck", "check_rnn_gradients"),
    ("rnnlib.coursework.a3", "_step_backward_variant"),
    ("rnnlib.coursework.a3", "_layer_backward_variant"),
    ("rnnlib.coursework.a3", "_stack_backward_variant"),
    ("torch.autograd", "backward"),
    ("torch.autograd", "grad"),
)
"""The backward implementations (and gradient machinery) a learner's A3 function must not call."""

_OFF_LIMITS_CALLS: list[str] = []


def _record_off_limits(name: str) -> None:
    """Called by the stubs installed by :func:`_off_limits` (looked up through ``sys.modules``)."""
    _OFF_LIMITS_CALLS.append(name)


def _stub(name: str) -> types.FunctionType:
    # The stub's code may run with the *original* function's globals (see _off_limits), so it
    # reaches this module through __import__ (a builtin), which returns the current rnnlib.coursework.engine.
    source = (
        "def _off_limits_stub(*args, **kwargs):\n"
        f"    __import__('rnnlib.coursework.engine', fromlist=['_record_off_limits'])._record_off_limits({name!r})\n"
        f"    raise RuntimeError({name + ' is off-limits inside the function being graded'!r})\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - a fixed template
    return namespace["_off_limits_stub"]


@contextmanager
def _off_limits(entries: tuple[tuple[str, str], ...]) -> Iterator[list[str]]:
    """Replace each listed function by a recording stub, for the duration of the block.

    A plain function gets the stub's ``__code__``: that also catches names the learner
    imported earlier (``from rnnlib import rnn_cell_backward``), which are the same function
    object. A function with a closure (a method using ``super()``) cannot take foreign code;
    it is replaced on its class instead. Yields the list of names called, in call order.
    """
    global _OFF_LIMITS_CALLS
    calls: list[str] = []
    _OFF_LIMITS_CALLS = calls
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    replaced: list[tuple[Any, str, Any]] = []
    try:
        for module_name, qualname in entries:
            try:
                owner: Any = importlib.import_module(module_name)
                *path, attr = qualname.split(".")
                for part in path:
                    owner = getattr(owner, part)
                obj = getattr(owner, attr)
            except (ImportError, AttributeError):
                continue
            if not isinstance(obj, types.FunctionType):
                continue
            stub = _stub(f"{module_name}.{qualname}")
            if obj.__closure__:
                if isinstance(owner, type) and attr in owner.__dict__:
                    replaced.append((owner, attr, owner.__dict__[attr]))
                    setattr(owner, attr, stub)
                continue
            swapped.append((obj, obj.__code__))
            obj.__code__ = stub.__code__
        yield calls
    finally:
        for func, code in reversed(swapped):
            func.__code__ = code
        for owner, attr, original in reversed(replaced):
            setattr(owner, attr, original)


# --------------------------------------------------------------------------------------
# Running a learner's function and describing what came back
# --------------------------------------------------------------------------------------


@dataclass
class Probe:
    """One probe input with the correct answer and each known-wrong variant's answer.

    Attributes:
        label: the sizes, e.g. ``"N=3, D=4, H=5"``.
        args: positional arguments for the learner's function.
        expected: the correct result, as named parts (``{"output": ..., "h_n": ...}``).
        variants: ``{mistake key: named parts}``; variants equal to ``expected`` are dropped.
        note: why this probe exists (printed with a diagnosis made on it).
        square: ``D == H`` (a probe on which some shape errors cannot happen).
    """

    label: str
    args: tuple
    expected: dict[str, Array]
    variants: dict[str, dict[str, Array]] = field(default_factory=dict)
    note: str = ""
    square: bool = False

    def __post_init__(self) -> None:
        self.variants = {k: v for k, v in self.variants.items() if v is not None and not _same(v, self.expected)}


@dataclass
class Outcome:
    """What the learner's function did on one probe: ``parts`` (unpacked result) or ``problem``."""

    parts: dict[str, Array] | None = None
    problem: str | None = None
    kind: str = "ok"  # ok | not_implemented | off_limits | exception | unpack | mutated | not_callable
    warnings: list[str] = field(default_factory=list)


@dataclass
class Task:
    """How to call and read one learner function.

    Attributes:
        name: the function's name in the notebook.
        unpack: ``result -> named parts`` (raises ``_Unpack`` with a message when the
            result has the wrong form).
        shapes: ``{part: symbolic shape}`` such as ``"(T, N, H)"``, for messages.
        forbid: library functions the learner's function must not call.
    """

    name: str
    unpack: Callable[[Any], dict[str, Array]]
    shapes: dict[str, str]
    forbid: tuple[tuple[str, str], ...] = ()
    hint: str = ""


class _Unpack(Exception):
    """The learner's result does not have the documented form."""


def _to_array(value: Any, what: str) -> Array:
    if value is None:
        raise _Unpack(f"{what} is None: did you forget a `return` statement?")
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic objects
        raise _Unpack(f"{what} cannot be read as an array ({type(value).__name__}): {err}") from None
    if arr.dtype.kind not in "fiub":
        raise _Unpack(f"{what} should be a NumPy array of numbers, got {type(value).__name__} (dtype {arr.dtype})")
    return arr


def _unpack_array(name: str) -> Callable[[Any], dict[str, Array]]:
    def unpack(result: Any) -> dict[str, Array]:
        if isinstance(result, tuple):
            raise _Unpack(f"expected one array, got a tuple of {len(result)} elements")
        return {name: _to_array(result, "the result")}

    return unpack


def _unpack_tuple(names: tuple[str, ...]) -> Callable[[Any], dict[str, Array]]:
    def unpack(result: Any) -> dict[str, Array]:
        form = "(" + ", ".join(names) + ")"
        if result is None:
            raise _Unpack(f"it returned None: did you forget `return {', '.join(names)}`?")
        if not isinstance(result, (tuple, list)):
            raise _Unpack(f"expected a tuple {form}, got a single {type(result).__name__}")
        if len(result) != len(names):
            raise _Unpack(f"expected a tuple {form} of {len(names)} elements, got {len(result)} elements")
        return {n: _to_array(v, n) for n, v in zip(names, result, strict=True)}

    return unpack


def _unpack_dict(keys: tuple[str, ...]) -> Callable[[Any], dict[str, Array]]:
    def unpack(result: Any) -> dict[str, Array]:
        if result is None:
            raise _Unpack("it returned None: did you forget to `return` the dict of gradients?")
        if not isinstance(result, Mapping):
            raise _Unpack(f"expected a dict with keys {list(keys)}, got a {type(result).__name__}")
        missing = [k for k in keys if k not in result]
        if missing:
            raise _Unpack(
                f"the returned dict has no key(s) {missing} (expected keys {list(keys)}, "
                f"got {sorted(map(str, result))})"
            )
        return {k: _to_array(result[k], f"result[{k!r}]") for k in keys}

    return unpack


def _user_frame(err: BaseException) -> str:
    """The last source line of the traceback outside numpy/torch/the checks' modules, for messages."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        path = frame.filename.replace("\\", "/")
        if "site-packages" in path or "/numpy/" in path or "/torch/" in path or path.endswith(_checker_files()):
            continue
        if frame.line:
            return frame.line.strip()
    return ""


def _not_implemented_message(name: str, err: BaseException, own_name: str = "") -> str:
    frames = traceback.extract_tb(err.__traceback__)
    raiser = frames[-1].name if frames else name
    if raiser not in (name, own_name, "<module>", "<lambda>") and raiser.isidentifier():
        return (
            f"`{name}` {NOT_IMPLEMENTED}: it calls `{raiser}`, which raises NotImplementedError. "
            f"Implement `{raiser}` first (and run its cell again)."
        )
    return (
        f"`{name}` {NOT_IMPLEMENTED}: it raises NotImplementedError. Replace the line "
        "`raise NotImplementedError()` with your code, and run the cell again."
    )


def _exception_message(task: Task, probe: Probe, err: BaseException) -> str:
    line = _user_frame(err)
    where = f"\n  at: {line}" if line else ""
    text = str(err)
    if "matmul" in text and "is different from" in text:  # numpy's gufunc wording, shortened
        text = "matmul: the inner sizes of a matrix product do not match (" + text.rsplit("(", 1)[-1]
    msg = f"`{task.name}` raised {type(err).__name__} on the probe with {probe.label}: {text}{where}"
    hints = []
    if isinstance(err, ValueError) and ("matmul" in text or "not aligned" in text or "mismatch" in text):
        hints.append(
            "A shape error in a matrix product usually means a weight is used untransposed. PyTorch "
            "stores W_ih as (H, D) and W_hh as (H, H), so a batch of rows x (N, D) is multiplied as "
            "x @ W_ih.T and h (N, H) as h @ W_hh.T."
        )
        if task.name in ("stacked_rnn_forward", "stacked_rnn_forward_batch_first", "bidirectional_rnn_forward"):
            hints.append(
                "In a stack, layer l >= 1 reads the layer below (width H, or 2H when bidirectional), not x (width D)."
            )
    elif isinstance(err, ValueError) and "broadcast" in text:
        hints.append("Arrays of incompatible shapes were combined: print the shape of each term.")
    if isinstance(err, (TypeError, AttributeError)) and "NoneType" in text:
        hints.append("An argument was None: h0=None means a zero initial state, as in nn.RNN (np.zeros((L, N, H))).")
    if isinstance(err, KeyError):
        hints.append(
            "The parameter dict uses PyTorch's names with layers counted from 0: weight_ih_l0, "
            "weight_hh_l0, bias_ih_l0, bias_hh_l0, ..., and *_reverse for the backward direction."
        )
    if isinstance(err, IndexError):
        hints.append("Check the index ranges: layers 0..L-1, steps 0..T-1, and h0/h_n have L*num_directions rows.")
    return msg + "".join(f"\n  Hint: {h}" for h in hints)


def _copy_args(args: tuple) -> tuple:
    return copy.deepcopy(args)


def _same_inputs(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, Mapping):
        return all(_same_inputs(a[k], b.get(k)) for k in a if isinstance(a[k], (np.ndarray, Mapping, list)))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_inputs(x, y) for x, y in zip(a, b, strict=True))
    return True


def _mutated_arg(args: tuple, after: tuple, arg_names: tuple[str, ...]) -> str | None:
    for name, before, now in zip(arg_names, args, after, strict=True):
        if not _same_inputs(before, now):
            return name
    return None


def _run(task: Task, fn: Callable, probe: Probe, arg_names: tuple[str, ...]) -> Outcome:
    session = _current_session()
    if session is not None:  # planning or judging across the trust boundary: fn is not called here
        return session.outcome(probe)
    outcome = _call(task, fn, probe, arg_names)
    return outcome


def _caught(caught: list[warnings.WarningMessage]) -> list[str]:
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {_first_line(str(w.message))}"
        if text not in seen:
            seen.append(text)
    return seen[:5]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


LIBRARY_NAMES = frozenset({"torch", "rnnlib", "nn", "_VF", "autograd"})
"""Names whose use inside A1-A3's graded code breaks the rule "NumPy only inside your functions"."""


def library_uses(source: str) -> list[str]:
    """The references to torch or the course library in ``source`` (by its syntax tree; comments and
    strings do not count). Decided from the code, not by watching it run, so that a call the
    stubs cannot catch (``torch.rnn_tanh_cell``, a builtin) is caught too."""
    import ast
    import textwrap

    text = "\n".join(l for l in textwrap.dedent(source).splitlines() if not l.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in LIBRARY_NAMES:
            found.append(node.id)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in ("torch", "rnnlib")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("torch", "rnnlib"):
            found.append(f"from {node.module} import ...")
    return list(dict.fromkeys(found))


def library_problem(name: str, uses: list[str]) -> str:
    return (
        f"`{name}` uses {', '.join(f'`{u}`' for u in uses)} inside the graded code, which is off-limits in this "
        "assignment: inside your functions, use NumPy only (the point is to write this computation yourself). "
        "Use torch or rnnlib in a separate cell to compare results."
    )


def _source_problem(task: Task, fn: Callable) -> str | None:
    """The NumPy-only rule, read from the function's own source where Python can find it."""
    import inspect

    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return None
    uses = library_uses(source)
    return library_problem(task.name, uses) if uses else None


def _call(task: Task, fn: Callable, probe: Probe, arg_names: tuple[str, ...]) -> Outcome:
    """Call the learner's function on one probe and describe what came back (warnings caught and kept)."""
    problem = _source_problem(task, fn)
    if problem:
        return Outcome(problem=problem, kind="off_limits")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = _call_inner(task, fn, probe, arg_names)
    outcome.warnings = _caught(caught)
    return outcome


def _call_inner(task: Task, fn: Callable, probe: Probe, arg_names: tuple[str, ...]) -> Outcome:
    call_args = _copy_args(probe.args)
    try:
        with _off_limits(task.forbid) as calls:
            result = fn(*call_args)
    except NotImplementedError as err:
        return Outcome(
            problem=_not_implemented_message(task.name, err, getattr(fn, "__name__", "")), kind="not_implemented"
        )
    except Exception as err:  # noqa: BLE001 - any failure is reported
        if _OFF_LIMITS_CALLS:
            calls = _OFF_LIMITS_CALLS
        else:
            return Outcome(problem=_exception_message(task, probe, err), kind="exception")
    if calls:
        lib = calls[0]
        return Outcome(
            problem=(
                f"`{task.name}` calls `{lib}`, which is off-limits in this assignment: the point is to write "
                f"this computation yourself (rnnlib and PyTorch already have it). You may use the library in a "
                f"separate cell to compare results, but not inside `{task.name}`."
            ),
            kind="off_limits",
        )
    mutated = _mutated_arg(probe.args, call_args, arg_names)
    if mutated is not None:
        return Outcome(
            problem=(
                f"`{task.name}` modifies its input `{mutated}` in place (e.g. `h += ...` or `dh *= ...` on an array "
                f"it was given, or on a view of one). The caller still needs that array: work on a copy "
                f"(`h = h + ...`, `arr.copy()`)."
            ),
            kind="mutated",
        )
    try:
        parts = task.unpack(result)
    except _Unpack as err:
        return Outcome(problem=f"`{task.name}` returned the wrong kind of result: {err}", kind="unpack")
    return Outcome(parts=parts)


def _close(a: Array, b: Array, rtol: float = RTOL, atol: float = ATOL) -> bool:
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and np.allclose(a, b, rtol=rtol, atol=atol)


def _same(a: dict[str, Array], b: dict[str, Array]) -> bool:
    return a.keys() == b.keys() and all(_close(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def _shape_hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if len(got) == len(expected) == 2 and got == expected[::-1]:
        return " It is the transpose of the expected shape."
    if len(got) == len(expected) and sorted(got) == sorted(expected):
        return " Same sizes in another order: an axis mix-up (transpose, or reshape where a transpose is needed)?"
    if got == expected[1:]:
        return f" The leading axis of size {expected[0]} is missing."
    if got == (1,) + expected:
        return " There is an extra leading axis of size 1."
    if got == expected + (1,):
        return " There is an extra trailing axis of size 1."
    if len(got) == len(expected) and math.prod(got) == math.prod(expected):
        return " Same number of entries, another layout: reshape where a transpose is needed?"
    return ""


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def _matching(
    parts: dict[str, Array], variants: dict[str, dict[str, Array]], names: list[str] | None = None
) -> list[str]:
    keys = []
    for key, v in variants.items():
        use = names if names is not None else list(v)
        if all(n in parts and n in v and _close(parts[n], np.asarray(v[n])) for n in use):
            keys.append(key)
    return keys


def _describe(keys: list[str]) -> list[str]:
    seen: list[str] = []
    for k in keys:
        base = k.split("#", 1)[0]
        if base not in seen:
            seen.append(base)
    return seen


def _mistake_lines(keys: list[str]) -> tuple[str, str]:
    """``(what, details)``: the clause completing "matches ...", and the indented fix line(s)."""
    bases = _describe(keys)
    if len(bases) == 1:
        m = MISTAKES[bases[0]]
        return f"what you get when {m.what}.", f"\n  Fix: {m.fix}"
    what = (
        "what you get with any of these mistakes (they give the same numbers here): "
        + "; or ".join(MISTAKES[b].what for b in bases)
        + "."
    )
    return what, "".join(f"\n  Fix ({i + 1}): {MISTAKES[b].fix}" for i, b in enumerate(bases))


def _consistent(
    keys: list[str], outcomes: list[Outcome], probes: list[Probe], skip: int, names: list[str] | None = None
) -> list[str]:
    """Drop candidate mistakes that another probe contradicts."""
    kept = []
    for key in keys:
        ok = True
        for i, (o, p) in enumerate(zip(outcomes, probes, strict=True)):
            if i == skip or o.parts is None:
                continue
            target = p.variants.get(key)
            if target is None:
                continue
            use = names if names is not None else list(target)
            if not all(n in o.parts and n in target and _close(o.parts[n], np.asarray(target[n])) for n in use):
                ok = False
                break
        if ok:
            kept.append(key)
    return kept or keys


def _probe_line(probe: Probe) -> str:
    return f"\n  Probe: {probe.label}" + (f" ({probe.note})" if probe.note else "") + "."


def _explain_wrong(task: Task, probes: list[Probe], outcomes: list[Outcome], i: int) -> str:
    """The diagnosis of a wrong result; its first line is the finding, the next ones the details."""
    probe, got = probes[i], outcomes[i].parts
    assert got is not None
    exp = probe.expected
    full = _consistent(_matching(got, probe.variants), outcomes, probes, i)
    if full:
        what, details = _mistake_lines(full)
        return f"`{task.name}` is wrong: its result matches {what}{details}{_probe_line(probe)}"
    findings: list[tuple[str, str]] = []  # (one-line finding, details)
    right: list[str] = []
    for name, e in exp.items():
        label = name if len(exp) > 1 else "the result"
        if name not in got:
            findings.append((f"{label} is missing.", ""))
            continue
        g = got[name]
        sym = task.shapes.get(name, "")
        if g.shape != e.shape:
            per = _consistent(_matching(got, probe.variants, [name]), outcomes, probes, i, [name])
            text = (
                f"{label} has shape {_fmt_shape(g.shape)}, expected {sym + ' = ' if sym else ''}"
                f"{_fmt_shape(e.shape)}.{_shape_hint(g.shape, e.shape)}"
            )
            if per:
                what, details = _mistake_lines(per)
                findings.append((f"{text} It matches {what}", details))
            else:
                findings.append((text, ""))
        elif not np.all(np.isfinite(g)):
            findings.append(
                (
                    f"{label} contains NaN or inf ({int(np.sum(~np.isfinite(g)))} entries): an overflow, "
                    "a division by zero, or an array made with np.empty that is never filled?",
                    "",
                )
            )
        elif not _close(g, e):
            per = _consistent(_matching(got, probe.variants, [name]), outcomes, probes, i, [name])
            diff = float(np.max(np.abs(g.astype(np.float64) - e)))
            if per:
                what, details = _mistake_lines(per)
                findings.append((f"{label} matches {what}", details))
            elif np.allclose(g, e, rtol=1e-4, atol=1e-6):
                findings.append(
                    (
                        f"{label} is close to the right values but not equal to float64 precision "
                        f"(max |yours - expected| = {diff:.1e}): float32 somewhere (np.float32, torch's "
                        "default dtype), or an approximation such as finite differences?",
                        f"\n  The tests compare with a relative tolerance of {RTOL:.0e}.",
                    )
                )
            else:
                idx = np.unravel_index(int(np.argmax(np.abs(g.astype(np.float64) - e))), e.shape)
                findings.append(
                    (
                        f"{label} has wrong values (max |yours - expected| = {diff:.1e}); none of the "
                        "classic mistakes the checker knows gives these numbers.",
                        f"\n  E.g. at index {tuple(int(j) for j in idx)}: yours {float(g[idx]):.6f}, "
                        f"expected {float(e[idx]):.6f}.",
                    )
                )
        else:
            right.append(name)
    first, details = findings[0]
    rest = "".join(f"\n  Also: {f}{d}" for f, d in findings[1:])
    extra = f"\n  Right: {', '.join(right)}." if right else ""
    hint = f"\n  Hint: {task.hint}" if task.hint and not any("matches" in f for f, _ in findings) else ""
    return f"`{task.name}` is wrong: {first}{details}{rest}{extra}{hint}{_probe_line(probe)}"


def _diagnose(task: Task, fn: Any, probes: list[Probe], arg_names: tuple[str, ...]) -> str | None:
    session = _current_session()
    if session is not None and session.mode == "plan":
        session.planned(task, probes, arg_names)
    if not callable(fn):
        return f"`{task.name}` should be a function, got {type(fn).__name__}: did you overwrite its name?"
    outcomes: list[Outcome] = []
    for probe in probes:
        o = _run(task, fn, probe, arg_names)
        if o.kind in ("not_implemented", "off_limits", "mutated", "not_callable"):
            return o.problem
        outcomes.append(o)
    _note_warnings(task.name, [w for o in outcomes for w in o.warnings])
    for i, (probe, o) in enumerate(zip(probes, outcomes, strict=True)):
        if o.kind == "exception":
            # Does another probe explain the error? A D == H probe first: there the usual shape
            # errors (a weight used untransposed, x fed to an upper layer) cannot happen.
            order = sorted(range(len(probes)), key=lambda j: not probes[j].square)
            for j in order:
                oj = outcomes[j]
                if oj.parts is None or _same(oj.parts, probes[j].expected):
                    continue
                keys = _consistent(_matching(oj.parts, probes[j].variants), outcomes, probes, j)
                if keys:
                    what, details = _mistake_lines(keys)
                    first_error = (o.problem or "").split("\n", 1)[0]
                    where = "where D == H" if probes[j].square else "on another probe"
                    elsewhere = "Where D != H" if probes[j].square else "On the other probe"
                    return (
                        f"`{task.name}` is wrong: {where} its result matches {what}{details}"
                        f"\n  {elsewhere} it fails instead: {first_error}{_probe_line(probes[j])}"
                    )
            return o.problem
        if o.kind == "unpack":
            return o.problem
        assert o.parts is not None
        if not _same(o.parts, probe.expected):
            return _explain_wrong(task, probes, outcomes, i)
    return None


def _raise(diagnosis: str | None) -> None:
    if diagnosis is not None:
        raise AssertionError(diagnosis)


# --------------------------------------------------------------------------------------
# Probe data
# --------------------------------------------------------------------------------------


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, *salt])


def _layer_params(rng: np.random.Generator, D: int, H: int) -> tuple[Array, Array, Array, Array]:
    # Weights a bit larger than PyTorch's init, so that tanh is clearly nonlinear (1 - h**2 far from 1).
    return (
        rng.uniform(-0.7, 0.7, (H, D)),
        rng.uniform(-0.7, 0.7, (H, H)),
        rng.uniform(-0.5, 0.5, H),
        rng.uniform(-0.5, 0.5, H),
    )


def _stack_params(rng: np.random.Generator, D: int, H: int, L: int, bidirectional: bool = False) -> dict[str, Array]:
    dirs = 2 if bidirectional else 1
    params: dict[str, Array] = {}
    for layer in range(L):
        d_in = D if layer == 0 else H * dirs
        for d in range(dirs):
            sfx = "_reverse" if d else ""
            W_ih, W_hh, b_ih, b_hh = _layer_params(rng, d_in, H)
            params.update(
                {
                    f"weight_ih_l{layer}{sfx}": W_ih,
                    f"weight_hh_l{layer}{sfx}": W_hh,
                    f"bias_ih_l{layer}{sfx}": b_ih,
                    f"bias_hh_l{layer}{sfx}": b_hh,
                }
            )
    return params


def _torch_rnn(params: Mapping[str, Array], D: int, H: int, L: int, bidirectional: bool = False) -> nn.RNN:
    rnn = nn.RNN(D, H, L, bidirectional=bidirectional, dtype=torch.float64)
    rnn.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in params.items()})
    return rnn.eval()


def _torch_forward(
    params: Mapping[str, Array], x: Array, h0: Array | None, L: int, bidirectional: bool = False
) -> tuple[Array, Array]:
    D, H = x.shape[-1], params["weight_hh_l0"].shape[0]
    rnn = _torch_rnn(params, D, H, L, bidirectional)
    with torch.no_grad():
        out, h_n = rnn(torch.from_numpy(x), None if h0 is None else torch.from_numpy(h0))
    return out.numpy(), h_n.numpy()


def _layer_weights(params: Mapping[str, Array], layer: int, suffix: str = "") -> tuple[Array, Array, Array, Array]:
    return cast(
        "tuple[Array, Array, Array, Array]",  # mypy can't count a tuple built from a generator
        tuple(params[f"{k}_l{layer}{suffix}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
    )


def _safe(fn: Callable[..., Any]) -> Any:  # ``...``: mypy can't match ``lambda m=m: ...`` to ``Callable[[], Any]``
    """A variant that raises (a shape error on this probe) is simply not available on it."""
    try:
        return fn()
    except (ValueError, IndexError, KeyError):
        return None


# --------------------------------------------------------------------------------------
# Across the grader's trust boundary: plan (trusted), collect (the submission's kernel), judge (trusted)
# --------------------------------------------------------------------------------------
#
# Every check can run in one process (the notebooks' visible tests do that). The
# local grader splits it: the trusted grader *plans* the probes (from a seed the notebook
# cannot know) and keeps the correct answers and the mistakes' answers to itself; the
# submission's kernel *collects* what the learner's code returns on the probe inputs, as
# plain data (rnnlib.coursework.wire); the trusted grader *judges* that data with the same diagnosis
# code. The kernel never sees an expected value, and nothing it patches can reach the
# judgement. ``plan``/``judge`` replay the ``diagnose_*`` functions unchanged: in planning
# mode ``_diagnose`` records the probes instead of calling the learner's function, and in
# judging mode ``_run`` returns the outcome the kernel reported for each probe.

_OUTCOME_KINDS = ("ok", "not_implemented", "off_limits", "exception", "unpack", "mutated", "not_callable")
MAX_MESSAGE = 4000  # characters of a message coming back from the kernel


class _Planned(Exception):
    """Raised by ``_diagnose`` in planning mode, once the probes are recorded."""


@dataclass
class _Session:
    mode: str  # "plan" | "replay"
    task: Task | None = None
    probes: list[Probe] = field(default_factory=list)
    arg_names: tuple[str, ...] = ()
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def planned(self, task: Task, probes: list[Probe], arg_names: tuple[str, ...]) -> None:
        labels = [p.label for p in probes]
        assert len(set(labels)) == len(labels), f"probe labels must be unique: {labels}"
        self.task, self.probes, self.arg_names = task, probes, arg_names
        raise _Planned

    def outcome(self, probe: Probe) -> Outcome:
        if self.mode == "plan":  # a check that peeks at one outcome before _diagnose (stacked_backward)
            return Outcome(kind="exception", problem="")
        o = self.outcomes.get(probe.label)
        if o is None:
            return Outcome(
                kind="exception",
                problem=(
                    f"the grader received no result for the probe with {probe.label} (the submission's kernel "
                    "did not report it)"
                ),
            )
        return copy.copy(o)


_LOCAL = threading.local()  # one planning/judging session per thread: graders may run several at once


def _current_session() -> _Session | None:
    return getattr(_LOCAL, "session", None)


@contextmanager
def _in_session(session: _Session) -> Iterator[_Session]:
    previous = _current_session()
    _LOCAL.session = session
    try:
        yield session
    finally:
        _LOCAL.session = previous


def _placeholder(*args: Any, **kwargs: Any) -> Any:
    """Stands in for the learner's function on the trusted side; it is never called."""
    raise AssertionError("the trusted side never calls learner code")


def _note_warnings(name: str, caught: list[str]) -> None:
    """In the notebook, tell the learner about warnings their function raised (they do not fail a test).

    Printed to stdout on purpose: nbgrader fails a test cell that writes to stderr, and a
    warning such as torch's "Converting a tensor with requires_grad=True to a scalar" is not
    a wrong answer.
    """
    if _current_session() is not None or not caught:
        return
    seen = list(dict.fromkeys(caught))
    print(
        f"note: `{name}` raised {'a warning' if len(seen) == 1 else 'warnings'} while the tests called it "
        "(this does not fail the test, but read it):"
    )
    for text in seen[:5]:
        print(f"  {text}")


@dataclass
class Plan:
    """One check's probes, planned on the trusted side.

    Attributes:
        check: the check's name (``"rnn_step"`` for :func:`check_rnn_step`).
        request: plain data for the kernel (the probe inputs; no expected values).
        private: what only the trusted side keeps (probes with answers, targets).
    """

    check: str
    seed: int
    extended: bool
    kwargs: dict[str, Any]
    request: dict[str, Any]
    private: Any = None


def checks_available() -> list[str]:
    """The names ``x`` of every ``check_x`` the grader can plan and judge."""
    return sorted(_DIAGNOSES)


def _diagnose_fn(check: str) -> Callable[..., str | None]:
    if check not in checks_available():
        raise KeyError(f"unknown check {check!r}; known: {checks_available()}")
    return _DIAGNOSES[check]


def plan(check: str, *, seed: int, extended: bool = False, **kwargs: Any) -> Plan:
    """Plan the probes of ``check_<check>`` (trusted side): inputs for the kernel, answers kept here."""
    if check in _CUSTOM:
        request, private = _CUSTOM[check][0](seed=seed, extended=extended, **kwargs)
        return Plan(check, seed, extended, dict(kwargs), {"check": check, **request}, private)
    session = _Session("plan")
    with _in_session(session):
        try:
            _diagnose_fn(check)(_placeholder, seed=seed, extended=extended, **kwargs)
        except _Planned:
            pass
    assert session.task is not None, f"check {check!r} did not plan any probe"
    request = {
        "check": check,
        "task": session.task.name,
        "arg_names": list(session.arg_names),
        "probes": [{"label": p.label, "args": p.args} for p in session.probes],
    }
    return Plan(check, seed, extended, dict(kwargs), request, session.probes)


_TASKS: dict[str, Task] = {}  # filled by register(): every Task object of the assignment modules, by name


def collect(request: dict[str, Any], *objects: Any) -> dict[str, Any]:
    """Kernel side: run the learner's ``objects`` (a function, a class, a model) on the probe inputs.

    Returns plain data (arrays, numbers, strings) for :func:`judge`; nothing of it is trusted.
    """
    check = request["check"]
    if check in _CUSTOM:
        return _CUSTOM[check][1](request, *objects)
    task = _TASKS[request["task"]]
    fn = objects[0]
    if not callable(fn):
        return {
            "not_callable": f"`{task.name}` should be a function, got {type(fn).__name__}: did you overwrite its name?"
        }
    outcomes = {}
    for p in request["probes"]:
        probe = Probe(p["label"], tuple(p["args"]), {})
        o = _call(task, fn, probe, tuple(request["arg_names"]))
        outcomes[p["label"]] = {"kind": o.kind, "problem": o.problem, "parts": o.parts, "warnings": o.warnings}
        if o.kind in ("not_implemented", "off_limits", "mutated"):
            break  # the diagnosis stops there too
    return {"outcomes": outcomes}


def _text(value: Any, default: str = "") -> str:
    return value[:MAX_MESSAGE] if isinstance(value, str) else default


def _outcome_from(data: Any) -> Outcome:
    """An :class:`Outcome` from the kernel's data, validated (anything malformed is reported as such)."""
    if not isinstance(data, dict) or data.get("kind") not in _OUTCOME_KINDS:
        return Outcome(kind="unpack", problem="the grader could not read this result (malformed data)")
    parts = data.get("parts")
    if data["kind"] == "ok":
        if (
            not isinstance(parts, dict)
            or not parts
            or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in parts.items())
        ):
            return Outcome(kind="unpack", problem="the grader could not read this result (malformed data)")
        return Outcome(parts=dict(parts), warnings=[_text(w) for w in data.get("warnings") or []][:5])
    return Outcome(
        problem=_text(data.get("problem"), "(no message)"),
        kind=data["kind"],
        warnings=[_text(w) for w in data.get("warnings") or []][:5],
    )


def judge(plan_: Plan, result: Any) -> tuple[str | None, list[str]]:
    """Trusted side: the diagnosis of the kernel's ``result`` for ``plan_`` (``None`` when correct),
    and the warnings the learner's code raised."""
    if plan_.check in _CUSTOM:
        return _CUSTOM[plan_.check][2](plan_, result)
    if isinstance(result, dict) and isinstance(result.get("not_callable"), str):
        return _text(result["not_callable"]), []
    raw = result.get("outcomes") if isinstance(result, dict) else None
    if not isinstance(raw, dict):
        return "the grader could not read the result of the probes (malformed data)", []
    outcomes = {str(k): _outcome_from(v) for k, v in raw.items()}
    with _in_session(_Session("replay", outcomes=outcomes)):
        diagnosis = _diagnose_fn(plan_.check)(_placeholder, seed=plan_.seed, extended=plan_.extended, **plan_.kwargs)
    caught = list(dict.fromkeys(w for o in outcomes.values() for w in o.warnings))
    return diagnosis, caught[:5]


# --------------------------------------------------------------------------------------
# Refereed checks: the hidden tests plan and judge in a separate, isolated process
# --------------------------------------------------------------------------------------


def _refereed(check: str, objects: tuple, kwargs: dict[str, Any]) -> str | None:
    """Diagnose in the referee process (rnnlib/coursework/referee.py): only ``collect`` runs in this process.

    The referee lives in rnnlib.coursework.referee, which the notebooks do not reload, so one referee serves
    every hidden test of a kernel."""
    import json
    import tempfile
    from pathlib import Path

    from .referee import referee_check

    kwargs = {k: v for k, v in kwargs.items() if k != "seed"}  # the referee draws its own
    with tempfile.TemporaryDirectory(prefix="rnn-referee-") as tmp:
        folder = Path(tmp)
        (folder / "spec.json").write_text(json.dumps({"check": check, "kwargs": kwargs}), encoding="utf8")
        verdict = referee_check(folder, lambda request: collect(request, *objects))
    _note_warnings(check, verdict.get("warnings") or [])
    return verdict.get("diagnosis")


def _with_referee(check: str, original: Callable[..., None]) -> Callable[..., None]:
    """``check_<check>`` taking ``refereed=True`` too (the hidden tests); otherwise ``original``."""
    name = f"check_{check}"

    def refereed_check(*objects: Any, refereed: bool = False, **kwargs: Any) -> None:
        if not refereed:
            return original(*objects, **kwargs)
        _raise(_refereed(check, objects, kwargs))

    refereed_check.__name__ = refereed_check.__qualname__ = name
    refereed_check.__module__ = original.__module__
    refereed_check.__doc__ = (original.__doc__ or "") + (
        "\n\n    With ``refereed=True`` (the hidden tests), the probes are planned and judged in a separate "
        "\n    process with a seed of its own (rnnlib/coursework/referee.py); only the learner's code runs here."
    )
    return refereed_check


# --------------------------------------------------------------------------------------
# The registry: each assignment module registers its checks
# --------------------------------------------------------------------------------------

_DIAGNOSES: dict[str, Callable[..., str | None]] = {}  # check name -> its diagnose_<check>
# check -> (plan, collect, judge), for the checks that do not run a function on probe arrays
_CUSTOM: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {}
_ASSIGNMENTS: list[str] = []  # the registered modules, in registration order


def _checker_files() -> tuple[str, ...]:
    """The checks' own source files (path endings), left out of the lines quoted in messages."""
    names = ["rnnlib.coursework.checks", __name__, *_ASSIGNMENTS]
    return tuple(n.replace(".", "/") + ".py" for n in names)


def register(
    namespace: dict[str, Any],
    *,
    custom: Mapping[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] | None = None,
) -> None:
    """Register an assignment module's checks; its last statement is ``register(globals())``.

    For each ``check_x`` in the module's ``__all__``: ``diagnose_x`` becomes known to
    :func:`plan`, :func:`judge` and :func:`checks_available`, and ``check_x`` is replaced in
    ``namespace`` by a wrapper that also takes ``refereed=True`` (the hidden tests). Every
    :class:`Task` in ``namespace`` becomes known to :func:`collect` by its name. ``custom``:
    ``{x: (plan_x, collect_x, judge_x)}`` for the checks that do not run a function on probe
    arrays (A4's model, training step and trained model); their ``diagnose_x`` calls
    :func:`plan`, :func:`collect` and :func:`judge`, which hand over to these.
    """
    module = namespace["__name__"]
    if module not in _ASSIGNMENTS:
        _ASSIGNMENTS.append(module)
    for value in list(namespace.values()):
        if isinstance(value, Task):
            _TASKS[value.name] = value
    _CUSTOM.update(custom or {})
    for name in [n for n in namespace["__all__"] if n.startswith("check_")]:
        check = name[len("check_") :]
        _DIAGNOSES[check] = namespace[f"diagnose_{check}"]
        namespace[name] = _with_referee(check, namespace[name])
