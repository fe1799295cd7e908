"""Diagnostic checkers for the coursework (assignments A1 to A5): say *how* an answer is wrong.

This is the module the coursework notebooks import (``import rnnlib.coursework.checks as
_checks``; each test cell reloads it, then calls ``_checks.check_rnn_step(rnn_step)``). It holds
no checks of its own; they live in:

* :mod:`rnnlib.coursework.engine`: the diagnosis engine every assignment shares (the classic
  mistakes, running a learner's function on probes and naming what is wrong, off-limits
  library calls, the probe helpers, the grader's plan/collect/judge split, the registry of
  checks; its docstring says how a new assignment plugs in);
* :mod:`rnnlib.coursework.a1` (A1_rnn_step), :mod:`rnnlib.coursework.a2` (A2_stacked_forward),
  :mod:`rnnlib.coursework.a3` (A3_bptt), :mod:`rnnlib.coursework.a4` (A4_training),
  :mod:`rnnlib.coursework.a5` (A5_lstm_cell): each
  assignment's classic mistakes, known-wrong variants, probes and ``diagnose_*``/``check_*``.

Every ``check_*`` function runs a learner's function on a few probe inputs and either
returns ``None`` (correct) or raises ``AssertionError`` whose message is a diagnosis.
Every ``diagnose_*`` function does the same work and returns the diagnosis as a string
(``None`` when the function is correct), which is what the unit tests inspect.

How a diagnosis is made:

1. The correct answer for each probe is computed from ``torch`` in float64
   (``nn.RNNCell``, ``nn.RNN``, autograd), never from anything the learner can redefine.
2. Each *known-wrong variant* of the function (the classic mistakes: ``W_ih`` and ``W_hh``
   swapped, a weight not transposed, a bias missing, ``x_t`` fed to every layer, the
   bottom layer's state taken as the final one, the reverse direction not re-aligned in
   time, the tanh derivative forgotten, the gradient from the next step dropped, ...) is
   computed on the same probe. The backward-pass mistakes of :mod:`rnnlib.coursework.mistakes` are
   reused as they are.
3. The learner's output is compared with the correct answer and with every variant. A
   match with a variant names the mistake ("your output matches what you get when W_ih
   and W_hh are swapped"); otherwise the message says which part is wrong and by how much.
   Generic problems are reported first: not implemented yet (``NotImplementedError``),
   ``None`` returned, wrong type, wrong shape (expected versus got, with a hint), NaN,
   an input array modified in place, an exception (with a hint for shape errors in ``@``).

Probe sizes are all different (``T``, ``N``, ``D``, ``H``, ``L``) so that a shape names the
axis that is wrong, and the values are random and distinct so that mistakes give
different numbers. Some mistakes only run without a shape error when ``D == H`` (swapped
weights, an untransposed ``W_ih``, ``x_t`` fed to upper layers); those are caught by an
extra probe with ``D == H``, and the diagnosis says so.

Library call-through: while the learner's function runs, the RNN implementations of
``rnnlib`` and ``torch.nn.RNN``/``nn.RNNCell`` (forward tasks), or the backward passes of
``rnnlib``, its finite-difference helpers and ``torch.autograd`` (backward tasks), are
replaced by stubs that record the call; a function that calls them fails with a message
saying so. Outside the learner's function nothing is changed.

Public API (each ``check_x`` has a ``diagnose_x`` twin with the same arguments):

* A1: :func:`check_rnn_step`, :func:`check_rnn_forward`, :func:`check_num_parameters`.
* A2: :func:`check_stacked_forward`, :func:`check_batch_first`, :func:`check_bidirectional`,
  :func:`check_top_layer_states`.
* A3: :func:`check_step_backward`, :func:`check_rnn_backward`, :func:`check_stacked_backward`.
* A4: :func:`check_adding_model`, :func:`check_train_step`, :func:`check_trained_adding_model`.
* A5: :func:`check_lstm_step_forward`, :func:`check_lstm_step_backward`, :func:`check_lstm_forward`.

``seed`` changes the probe values; ``extended=True`` adds edge-case probes (one step,
one sequence, one layer, more layers), used by the hidden tests, which also pass
``refereed=True`` (plan and judge in a separate process, :mod:`rnnlib.coursework.referee`).
For the grader: :func:`plan`, :func:`collect`, :func:`judge`, :class:`Plan` and
:func:`checks_available` (the trust boundary, see :mod:`rnnlib.coursework.engine`).
"""

from __future__ import annotations

import importlib
import sys

ASSIGNMENTS = ("a1", "a2", "a3", "a4", "a5")
"""The assignment modules, in the order they are run (a later one may import an earlier one)."""

# Run again whatever of the engine and the assignment modules is already imported, engine first:
# the notebooks' test cells reload this module (importlib.reload(_checks)), and a reload must
# leave nothing that the learner's code patched in any of them (a check_* replaced, the
# off-limits stubs switched off), as when all the checks were in this one file.
for _name in ("engine", *ASSIGNMENTS):
    if f"{__package__}.{_name}" in sys.modules:
        importlib.reload(sys.modules[f"{__package__}.{_name}"])

from .a1 import (  # noqa: E402 - after the reload above
    check_num_parameters,
    check_rnn_forward,
    check_rnn_step,
    diagnose_num_parameters,
    diagnose_rnn_forward,
    diagnose_rnn_step,
)
from .a2 import (  # noqa: E402
    check_batch_first,
    check_bidirectional,
    check_stacked_forward,
    check_top_layer_states,
    diagnose_batch_first,
    diagnose_bidirectional,
    diagnose_stacked_forward,
    diagnose_top_layer_states,
)
from .a3 import (  # noqa: E402
    check_rnn_backward,
    check_stacked_backward,
    check_step_backward,
    diagnose_rnn_backward,
    diagnose_stacked_backward,
    diagnose_step_backward,
)
from .a4 import (  # noqa: E402
    check_adding_model,
    check_train_step,
    check_trained_adding_model,
    diagnose_adding_model,
    diagnose_train_step,
    diagnose_trained_adding_model,
    heldout_adding_mse,
)
from .a5 import (  # noqa: E402
    check_lstm_forward,
    check_lstm_step_backward,
    check_lstm_step_forward,
    diagnose_lstm_forward,
    diagnose_lstm_step_backward,
    diagnose_lstm_step_forward,
)
from .engine import (  # noqa: E402
    MISTAKES,
    NOT_IMPLEMENTED,
    Mistake,
    Plan,
    checks_available,
    collect,
    judge,
    library_problem,
    library_uses,
    plan,
)

__all__ = [
    "MISTAKES",
    "NOT_IMPLEMENTED",
    "Mistake",
    "Plan",
    "check_adding_model",
    "check_batch_first",
    "check_bidirectional",
    "check_lstm_forward",
    "check_lstm_step_backward",
    "check_lstm_step_forward",
    "check_num_parameters",
    "check_rnn_backward",
    "check_rnn_forward",
    "check_rnn_step",
    "check_stacked_backward",
    "check_stacked_forward",
    "check_step_backward",
    "check_top_layer_states",
    "check_train_step",
    "check_trained_adding_model",
    "checks_available",
    "collect",
    "diagnose_adding_model",
    "diagnose_batch_first",
    "diagnose_bidirectional",
    "diagnose_lstm_forward",
    "diagnose_lstm_step_backward",
    "diagnose_lstm_step_forward",
    "diagnose_num_parameters",
    "diagnose_rnn_backward",
    "diagnose_rnn_forward",
    "diagnose_rnn_step",
    "diagnose_stacked_backward",
    "diagnose_stacked_forward",
    "diagnose_step_backward",
    "diagnose_top_layer_states",
    "diagnose_train_step",
    "diagnose_trained_adding_model",
    "heldout_adding_mse",
    "judge",
    "library_problem",
    "library_uses",
    "plan",
]
