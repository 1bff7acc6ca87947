"""Gradebook by re-execution: ``vestige course grade DIR --runs RUNS --out gradebook.csv``.

Data flow, per submission (the grader never reads stored outputs)::

    file --intake--> notebook JSON --prepare--> learner cells + instructor's check cells
         + injected parameters (student, runs_dir=/runs, another seed...)
         --sandbox (bwrap)--> kernel runs it; Checker (grading mode) writes each answer's
           plain data (JSON/.npy) into the scratch dir; nothing else leaves the sandbox
         --grader process--> loads the plain data (hostile-input rules), rebuilds the
           checks' context from the same parameters and hidden inputs, calls ``judge``
         --> row: points, status per exercise, reason, flags

* Intake (:mod:`.intake`): regular files under a size cap; every unreadable, invalid or
  malformed file is a row with a reason, never an exception; the student comes from the
  folder or file name.
* Duplicates and resubmissions: for each (student, notebook), the file with the latest
  modification time counts (ties: the higher ``(N)`` resubmission number, then the name);
  the others are listed in its flags and not run.
* Stamps: a notebook of another course (``metadata.vestige.course``) is not graded; one
  of another build, without a stamp, or the solution variant is graded and flagged.
* Check cells are restored from the manifest (:mod:`.prepare`).
* Grading parameters come from the notebook's checks module: typically a precomputed run
  of another seed than the learner's, so a pasted constant is wrong; function exercises
  get hidden inputs generated per submission (``--salt`` makes them reproducible).
  ``--param NAME=JSON`` sets a parameter for the notebooks that declare it (it wins over
  the module's choice), ``--data NAME=DIR`` mounts a folder read-only at ``/data/NAME``.
* After all submissions: identical learner code in a solution cell across students, code
  identical to the reference solution, and byte-identical files are flagged for review.
* The CSV is always written; text fields that a spreadsheet would read as a formula
  (``= + - @``, tab, CR at the start) are prefixed with ``'``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import math
import os
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import checks as checks_registry
from . import intake, plain, sandbox
from .builder import MANIFEST_FORMAT, MANIFEST_NAME
from .checker import GRADING_DIR_ENV, GRADING_HIDDEN_ENV
from .checks import AnswerError, one_line
from .prepare import prepare, student_parameter

DEFAULT_MANIFEST = Path("course/solutions") / MANIFEST_NAME
NOT_RUN = "not_run"
INSIDE_RUNS = "/runs"
INSIDE_IN = "/grade/in"
INSIDE_WORK = "/grade/work"
INSIDE_CHECKS = "/grade/checks"
INSIDE_DATA = "/data"
CAPTURE = "capture"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass
class Options:
    """How to grade: where things are, and the sandbox's limits."""

    manifest: str | Path | dict = DEFAULT_MANIFEST
    runs: str | Path | None = None
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    max_bytes: int = intake.DEFAULT_MAX_BYTES
    salt: str | None = None
    parameters: dict = field(default_factory=dict)  # extra, for notebooks that declare them
    data: dict = field(default_factory=dict)  # {name: host dir}, read-only at /data/name
    keep: str | Path | None = None  # keep executed notebooks and logs here
    jobs: int = 1
    work_dir: str | Path | None = None


def load_manifest(manifest: str | Path | dict) -> dict:
    """The manifest written by ``build`` (course id, per notebook: build, cells, exercises)."""
    if isinstance(manifest, dict):
        document = manifest
    else:
        path = Path(manifest)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run `vestige course build` first")
        document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("format") != MANIFEST_FORMAT or not isinstance(document.get("notebooks"), dict):
        raise ValueError("not a course manifest (run `vestige course build` again)")
    return document


def grade(
    paths: str | Path | Iterable[str | Path],
    manifest: str | Path | dict = DEFAULT_MANIFEST,
    runs: str | Path | None = None,
    **options,
) -> pd.DataFrame:
    """One row per (student, notebook): re-executed in a sandbox and judged here.

    Columns: student, notebook, points, max_points, percent, one status column per
    exercise (passed / failed / not_attempted / error / not_run), reason, flags, grading
    (the injected parameters), file. ``options`` are the fields of :class:`Options`.
    """
    return Grader(Options(manifest=manifest, runs=runs, **options)).grade(paths)


def grade_to_csv(
    paths,
    out_csv: str | Path,
    manifest: str | Path | dict = DEFAULT_MANIFEST,
    runs: str | Path | None = None,
    details: str | Path | None = None,
    **options,
) -> pd.DataFrame:
    """``grade`` and write the gradebook to ``out_csv`` (and per-submission details as JSON
    lines to ``details``); returns the gradebook. The CSV is written even if grading is
    interrupted (with the rows done so far)."""
    grader = Grader(Options(manifest=manifest, runs=runs, **options))
    try:
        gradebook = grader.grade(paths)
    finally:
        if grader.rows is not None:
            write_csv(grader.frame(), out_csv)
            if details:
                write_details(grader.details, details)
    return gradebook


class Grader:
    def __init__(self, options: Options):
        self.options = options
        self.manifest = load_manifest(options.manifest)
        self.notebooks: dict[str, dict] = self.manifest["notebooks"]
        self.course = self.manifest.get("course")
        self.salt = options.salt if options.salt is not None else secrets.token_hex(8)
        self.runs = Path(options.runs).resolve() if options.runs else None
        for name, host in options.data.items():
            if not (name.isidentifier() and Path(host).is_dir()):
                raise ValueError(f"--data {name}={host}: a name (letters, digits, _) and a folder")
        self.rows: list[dict] | None = None
        self.details: list[dict] = []
        self._checks: dict[str, object] = {}

    # --- the run ---------------------------------------------------------------------------

    def grade(self, paths) -> pd.DataFrame:
        self.rows = []
        found = intake.discover(paths, list(self.notebooks), self.options.max_bytes)
        surveyed = [self._survey(sub) for sub in found]
        counted, unreadable = self._pick(surveyed)
        for item in unreadable:
            self._add(self._failure_row(item, item.reason))
            self.details.append(
                {
                    "file": str(item.sub.path),
                    "student": item.sub.student,
                    "notebook": item.notebook,
                    "points": 0,
                    "reason": item.reason,
                    "flags": item.flags,
                }
            )
        sandbox_problem = sandbox.probe() if counted else None
        work_root = Path(tempfile.mkdtemp(prefix="vestige-grade-", dir=self.options.work_dir))
        try:

            def one(numbered):
                number, item = numbered
                return self._grade_one(item, work_root / f"{number:04d}", sandbox_problem)

            if self.options.jobs > 1:
                with ThreadPoolExecutor(self.options.jobs) as pool:
                    for row in pool.map(one, enumerate(counted)):
                        self._add(row)
            else:
                for numbered in enumerate(counted):
                    self._add(one(numbered))
        finally:
            _rmtree(work_root)
        self._cross_flags(counted)
        return self.frame()

    def frame(self) -> pd.DataFrame:
        rows = self.rows or []
        graded = {row["notebook"] for row in rows}
        exercises = dict.fromkeys(
            ex for nb, entry in self.notebooks.items() if nb in graded for ex in entry["exercises"]
        )
        columns = [
            "student",
            "notebook",
            "points",
            "max_points",
            "percent",
            *exercises,
            "reason",
            "flags",
            "grading",
            "file",
        ]
        table = [{**{ex: "" for ex in exercises}, **row} for row in rows]
        for row in table:
            row["flags"] = printable("; ".join(row.get("flags_list", [])))
            row["reason"], row["file"] = printable(row["reason"]), printable(row["file"])
        frame = pd.DataFrame(table, columns=columns)
        return frame.sort_values(["student", "notebook", "file"], kind="stable").reset_index(
            drop=True
        )

    def _add(self, row: dict) -> None:
        self.rows.append(row)

    # --- intake ----------------------------------------------------------------------------

    def _survey(self, sub: intake.Submission) -> Survey:
        """Read and check one file (cheap); what is needed to pick and to grade it."""
        item = Survey(sub)
        try:
            raw, nb = intake.read(sub, self.options.max_bytes)
        except intake.IntakeError as exc:
            item.reason = str(exc)
            item.notebook = self._notebook_from_name(sub)
            return item
        except Exception as exc:
            item.reason = f"cannot read: {one_line(exc)}"
            return item
        item.sha256 = hashlib.sha256(raw).hexdigest()
        stamp = (nb.get("metadata") or {}).get("vestige")
        stamp = stamp if isinstance(stamp, dict) else {}
        from_meta = stamp.get("notebook") if isinstance(stamp.get("notebook"), str) else None
        from_name = self._notebook_from_name(sub)
        if from_meta in self.notebooks:
            item.notebook = from_meta
            if from_name and from_name != from_meta:
                item.flags.append(f"file name says {from_name}, notebook is {from_meta}")
        elif from_name:
            item.notebook = from_name
            if from_meta:
                item.flags.append(f"unknown notebook id in metadata: {from_meta[:60]}")
        else:
            item.reason = "not a notebook of this course (no known notebook id)"
            return item
        course = stamp.get("course")
        if not stamp:
            item.flags.append("no course stamp in the metadata")
        elif course != self.course:
            item.reason = f"another course: stamped {str(course)[:60]!r}, this is {self.course!r}"
            return item
        elif stamp.get("build") != self.notebooks[item.notebook]["build"]:
            item.flags.append(
                f"another build: {str(stamp.get('build'))[:20]}, current "
                f"{self.notebooks[item.notebook]['build']}"
            )
        if stamp.get("variant") == "solution":
            item.flags.append("the solution notebook, not the learner's")
        said = student_parameter(nb)
        if said and intake.normalise_student(said) != sub.student:
            item.flags.append(f"student parameter says {said[:60]!r}")
        if not sub.student:
            item.flags.append("no student name in the folder or file name")
        return item

    def _notebook_from_name(self, sub: intake.Submission) -> str | None:
        name = sub.path.name.casefold()
        matches = [nb for nb in self.notebooks if nb.casefold() in name]
        return max(matches, key=len) if matches else None

    def _pick(self, surveyed: list[Survey]) -> tuple[list[Survey], list[Survey]]:
        """Counted submissions (one per student and notebook) and rows for the rest."""
        unreadable = [s for s in surveyed if s.reason]
        groups: dict[tuple, list[Survey]] = defaultdict(list)
        for item in surveyed:
            if not item.reason:  # files without a student name are never merged
                who = item.sub.student or f"\0{item.sub.path}"
                groups[(who, item.notebook)].append(item)
        counted = []
        for _, items in sorted(groups.items()):
            items.sort(key=lambda s: (s.sub.mtime, s.sub.resubmission, str(s.sub.path)))
            latest = items[-1]
            if len(items) > 1:
                others = ", ".join(s.sub.path.name for s in items[:-1])
                latest.flags.append(f"{len(items) - 1} earlier submission(s) not graded: {others}")
            counted.append(latest)
        return counted, unreadable

    # --- one submission --------------------------------------------------------------------

    def _grade_one(self, item: Survey, folder: Path, sandbox_problem: str | None) -> dict:
        started = time.monotonic()
        detail = {
            "file": str(item.sub.path),
            "student": item.sub.student,
            "notebook": item.notebook,
            "salt": self.salt,
        }
        try:
            row = self._run_and_judge(item, folder, sandbox_problem, detail)
        except Exception as exc:
            row = self._failure_row(item, f"grader error: {one_line(exc)}")
        finally:
            _rmtree(folder)
        detail.update(
            seconds=round(time.monotonic() - started, 2),
            points=row["points"],
            reason=row["reason"],
            flags=row["flags_list"],
        )
        self.details.append(detail)
        return row

    def _run_and_judge(self, item: Survey, folder: Path, sandbox_problem, detail: dict) -> dict:
        entry = self.notebooks[item.notebook]
        try:
            raw, nb = intake.read(item.sub, self.options.max_bytes)
        except intake.IntakeError as exc:
            return self._failure_row(item, str(exc))
        if hashlib.sha256(raw).hexdigest() != item.sha256:
            item.flags.append("file changed while grading")
        checks = self._load_checks(item.notebook, entry)
        rng = _rng(self.salt, item.sub.student, item.notebook)
        if (
            checks is not None
            and self.runs is None
            and hasattr(checks.module, "grading_parameters")
        ):
            return self._failure_row(
                item, "this notebook is graded against precomputed runs: pass --runs DIR"
            )
        try:
            chosen = checks.grading_parameters(self.runs, rng) if checks else {}
        except Exception as exc:
            return self._failure_row(item, f"cannot set up grading: {one_line(exc)}")
        injected = {}
        declared = set(entry.get("parameters", []))
        if "student" in declared:
            injected["student"] = item.sub.student
        if "runs_dir" in declared and self.runs is not None:
            injected["runs_dir"] = INSIDE_RUNS
        injected.update(chosen)
        injected.update({k: v for k, v in self.options.parameters.items() if k in declared})
        judge_params = {
            **injected,
            "runs_dir": str(self.runs) if self.runs else injected.get("runs_dir"),
        }
        hidden = checks.hidden_inputs(judge_params, rng) if checks else None
        detail["grading"] = {k: v for k, v in injected.items() if k != "student"}
        notebook, flags, fingerprints = prepare(nb, entry, injected)
        item.flags += flags
        item.fingerprints = fingerprints
        if sandbox_problem:
            return self._failure_row(
                item, f"sandbox unavailable: {sandbox_problem}", detail["grading"]
            )
        inputs, work, logs = folder / "in", folder / "work", folder / "log"
        for path in (inputs, work / CAPTURE, logs):
            path.mkdir(parents=True)
        (inputs / "notebook.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
        if hidden is not None:
            plain.dump(inputs, "hidden", {"hidden": hidden})
        outcome = self._execute(inputs, work, logs, checks, item.notebook)
        detail.update(
            sandbox_seconds=round(outcome.wall_seconds, 2),
            peak_memory_mb=round(outcome.peak_memory_bytes / 2**20),
        )
        reason = ""
        if outcome.limit:
            reason = (
                outcome.describe(self.options.limits) + " (answers captured before it are graded)"
            )
        elif outcome.returncode not in (0, 3):
            reason = f"sandbox failed ({outcome.describe(self.options.limits)}): {_last_line(outcome.stderr)}"
        elif outcome.returncode == 3:
            item.flags.append(f"kernel died: {_last_line(outcome.stderr)}")
        self._keep(item, work, logs)
        statuses, messages = self._judge(item, entry, checks, work / CAPTURE, judge_params, hidden)
        detail["exercises"] = messages
        return self._row(item, statuses, reason, detail["grading"])

    def _execute(self, inputs: Path, work: Path, logs: Path, checks, notebook: str):
        mounts = sandbox.Mounts(read_only=[(inputs, INSIDE_IN)], writable=[(work, INSIDE_WORK)])
        if self.runs is not None:
            mounts.read_only.append((self.runs, INSIDE_RUNS))
        for name, host in sorted(self.options.data.items()):
            mounts.read_only.append((Path(host).resolve(), f"{INSIDE_DATA}/{name}"))
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
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
        if (inputs / "hidden.json").exists():
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
            limits=self.options.limits,
            log_dir=logs,
            watch_dir=work,
        )

    def _judge(self, item: Survey, entry: dict, checks, capture_dir: Path, params: dict, hidden):
        statuses, messages = {}, {}
        try:  # the sandbox is gone: a folder checked now stays what it is
            real_folder = stat.S_ISDIR(os.lstat(capture_dir).st_mode)
        except OSError:
            real_folder = False
        if not real_folder:
            item.flags.append("the capture folder was removed or replaced")
            return {ex: "error" for ex in entry["exercises"]}, {}
        context = None
        legacy_flagged = False
        for exercise in entry["exercises"]:
            try:
                payload = plain.load(capture_dir, exercise)
            except (plain.PlainDataError, OSError) as exc:
                statuses[exercise], messages[exercise] = "error", f"unreadable capture: {exc}"
                item.flags.append(f"malformed capture for {exercise}")
                continue
            if payload is None:
                statuses[exercise], messages[exercise] = NOT_RUN, "the check did not run"
                continue
            status = payload.get("status")
            if payload.get("exercise") != exercise:
                statuses[exercise], messages[exercise] = "error", "capture of another exercise"
                item.flags.append(f"malformed capture for {exercise}")
                continue
            if checks is None:  # old inline checks: the kernel's verdict is all there is
                if not legacy_flagged:
                    item.flags.append("old-style checks: verdicts computed inside the sandbox")
                    legacy_flagged = True
                statuses[exercise] = (
                    status if status in ("passed", "failed", "not_attempted", "error") else "error"
                )
                messages[exercise] = str(payload.get("detail", ""))[:300]
                continue
            if status in ("not_attempted", "failed", "error"):
                statuses[exercise], messages[exercise] = (
                    status,
                    str(payload.get("detail", ""))[:300],
                )
                continue
            if status != "captured":
                statuses[exercise], messages[exercise] = "error", "capture with an unknown status"
                item.flags.append(f"malformed capture for {exercise}")
                continue
            try:
                if context is None:
                    context = checks.context(params, hidden)
                verdict = checks.exercises[exercise].judge(payload.get("data"), context)
                statuses[exercise] = "passed" if bool(verdict.passed) else "failed"
                messages[exercise] = verdict.message()
            except AnswerError as exc:
                statuses[exercise], messages[exercise] = "failed", f"malformed answer data: {exc}"
                item.flags.append(f"malformed capture for {exercise}")
            except Exception as exc:
                statuses[exercise], messages[exercise] = "error", f"judge failed: {one_line(exc)}"
                item.flags.append(f"judge failed on {exercise}: {one_line(exc, 120)}")
        return statuses, messages

    def _load_checks(self, notebook: str, entry: dict):
        """The checks module the build recorded (``None`` for old inline checks)."""
        if notebook not in self._checks:
            checks = None
            if entry.get("api") == "checks":
                checks = checks_registry.Checks(importlib.import_module(entry["checks_module"]))
                if checks.notebook != notebook:
                    raise ValueError(
                        f"{entry['checks_module']} is the checks module of {checks.notebook}"
                    )
            self._checks[notebook] = checks
        return self._checks[notebook]

    def _keep(self, item: Survey, work: Path, logs: Path) -> None:
        if not self.options.keep:
            return
        keep = Path(self.options.keep)
        keep.mkdir(parents=True, exist_ok=True)
        stem = f"{item.sub.student or 'unknown'}_{item.notebook}_{item.sha256[:8]}"
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
        try:
            data = plain.safe_read(work / "executed.ipynb", 64 << 20)
            (keep / f"{stem}.ipynb").write_bytes(data)
        except (plain.PlainDataError, OSError):
            pass
        for name in ("stderr.txt",):
            try:
                shutil.copyfile(logs / name, keep / f"{stem}.{name}")
            except OSError:
                pass

    # --- rows ------------------------------------------------------------------------------

    def _row(self, item: Survey, statuses: dict, reason: str, grading: dict | None = None) -> dict:
        entry = self.notebooks.get(item.notebook)
        exercises = entry["exercises"] if entry else {}
        points = sum(p for ex, p in exercises.items() if statuses.get(ex) == "passed")
        max_points = sum(exercises.values()) if entry else math.nan
        percent = round(100 * points / max_points, 1) if entry and max_points else math.nan
        return {
            "student": item.sub.student,
            "notebook": item.notebook,
            "points": points,
            "max_points": max_points,
            "percent": percent,
            **{ex: statuses.get(ex, NOT_RUN) for ex in exercises},
            "reason": reason,
            "flags_list": item.flags,
            "grading": json.dumps(grading, sort_keys=True) if grading else "",
            "file": str(item.sub.path),
        }

    def _failure_row(self, item: Survey, reason: str, grading: dict | None = None) -> dict:
        item.reason = reason
        return self._row(item, {}, reason, grading)

    def _cross_flags(self, counted: list[Survey]) -> None:
        """Flag identical solution code across students, and code equal to the reference."""
        by_code: dict[tuple, set[str]] = defaultdict(set)
        by_file: dict[str, set[str]] = defaultdict(set)
        for item in counted:
            by_file[item.sha256].add(item.sub.student)
            entry = self.notebooks[item.notebook]
            for cell_id, fingerprint in item.fingerprints.items():
                spec = entry["solution_cells"].get(cell_id, {})
                if fingerprint != spec.get("stub"):
                    by_code[(item.notebook, cell_id, fingerprint)].add(item.sub.student)
        for item in counted:
            entry = self.notebooks[item.notebook]
            for cell_id, fingerprint in sorted(item.fingerprints.items()):
                spec = entry["solution_cells"].get(cell_id, {})
                if fingerprint == spec.get("stub"):
                    continue
                if fingerprint == spec.get("solution"):
                    item.flags.append(f"same code as the reference solution in {cell_id}")
                others = sorted(by_code[(item.notebook, cell_id, fingerprint)] - {item.sub.student})
                if others:
                    item.flags.append(
                        f"same code in {cell_id} as: {', '.join(others[:8])}"
                        + (" …" if len(others) > 8 else "")
                    )
            twins = sorted(by_file[item.sha256] - {item.sub.student})
            solved = any(
                fp != entry["solution_cells"].get(cid, {}).get("stub")
                for cid, fp in item.fingerprints.items()
            )
            if twins and solved:
                item.flags.append(f"byte-identical file to: {', '.join(twins[:8])}")


@dataclass
class Survey:
    """A discovered file after a first read: its notebook, flags, or why it cannot be graded."""

    sub: intake.Submission
    notebook: str | None = None
    reason: str = ""
    sha256: str = ""
    flags: list[str] = field(default_factory=list)
    fingerprints: dict = field(default_factory=dict)


def _rng(salt: str, student: str, notebook: str):
    import numpy as np

    digest = hashlib.sha256(f"{salt}\0{student}\0{notebook}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _rmtree(path: Path) -> None:
    def retry(function, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            function(target)
        except OSError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=retry)


# --- output ------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` with control characters (newlines, terminal escapes...) shown as ``\\uXXXX``:
    file names, metadata and a kernel's last words reach the instructor's terminal."""
    if not isinstance(text, str):
        return text
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def _printable_all(value):
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): _printable_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable_all(v) for v in value]
    return value


def neutralise(value):
    """A text field as a spreadsheet will not run it: leading ``= + - @ \\t \\r`` get a ``'``."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(_FORMULA_START) or value.lstrip().startswith(_FORMULA_START[:4]):
        return "'" + value
    return value


def write_csv(gradebook: pd.DataFrame, out_csv: str | Path) -> None:
    """The gradebook as CSV, every text field neutralised, written atomically."""
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(f".{out_csv.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        writer.writerow([neutralise(str(c)) for c in gradebook.columns])
        for row in gradebook.itertuples(index=False):
            writer.writerow(
                ["" if (isinstance(v, float) and math.isnan(v)) else neutralise(v) for v in row]
            )
    os.replace(tmp, out_csv)


def write_details(details: list[dict], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps(detail, default=str) + "\n"
            for detail in sorted(
                details, key=lambda d: (d.get("student") or "", d.get("file") or "")
            )
        )
