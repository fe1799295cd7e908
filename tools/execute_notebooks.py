"""Re-execute the course notebooks in place, top to bottom, in a fresh kernel.

Usage (from the repository root, normally via `make execute`):

    python tools/execute_notebooks.py              # every notebook in _toc.yml
    python tools/execute_notebooks.py chapters/01_one_layer.ipynb  # just these

Only notebooks under chapters/ that are listed in _toc.yml are touched. The
kernel is the Python running this script (the project's .venv), started with
the course's numerical environment (tools/numerics.py: one thread per math
library, PYTHONHASHSEED=0, the same as under `make test`), and no timing metadata is recorded, so re-running an
unchanged notebook gives an unchanged file. A notebook whose execution fails
is left as it was and the script exits non-zero.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ipykernel.kernelspec
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.numerics import apply_numeric_env  # noqa: E402
from tools.toc import toc_notebooks  # noqa: E402

CHAPTERS = ROOT / "chapters"
CELL_TIMEOUT = 600  # seconds per cell
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


class CurrentEnvKernelSpecs(KernelSpecManager):
    """Always run the kernel on this interpreter (like nbval --nbval-current-env)."""

    def get_kernel_spec(self, kernel_name):
        return self.kernel_spec_class(
            resource_dir=ipykernel.kernelspec.RESOURCES,
            **ipykernel.kernelspec.get_kernel_dict(),
        )


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timings from other tools
    # An *async* kernel manager: with a blocking one nbclient never applies the cell
    # timeout, and a cell that never ends would hang `make execute` for good.
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=CurrentEnvKernelSpecs())
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},  # cwd of the kernel
    )
    client.execute()
    nbformat.validate(nb)
    nbformat.write(nb, path)


def unsaved_work(paths: list[Path]) -> list[Path]:
    """Notebooks whose file differs from the committed one (a learner's or author's edits).

    Re-execution rewrites a notebook's outputs; outside a git checkout nothing can be
    told apart, so every notebook counts as possibly edited.
    """
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", *map(str, paths)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return list(paths)
    changed = {(ROOT / line[3:].strip()).resolve() for line in out.splitlines() if line.strip()}
    return [p for p in paths if p in changed]


def main(argv: list[str]) -> int:
    apply_numeric_env()  # tools/numerics.py: inherited by the kernel, as under `make test`
    force = "--force" in argv
    argv = [a for a in argv if a != "--force"]
    listed = toc_notebooks()
    if argv:
        wanted = [Path(a).resolve() for a in argv]
        unknown = [p for p in wanted if p not in listed]
        if unknown:
            for p in unknown:
                print(f"not a notebook listed in _toc.yml: {p}", file=sys.stderr)
            return 2
        listed = wanted
    if not listed:
        print("no notebooks listed in _toc.yml; nothing to execute")
        return 0
    edited = [] if force else unsaved_work(listed)
    if edited:
        for p in edited:
            print(
                f"refusing to re-execute {p.relative_to(ROOT)}: it has uncommitted changes "
                "that re-execution would overwrite (commit them, or pass --force)",
                file=sys.stderr,
            )
        return 2
    failed = []
    for path in listed:
        rel = path.relative_to(ROOT)
        print(f"executing {rel} ...", flush=True)
        try:
            execute(path)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            print(f"FAILED {rel} (left unchanged):\n{err}", file=sys.stderr)
            failed.append(rel)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    print(f"executed {len(listed)} notebook(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
