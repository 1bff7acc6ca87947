"""The gradebook: one row per (student, notebook), its table, and the files it is written to.

Every failure is a row with a ``reason``. Text that reaches the instructor's terminal or
spreadsheet is made harmless: control characters are shown as ``\\uXXXX``, and a field a
spreadsheet would read as a formula (``= + - @``, tab, CR at the start) gets a ``'``.
The CSV and the details (JSON lines) are written atomically (:func:`vestige.runs.atomic_write`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pandas as pd

from .judge import NOT_RUN
from .survey import Survey

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def row(item: Survey, entry: dict | None, statuses: dict, reason: str, grading=None) -> dict:
    """The row of ``item`` (``entry``: its notebook's manifest entry, None if unknown)."""
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


def failure_row(item: Survey, entry: dict | None, reason: str, grading=None) -> dict:
    """The row of a submission that was not graded (nothing passed), and why."""
    item.reason = reason
    return row(item, entry, {}, reason, grading)


def table(rows: list[dict], notebooks: dict) -> pd.DataFrame:
    """The gradebook: a status column per exercise of the notebooks graded, sorted."""
    graded = {r["notebook"] for r in rows}
    exercises = dict.fromkeys(
        ex for nb, entry in notebooks.items() if nb in graded for ex in entry["exercises"]
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
    records = [{**dict.fromkeys(exercises, ""), **r} for r in rows]
    for record in records:
        record["flags"] = printable("; ".join(record.get("flags_list", [])))
        record["reason"], record["file"] = printable(record["reason"]), printable(record["file"])
    frame = pd.DataFrame(records, columns=columns)
    return frame.sort_values(["student", "notebook", "file"], kind="stable").reset_index(drop=True)


def printable(text: str) -> str:
    """``text`` with control characters (newlines, terminal escapes...) shown as ``\\uXXXX``:
    file names, metadata and a kernel's last words reach the instructor's terminal."""
    if not isinstance(text, str):
        return text
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def neutralise(value):
    """A text field as a spreadsheet will not run it: leading ``= + - @ \\t \\r`` get a ``'``."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(_FORMULA_START) or value.lstrip().startswith(_FORMULA_START[:4]):
        return "'" + value
    return value


def write_csv(gradebook: pd.DataFrame, out_csv: str | Path) -> None:
    """The gradebook as CSV, every text field neutralised."""
    from vestige.runs import atomic_write

    text = io.StringIO(newline="")
    writer = csv.writer(text, quoting=csv.QUOTE_MINIMAL)
    writer.writerow([neutralise(str(c)) for c in gradebook.columns])
    for values in gradebook.itertuples(index=False):
        writer.writerow(
            ["" if (isinstance(v, float) and math.isnan(v)) else neutralise(v) for v in values]
        )
    atomic_write(Path(out_csv), text.getvalue())


def write_details(details: list[dict], path: str | Path) -> None:
    """Per-submission feedback and timings, one JSON object a line, by student and file."""
    from vestige.runs import atomic_write

    ordered = sorted(details, key=lambda d: (d.get("student") or "", d.get("file") or ""))
    atomic_write(Path(path), "".join(json.dumps(d, default=str) + "\n" for d in ordered))
