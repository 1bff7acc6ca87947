"""Judging, in the grader's process: the captured plain data of each exercise, read with
the hostile-input rules of :mod:`.plain`, against the checks module's ``judge``.

The sandbox is gone when this runs, so the capture folder is checked once (a folder, not a
link) and stays what it is. Per exercise: no capture is ``not_run``; a capture the kernel
marked ``not_attempted``/``failed``/``error`` keeps that status; a ``captured`` one is judged.
Anything malformed is an ``error`` or a ``failed`` and a flag, never an exception.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import plain
from .checker import STATUSES
from .checks import AnswerError, Checks, one_line

NOT_RUN = "not_run"
LEGACY = "old-style checks: verdicts computed inside the sandbox"


def judge(
    exercises, checks: Checks | None, capture_dir: Path, params: dict, hidden
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """({exercise: status}, {exercise: message}, flags) for the ``exercises`` ids."""
    statuses: dict[str, str] = {}
    messages: dict[str, str] = {}
    flags: list[str] = []
    try:
        real_folder = stat.S_ISDIR(os.lstat(capture_dir).st_mode)
    except OSError:
        real_folder = False
    if not real_folder:
        flags.append("the capture folder was removed or replaced")
        return {ex: "error" for ex in exercises}, {}, flags
    context = None
    for exercise in exercises:
        try:
            payload = plain.load(capture_dir, exercise)
        except (plain.PlainDataError, OSError) as exc:
            statuses[exercise], messages[exercise] = "error", f"unreadable capture: {exc}"
            flags.append(f"malformed capture for {exercise}")
            continue
        if payload is None:
            statuses[exercise], messages[exercise] = NOT_RUN, "the check did not run"
            continue
        status = payload.get("status")
        if payload.get("exercise") != exercise:
            statuses[exercise], messages[exercise] = "error", "capture of another exercise"
            flags.append(f"malformed capture for {exercise}")
            continue
        detail = str(payload.get("detail", ""))[:300]
        if checks is None:  # old inline checks: the kernel's verdict is all there is
            if LEGACY not in flags:
                flags.append(LEGACY)
            statuses[exercise] = status if status in STATUSES else "error"
            messages[exercise] = detail
            continue
        if status in ("not_attempted", "failed", "error"):
            statuses[exercise], messages[exercise] = status, detail
            continue
        if status != "captured":
            statuses[exercise], messages[exercise] = "error", "capture with an unknown status"
            flags.append(f"malformed capture for {exercise}")
            continue
        try:
            if context is None:
                context = checks.context(params, hidden)
            verdict = checks.exercises[exercise].judge(payload.get("data"), context)
            statuses[exercise] = "passed" if bool(verdict.passed) else "failed"
            messages[exercise] = verdict.message()
        except AnswerError as exc:
            statuses[exercise], messages[exercise] = "failed", f"malformed answer data: {exc}"
            flags.append(f"malformed capture for {exercise}")
        except Exception as exc:
            statuses[exercise], messages[exercise] = "error", f"judge failed: {one_line(exc)}"
            flags.append(f"judge failed on {exercise}: {one_line(exc, 120)}")
    return statuses, messages, flags
