"""The gated study of Chapter 10: tanh RNN, GRU and LSTM on the adding problem, results to JSON.

Usage (from the repository root; about 20 minutes of CPU in all, the 81 runs one thread each):

    .venv/bin/python experiments/gated_study.py            # the whole study, one worker (--workers N: N at once)
    .venv/bin/python experiments/gated_study.py --quick    # a smoke run (tests use it)

Chapter 9's protocol (:mod:`rnnlib.training.study`), with the cell as the arm: for every cell and every
sequence length ``T``, each learning rate is run with each seed; the chapter picks each arm's
learning rate on the median validation MSE and compares the arms on the test MSE. The three cells
have about the same number of parameters (tanh RNN ``H = 34``: 1327, GRU ``H = 19``: 1331,
LSTM ``H = 16``: 1297, the read-out included). Each run is one job with one thread; finished
runs go to ``<out>.partial.jsonl`` as they come, so an interrupted study resumes; at the end the
whole study is written to ``<out>`` (JSON) with the machine and library versions it ran on.
The chapter reads that file; tests/test_gated_claims.py re-runs one configuration live.
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

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

from study_runner import run_study  # noqa: E402  (experiments/ is this script's folder)

from rnnlib.training.gated_study import run_key  # noqa: E402

DEFAULT_OUT = ROOT / "experiments" / "results" / "gated_study.json"

# Matched parameter counts (about 1.3k, within 3%): see rnnlib.training.gated_study.cell_regressor_parameters.
HIDDEN = {"rnn": 34, "gru": 19, "lstm": 16}
SEQ_LENS = (20, 50, 100)
LRS = (3e-3, 1e-2, 3e-2)
SEEDS = (0, 1, 2)
SETTINGS = dict(steps=2000, batch_size=32, clip=1.0)


def jobs(quick: bool) -> list[dict]:
    settings = dict(SETTINGS, steps=20) if quick else dict(SETTINGS)
    out = [
        dict(cell=cell, hidden_size=HIDDEN[cell], seq_len=T, lr=lr, seed=seed, settings=settings)
        for cell, T, lr, seed in itertools.product(HIDDEN, SEQ_LENS, LRS, SEEDS[:1] if quick else SEEDS)
    ]
    cost = {"rnn": 2, "gru": 6, "lstm": 1}  # rough time per step on a CPU, relative
    return sorted(out, key=lambda j: -j["seq_len"] * cost[j["cell"]])


def run(job: dict) -> dict:
    import torch

    from rnnlib.training.gated_study import gated_adding_run

    torch.set_num_threads(1)
    start = time.perf_counter()
    result = gated_adding_run(
        job["cell"], job["hidden_size"], job["seq_len"], job["lr"], job["seed"], **job["settings"]
    )
    record = {k: v for k, v in job.items() if k != "settings"}
    record.update(result, seconds=round(time.perf_counter() - start, 1))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="20 steps, 1 seed: checks the pipeline only")
    parser.add_argument("--max-jobs", type=int, default=None, help="run only the first N jobs (smoke tests)")
    args = parser.parse_args(argv)

    todo = jobs(args.quick)[: args.max_jobs]
    protocol = {
        **(dict(SETTINGS, steps=20) if args.quick else SETTINGS),
        "hidden_sizes": HIDDEN,
        "seq_lens": list(SEQ_LENS),
        "lrs": list(LRS),
        "seeds": list(SEEDS[:1] if args.quick else SEEDS),
        "quick": args.quick,
    }
    run_study(
        todo,
        run,
        run_key,
        args.out,
        args.workers,
        protocol=protocol,
        describe=lambda r: f"{r['cell']} H={r['hidden_size']} T={r['seq_len']} lr={r['lr']:g} seed={r['seed']}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
