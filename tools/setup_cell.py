"""The first cell of every chapter: install the course package where it is missing (Colab).

A chapter opened from its Colab launch button runs in an environment without `rnnlib`,
so its first import would fail. Like d2l's notebooks, every chapter therefore starts with
a small cell that installs the package from the course's repository **only when it is
missing**; in the course's own environment (`make book`/`make test` install `rnnlib`
editable into .venv, and Binder installs requirements.txt, which does too) it imports
nothing heavy, prints nothing and changes nothing, so nbval is unaffected.

The repository is one setting, `repository.url` (and `repository.branch`) in `_config.yml`,
the same one the launch and repository buttons use. After changing it, run

    .venv/bin/python tools/setup_cell.py          # rewrite the setup cell of every chapter
    .venv/bin/python tools/setup_cell.py --check  # exit 1 if any chapter's cell is stale

The tool writes only the cell it generated (tagged ``course-setup``, the chapter's first
cell) and refuses a notebook with uncommitted changes (someone's work) unless ``--force``.
The install uses ``--no-deps``: Colab already has NumPy, PyTorch, Matplotlib and tqdm, and
the course's pinned CPU build of torch would replace Colab's. The coursework notebooks
(nbgrader assignments) are left alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tools.execute_notebooks import unsaved_work  # noqa: E402
from tools.toc import toc_notebooks  # noqa: E402

TAG = "course-setup"
CONFIG = ROOT / "_config.yml"


def repository(config: Path = CONFIG) -> tuple[str, str]:
    """``(url, branch)`` of the course's repository, from ``_config.yml``."""
    repo = (yaml.safe_load(config.read_text(encoding="utf8")) or {}).get("repository") or {}
    url, branch = repo.get("url"), repo.get("branch") or "main"
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ValueError(f"_config.yml: repository.url must be an https URL, got {url!r}")
    return url.rstrip("/"), branch


def setup_source(url: str, branch: str) -> str:
    """The cell's code: a pip install of the package from ``url@branch``, only if `rnnlib` is missing."""
    return (
        "# Colab: install the course package if it is missing (in the course's own environment\n"
        "# this cell does nothing). The repository is set in _config.yml (tools/setup_cell.py).\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if importlib.util.find_spec("rnnlib") is None:\n'
        '    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",\n'
        f'                           "rnnlib @ git+{url}@{branch}"])'
    )


def chapters() -> list[Path]:
    """The chapter notebooks (not the coursework) listed in ``_toc.yml``."""
    return [p for p in toc_notebooks() if p.parent.name == "chapters"]


def has_setup_cell(nb: nbformat.NotebookNode) -> bool:
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    return first is not None and TAG in first.metadata.get("tags", [])


def apply(nb: nbformat.NotebookNode, source: str) -> bool:
    """Put ``source`` into the notebook's setup cell, inserting the cell if there is none.

    A new cell goes before the first code cell, with no output and execution count 1,
    and every later execution count moves up by one, exactly as re-executing the
    notebook would number them (the cell prints nothing). Returns whether anything changed.
    """
    if has_setup_cell(nb):
        cell = next(c for c in nb.cells if c.cell_type == "code")
        if cell.source == source:
            return False
        cell.source = source
        return True
    for c in nb.cells:
        if c.cell_type == "code" and c.execution_count is not None:
            c.execution_count += 1
            for out in c.outputs:
                if "execution_count" in out and out["execution_count"] is not None:
                    out["execution_count"] += 1
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [TAG, "remove-cell"]}, execution_count=1)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first_code, cell)
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Write or check the setup cell of every chapter.")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a chapter is stale")
    parser.add_argument("--force", action="store_true", help="also rewrite notebooks with uncommitted changes")
    args = parser.parse_args(argv)
    source = setup_source(*repository())
    stale = []
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        if apply(nb, source):
            stale.append((path, nb))
    if args.check:
        for path, _ in stale:
            print(f"stale setup cell: {path.relative_to(ROOT)} (run tools/setup_cell.py)", file=sys.stderr)
        return 1 if stale else 0
    edited = [] if args.force else unsaved_work([p for p, _ in stale])
    if edited:
        for p in edited:
            print(
                f"refusing to rewrite {p.relative_to(ROOT)}: it has uncommitted changes (commit them, or pass --force)",
                file=sys.stderr,
            )
        return 2
    for path, nb in stale:
        nbformat.write(nb, path)
        print(f"wrote the setup cell of {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
