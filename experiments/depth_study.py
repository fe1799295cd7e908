"""The depth study of Chapter 9: every arm, learning rate and seed, results to JSON.

Usage (from the repository root; about 15 minutes on 2 cores):

    .venv/bin/python experiments/depth_study.py                 # the whole study
    .venv/bin/python experiments/depth_study.py --task adding   # one task
    .venv/bin/python experiments/depth_study.py --quick         # a smoke run (tests use it)

The protocol is in :mod:`rnnlib.training.study`. Each run is an independent job on a pool of
worker processes, one thread each; ``experiments/study_runner.py`` runs them, resumes an
interrupted study from ``<out>.partial.jsonl`` and writes ``<out>`` (JSON) with the machine
and library versions it ran on.
The chapter reads that file; `make test` never re-runs the study (a few of its claims are
re-checked on fresh runs by tests/test_depth_study.py).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# One thread per worker: the pool already runs one process per core.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

from study_runner import run_study  # noqa: E402  (experiments/ is this script's folder)

from rnnlib.training.study import run_key  # noqa: E402

DEFAULT_OUT = ROOT / "experiments" / "results" / "depth_study.json"

# Depth at the same width (H = 32 / 96 at every depth) and at a matched parameter count
# (about 3.3k parameters for the adding problem, about 39.5k for the language model).
ADDING = dict(
    arms=[(1, 32), (2, 32), (3, 32), (1, 56), (3, 25)],
    lrs=[1e-3, 3e-3, 1e-2],
    settings=dict(seq_len=20, steps=1200, batch_size=32, clip=1.0),
)
LM = dict(
    arms=[(1, 96), (2, 96), (3, 96), (1, 147), (3, 77)],
    lrs=[3e-3, 1e-2, 3e-2],
    settings=dict(steps=600, seq_len=32, batch_size=32, clip=1.0),
)
NONLINEARITIES = ("tanh", "relu")
SEEDS = (0, 1, 2, 3, 4)


def jobs(tasks: list[str], quick: bool) -> list[dict]:
    out = []
    for task in tasks:
        spec = ADDING if task == "adding" else LM
        settings = dict(spec["settings"])
        if quick:
            settings["steps"] = 20
        for act, (L, H), lr, seed in itertools.product(
            NONLINEARITIES, spec["arms"], spec["lrs"], SEEDS[:2] if quick else SEEDS
        ):
            out.append(
                dict(task=task, nonlinearity=act, num_layers=L, hidden_size=H, lr=lr, seed=seed, settings=settings)
            )
    # longest first, so the pool does not end on one long job
    return sorted(out, key=lambda j: -(j["num_layers"] * j["hidden_size"] ** 2 * (3 if j["task"] == "lm" else 1)))


def run(job: dict) -> dict:
    import torch

    from rnnlib.training.study import adding_run, lm_run

    torch.set_num_threads(1)
    start = time.perf_counter()
    fn = adding_run if job["task"] == "adding" else lm_run
    result = fn(job["nonlinearity"], job["num_layers"], job["hidden_size"], job["lr"], job["seed"], **job["settings"])
    record = {k: v for k, v in job.items() if k != "settings"}
    record.update(result, seconds=round(time.perf_counter() - start, 1))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["adding", "lm", "all"], default="all")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="20 steps, 2 seeds: checks the pipeline only")
    parser.add_argument("--max-jobs", type=int, default=None, help="run only the first N jobs (smoke tests)")
    args = parser.parse_args(argv)

    tasks = ["adding", "lm"] if args.task == "all" else [args.task]
    todo = jobs(tasks, args.quick)[: args.max_jobs]
    protocol = {
        "adding": {**ADDING["settings"], "lrs": ADDING["lrs"], "arms": ADDING["arms"]},
        "lm": {**LM["settings"], "lrs": LM["lrs"], "arms": LM["arms"]},
        "nonlinearities": list(NONLINEARITIES),
        "seeds": list(SEEDS),
        "quick": args.quick,
    }
    run_study(
        todo,
        run,
        run_key,
        args.out,
        args.workers,
        protocol=protocol,
        describe=lambda r: (
            f"{r['task']} {r['nonlinearity']} L={r['num_layers']} H={r['hidden_size']} lr={r['lr']:g} seed={r['seed']}"
        ),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
