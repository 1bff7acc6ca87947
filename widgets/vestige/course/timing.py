"""How long each course notebook takes and how much memory it needs, under Binder's limits.

``make binder-check`` (scripts/binder/check.py) runs every learner (unsolved) and solution
notebook through `execute_limited`: one CPU, a memory ceiling enforced on the whole process
tree, Binder's idle cull. It writes its table (`limited_table`) into the syllabus and the
instructor guide between the markers ``<!-- timings:start -->`` and ``<!-- timings:end -->``
(`insert_table`), so every time and memory figure they state is this measurement.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

START, END = "<!-- timings:start -->", "<!-- timings:end -->"
MB = 1024 * 1024


@dataclass
class Timing:
    notebook: str
    variant: str  # "learner" (unsolved) or "solution"
    seconds: float
    kernel_peak_mb: float
    tree_peak_mb: float
    ok: bool
    error: str = ""
    cpu_seconds: float = 0.0  # CPU time of the kernel and its children
    limit: str = ""  # the limit that killed it: "memory", "wall time", ...
    limit_mb: float = 0.0
    silence_seconds: float = 0.0  # longest stretch with no kernel message, wall clock
    silence_cpu_seconds: float = 0.0  # the same, in kernel CPU seconds (contention-free)
    slowest_cell: int = -1  # index of the longest-running cell, and its wall time
    slowest_cell_seconds: float = 0.0
    error_cells: int = 0  # cells that raised (expected in unsolved notebooks)
    runner_mb: float = 0.0  # peak RSS of the runner process (the server's stand-in)


class PeakMemory:
    """Polls the resident memory of this process's children (the kernel and what it starts)
    every `interval` seconds in a thread; `kernel` is the largest single process, `tree` the
    largest sum over the tree at one instant."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.kernel = 0
        self.tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            sizes = []
            for child in me.children(recursive=True):
                try:
                    sizes.append(child.memory_info().rss)
                except psutil.Error:
                    continue
            if sizes:
                self.kernel = max(self.kernel, max(sizes))
                self.tree = max(self.tree, sum(sizes))
            self._stop.wait(self.interval)


def insert_table(document: Path, table: str) -> bool:
    """Replace what lies between the timing markers in `document`; False if it has none."""
    text = document.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return False
    from vestige.runs import atomic_write

    atomic_write(document, pattern.sub(lambda _: f"{START}\n{table}\n{END}", text))
    return True


# Memory: the child process (``python -m vestige.course.timing``, standing in for the Jupyter
# server) and the kernel it starts are measured and killed as one tree, by the grading
# sandbox's enforcement (`sandbox.Limits`, its watchdog `_watch` and `rlimit_prefix`: the
# tree's RSS, PSS above the limit, polled every 0.1 s, SIGKILL; RLIMIT_DATA as the hard
# backstop). cgroup v2 has no memory controller on these machines and RLIMIT_AS breaks torch
# and vl-convert (see `sandbox`).
#
# Silence: Binder culls a session after 10 minutes without activity; while a notebook runs,
# the activity the server sees is the kernel's messages (outputs, progress bars, a cell
# starting or ending). The longest stretch without any message is measured in wall seconds
# and in the kernel's CPU seconds: the latter is how long the stretch would last on a CPU of
# its own, whatever else this machine is running, and is what the cull check compares.

CULL_SECONDS = 600.0


def execute_limited(
    path: Path,
    out: Path,
    cwd: Path,
    variant: str,
    limits=None,
    cpu: int | None = 0,
    allow_errors: bool | None = None,
    parameters: dict | None = None,
    python: str | None = None,
) -> Timing:
    """Execute `path` into `out` with `cwd` as the kernel's working directory, under `limits`
    (default: `sandbox.Limits()`, 2 GB) on CPU `cpu`; unsolved (learner) notebooks continue
    after an error, solutions do not."""
    import subprocess
    import sys
    import tempfile

    from .sandbox import Limits, _watch, rlimit_prefix

    limits = limits or Limits()
    allow_errors = variant != "solution" if allow_errors is None else allow_errors
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vestige-limited-") as scratch:
        spec = Path(scratch) / "spec.json"
        result = Path(scratch) / "result.json"
        spec.write_text(
            json.dumps(
                {
                    "notebook": str(path),
                    "out": str(out),
                    "cwd": str(cwd),
                    "allow_errors": allow_errors,
                    "parameters": parameters or {},
                    "timeout": limits.wall_seconds,
                    "result": str(result),
                }
            )
        )
        pin = ["taskset", "--cpu-list", str(cpu)] if cpu is not None else []
        argv = [
            *rlimit_prefix(limits),
            *pin,
            python or sys.executable,
            "-m",
            "vestige.course.timing",
            str(spec),
        ]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        log = out.with_suffix(".log")
        start = time.monotonic()
        with open(log, "wb") as sink, PeakMemory() as peak:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            limit, tree_peak = _watch(process, limits, start, None)
        seconds = time.monotonic() - start
        data = json.loads(result.read_text()) if result.exists() else {}
    error = data.get("error", "")
    if limit:
        error = f"killed by the {limit} limit" + (f" ({error})" if error else "")
    elif process.returncode and not error:
        error = f"runner exit status {process.returncode}; see {log}"
    return Timing(
        Path(path).stem,
        variant,
        round(seconds, 1),
        round(peak.kernel / MB),
        round(max(tree_peak, peak.tree) / MB),
        not error,
        error,
        cpu_seconds=round(data.get("cpu_seconds", 0.0), 1),
        limit=limit or "",
        limit_mb=round(limits.memory_bytes / MB),
        silence_seconds=round(data.get("silence", 0.0), 1),
        silence_cpu_seconds=round(data.get("silence_cpu", 0.0), 1),
        slowest_cell=data.get("slowest_cell", -1),
        slowest_cell_seconds=round(data.get("slowest_cell_seconds", 0.0), 1),
        error_cells=data.get("error_cells", 0),
        runner_mb=round(data.get("runner_mb", 0.0)),
    )


class _Activity:
    """Times between the kernel's messages, in wall seconds and in kernel CPU seconds."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self._procs: dict[int, object] = {}
        self._cpu_done = 0.0
        self._refreshed = 0.0
        self.last_wall, self.last_cpu = time.monotonic(), 0.0
        self.silence = self.silence_cpu = 0.0

    def cpu(self) -> float:
        import psutil

        now = time.monotonic()
        if now - self._refreshed > 2.0:  # pick up processes the kernel started
            self._refreshed = now
            for child in self._me.children(recursive=True):
                self._procs.setdefault(child.pid, child)
        total = 0.0
        for pid, proc in list(self._procs.items()):
            try:
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                self._procs.pop(pid)  # its time is lost unless reaped into its parent's
        self._cpu_done = max(self._cpu_done, total)
        return self._cpu_done

    def tick(self) -> None:
        wall, cpu = time.monotonic(), self.cpu()
        self.silence = max(self.silence, wall - self.last_wall)
        self.silence_cpu = max(self.silence_cpu, cpu - self.last_cpu)
        self.last_wall, self.last_cpu = wall, cpu


def _execute_child(spec: dict) -> dict:
    """In the child: run the notebook with nbclient, noting every kernel message."""
    import resource

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(spec["notebook"], as_version=4)
    if spec["parameters"]:
        from papermill.parameterize import parameterize_notebook

        nb = parameterize_notebook(nb, spec["parameters"])
    activity = _Activity()
    cells: dict[int, float] = {}

    class Client(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            activity.tick()
            return super().process_message(msg, cell, cell_index)

        async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
            started = time.monotonic()
            try:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            finally:
                cells[cell_index] = time.monotonic() - started

    client = Client(
        nb,
        timeout=int(spec["timeout"]),
        kernel_name="python3",
        allow_errors=spec["allow_errors"],
        resources={"metadata": {"path": spec["cwd"]}},
    )
    error = ""
    try:
        client.execute()
    except CellExecutionError as exc:
        error = " ".join(str(exc).split())[-300:]
    except Exception as exc:
        error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    activity.tick()
    nbformat.write(nb, spec["out"])
    slowest = max(cells, key=cells.get) if cells else -1
    return {
        "error": error,
        "cpu_seconds": activity.last_cpu,
        "silence": activity.silence,
        "silence_cpu": activity.silence_cpu,
        "slowest_cell": slowest,
        "slowest_cell_seconds": cells.get(slowest, 0.0),
        "error_cells": sum(
            any(o.get("output_type") == "error" for o in c.get("outputs", []))
            for c in nb.cells
            if c.cell_type == "code"
        ),
        "runner_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def limited_table(
    timings: list[Timing],
    server_mb: float = 0.0,
    min_headroom: float = 0.25,
    cull_seconds: float = CULL_SECONDS,
) -> str:
    """Markdown table of `execute_limited` results: one row per notebook and variant."""
    rows = [
        (
            "| notebook | variant | wall s | CPU s | kernel peak MB | tree peak MB | "
            "session MB (+ server) | headroom | longest silence (CPU s / wall s) | fits |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        rows.append(
            f"| `{t.notebook}` | {t.variant} | {t.seconds:.0f} | {t.cpu_seconds:.0f} | "
            f"{t.kernel_peak_mb:.0f} | {t.tree_peak_mb:.0f} | "
            f"{t.tree_peak_mb + server_mb:.0f} | {headroom(t, server_mb):.0%} | "
            f"{t.silence_cpu_seconds:.0f} / {t.silence_seconds:.0f} | "
            f"{verdict(t, server_mb, min_headroom, cull_seconds)} |"
        )
    return "\n".join(rows)


def headroom(t: Timing, server_mb: float = 0.0) -> float:
    return 1 - (t.tree_peak_mb + server_mb) / t.limit_mb if t.limit_mb else 0.0


def verdict(
    t: Timing,
    server_mb: float = 0.0,
    min_headroom: float = 0.25,
    cull_seconds: float = CULL_SECONDS,
) -> str:
    """ "yes", or why not: killed, failed, too little headroom, a silence that risks the cull."""
    if t.limit:
        return f"no: killed by the {t.limit} limit"
    if not t.ok:
        return "no: failed"
    if t.silence_cpu_seconds > cull_seconds:
        return f"no: silent {t.silence_cpu_seconds:.0f} s > cull {cull_seconds:.0f} s"
    if headroom(t, server_mb) < min_headroom:
        return f"no: headroom {headroom(t, server_mb):.0%} < {min_headroom:.0%}"
    return "yes"


if __name__ == "__main__":  # the child process of `execute_limited`
    import sys

    _spec = json.loads(Path(sys.argv[1]).read_text())
    _result = _execute_child(_spec)
    Path(_spec["result"]).write_text(json.dumps(_result))
    sys.exit(0)
