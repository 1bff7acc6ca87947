"""How long each course notebook takes and how much memory it needs, measured.

``vestige course time`` executes every learner (unsolved) and solution notebook with
papermill on one CPU core, in a fresh working copy, and records per notebook the wall time
and the peak memory of the kernel and of the whole process tree (psutil, polled every 0.1 s).
It writes ``course/timings.json`` and rewrites the tables between the markers
``<!-- timings:start -->`` and ``<!-- timings:end -->`` in the syllabus and the instructor
guide, so that every time and memory figure they state is a measurement.
"""

from __future__ import annotations

import json
import os
import platform
import re
import threading
import time
from dataclasses import asdict, dataclass
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


def time_notebook(path: Path, workdir: Path, parameters: dict, variant: str,
                  timeout: float = 1800) -> Timing:
    """Execute one notebook (in `workdir`, on the caller's CPU affinity) and measure it."""
    import papermill as pm

    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{path.stem}.{variant}.ipynb"
    started = time.perf_counter()
    error = ""
    with PeakMemory() as peak:
        try:
            pm.execute_notebook(str(path), str(out), parameters=parameters, cwd=str(workdir),
                                kernel_name="python3", progress_bar=False,
                                execution_timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - recorded: a failing notebook is a result too
            error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return Timing(path.stem, variant, round(time.perf_counter() - started, 1),
                  round(peak.kernel / MB), round(peak.tree / MB), not error, error)


def time_course(notebooks_dir: Path, solutions_dir: Path, workdir: Path, runs_dir: Path,
                cpu: int | None = 0) -> list[Timing]:
    """Every learner and solution notebook, one after another, pinned to one core."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})  # the kernels papermill starts inherit it
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    timings = []
    for variant, folder in (("solution", solutions_dir), ("learner", notebooks_dir)):
        for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
            parameters = {"runs_dir": str(Path(runs_dir).resolve())}
            timings.append(time_notebook(path, workdir / variant, parameters, variant))
    return timings


def write_timings(timings: list[Timing], out: Path) -> dict:
    data = {"machine": {"python": platform.python_version(), "cpu": platform.processor()
                        or platform.machine(), "cores_used": 1},
            "measured": time.strftime("%Y-%m-%d"), "notebooks": [asdict(t) for t in timings]}
    out.write_text(json.dumps(data, indent=1) + "\n")
    return data


def timing_table(data: dict) -> str:
    """The markdown table the syllabus and the instructor guide show."""
    rows = ["| notebook | solved: time, peak memory (kernel / all processes) | unsolved: time |",
            "|---|---|---|"]
    by_name: dict[str, dict[str, dict]] = {}
    for t in data["notebooks"]:
        by_name.setdefault(t["notebook"], {})[t["variant"]] = t
    for name, variants in sorted(by_name.items()):
        s, u = variants.get("solution"), variants.get("learner")
        solved = (f"{s['seconds']:.0f} s, {s['kernel_peak_mb']} / {s['tree_peak_mb']} MB"
                  + ("" if s["ok"] else " (failed)")) if s else "n/a"
        rows.append(f"| `{name}` | {solved} | {u['seconds']:.0f} s |" if u else f"| `{name}` | {solved} | n/a |")
    rows.append("")
    rows.append(f"Measured by `vestige course time` on {data['measured']} ({data['machine']['cpu']}, "
                "one core, precomputed runs on disk).")
    return "\n".join(rows)


def insert_table(document: Path, table: str) -> bool:
    """Replace what lies between the timing markers in `document`; False if it has none."""
    text = document.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return False
    document.write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", text))
    return True
