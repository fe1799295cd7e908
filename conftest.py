"""Root pytest set-up, for `make test` and for a plain ``pytest`` alike.

* The numerical environment of the course (tools/numerics.py) is applied before any
  library loads, so the kernels nbval starts and the xdist workers inherit it.
* Cells that declare a ``tolerance`` in their metadata are compared by nbval within
  that tolerance (:func:`tools.numerics.fold_within_tolerance`); every other cell is
  compared exactly, after tests/nbval_sanitize.cfg.
* nbval's options default to the Makefile's: that sanitizer file, and the kernel on the
  interpreter running pytest (``--nbval-current-env``).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.numerics import apply_numeric_env, fold_within_tolerance, parse_tolerance  # noqa: E402

apply_numeric_env()


def _install_tolerant_comparison() -> None:
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: nothing to compare
        return
    if getattr(IPyNbCell.compare_outputs, "_course_tolerant", False):
        return
    original = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):  # type: ignore[no-untyped-def]
        tolerance = parse_tolerance(getattr(self.cell, "metadata", {}))
        if tolerance is not None:
            test = [_fold_output(t, r, *tolerance) for t, r in zip(test, ref)] + list(test[len(ref):])
        return original(self, test, ref, skip_compare)

    compare_outputs._course_tolerant = True  # type: ignore[attr-defined]
    IPyNbCell.compare_outputs = compare_outputs


def _fold_output(test, ref, rel: float, abs_: float):  # type: ignore[no-untyped-def]
    if test.get("output_type") != ref.get("output_type"):
        return test
    test = copy.deepcopy(test)
    if test.get("output_type") == "stream" and test.get("name") == ref.get("name"):
        test["text"] = fold_within_tolerance(test["text"], ref["text"], rel, abs_)
    elif "data" in test and "text/plain" in test["data"] and "text/plain" in ref.get("data", {}):
        test["data"]["text/plain"] = fold_within_tolerance(test["data"]["text/plain"], ref["data"]["text/plain"],
                                                           rel, abs_)
    return test


_install_tolerant_comparison()


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """nbval's defaults for this repository, so that a plain ``pytest --nbval chapters/...`` behaves like
    `make test`: the rounding sanitizer of tests/nbval_sanitize.cfg, and the kernel on this interpreter."""
    option = config.option
    if hasattr(option, "nbval_sanitize_with") and option.nbval_sanitize_with is None \
            and getattr(option, "sanitize_with", None) is None:
        option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")
    if hasattr(option, "nbval_current_env") and getattr(option, "nbval_kernel_name", None) is None:
        option.nbval_current_env = True
