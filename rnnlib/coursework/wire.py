"""Plain data across the grader's trust boundary: JSON for structure, ``.npz`` for arrays.

The grader sends probe inputs into a submission's kernel and reads the learner's outputs
back. What comes back was written by untrusted code, so it is *data only*: no pickle, no
object that runs code when it is loaded, bounded in size, and checked for type.

A value is ``None``, ``bool``, ``int``, ``float``, ``str``, a ``list``/``tuple`` of values,
a ``dict`` with ``str`` keys, or a NumPy array of numbers (dtype kind ``b``, ``i``, ``u``
or ``f``). :func:`save` writes ``<stem>.json`` (the structure, arrays replaced by
references) and ``<stem>.npz`` (the arrays); :func:`load` reads them back with
``allow_pickle=False``, refusing symlinks, oversized files and anything else.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

MAX_BYTES = 64 << 20  # per file: a result larger than this is refused, not read
_ARRAY, _TUPLE = "__array__", "__tuple__"
_NUMERIC = "biuf"


class WireError(ValueError):
    """The data is not plain data of the allowed kinds (or cannot be read safely)."""


def pack(value: Any, arrays: dict[str, np.ndarray] | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """``value`` as JSON-able structure plus its arrays (``{"__array__": "a3"}`` marks where each goes)."""
    arrays = {} if arrays is None else arrays

    def enc(v: Any) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return int(v)
        if isinstance(v, (float, np.floating)):
            f = float(v)
            return f if math.isfinite(f) else {"__float__": repr(f)}
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in _NUMERIC:
                raise WireError(f"array of dtype {v.dtype} cannot cross (numbers only)")
            key = f"a{len(arrays)}"
            arrays[key] = v if v.flags.c_contiguous else np.ascontiguousarray(v)  # (ascontiguousarray makes 0-d 1-d)
            return {_ARRAY: key}
        if isinstance(v, tuple):
            return {_TUPLE: [enc(x) for x in v]}
        if isinstance(v, list):
            return [enc(x) for x in v]
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise WireError("dict keys must be strings")
            if _ARRAY in v or _TUPLE in v or "__float__" in v:
                raise WireError("reserved key in dict")
            return {k: enc(x) for k, x in v.items()}
        raise WireError(f"a {type(v).__name__} cannot cross the grader's boundary (plain data only)")

    return enc(value), arrays


def unpack(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`pack`; raises :class:`WireError` on anything unexpected."""

    def dec(v: Any, depth: int = 0) -> Any:
        if depth > 32:
            raise WireError("nested too deeply")
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [dec(x, depth + 1) for x in v]
        if isinstance(v, dict):
            if set(v) == {_ARRAY}:
                key = v[_ARRAY]
                if not isinstance(key, str) or key not in arrays:
                    raise WireError(f"reference to a missing array {key!r}")
                return arrays[key]
            if set(v) == {_TUPLE}:
                if not isinstance(v[_TUPLE], list):
                    raise WireError("malformed tuple")
                return tuple(dec(x, depth + 1) for x in v[_TUPLE])
            if set(v) == {"__float__"}:
                if v["__float__"] not in ("nan", "inf", "-inf"):
                    raise WireError("malformed float")
                return float(v["__float__"])
            return {str(k): dec(x, depth + 1) for k, x in v.items()}
        raise WireError(f"unexpected {type(v).__name__}")

    return dec(tree)


def save(stem: Path | str, value: Any) -> None:
    """Write ``value`` to ``<stem>.json`` and ``<stem>.npz`` (arrays only; never pickled)."""
    tree, arrays = pack(value)
    stem = Path(stem)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)  # pack lets only numbers through: never pickle
    _write(_named(stem, ".npz"), buf.getvalue())
    _write(_named(stem, ".json"), json.dumps(tree).encode("utf8"))


def _named(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)  # not with_suffix: "a1.request" must become "a1.request.json"


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _read(path: Path, max_bytes: int) -> bytes:
    """Read a regular file without following a symlink, refusing one larger than ``max_bytes``."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise WireError(f"cannot open {path.name}: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        import stat

        if not stat.S_ISREG(st.st_mode):
            raise WireError(f"{path.name} is not a regular file")
        if st.st_size > max_bytes:
            raise WireError(f"{path.name} is larger than {max_bytes} bytes")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise WireError(f"{path.name} is larger than {max_bytes} bytes")
    return data


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity literals: pack() never writes them


def load(stem: Path | str, max_bytes: int = MAX_BYTES) -> Any:
    """Read what :func:`save` wrote, as plain data only (``allow_pickle=False``)."""
    stem = Path(stem)
    try:
        tree = json.loads(_read(_named(stem, ".json"), max_bytes).decode("utf8"), parse_constant=_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # ValueError: JSONDecodeError, huge ints
        raise WireError(f"malformed JSON: {type(err).__name__}: {str(err)[:200]}") from None
    raw = _read(_named(stem, ".npz"), max_bytes)
    arrays: dict[str, np.ndarray] = {}
    try:
        import zipfile

        with zipfile.ZipFile(io.BytesIO(raw)) as zf:  # sizes before decompressing: no zip bombs
            if sum(info.file_size for info in zf.infolist()) > 4 * max_bytes or len(zf.infolist()) > 10_000:
                raise WireError("arrays too large")
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            total = 0
            for key in npz.files:
                arr = npz[key]
                total += arr.nbytes
                if total > 4 * max_bytes:
                    raise WireError("arrays too large")
                if arr.dtype.kind not in _NUMERIC:
                    raise WireError(f"array {key} has dtype {arr.dtype} (numbers only)")
                arrays[key] = arr
    except WireError:
        raise
    except Exception as err:  # a corrupt or hostile .npz (ValueError for pickled objects, zip errors, ...)
        raise WireError(f"unreadable arrays: {type(err).__name__}: {err}") from None
    try:
        return unpack(tree, arrays)
    except RecursionError:
        raise WireError("nested too deeply") from None
