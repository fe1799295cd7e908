"""The course's numerical environment and the declared tolerances of nbval (tools/numerics.py).

* The environment is applied once, to every pytest run and to `make execute`, and a value
  already set by the user wins (so the stored outputs can be re-checked under other kernels).
* ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` are never set by the project.
* A cell's declared tolerance folds a fresh number into the stored one only when it is within
  the tolerance and the text around the numbers is identical; anything else still fails.
* Every tolerance declared in a notebook is well-formed, gives a reason, and sits on a cell
  that nbval still checks (no ignore-output tag).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools.numerics import NUMERIC_ENV, apply_numeric_env, fold_within_tolerance, parse_tolerance

ROOT = Path(__file__).resolve().parent.parent


def test_pytest_runs_under_the_numeric_environment() -> None:
    for name in NUMERIC_ENV:
        assert name in os.environ, name
    # the defaults, unless the person running the suite chose otherwise
    env = apply_numeric_env({"OMP_NUM_THREADS": "2"})
    assert env["OMP_NUM_THREADS"] == "2" and env["PYTHONHASHSEED"] == "0"


def test_the_project_never_pins_the_openblas_kernel() -> None:
    assert not {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"} & set(NUMERIC_ENV)
    for path in [
        ROOT / "Makefile",
        ROOT / ".ci" / "run",
        ROOT / "conftest.py",
        *ROOT.glob("tools/*.py"),
        *ROOT.glob("tests/*.py"),
        *ROOT.glob("tests/*.cfg"),
    ]:
        text = path.read_text()
        if path.name == "test_numerics.py":
            continue
        assert "OPENBLAS_CORETYPE=" not in text and "OPENBLAS_L2_SIZE=" not in text, path
        assert '"OPENBLAS_CORETYPE"]' not in text and 'setdefault("OPENBLAS_CORETYPE"' not in text, path


def test_a_plain_pytest_process_gets_the_environment_from_the_root_conftest() -> None:
    env = {k: v for k, v in os.environ.items() if k not in NUMERIC_ENV}
    code = "import os; print(os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('PYTHONHASHSEED'))"
    probe = ROOT / "tests" / "_probe_env_test.py"
    probe.write_text(f"def test_probe():\n    {code.replace('print', 'print')}\n")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "no:xdist", str(probe)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        probe.unlink()
    assert "1 0" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize(
    "fresh, stored, expected",
    [
        ("loss 2.41 after 5 steps", "loss 2.30 after 5 steps", "loss 2.30 after 5 steps"),  # within 10%
        ("loss 3.00 after 5 steps", "loss 2.30 after 5 steps", "loss 3.00 after 5 steps"),  # outside: kept
        ("loss 2.41 after 6 steps", "loss 2.30 after 5 steps", "loss 2.30 after 5 steps"),  # 6 vs 5: within 20%
        ("MSE 2.41 (solved)", "MSE 2.30 (failed)", "MSE 2.41 (solved)"),  # the words differ
        ("a 1 b 2", "a 1 b", "a 1 b 2"),  # counts differ
        ("-0.50 and 1.0e-03", "-0.52 and 1.1e-03", "-0.52 and 1.1e-03"),
    ],
)
def test_fold_within_tolerance(fresh: str, stored: str, expected: str) -> None:
    assert fold_within_tolerance(fresh, stored, rel=0.2, abs_=0.0) == expected


def test_fold_within_tolerance_keeps_labels_exact_under_an_absolute_tolerance() -> None:
    assert fold_within_tolerance("L=3 MSE 0.012", "L=2 MSE 0.016", rel=0.0, abs_=0.01) == "L=3 MSE 0.016"
    assert fold_within_tolerance("L=2 MSE 0.052", "L=2 MSE 0.016", rel=0.0, abs_=0.01) == "L=2 MSE 0.052"


@pytest.mark.parametrize(
    "spec",
    [
        "not a mapping",
        {"rel": 0.1},
        {"rel": 0.1, "reason": "short"},
        {"rel": -1, "reason": "x" * 30},
        {"rel": 0.9, "reason": "x" * 30},
        {"rel": 0.1, "abs": True, "reason": "x" * 30},
        {"rel": 0.1, "why": "x" * 30},
    ],
)
def test_malformed_tolerances_are_refused(spec: object) -> None:
    with pytest.raises(ValueError):
        parse_tolerance({"tolerance": spec})


def test_no_tolerance_means_exact_comparison() -> None:
    assert parse_tolerance({}) is None


def _declared() -> list[tuple[str, int, nbformat.NotebookNode]]:
    found = []
    for path in sorted((ROOT / "chapters").rglob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if "tolerance" in cell.get("metadata", {}):
                found.append((str(path.relative_to(ROOT)), i, cell))
    return found


def test_declared_tolerances_are_well_formed_and_checked() -> None:
    declared = _declared()
    assert declared, "the training chapters declare tolerances on their single-trajectory cells"
    for where, i, cell in declared:
        assert cell.cell_type == "code", (where, i)
        assert parse_tolerance(cell.metadata) is not None
        assert "nbval-ignore-output" not in cell.metadata.get("tags", []), (where, i)
        assert cell.outputs, (where, i)
