"""Gradebook by re-execution: ``vestige course grade DIR --runs RUNS --out gradebook.csv``.

Grading is a list of small steps in order, as nbgrader's autograde preprocessors are; each
lives in a module named for what it does and can be run alone. For the whole class
(:meth:`Grader.grade`):

1. **discover** the ``*.ipynb`` files and whose they are (:mod:`.intake`);
2. **survey** each: which notebook, its stamps, its parameters' claims (:mod:`.survey`);
3. **choose** the one file per student and notebook that counts (:mod:`.resubmissions`);
4. **grade** each counted submission through :data:`STEPS` (below), in ``jobs`` threads;
5. **detect copies** across students and of the reference solution (:mod:`.copies`);
6. **tabulate** and **write** the gradebook and the details (:mod:`.gradebook`).

For one submission, :data:`STEPS` (the grader never reads stored outputs)::

    reread -> load checks -> choose parameters (:mod:`.parameters`)
      -> prepare: restore parameters and checks, drop extras, inject (:mod:`.prepare`)
      -> require the sandbox -> execute in it (:mod:`.execute`: only plain data leaves it)
      -> judge the captured data here (:mod:`.judge`)

A step that finds the submission cannot be graded raises :class:`Ungradable`; its row then
says why. Every failure is a row with a reason, never an exception; the CSV is always
written, with the rows done so far if grading is interrupted.

* Grading parameters come from the notebook's checks module: typically a precomputed run
  of another seed than the learner's, so a pasted constant is wrong; function exercises
  get hidden inputs generated per submission (``--salt`` makes them reproducible).
  ``--param NAME=JSON`` sets a parameter for the notebooks that declare it (it wins over
  the module's choice), ``--data NAME=DIR`` mounts a folder read-only at ``/data/NAME``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import checks as checks_registry
from . import copies, execute, gradebook, intake, judge, parameters, resubmissions, sandbox
from .builder import MANIFEST_FORMAT, MANIFEST_NAME
from .checks import one_line
from .prepare import prepare
from .survey import Survey, survey

DEFAULT_MANIFEST = Path("course/solutions") / MANIFEST_NAME


class Ungradable(Exception):
    """A submission that cannot be graded (further); the message is its row's reason."""


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
        result = grader.grade(paths)
    finally:
        if grader.rows is not None:
            gradebook.write_csv(grader.table(), out_csv)
            if details:
                gradebook.write_details(grader.details, details)
    return result


@dataclass
class Job:
    """One counted submission on its way through :data:`STEPS`: what each step needs from
    the ones before it (nbgrader's ``resources``)."""

    grader: Grader
    item: Survey
    entry: dict  # the notebook's manifest entry
    folders: execute.Folders
    detail: dict  # what goes into the details file
    nb: dict | None = None  # the submitted notebook
    checks: checks_registry.Checks | None = None
    rng: Any = None
    grading: parameters.Grading | None = None
    notebook: dict | None = None  # the notebook to execute
    reason: str = ""
    statuses: dict[str, str] = field(default_factory=dict)

    @property
    def shown(self) -> dict | None:
        """The injected parameters the gradebook records, once they are chosen."""
        return self.grading.shown if self.grading else None


# --- the steps of one submission ---------------------------------------------------------------


def reread(job: Job) -> None:
    """Read the file again (the survey's copy is not kept); a change since is a flag."""
    try:
        raw, job.nb = intake.read(job.item.sub, job.grader.options.max_bytes)
    except intake.IntakeError as exc:
        raise Ungradable(str(exc)) from exc
    if hashlib.sha256(raw).hexdigest() != job.item.sha256:
        job.item.flags.append("file changed while grading")


def load_checks(job: Job) -> None:
    job.checks = job.grader.checks_of(job.item.notebook, job.entry)
    job.rng = parameters.submission_rng(job.grader.salt, job.item.sub.student, job.item.notebook)


def choose_parameters(job: Job) -> None:
    options = job.grader.options
    try:
        job.grading = parameters.choose(
            job.checks,
            job.entry.get("parameters", []),
            job.grader.runs,
            options.parameters,
            job.item.sub.student,
            job.rng,
        )
    except parameters.SetupError as exc:
        raise Ungradable(str(exc)) from exc
    job.detail["grading"] = job.grading.shown


def prepare_notebook(job: Job) -> None:
    job.notebook, flags, job.item.fingerprints = prepare(job.nb, job.entry, job.grading.injected)
    job.item.flags += flags


def require_sandbox(job: Job) -> None:
    if job.grader.sandbox_problem:
        raise Ungradable(f"sandbox unavailable: {job.grader.sandbox_problem}")


def execute_in_sandbox(job: Job) -> None:
    grader, folders = job.grader, job.folders
    execute.write_inputs(folders, job.notebook, job.grading.hidden)
    outcome = execute.run(
        folders,
        job.checks,
        job.item.notebook,
        grader.runs,
        grader.options.data,
        grader.options.limits,
    )
    job.detail.update(
        sandbox_seconds=round(outcome.wall_seconds, 2),
        peak_memory_mb=round(outcome.peak_memory_bytes / 2**20),
    )
    job.reason, flag = execute.ending(outcome, grader.options.limits)
    if flag:
        job.item.flags.append(flag)
    if grader.options.keep:
        item = job.item
        stem = f"{item.sub.student or 'unknown'}_{item.notebook}_{item.sha256[:8]}"
        execute.keep(folders, Path(grader.options.keep), stem)


def judge_captures(job: Job) -> None:
    job.statuses, job.detail["exercises"], flags = judge.judge(
        job.entry["exercises"],
        job.checks,
        job.folders.capture,
        job.grading.judged,
        job.grading.hidden,
    )
    job.item.flags += flags


STEPS: tuple[Callable[[Job], None], ...] = (
    reread,
    load_checks,
    choose_parameters,
    prepare_notebook,
    require_sandbox,
    execute_in_sandbox,
    judge_captures,
)


# --- the class -----------------------------------------------------------------------------------


class Grader:
    """Grades a class's submissions against one manifest; keeps the rows and details."""

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
        self.sandbox_problem: str | None = None
        self._checks: dict[str, checks_registry.Checks | None] = {}

    def grade(self, paths) -> pd.DataFrame:
        self.rows = []
        found = intake.discover(paths, list(self.notebooks), self.options.max_bytes)
        surveyed = [
            survey(sub, self.notebooks, self.course, self.options.max_bytes) for sub in found
        ]
        counted, unreadable = resubmissions.choose(surveyed)
        for item in unreadable:
            self.rows.append(self._failure(item, item.reason))
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
        self.sandbox_problem = sandbox.probe() if counted else None
        work_root = Path(tempfile.mkdtemp(prefix="vestige-grade-", dir=self.options.work_dir))
        try:
            numbered = [(work_root / f"{n:04d}", item) for n, item in enumerate(counted)]
            if self.options.jobs > 1:
                with ThreadPoolExecutor(self.options.jobs) as pool:
                    for row in pool.map(lambda args: self.grade_one(*args), numbered):
                        self.rows.append(row)  # one by one: an interruption keeps the rows done
            else:
                for args in numbered:
                    self.rows.append(self.grade_one(*args))
        finally:
            execute.remove(work_root)
        copies.flag_copies(counted, self.notebooks)
        return self.table()

    def grade_one(self, folder: Path, item: Survey) -> dict:
        """``item`` through :data:`STEPS` in ``folder`` (removed after); its row."""
        started = time.monotonic()
        job = Job(
            self,
            item,
            self.notebooks[item.notebook],
            execute.Folders(folder),
            {
                "file": str(item.sub.path),
                "student": item.sub.student,
                "notebook": item.notebook,
                "salt": self.salt,
            },
        )
        try:
            for step in STEPS:
                step(job)
            row = gradebook.row(item, job.entry, job.statuses, job.reason, job.shown)
        except Ungradable as exc:
            row = self._failure(item, str(exc), job.shown)
        except Exception as exc:
            row = self._failure(item, f"grader error: {one_line(exc)}")
        finally:
            execute.remove(folder)
        job.detail.update(
            seconds=round(time.monotonic() - started, 2),
            points=row["points"],
            reason=row["reason"],
            flags=row["flags_list"],
        )
        self.details.append(job.detail)
        return row

    def table(self) -> pd.DataFrame:
        return gradebook.table(self.rows or [], self.notebooks)

    def checks_of(self, notebook: str, entry: dict) -> checks_registry.Checks | None:
        """The checks module the build recorded (``None`` for old inline checks), loaded once."""
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

    def _failure(self, item: Survey, reason: str, grading: dict | None = None) -> dict:
        return gradebook.failure_row(item, self.notebooks.get(item.notebook), reason, grading)
