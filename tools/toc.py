"""Reading `_toc.yml` (Jupyter Book 1, jb-book format): the one list of the book's pages.

Used by `tools/execute_notebooks.py`, `tools/coursework.py` and the tests, so that
"the book's pages" means the same everywhere.
"""

from __future__ import annotations

import glob
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TOC = ROOT / "_toc.yml"
SUFFIXES = (".ipynb", ".md")


def toc_entries(toc_path: Path = TOC) -> list[str]:
    """Every page entry (`root`, `file`, and the matches of `glob`), in reading order, without duplicates."""
    found: list[str] = []

    def add(entry: str) -> None:
        if entry not in found:
            found.append(entry)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    add(node[key])
            if isinstance(node.get("glob"), str):
                for match in sorted(glob.glob(str(toc_path.parent / node["glob"]))):
                    add(Path(match).relative_to(toc_path.parent).with_suffix("").as_posix())
            for key in ("parts", "chapters", "sections", "subtrees", "entries"):
                walk(node.get(key) or [])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(toc_path.read_text(encoding="utf8")))
    return found


def resolve_entry(entry: str, root: Path = ROOT) -> Path | None:
    """The `.ipynb`/`.md` file a toc entry names (with or without its suffix), or None."""
    base = root / entry
    candidates = [base] if base.suffix in SUFFIXES else []
    candidates += [base.with_name(base.name + suffix) for suffix in SUFFIXES]
    return next((p.resolve() for p in candidates if p.is_file()), None)


def toc_notebooks(toc_path: Path = TOC, under: Path = ROOT / "chapters") -> list[Path]:
    """The notebooks the toc lists (below `under`), in reading order."""
    paths = (resolve_entry(e, toc_path.parent) for e in toc_entries(toc_path))
    return [p for p in paths if p is not None and p.suffix == ".ipynb" and p.is_relative_to(under.resolve())]
