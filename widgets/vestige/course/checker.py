"""Immediate feedback for exercises, and the capture side of grading.

``check = Checker("00_welcome", runs_dir=runs_dir, seed=seed)`` in a ``check`` cell, then
``check("ex1", lambda: final_eval_loss)`` in another. The reference logic is not in the
notebook: it lives in the notebook's checks module (:mod:`vestige.course.checks`), which
turns the answer into plain data (``capture``) and compares that with the reference
(``judge``).

Two modes:

* **learner** (default): capture and judge run here, the cell shows ✅/❌/⏳/⚠️ feedback with
  a hint that gets more specific with each failed attempt in this kernel, and a
  machine-readable result (MIME ``application/vnd.vestige.check+json``). Nothing reads
  these outputs to grade: they are for the learner (and the tests).
* **grading** (``VESTIGE_GRADING_DIR`` set, by ``vestige course grade`` inside its
  sandbox): only capture runs, and its plain data is written to that directory
  (:mod:`vestige.course.plain`); the grader judges it in its own process. The context
  is built from the hidden inputs in ``VESTIGE_GRADING_HIDDEN``.

A notebook without a checks module (every notebook of this course has one; a course
outside the package may not) uses the old API, ``check("ex1", test, points=2, hint=...)``:
the test runs in the kernel. When graded, that status is all the grader gets; it flags such
rows.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import checks as checks_registry
from . import plain
from .checks import AnswerError, NotAttempted, one_line, unwrap

MIME_TYPE = "application/vnd.vestige.check+json"
STRICT_ENV = "VESTIGE_STRICT_CHECKS"
GRADING_DIR_ENV = "VESTIGE_GRADING_DIR"
GRADING_HIDDEN_ENV = "VESTIGE_GRADING_HIDDEN"
STATUSES = ("passed", "failed", "not_attempted", "error")

_ICONS = {"passed": "✅", "failed": "❌", "not_attempted": "⏳", "error": "⚠️", "captured": "📝"}
_HEADLINES = {
    "passed": "passed",
    "failed": "not passing yet",
    "not_attempted": "not attempted yet",
    "error": "the check raised an error",
    "captured": "answer recorded for grading",
}
_NOT_ATTEMPTED_ADVICE = (
    "Replace the `raise NotImplementedError(...)` line with your code, run that cell, "
    "then run this check again."
)
_MISSING = object()
# failed attempts per (notebook, exercise) in this kernel: the hint ladder's position
_ATTEMPTS: Counter[tuple[str, str]] = Counter()


class CheckFailed(AssertionError):
    """Raised by a check that did not pass, only in strict mode."""


def strict_from_env() -> bool:
    """True when ``VESTIGE_STRICT_CHECKS`` is set to 1/true/yes (used by tests)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes"}


class Checker:
    """Checks for one notebook: ``check = Checker("00_welcome", **params)``.

    ``params`` are whatever the notebook's checks module needs to rebuild its context
    (typically ``runs_dir``, ``preset``, ``seed``). ``check(exercise, answer)`` never raises,
    so the learner can keep going, unless ``strict`` is on (default: the
    ``VESTIGE_STRICT_CHECKS`` environment variable; never while grading).
    Results are kept in ``self.results`` by exercise id.
    """

    def __init__(self, notebook: str, strict: bool | None = None, **params):
        self.notebook = notebook
        self.params = params
        self.grading_dir = os.environ.get(GRADING_DIR_ENV) or None
        self.strict = (
            False if self.grading_dir else (strict_from_env() if strict is None else strict)
        )
        self.checks = checks_registry.load(notebook)
        self.results: dict[str, dict] = {}
        self._context = _MISSING

    def __call__(
        self,
        exercise: str,
        answer: Any = _MISSING,
        points: int | None = None,
        hint: str = "",
        success: str = "",
    ) -> None:
        if self.checks is None:
            result = self._legacy(exercise, answer, 1 if points is None else points, hint, success)
        else:
            if points is not None or hint or success:
                raise TypeError(
                    f"{self.notebook}: points, hints and success messages are set "
                    f"in the checks module {self.checks.name}, not in the check call"
                )
            result = self._check(exercise, answer)
        self.results[exercise] = result
        emit(result)
        if self.strict and result["status"] != "passed":
            raise CheckFailed(result["message"])

    # --- checks-module exercises -------------------------------------------------------------

    def context(self):
        """The checks module's context, built once (lazily: most captures do not need it)."""
        if self._context is _MISSING:
            hidden = None
            path = os.environ.get(GRADING_HIDDEN_ENV) if self.grading_dir else None
            if path:
                loaded = plain.load(os.path.dirname(path), os.path.basename(path))
                hidden = loaded.get("hidden") if loaded else None
            self._context = self.checks.context(self.params, hidden)
        return self._context

    def _check(self, exercise_id: str, answer) -> dict:
        exercise = self.checks.exercises.get(exercise_id)
        if exercise is None:
            return self._result(
                exercise_id, 0, "error", f"{self.checks.name} has no exercise {exercise_id!r}"
            )
        status, detail, data = self._capture(exercise, answer)
        if self.grading_dir:
            payload = {"exercise": exercise.id, "status": status, "detail": detail, "data": data}
            try:
                plain.dump(self.grading_dir, exercise.id, payload)
            except (plain.PlainDataError, OSError) as exc:
                plain.dump(
                    self.grading_dir,
                    exercise.id,
                    {
                        "exercise": exercise.id,
                        "status": "error",
                        "detail": one_line(exc),
                        "data": None,
                    },
                )
            return self._result(exercise.id, exercise.points, "captured", "")
        verdict_status, message = status, detail
        if status == "captured":  # judge it here
            try:
                verdict = exercise.judge(plain.roundtrip(data), self.context())
                verdict_status, message = (
                    ("passed" if verdict.passed else "failed"),
                    verdict.message(),
                )
            except Exception as exc:
                verdict_status, message = "error", f"the check itself failed: {one_line(exc)}"
        return self._feedback(exercise, verdict_status, message)

    def _capture(self, exercise, answer) -> tuple[str, str, Any]:
        """(status, detail, plain data); status is "captured" when there is data to judge."""
        if answer is _MISSING:
            return "error", "no answer given: check(exercise, answer)", None
        try:
            value = unwrap(answer, exercise.kind)
            data = exercise.capture(value, _Lazy(self.context))
            plain.encode(data)  # a checks-module bug must show here, not in the grader
            return "captured", "", data
        except NotAttempted:
            return "not_attempted", "", None
        except AnswerError as exc:
            return "failed", str(exc), None
        except plain.PlainDataError as exc:
            return (
                "error",
                f"{self.checks.name} captured something that is not plain data: {exc}",
                None,
            )
        except Exception as exc:
            return "error", one_line(exc), None

    def _feedback(self, exercise, status: str, message: str) -> dict:
        key = (self.notebook, exercise.id)
        if status in ("failed", "error"):
            _ATTEMPTS[key] += 1
        attempt = _ATTEMPTS[key]
        if status == "passed":  # the verdict's note (what the data showed), then the praise
            text = " ".join(p for p in (message, exercise.success) if p)
        elif status == "not_attempted":
            text = _NOT_ATTEMPTED_ADVICE
        else:
            hint = exercise.hint(attempt)
            text = " ".join(p for p in (message, hint and f"Hint: {hint}") if p)
        result = self._result(exercise.id, exercise.points, status, text)
        result["attempt"] = attempt
        return result

    def _result(self, exercise: str, points: int, status: str, text: str) -> dict:
        return {
            "notebook": self.notebook,
            "exercise": exercise,
            "points": points if status == "passed" else 0,
            "max_points": points,
            "passed": status == "passed",
            "status": status,
            "message": headline(exercise, status, points, text),
        }

    # --- old-style inline tests (notebooks without a checks module) ---------------------------

    def _legacy(self, exercise: str, test, points: int, hint: str, success: str) -> dict:
        status, detail = run_test(test)
        if self.grading_dir:
            payload = {
                "exercise": exercise,
                "status": status,
                "detail": detail,
                "data": None,
                "legacy": True,
            }
            try:
                plain.dump(self.grading_dir, exercise, payload)
            except (plain.PlainDataError, OSError):
                pass
        return self._result(exercise, points, status, feedback_text(status, detail, hint, success))


class _Lazy:
    """The context, built on first attribute access (value captures rarely need it)."""

    def __init__(self, build: Callable[[], Any]):
        object.__setattr__(self, "_build", build)

    def __getattr__(self, name):
        return getattr(self._build(), name)

    def __getitem__(self, key):
        return self._build()[key]


def run_test(test: Callable[[], Any] | bool) -> tuple[str, str]:
    """Old API: run ``test`` and classify it: (status, one-line detail)."""
    if not callable(test):
        return ("passed", "") if test else ("failed", "")
    try:
        outcome = test()
    except NotImplementedError:
        return "not_attempted", ""
    except NameError as exc:
        if checks_registry._raised_in(exc, test):
            return "not_attempted", f"({exc})"
        return "error", one_line(exc)
    except AssertionError as exc:
        return "failed", one_line(exc).removeprefix("AssertionError: ").removeprefix(
            "AssertionError"
        )
    except Exception as exc:
        return "error", one_line(exc)
    try:
        passed = outcome is None or bool(outcome)
    except Exception as exc:
        return "error", f"the check returned {type(outcome).__name__}, not True/False: {exc}"
    return ("passed", "") if passed else ("failed", "")


def headline(exercise: str, status: str, points: int, text: str) -> str:
    earned = points if status == "passed" else 0
    head = f"{_ICONS[status]} {exercise}: {_HEADLINES[status]}"
    if status != "captured":
        head += f" ({earned}/{points} points)."
    else:
        head += "."
    return " ".join(p for p in (head, text) if p)


def feedback_text(status: str, detail: str, hint: str, success: str) -> str:
    if status == "passed":
        return success
    advice = _NOT_ATTEMPTED_ADVICE if status == "not_attempted" else hint and f"Hint: {hint}"
    return " ".join(p for p in (detail, advice) if p)


def feedback(exercise: str, status: str, points: int, detail: str, hint: str, success: str) -> str:
    """The human-readable message of an old-style check result."""
    return headline(exercise, status, points, feedback_text(status, detail, hint, success))


def emit(result: dict) -> None:
    """Show the result: a MIME bundle with a text fallback in IPython, plain text elsewhere."""
    if _ipython() is None:
        print(result["message"])
        return
    from IPython.display import display

    display({MIME_TYPE: result, "text/plain": result["message"]}, raw=True)


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()
