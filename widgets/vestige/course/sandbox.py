"""Run a learner's code in a sandbox: bubblewrap, plus limits the grader enforces itself.

**Choice: bubblewrap (``bwrap``), Debian's ``bubblewrap`` package** (``make sandbox-deps``).
It builds the sandbox from Linux namespaces in one audited setuid-free binary: a new mount
namespace whose root is an empty tmpfs into which only what the notebook needs is
bind-mounted, new user, PID, IPC, UTS, cgroup and network namespaces. Doing the same with
``unshare`` would mean writing the mount set-up ourselves (pivot_root, remounts, /proc,
/dev), the part that is easiest to get wrong. ``bwrap`` works both as root (as on the
course machines: it then drops every capability, ``--cap-drop ALL``) and as an ordinary
user (through an unprivileged user namespace). If ``bwrap`` is missing or cannot create
its namespaces, every submission gets a row saying so (no fallback to running
unsandboxed).

Inside, the notebook sees:

* read-only: ``/usr``, ``/lib*``, ``/bin``, ``/sbin``, a few files of ``/etc`` (the dynamic
  loader's cache, timezone; ``passwd``/``group`` are two-line stand-ins), the Python
  installation and the venv, the package source (editable install), the course's
  precomputed runs at ``/runs``, its input (the prepared notebook, the hidden inputs) at
  ``/grade/in``. Not visible: other submissions, the solutions, the gradebook, home
  directories, the rest of ``/etc``.
* writable: its scratch directory ``/grade/work`` (a fresh host directory per submission,
  where the captured answers go), ``/tmp`` and ``/dev/shm`` (size-capped tmpfs). The root
  is remounted read-only, so nothing else can be created.
* no network: only a loopback interface in its own namespace (the kernel talks to the
  notebook runner over it); no other process of the machine (own PID namespace), no
  capabilities, no nested user namespaces (``--disable-userns``), killed with the grader
  (``--die-with-parent``), its own session (no terminal injection).

**Limits.** Wall time, memory, processes and scratch size are enforced by a watchdog in
the grader, which polls the sandbox's process tree every 0.1 s and kills the whole tree
(``SIGKILL``; the PID namespace dies with its init) when one is exceeded; the row then
says which limit was hit. Memory is what the tree's processes occupy together, which is
what runs a 2 GB machine out of memory. cgroup v2 would be the exact tool, but on the course
machines the memory controller is bound to a cgroup v1 hierarchy that belongs to the
machine's process supervisor, and the unified hierarchy has no memory controller; so
the watchdog (RSS, and PSS once RSS is over the limit, so pages shared by forked
processes count once). Its overshoot is what a process allocates in one poll interval
(measured: 110-150 MB over a 1 GB limit). The hard backstop is ``RLIMIT_DATA`` = limit + 4 GB
(private writable memory; an allocation past it fails at once with ``MemoryError``), not
``RLIMIT_AS``: torch plus the kit map ~1.6 GB of address space they never touch, and the
course's charts run V8 (vl-convert), which reserves address space by the terabyte and
aborts under *any* ``RLIMIT_AS`` (measured: 8, 16 and 64 GB all crash it), while its
``VmData`` stays ~1.4 GB. ``RLIMIT_FSIZE`` caps any single file, ``RLIMIT_CORE`` is 0.
``RLIMIT_NPROC`` cannot work here (it counts per user, and
uid 0 is exempt), hence the process count in the watchdog.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

GB = 1 << 30
MB = 1 << 20
SANDBOX_UID = 65534
_SYSTEM_RO = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
_ETC_RO = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/mime.types",
    "/etc/fonts",
    "/etc/ssl/openssl.cnf",
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 300.0
    memory_bytes: int = 2 * GB
    data_headroom_bytes: int = 4 * GB
    tmp_bytes: int = 256 * MB
    file_bytes: int = 256 * MB
    scratch_bytes: int = 512 * MB
    max_processes: int = 64
    poll_seconds: float = 0.1


@dataclass
class Outcome:
    """How a sandboxed command ended."""

    returncode: int | None
    limit: str | None  # the limit that killed it: "wall time", "memory", ...
    wall_seconds: float
    peak_memory_bytes: int
    stdout: str = ""  # the last few KB
    stderr: str = ""

    def describe(self, limits: Limits) -> str:
        if self.limit == "wall time":
            return f"timeout: killed after {limits.wall_seconds:g} s"
        if self.limit == "memory":
            return f"memory limit: killed at {self.peak_memory_bytes / MB:.0f} MB (limit {limits.memory_bytes / MB:.0f} MB)"
        if self.limit:
            return f"{self.limit} limit: killed"
        return f"exit status {self.returncode}"


@dataclass
class Mounts:
    """What a sandbox sees besides the system: ``(host path, path inside)`` pairs."""

    read_only: list[tuple[Path, str]] = field(default_factory=list)
    writable: list[tuple[Path, str]] = field(default_factory=list)


def bwrap() -> str | None:
    return shutil.which("bwrap")


def base_arguments(limits: Limits, etc_dir: Path) -> list[str]:
    """bwrap options shared by every sandbox: namespaces, system mounts, tmpfs."""
    exe = bwrap()
    if exe is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: run `make sandbox-deps` "
            "(or `apt-get install bubblewrap`)"
        )
    args = [
        exe,
        "--unshare-all",
        "--unshare-user",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
    ]
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL"]
    for path in _SYSTEM_RO:
        args += ["--ro-bind-try", path, path]
    for path in _ETC_RO:
        args += ["--ro-bind-try", path, path]
    args += [
        "--ro-bind",
        str(etc_dir / "passwd"),
        "/etc/passwd",
        "--ro-bind",
        str(etc_dir / "group"),
        "/etc/group",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.tmp_bytes),
        "--tmpfs",
        "/tmp",
        "--size",
        str(64 * MB),
        "--tmpfs",
        "/dev/shm",
    ]
    for path in python_paths():
        args += ["--ro-bind", path, path]
    return args


def write_etc(etc_dir: Path) -> None:
    """Stand-in ``/etc/passwd`` and ``/etc/group`` naming only the sandbox user."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    (etc_dir / "passwd").write_text(
        f"learner:x:{SANDBOX_UID}:{SANDBOX_UID}:learner:/tmp/home:/bin/sh\n"
    )
    (etc_dir / "group").write_text(f"learner:x:{SANDBOX_UID}:\n")


@lru_cache(maxsize=1)
def python_paths() -> tuple[str, ...]:
    """The directories this Python needs: installation, venv, and what .pth files add."""
    import vestige

    paths = {
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.prefix),
        sys.prefix,
        str(Path(vestige.__file__).resolve().parent),
    }
    try:
        found = subprocess.run(
            [sys.executable, "-I", "-c", "import sys, json; print(json.dumps(sys.path))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        paths.update(p for p in json.loads(found.stdout) if p and os.path.isabs(p))
    except (subprocess.SubprocessError, ValueError, OSError):
        pass
    existing = sorted(p for p in paths if os.path.exists(p))
    # drop paths inside another one (bound already), keep the order deterministic
    kept: list[str] = []
    for path in existing:
        if not any(
            path != other and path.startswith(other.rstrip("/") + "/") for other in existing
        ):
            kept.append(path)
    return tuple(kept)


def command_arguments(
    limits: Limits, etc_dir: Path, mounts: Mounts, cwd: str, command: list[str]
) -> list[str]:
    args = base_arguments(limits, etc_dir)
    for host, inside in mounts.read_only:
        args += ["--ro-bind", str(host), inside]
    for host, inside in mounts.writable:
        args += ["--bind", str(host), inside]
    args += ["--remount-ro", "/", "--chdir", cwd, "--", *command]
    return args


def rlimit_prefix(limits: Limits) -> list[str]:
    """``prlimit`` in front of bwrap: hard limits the watchdog cannot miss."""
    exe = shutil.which("prlimit")
    if exe is None:
        return []
    data = limits.memory_bytes + limits.data_headroom_bytes
    return [exe, f"--data={data}", f"--fsize={limits.file_bytes}", "--core=0", "--"]


def run(
    command: list[str],
    *,
    mounts: Mounts,
    cwd: str,
    env: dict[str, str],
    limits: Limits,
    log_dir: Path,
    watch_dir: Path | None = None,
) -> Outcome:
    """Run ``command`` in a sandbox; returns when it ends or a limit kills it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    etc_dir = log_dir / "etc"
    write_etc(etc_dir)
    argv = rlimit_prefix(limits) + command_arguments(limits, etc_dir, mounts, cwd, command)
    stdout_path, stderr_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    start = time.monotonic()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start bwrap: {exc}") from None
        limit, peak = _watch(process, limits, start, watch_dir)
    return Outcome(
        process.returncode,
        limit,
        time.monotonic() - start,
        peak,
        _tail(stdout_path),
        _tail(stderr_path),
    )


def _watch(
    process: subprocess.Popen, limits: Limits, start: float, watch_dir: Path | None
) -> tuple[str | None, int]:
    """Poll the sandbox's process tree until it ends or breaks a limit; (limit, peak memory).

    Memory is the summed RSS of the tree (cheap: /proc/PID/statm) while it is under the
    limit; above it, the summed PSS (/proc/PID/smaps_rollup, ~10-50 ms per process), which
    counts pages shared between forked processes once, decides.
    """
    import psutil

    peak, limit, last_disk_check, last_pss = 0, None, 0.0, 0.0
    try:
        root = psutil.Process(process.pid)
    except psutil.Error:
        root = None
    while process.poll() is None:
        now = time.monotonic()
        tree = _tree(root)
        memory = _sum(tree, _rss)
        if memory > limits.memory_bytes and now - last_pss > 0.3:
            last_pss = now
            memory = min(memory, _sum(tree, _pss))
        elif memory > limits.memory_bytes:
            memory = min(memory, peak)  # under the limit at the last PSS reading
        peak = max(peak, memory)
        if now - start > limits.wall_seconds:
            limit = "wall time"
        elif memory > limits.memory_bytes:
            limit = "memory"
        elif len(tree) > limits.max_processes:
            limit = "processes"
        elif watch_dir is not None and now - last_disk_check > 1.0:
            last_disk_check = now
            if _too_big(watch_dir, limits.scratch_bytes):
                limit = "scratch disk"
        if limit:
            _kill(process, tree)
            break
        time.sleep(limits.poll_seconds)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _kill(process, _tree(root))
        process.wait()
    return limit, peak


def _sum(tree: list, measure) -> int:
    return sum(measure(proc.pid) for proc in tree)


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return _rss(pid)
    return _rss(pid)


def _tree(root) -> list:
    import psutil

    if root is None:
        return []
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _kill(process: subprocess.Popen, tree: list) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in tree:
        with contextlib.suppress(Exception):  # gone already
            proc.kill()


def _too_big(directory: Path, cap: int, max_entries: int = 20_000) -> bool:
    """True if the files under ``directory`` exceed ``cap`` bytes or ``max_entries`` entries."""
    total, entries, stack = 0, 0, [str(directory)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    if entries > max_entries:
                        return True
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
                    if total > cap:
                        return True
        except OSError:
            continue
    return False


def _tail(path: Path, limit: int = 8192) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


@lru_cache(maxsize=1)
def probe() -> str | None:
    """``None`` if a sandbox can be created here, else why not (checked once per process)."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="vestige-probe-") as tmp:
            outcome = run(
                [sys.executable, "-I", "-c", "pass"],
                mounts=Mounts(),
                cwd="/tmp",
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                limits=Limits(wall_seconds=60),
                log_dir=Path(tmp),
            )
    except SandboxUnavailable as exc:
        return str(exc)
    if outcome.returncode != 0:
        return f"bwrap cannot create a sandbox here: {outcome.stderr.strip()[-500:]}"
    return None
