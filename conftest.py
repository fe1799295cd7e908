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
            # outputs past the stored ones are kept as they are (and fail the comparison)
            test = [_fold_output(t, r, *tolerance) for t, r in zip(test, ref, strict=False)] + list(test[len(ref) :])
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
        test["data"]["text/plain"] = fold_within_tolerance(
            test["data"]["text/plain"], ref["data"]["text/plain"], rel, abs_
        )
    return test


_install_tolerant_comparison()


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """nbval's defaults for this repository, so that a plain ``pytest --nbval chapters/...`` behaves like
    `make test`: the rounding sanitizer of tests/nbval_sanitize.cfg, and the kernel on this interpreter."""
    option = config.option
    if (
        hasattr(option, "nbval_sanitize_with")
        and option.nbval_sanitize_with is None
        and getattr(option, "sanitize_with", None) is None
    ):
        option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")
    if hasattr(option, "nbval_current_env") and getattr(option, "nbval_kernel_name", None) is None:
        option.nbval_current_env = True


# --------------------------------------------------------------------------------------
# How xdist shares the suite out (make test: --dist loadgroup --no-loadscope-reorder)
# --------------------------------------------------------------------------------------
# Every test belongs to one group, and a group runs on one worker, in order:
#
# * a notebook's cells are one group (they share a kernel);
# * a test module is one group (its module-scoped fixtures are built once), unless its tests
#   carry their own ``xdist_group`` marks: the grading galleries split into groups that each
#   grade their own submissions, so that several workers share a gallery;
# * in a module that sets ``XDIST_GROUP_EACH_TEST = True`` (slow tests, cheap fixtures), each
#   unmarked test function is a group of its own.
#
# Groups are handed out in the order below, the longest first (measured with --durations on
# 2 cores), so that no long group starts last and runs alone at the end; then the rest in
# collection order.
LONG_GROUPS_FIRST = [
    # Not long, but its first test builds the site (about 25 s on one core): started first, the
    # build overlaps the gradings on the other workers, instead of the page groups all waiting for it.
    "tests/test_site.py",
    # One nbgrader course for A1-A5, built once: the longest group (140-155 s in the suite on 2 cores).
    "tests/test_nbgrader_round_trip.py",
    "chapters/09_training.ipynb",
    "chapters/06_vanishing_exploding.ipynb",
    "chapters/coursework/A4_training.ipynb",
    "fairness-a4",
    "coursework-A4",
    "security-",
    "site-pages-",
    "tests/test_i18n.py",
    "chapters/11_performance.ipynb",  # 15-20 s: in collection order it came last and ran alone
    "robustness-",
    "tests/test_coursework_robustness.py::",
    "tests/test_gradebook.py",
    "tests/test_depth_study.py::",
    "tests/test_training.py::",
    "fairness-",
    "coursework-",
]


def _group_of(item) -> str:  # type: ignore[no-untyped-def]
    marks = [m for m in item.iter_markers("xdist_group")]
    if marks:
        mark = marks[0]
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    path = Path(str(item.fspath)).resolve()
    try:
        group = path.relative_to(ROOT).as_posix()
    except ValueError:
        group = path.as_posix()
    if getattr(getattr(item, "module", None), "XDIST_GROUP_EACH_TEST", False):
        group += "::" + getattr(item, "originalname", item.name)
    return group


def pytest_itemcollected(item) -> None:  # type: ignore[no-untyped-def]
    """Give every test its group (see above) before xdist reads the marks."""
    if not any(True for _ in item.iter_markers("xdist_group")):
        import pytest

        item.add_marker(pytest.mark.xdist_group(_group_of(item)))


def _rank(group: str) -> int:
    return next((i for i, prefix in enumerate(LONG_GROUPS_FIRST) if group.startswith(prefix)), len(LONG_GROUPS_FIRST))


def pytest_collection_modifyitems(session, config, items) -> None:  # type: ignore[no-untyped-def]
    """Long groups first; each group's tests together, in their collected order (stable sort).

    In an xdist worker under ``--dist loadgroup``, each test's id also gets its group as an
    ``@group`` suffix, which is how xdist's scheduler reads the groups. (xdist 3.8 writes the
    suffix to ``item._nodeid``, which pytest 9 no longer reads, so without this every test
    would be a group of its own and a notebook's cells would run in different kernels.)"""
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(_group_of(item), index)
    items.sort(key=lambda item: (_rank(_group_of(item)), first_seen[_group_of(item)]))
    if getattr(config.option, "loadgroup", False):
        import re

        from _pytest.nodeid import coerce_node_id

        for item in items:
            suffix = "@" + re.sub(r"[^A-Za-z0-9_-]", "_", _group_of(item))
            if not item.nodeid.endswith(suffix):
                item._id = coerce_node_id(item.nodeid + suffix)
            assert item.nodeid.endswith(suffix), "pytest's node ids changed: see conftest.py"
