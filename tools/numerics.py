"""The one place that says how the course's notebooks are run and compared.

Used by `make execute` (tools/execute_notebooks.py, which writes the stored outputs) and
by every pytest run through the repository's root ``conftest.py`` (which re-runs them
under nbval), so that a plain ``pytest --nbval chapters/...`` behaves like `make test`.

**The environment** (:data:`NUMERIC_ENV`, applied with :func:`apply_numeric_env`):
one thread for every math library, so that a sum is never split between threads in an
order that depends on the machine's core count, and a fixed hash seed. Each variable is
only a default: a value already set in the environment wins, so anyone can re-run the
notebooks under other settings (``OMP_NUM_THREADS=2``, ``ATEN_CPU_CAPABILITY=default``,
...) and check that the stored outputs survive them. ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` are deliberately absent: some machines must set them (older
OpenBLAS builds compute wrong results there), and a learner's laptop may not use
OpenBLAS at all, so the stored outputs are made robust to the kernel instead of pinned
to one (CONTRIBUTING.md, "Numbers that survive another machine").

**Declared tolerances.** A few cells must show one training trajectory, whose digits
depend on the rounding of the machine. Such a cell declares, in its metadata,

    "tolerance": {"rel": 0.3, "abs": 0.0, "reason": "why these digits move"}

and nbval then compares it by :func:`fold_within_tolerance`: the text around the numbers
must match exactly, the same count of numbers must appear, and each number must lie
within ``abs + rel * |stored|`` of the stored one. Nothing else is relaxed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping

NUMERIC_ENV: dict[str, str] = {
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

TOLERANCE_KEY = "tolerance"

# A decimal number as the notebooks print it: 12, -0.0157, 1.2e-05, 96%.
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def apply_numeric_env(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set every variable of :data:`NUMERIC_ENV` that is not set yet; return the values in force."""
    env = os.environ if environ is None else environ
    for name, value in NUMERIC_ENV.items():
        env.setdefault(name, value)
    return {name: env[name] for name in NUMERIC_ENV}


def parse_tolerance(metadata: Mapping[str, object]) -> tuple[float, float] | None:
    """``(rel, abs)`` from a cell's metadata, or ``None`` when the cell declares none.

    Raises:
        ValueError: a malformed declaration (unknown keys, no reason, negative or
            too-loose values): a tolerance must say why, and must stay tight.
    """
    spec = metadata.get(TOLERANCE_KEY)
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ValueError(f"cell metadata {TOLERANCE_KEY!r} must be a mapping, got {type(spec).__name__}")
    unknown = set(spec) - {"rel", "abs", "reason"}
    if unknown:
        raise ValueError(f"unknown keys in {TOLERANCE_KEY!r}: {sorted(unknown)}; expected rel, abs, reason")
    reason = spec.get("reason")
    if not isinstance(reason, str) or len(reason.strip()) < 20:
        raise ValueError(f"{TOLERANCE_KEY!r} needs a 'reason' saying why the digits move, got {reason!r}")
    rel, abs_ = spec.get("rel", 0.0), spec.get("abs", 0.0)
    for name, value in (("rel", rel), ("abs", abs_)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value:
            raise ValueError(f"{TOLERANCE_KEY!r}[{name!r}] must be a non-negative number, got {value!r}")
    if rel > 0.5:
        raise ValueError(f"{TOLERANCE_KEY!r}['rel'] = {rel} is too loose to catch a real change (at most 0.5)")
    return float(rel), float(abs_)


def fold_within_tolerance(fresh: str, stored: str, rel: float, abs_: float) -> str:
    """``fresh`` with every number replaced by the stored one when the two are within tolerance.

    If the texts around the numbers differ, or they hold different counts of numbers,
    ``fresh`` is returned unchanged, so that the comparison fails and shows the diff.
    A number outside ``abs_ + rel * |stored|`` is kept as printed, and fails likewise.
    """
    fresh_numbers, stored_numbers = NUMBER.findall(fresh), NUMBER.findall(stored)
    if len(fresh_numbers) != len(stored_numbers) or NUMBER.split(fresh) != NUMBER.split(stored):
        return fresh
    pieces = NUMBER.split(fresh)
    out = [pieces[0]]
    for f, s, after in zip(fresh_numbers, stored_numbers, pieces[1:], strict=True):
        within = abs(float(f) - float(s)) <= abs_ + rel * abs(float(s))
        out.append((s if within else f) + after)
    return "".join(out)
