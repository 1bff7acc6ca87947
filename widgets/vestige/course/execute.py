"""Running one prepared submission in the sandbox (:mod:`.sandbox`), and what its end means.

The submission's folder holds ``in/`` (the prepared notebook, the hidden inputs: read-only
inside), ``work/`` (the scratch directory, where the captured answers go) and ``log/``. The
sandbox also sees the runs read-only at ``/runs``, each ``--data NAME=DIR`` at
``/data/NAME``, and a checks module from outside the package at ``/grade/checks``. The
environment is rebuilt from nothing: no variable of the grader's reaches the notebook.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from . import checks as checks_registry
from . import plain, sandbox
from .checker import GRADING_DIR_ENV, GRADING_HIDDEN_ENV
from .parameters import INSIDE_RUNS

INSIDE_IN = "/grade/in"
INSIDE_WORK = "/grade/work"
INSIDE_CHECKS = "/grade/checks"
INSIDE_DATA = "/data"
CAPTURE = "capture"
_ENV = {
    "LANG": "C.UTF-8",
    "HOME": "/tmp/home",
    "TMPDIR": "/tmp",
    "IPYTHONDIR": "/tmp/ipython",
    "JUPYTER_PATH": "/tmp/jupyter",
    "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
    "JUPYTER_DATA_DIR": "/tmp/jupyter-data",
    "JUPYTER_CONFIG_DIR": "/tmp/jupyter-config",
    "JUPYTER_PLATFORM_DIRS": "1",
    "MPLCONFIGDIR": "/tmp/mpl",
    "XDG_CACHE_HOME": "/tmp/cache",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    GRADING_DIR_ENV: f"{INSIDE_WORK}/{CAPTURE}",
}


@dataclass(frozen=True)
class Folders:
    """One submission's folders on the host."""

    root: Path

    @property
    def inputs(self) -> Path:
        return self.root / "in"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def capture(self) -> Path:
        return self.work / CAPTURE


def write_inputs(folders: Folders, notebook: dict, hidden) -> None:
    """The folders, the prepared notebook and (if any) the hidden inputs."""
    from vestige.runs import atomic_write

    for path in (folders.inputs, folders.capture, folders.logs):
        path.mkdir(parents=True)
    atomic_write(folders.inputs / "notebook.ipynb", json.dumps(notebook))
    if hidden is not None:
        plain.dump(folders.inputs, "hidden", {"hidden": hidden})


def run(
    folders: Folders,
    checks: checks_registry.Checks | None,
    notebook: str,
    runs: Path | None,
    data: dict,
    limits: sandbox.Limits,
) -> sandbox.Outcome:
    """Execute ``in/notebook.ipynb`` with :mod:`.runner` in a sandbox; wait for its end."""
    mounts = sandbox.Mounts(
        read_only=[(folders.inputs, INSIDE_IN)], writable=[(folders.work, INSIDE_WORK)]
    )
    if runs is not None:
        mounts.read_only.append((runs, INSIDE_RUNS))
    for name, host in sorted(data.items()):
        mounts.read_only.append((Path(host).resolve(), f"{INSIDE_DATA}/{name}"))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **_ENV}
    if (folders.inputs / "hidden.json").exists():
        env[GRADING_HIDDEN_ENV] = f"{INSIDE_IN}/hidden"
    if checks is not None:
        module_file = Path(checks.module.__file__).resolve()
        if not any(
            str(module_file).startswith(p.rstrip("/") + "/") for p in sandbox.python_paths()
        ):
            mounts.read_only.append((module_file, f"{INSIDE_CHECKS}/{module_file.name}"))
            env["PYTHONPATH"] = INSIDE_CHECKS
            env[checks_registry.MODULES_ENV] = json.dumps({notebook: module_file.stem})
    command = [
        sys.executable,
        "-m",
        "vestige.course.runner",
        f"{INSIDE_IN}/notebook.ipynb",
        f"{INSIDE_WORK}/executed.ipynb",
    ]
    return sandbox.run(
        command,
        mounts=mounts,
        cwd=INSIDE_WORK,
        env=env,
        limits=limits,
        log_dir=folders.logs,
        watch_dir=folders.work,
    )


def ending(outcome: sandbox.Outcome, limits: sandbox.Limits) -> tuple[str, str | None]:
    """(the row's reason, a flag or None): a limit hit or a failed sandbox is a reason (the
    answers captured before it are still judged); a kernel that died is a flag."""
    if outcome.limit:
        return outcome.describe(limits) + " (answers captured before it are graded)", None
    if outcome.returncode not in (0, 3):
        return f"sandbox failed ({outcome.describe(limits)}): {last_line(outcome.stderr)}", None
    if outcome.returncode == 3:
        return "", f"kernel died: {last_line(outcome.stderr)}"
    return "", None


def keep(folders: Folders, keep_dir: Path, stem: str) -> None:
    """The executed notebook (if the sandbox left a regular file of it) and the kernel's
    stderr, as ``keep_dir/STEM.ipynb`` and ``STEM.stderr.txt``."""
    from vestige.runs import DiskFull, atomic_write

    keep_dir.mkdir(parents=True, exist_ok=True)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
    try:
        executed = plain.safe_read(folders.work / "executed.ipynb", 64 << 20)
        atomic_write(keep_dir / f"{stem}.ipynb", executed)
    except (plain.PlainDataError, OSError, DiskFull):
        pass
    try:  # written by the grader's own process: trusted, and capped by RLIMIT_FSIZE
        atomic_write(keep_dir / f"{stem}.stderr.txt", (folders.logs / "stderr.txt").read_bytes())
    except (OSError, DiskFull):
        pass


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def remove(path: Path) -> None:
    """Remove a submission's folder, whatever the sandbox left in it (read-only folders)."""

    def retry(function, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            function(target)
        except OSError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=retry)
