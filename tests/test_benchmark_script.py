"""The benchmark script keeps running (its numbers are printed, never asserted: tests don't time)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "rnn_speed.py"
TINY = ["--sizes", "10x2x3x4x1", "--repeats", "1"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def table_rows(stdout: str) -> list[str]:
    """The timing table's rows: ``cell size | ...``, between the header's rule and the blank line."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    end = lines.index("", start)
    return lines[start:end]


def test_benchmark_script_runs_and_checks_agreement_on_a_tiny_size():
    result = run("--check", *TINY)
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout.lower()
    # The default is every cell, each checked against torch and timed in the same run.
    for cell in ("rnn", "lstm", "gru"):
        assert f"check {cell:>4} 10x2x3x4x1" in result.stdout
        assert f"verdict {cell:>4}" in result.stdout
    assert [row.split()[0] for row in table_rows(result.stdout)] == ["rnn", "lstm", "gru"]


def test_benchmark_script_times_one_cell_when_asked():
    result = run("--check", "--cell", "lstm", *TINY)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert [row.split()[:2] for row in rows] == [["lstm", "10x2x3x4x1"]]
    assert "check lstm 10x2x3x4x1" in result.stdout and "check  rnn" not in result.stdout
    assert "verdict lstm" in result.stdout and "verdict  gru" not in result.stdout


def test_benchmark_script_refuses_an_unknown_cell():
    result = run("--cell", "transformer", *TINY)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
