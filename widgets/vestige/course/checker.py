"""Immediate feedback for exercises: ``Checker`` runs a test and reports a result.

Each check shows a one-line human message and attaches a machine-readable result
(MIME type ``application/vnd.vestige.check+json``) to the cell output; ``grade``
collects those results from executed notebooks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

MIME_TYPE = "application/vnd.vestige.check+json"
STRICT_ENV = "VESTIGE_STRICT_CHECKS"
STATUSES = ("passed", "failed", "not_attempted", "error")

_ICONS = {"passed": "✅", "failed": "❌", "not_attempted": "⏳", "error": "⚠️"}
_HEADLINES = {
    "passed": "passed",
    "failed": "not passing yet",
    "not_attempted": "not attempted yet",
    "error": "the check raised an error",
}
_NOT_ATTEMPTED_ADVICE = (
    "Replace the `raise NotImplementedError(...)` line with your code, run that cell, "
    "then run this check again."
)


class CheckFailed(AssertionError):
    """Raised by a check that did not pass, only in strict mode."""


def strict_from_env() -> bool:
    """True when ``VESTIGE_STRICT_CHECKS`` is set to 1/true/yes (used by tests)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes"}


class Checker:
    """Checks for one notebook: ``check = Checker("10_train")`` then ``check("ex1", test)``.

    ``test`` is a callable (preferred: its exceptions are caught) or a plain bool. A callable
    passes when it returns without raising and its result is ``None`` or truthy.
    A check never raises, so the learner can keep going, unless ``strict`` is on
    (default: the ``VESTIGE_STRICT_CHECKS`` environment variable).
    Results are kept in ``self.results`` by exercise id.
    """

    def __init__(self, notebook: str, strict: bool | None = None):
        self.notebook = notebook
        self.strict = strict_from_env() if strict is None else strict
        self.results: dict[str, dict] = {}

    def __call__(
        self,
        exercise: str,
        test: Callable[[], Any] | bool,
        points: int = 1,
        hint: str = "",
        success: str = "",
    ) -> None:
        status, detail = run_test(test)
        result = {
            "notebook": self.notebook,
            "exercise": exercise,
            "points": points if status == "passed" else 0,
            "max_points": points,
            "passed": status == "passed",
            "status": status,
            "message": feedback(exercise, status, points, detail, hint, success),
        }
        self.results[exercise] = result
        emit(result)
        if self.strict and status != "passed":
            raise CheckFailed(result["message"])


def run_test(test: Callable[[], Any] | bool) -> tuple[str, str]:
    """Run ``test`` and classify it: (status, one-line detail)."""
    if not callable(test):
        return ("passed", "") if test else ("failed", "")
    try:
        outcome = test()
    except NotImplementedError:
        return "not_attempted", ""
    except NameError as exc:
        if _raised_in(exc, test):
            return "not_attempted", f"({exc})"
        return "error", _one_line(exc)
    except AssertionError as exc:
        return "failed", _one_line(exc).removeprefix("AssertionError: ").removeprefix("AssertionError")
    except Exception as exc:  # noqa: BLE001 - a learner's bug must not stop the notebook
        return "error", _one_line(exc)
    try:
        passed = outcome is None or bool(outcome)
    except Exception as exc:  # noqa: BLE001 - e.g. bool() of a multi-element tensor
        return "error", f"the check returned {type(outcome).__name__}, not True/False: {exc}"
    return ("passed", "") if passed else ("failed", "")


def _raised_in(exc: BaseException, test: Callable) -> bool:
    """True if ``exc`` was raised by the test's own code (not by code it calls)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code is getattr(test, "__code__", None)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, shortened (no traceback wall)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def feedback(exercise: str, status: str, points: int, detail: str, hint: str, success: str) -> str:
    """The human-readable message for a check result."""
    earned = points if status == "passed" else 0
    parts = [f"{_ICONS[status]} {exercise}: {_HEADLINES[status]} ({earned}/{points} points)."]
    if status == "passed":
        parts.append(success)
    else:
        parts.append(detail)
        parts.append(_NOT_ATTEMPTED_ADVICE if status == "not_attempted" else hint and f"Hint: {hint}")
    return " ".join(part for part in parts if part)


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
