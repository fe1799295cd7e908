"""What the course's studies share: run jobs on a pool, resume after an interruption, write the JSON.

``experiments/depth_study.py`` (chapter 9) and ``experiments/gated_study.py`` (chapter 10) each
define their jobs and how one runs; :func:`run_study` does the rest. Finished runs are appended to
``<out>.partial.jsonl`` as they come, so an interrupted study resumes where it stopped; at the end
the whole study is written to ``<out>`` (JSON, replaced atomically) with the machine and library
versions it ran on (:func:`environment`), and the partial file goes.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

Record = dict[str, Any]


def environment() -> dict:
    """The versions, CPU and math-kernel settings a study ran with."""
    import numpy as np
    import torch

    blas = "unknown"
    try:
        from threadpoolctl import threadpool_info

        blas = "; ".join(
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in threadpool_info()
        )
    except ImportError:
        pass
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas,
        "kernel_env": {
            k: os.environ[k]
            for k in ("OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS")
            if k in os.environ
        },
    }


def run_study(
    todo: list[Record],
    run: Callable[[Record], Record],
    run_key: Callable[[Record], Hashable],
    out: Path,
    workers: int,
    describe: Callable[[Record], str],
    protocol: dict,
) -> dict:
    """Run every job of ``todo`` not already in ``<out>.partial.jsonl`` (``run(job) -> record``, on
    ``workers`` processes), then write ``{"protocol", "environment", "wall_seconds", "runs"}`` to ``out``.

    ``describe(record)`` names a finished run in the progress lines. Returns the study written.
    """
    partial = out.with_suffix(".partial.jsonl")
    done: dict[Hashable, Record] = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            record = json.loads(line)
            done[run_key(record)] = record
    todo = [j for j in todo if run_key(j) not in done]
    print(f"{len(done)} runs done before, {len(todo)} to run on {workers} workers", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with partial.open("a") as log, ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(run, j) for j in todo]
        for i, future in enumerate(as_completed(futures), 1):
            record = future.result()
            done[run_key(record)] = record
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(
                f"[{i}/{len(todo)}] {describe(record)}: test {record['test']:.4f} ({record['seconds']} s)", flush=True
            )
    study = {
        "protocol": protocol,
        "environment": environment(),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "runs": sorted(done.values(), key=run_key),
    }  # type: ignore[arg-type,return-value]
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(study, indent=1) + "\n")
    tmp.replace(out)
    partial.unlink()
    print(f"wrote {out} ({len(study['runs'])} runs)")
    return study
