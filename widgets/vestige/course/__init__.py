"""Course tooling: build notebooks from ``course/*.py``, check exercises, grade submissions.

* ``build(...)`` turns jupytext sources into learner and solution notebooks, stamped with
  the course id and a build hash, and writes the manifest grading checks against.
* ``Checker("00_welcome", **params)("ex1", answer)`` gives immediate feedback; the
  reference logic lives in the notebook's checks module (:mod:`vestige.course.checks`).
* ``grade(paths, runs=...)`` / ``grade_to_csv(paths, out_csv, runs=...)`` re-execute
  submissions in a sandbox and judge the captured answers outside it.
* ``add_course_parser(subparsers)`` adds ``vestige course build|grade`` to the CLI.

Names are imported lazily: a notebook's ``from vestige.course import Checker`` loads
neither the builder nor the grader (nor pandas).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MIME_TYPE": "checker",
    "STRICT_ENV": "checker",
    "CheckFailed": "checker",
    "Checker": "checker",
    "Exercise": "checks",
    "Verdict": "checks",
    "build": "builder",
    "add_course_parser": "commands",
    "build_command": "commands",
    "grade_command": "commands",
    "grade": "grader",
    "grade_to_csv": "grader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vestige.course' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
