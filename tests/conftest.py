"""Shared set-up for the unit and property tests.

* The repository root goes on ``sys.path`` so that ``import rnnlib`` finds this
  checkout however pytest is started (``pytest``, ``python -m pytest``, from any
  directory), even without the editable install.
* Hypothesis must not make CI flaky: the property tests pass ``derandomize=True`` and
  ``database=None`` in their own ``@settings`` (the same examples on every run, and no
  ``.hypothesis/`` example database replaying an old failure); the profile loaded below
  gives these defaults to any test that does not set them.
* The flag grid: a test with an argument named ``rnn_case`` runs once per point of
  :data:`RNN_GRID` (192 points: 3 depths x 2^6 flags), and draws the sizes and data with
  hypothesis inside. ``derandomize`` alone would hand every grid point the *same*
  examples, so each point seeds its inner ``@given`` with ``@seed(rnn_case.seed)``, a
  stable hash of its id: still reproducible, and the sizes differ from point to point.
"""

from __future__ import annotations

import itertools
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile("rnnlib-ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.load_profile("rnnlib-ci")


# --------------------------------------------------------------------------------------
# The flag grid of the parity and gradient tests
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RNNCase:
    """One point of the flag grid: a configuration and how the input is given.

    A test that takes an argument named ``rnn_case`` runs once for every point of
    :data:`RNN_GRID` (see :func:`pytest_generate_tests`); the sizes ``T, N, D, H``
    and the data are drawn by hypothesis inside the test.
    """

    num_layers: int
    nonlinearity: str
    bias: bool
    batch_first: bool
    bidirectional: bool
    batched: bool  # False: unbatched 2-D input (T, D) with 2-D h0 (L*dirs, H)
    with_h0: bool  # False: h0=None (zeros)

    @property
    def dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def id(self) -> str:
        return "-".join(
            [
                f"L{self.num_layers}",
                self.nonlinearity,
                "bias" if self.bias else "nobias",
                "bf" if self.batch_first else "tm",
                "bi" if self.bidirectional else "uni",
                "batched" if self.batched else "unbatched",
                "h0" if self.with_h0 else "noh0",
            ]
        )

    @property
    def seed(self) -> int:
        """A stable per-point hypothesis seed (``derandomize`` alone would give every point the same examples)."""
        return zlib.crc32(self.id.encode())

    def reference(self, D: int, H: int, seed: int, dropout: float = 0.0) -> nn.RNN:
        """A float64 ``nn.RNN`` built after ``torch.manual_seed(seed)``, in eval mode."""
        torch.manual_seed(seed)
        return nn.RNN(
            D,
            H,
            self.num_layers,
            self.nonlinearity,
            self.bias,
            self.batch_first,
            dropout,
            self.bidirectional,
            dtype=torch.float64,
        ).eval()

    def inputs(self, T: int, N: int, D: int, H: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """``x`` in the case's layout and ``h0`` (or ``None``), float64."""
        if not self.batched:
            x_shape: tuple[int, ...] = (T, D)
        else:
            x_shape = (N, T, D) if self.batch_first else (T, N, D)
        x = rng.standard_normal(x_shape)
        h_shape = (self.num_layers * self.dirs, N, H) if self.batched else (self.num_layers * self.dirs, H)
        h0 = 0.5 * rng.standard_normal(h_shape) if self.with_h0 else None
        return x, h0

    def output_shapes(self, T: int, N: int, H: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of ``output`` and ``h_n``."""
        LD, HD = self.num_layers * self.dirs, H * self.dirs
        if not self.batched:
            return (T, HD), (LD, H)
        return ((N, T, HD) if self.batch_first else (T, N, HD)), (LD, N, H)


RNN_GRID = [
    RNNCase(*flags)
    for flags in itertools.product(
        (1, 2, 3), ("tanh", "relu"), (True, False), (False, True), (False, True), (True, False), (True, False)
    )
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rnn_case" in metafunc.fixturenames:
        metafunc.parametrize("rnn_case", RNN_GRID, ids=[c.id for c in RNN_GRID])


@pytest.fixture(scope="session", autouse=True)
def _run_folder(tmp_path_factory):  # type: ignore[no-untyped-def]
    """``RNN_COURSE_RUN_TMP``: a folder the xdist workers of this test run share (the parent of their
    own temporary folders; pytest removes it with its older runs). Unset outside xdist."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["RNN_COURSE_RUN_TMP"] = str(tmp_path_factory.getbasetemp().parent)
    yield
