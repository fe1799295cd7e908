"""The benchmark script keeps running (its numbers are printed, never asserted: tests don't time)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_script_runs_and_checks_agreement_on_a_tiny_size():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "rnn_speed.py"), "--check", "--sizes", "10x2x3x4x1", "--repeats", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout.lower()
