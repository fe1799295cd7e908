"""The grader's sandbox: how a submission's kernel is started, limited, and cleaned up.

A submission is untrusted code. The grader (tools/coursework.py) runs it in a Jupyter
kernel that is started here, and trusts nothing that kernel says except *data* (the
outputs of the learner's functions on probe inputs, see rnnlib/probes.py). This module
makes sure the kernel cannot reach anything else:

**With bubblewrap** (``bwrap``, Debian/Ubuntu package ``bubblewrap``; used when present
and working, :func:`available`):

* a read-only view of the system (``/usr``, ``/lib``, ``/etc``, the Python installation),
  of the course's virtual environment and of the ``rnnlib`` package: nothing else of the
  repository (no ``chapters/``, no solution notebooks, no other submissions) is in view,
  and nothing in view can be written, even when the grader runs as root (as on CI);
* one writable folder, the job folder, holding the kernel's throwaway ``$HOME``,
  ``IPYTHONDIR``, ``TMPDIR``, ``MPLCONFIGDIR``, ``PYTHONPYCACHEPREFIX`` and working folder;
  ``/tmp`` is a small private tmpfs;
* new user, PID, network, IPC and UTS namespaces (``--unshare-all``): no network (the
  kernel talks to the grader over Unix sockets in the job folder), no view of the
  grader's processes (so it cannot signal them), and when the sandbox's first process
  dies every process in it dies, so nothing the submission starts outlives the grading;
  ``--new-session`` (no terminal to write into), ``--die-with-parent``;
* resource limits (:class:`Limits`) set by a small launcher before the kernel starts.

**Without bubblewrap** (macOS, Windows, containers that forbid namespaces): the same
throwaway folders and environment, the resource limits where the OS has them, a new
session, and a process-tree sweep at the end. That is *not* a sandbox: the kernel runs
as the grader's user and can read and write what that user can. The grader then says so
in every report, and checks the integrity of what it relies on (:func:`fingerprint`)
before and after, refusing to report a grade if anything changed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Limits:
    """Resource limits of the kernel process (``setrlimit``; each child inherits them).

    ``address_space`` must leave room for what importing torch and training A4's model map
    (a peak of about 0.9 GiB of virtual memory, 0.35 GiB resident, measured); 3 GiB leaves
    ample room for any honest submission and stops a 4 GB allocation with a MemoryError.
    ``processes`` is added to the number of processes the user already has: Linux counts
    RLIMIT_NPROC per user, over the whole machine.
    """

    address_space: int = 3 << 30
    cpu_seconds: int = 900
    file_size: int = 64 << 20
    processes: int = 64
    open_files: int = 256
    tmpfs_bytes: int = 64 << 20


NO_SANDBOX = (
    "none: bubblewrap (bwrap) is not available here, so the submission's kernel ran as this user, "
    "with resource limits but able to read and write what this user can"
)


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Can this machine run a bubblewrap sandbox (installed, and namespaces allowed)?"""
    bwrap = shutil.which("bwrap")
    if bwrap is None or not sys.platform.startswith("linux"):
        return False
    try:
        done = subprocess.run(
            [
                bwrap,
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "--unshare-all",
                "--die-with-parent",
                "--new-session",
                "true",
            ],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def description() -> str:
    """One line for the report: what isolated the kernel."""
    if available():
        return (
            "bubblewrap: read-only system, no repository or other submissions in view, throwaway home, "
            "no network, own PID namespace, resource limits"
        )
    return NO_SANDBOX


def job_folders(job: Path) -> dict[str, Path]:
    """The kernel's throwaway folders inside the job folder (created)."""
    folders = {name: job / name for name in ("home", "work", "tmp", "ipython", "pycache", "mpl", "io")}
    for path in folders.values():
        path.mkdir(parents=True, exist_ok=True)
    return folders


def kernel_env(job: Path, numeric_env: dict[str, str]) -> dict[str, str]:
    """The kernel's whole environment: nothing of the grader's is passed on but PATH and the locale."""
    f = job_folders(job)
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(f["home"]),
        "TMPDIR": str(f["tmp"]),
        "IPYTHONDIR": str(f["ipython"]),
        "MPLCONFIGDIR": str(f["mpl"]),
        "MPLBACKEND": "agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_CONFIG_DIR": str(f["home"] / ".jupyter"),
        "JUPYTER_DATA_DIR": str(f["home"] / ".local" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(f["io"]),
    }
    if not available():
        # Without the read-only binds, bytecode must not be read from (or written to) the shared
        # __pycache__ folders: a forged .pyc there would outlive the grading. In the sandbox they
        # cannot be written, and reading them saves compiling torch afresh (about 5 s).
        env["PYTHONPYCACHEPREFIX"] = str(f["pycache"])
    env.update(numeric_env)
    return env


# The launcher runs inside the sandbox, as the kernel's first Python code: it sets the limits
# and replaces itself by ipykernel. RLIMIT_NPROC is per user, machine-wide, so the limit is
# the user's current count plus the allowance.
_LAUNCHER = """
import os, sys
try:
    import resource
except ImportError:  # Windows: no rlimits
    resource = None
lim = {lim!r}
def cap(which, value):
    if resource is None:
        return
    try:
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError, AttributeError):
        pass
if resource is not None:
    if hasattr(resource, "RLIMIT_AS"):
        cap(resource.RLIMIT_AS, lim["address_space"])
    cap(resource.RLIMIT_CPU, lim["cpu_seconds"])
    cap(resource.RLIMIT_FSIZE, lim["file_size"])
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NOFILE, lim["open_files"])
if resource is not None and hasattr(resource, "RLIMIT_NPROC"):
    uid = os.getuid()
    try:
        mine = sum(1 for p in os.listdir("/proc") if p.isdigit() and os.stat("/proc/" + p).st_uid == uid)
    except OSError:
        mine = 0
    cap(resource.RLIMIT_NPROC, mine + lim["processes"])
# The grader's PID is not visible from inside a PID namespace: without this, ipykernel's
# parent poller would see a parent of PID 1 and exit. --die-with-parent does that job.
os.environ.pop("JPY_PARENT_PID", None)
os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher"] + sys.argv[1:])
"""


def _python_prefixes() -> list[Path]:
    """The Python installation the kernel needs, read-only: the base prefix and the venv."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        where = sysconfig.get_paths().get(key)
        if where:
            paths.add(Path(where).resolve())
    # keep only the outermost of nested paths
    out: list[Path] = []
    for p in sorted(paths, key=lambda q: len(q.parts)):
        if not any(p == q or q in p.parents for q in out):
            out.append(p)
    return out


def package_dirs() -> list[Path]:
    """The course package(s) the kernel imports (``rnnlib``, editable-installed from the repository)."""
    import rnnlib

    return [Path(rnnlib.__file__).resolve().parent]


def kernel_argv(job: Path, limits: Limits, extra_ro: Sequence[Path] = ()) -> list[str]:
    """The command that starts the kernel (``{connection_file}`` is filled in by jupyter_client)."""
    launcher = _LAUNCHER.format(lim=limits.__dict__)
    python = sys.executable
    cmd = [python, "-s", "-c", launcher, "-f", "{connection_file}"]
    if not available():
        return cmd
    args = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    if limits.tmpfs_bytes:
        args[-2:-2] = ["--size", str(limits.tmpfs_bytes)]
    system = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys"]
    for path in system:
        if Path(path).exists():
            # symlinked dirs (/bin -> usr/bin on merged-/usr systems) are recreated as symlinks
            if Path(path).is_symlink():
                args += ["--symlink", os.readlink(path), path]
            else:
                args += ["--ro-bind", path, path]
    for mount in [*_python_prefixes(), *package_dirs(), *extra_ro]:
        args += ["--ro-bind", str(mount), str(mount)]
    # the venv's python may be a symlink into the base installation: both are bound above
    args += ["--bind", str(job), str(job), "--chdir", str(job / "work")]
    # the sandbox's own root (where bwrap made the mount points) read-only too: the job folder
    # and /tmp are the only places the kernel can write
    args += ["--remount-ro", "/"]
    return args + ["--"] + cmd


# --------------------------------------------------------------------------------------
# Integrity: what the grader relies on must be the same before and after a grading
# --------------------------------------------------------------------------------------


def _hash_tree(root: Path, out: dict[str, str], *, suffixes: tuple[str, ...] | None = None) -> None:
    """Record each file's identity: size, modification and *change* times, inode.

    A stat signature instead of a content hash keeps this fast (hundreds of files, twice
    per grading). It cannot be forged by a process without root: any write or ``utime``
    sets the change time (``st_ctime``) to now, and only the clock's owner can set that.
    """
    import stat as st_mod

    if not root.exists():
        return
    for dirpath, dirnames, filenames in os.walk(root):  # os.walk + lstat: one system call per file
        dirnames.sort()
        if suffixes is not None:
            out[dirpath + "/"] = "dir"
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if st_mod.S_ISLNK(st.st_mode):
                out[path] = "symlink:" + os.readlink(path)
            elif suffixes is None or os.path.splitext(name)[1] in suffixes:
                out[path] = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def fingerprint(source_dir: Path) -> dict[str, str]:
    """Hashes of what grading relies on: the course package (with its ``__pycache__``), the
    grader's tools, the solution notebooks, the interpreter's startup hooks (``.pth`` files,
    ``sitecustomize``, IPython startup files in this user's home) and the modules the grader
    imports after a kernel ran (nbgrader, nbclient, jupyter_client)."""
    out: dict[str, str] = {}
    for pkg in package_dirs():
        _hash_tree(pkg, out)
        if available():
            # The sandboxed kernel cannot write the package's __pycache__ (a read-only bind), while the
            # grader's neighbours may legitimately write it (a test run importing a module first).
            out = {k: v for k, v in out.items() if "__pycache__" not in k}
    _hash_tree(ROOT / "tools", out, suffixes=(".py", ".pyc"))
    _hash_tree(Path(source_dir), out)
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        site_path = Path(site)
        for entry in sorted(site_path.glob("*.pth")) + sorted(site_path.glob("*customize*.py")):
            out[str(entry)] = hashlib.sha256(entry.read_bytes()).hexdigest()
        out[str(site_path) + "/*"] = ",".join(sorted(p.name for p in site_path.iterdir()))  # a new top-level module
        for name in ("nbgrader", "nbclient", "jupyter_client", "nbformat"):
            _hash_tree(site_path / name, out, suffixes=(".py", ".pyc"))
        if not available():
            # Without the read-only binds the kernel could rewrite any installed module (numpy,
            # torch, ipykernel) that a later grading imports: take all of them (stat signatures).
            _hash_tree(site_path, out, suffixes=(".py", ".pyc", ".so", ".pth"))
    startup = Path.home() / ".ipython" / "profile_default" / "startup"
    _hash_tree(startup, out)
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Paths added, removed or changed between two fingerprints."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


# --------------------------------------------------------------------------------------
# Without a sandbox: make orphans come back to us, and sweep them at the end
# --------------------------------------------------------------------------------------


def become_subreaper() -> bool:
    """Linux: orphaned descendants re-parent to this process instead of init (PR_SET_CHILD_SUBREAPER),
    so that :func:`kill_descendants` finds a child that left its session."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf8", errors="replace") as fh:
                stat = fh.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def kill_descendants(keep: set[int] | frozenset[int] = frozenset()) -> int:
    """SIGKILL every descendant of this process (except ``keep``); returns how many were killed."""
    killed = 0
    for _ in range(5):  # a process may fork while we sweep
        kids = _children_map()
        todo, found = [os.getpid()], []
        while todo:
            pid = todo.pop()
            for child in kids.get(pid, []):
                found.append(child)
                todo.append(child)
        found = [p for p in found if p not in keep]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.05)
        try:  # reap what re-parented to us
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
    return killed


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, never through a symlink (a symlink at ``path`` is replaced)."""
    path = Path(path)
    parent = path.parent.resolve()
    tmp = parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, parent / path.name)  # replaces a symlink itself, never its target
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def descendants() -> set[int]:
    """The PIDs of this process's descendants now (so that a later sweep spares them)."""
    kids = _children_map()
    todo, found = [os.getpid()], set()
    while todo:
        for child in kids.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def prepare_packages(job: Path) -> None:
    """Without a sandbox, give the kernel its own copy of the course package, first on its path:
    a submission that writes to ``rnnlib.__file__`` then damages only the copy. (In the
    sandbox the package is bound read-only and no copy is needed.)"""
    if available():
        return
    become_subreaper()
    lib = job / "lib"
    lib.mkdir(exist_ok=True)
    for pkg in package_dirs():
        shutil.copytree(pkg, lib / pkg.name, ignore=shutil.ignore_patterns("__pycache__"))


def extra_pythonpath(job: Path) -> str:
    lib = job / "lib"
    return str(lib) if lib.is_dir() else ""
