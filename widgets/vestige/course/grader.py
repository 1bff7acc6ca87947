"""Gradebook from learners' executed notebooks.

Grading reads the check results (MIME ``application/vnd.vestige.check+json``) saved in
the cell outputs; it does not run anything. Exercises and their points come from the
registry written by ``build`` (``course/solutions/exercises.json``), never from the
submission: a deleted check counts as ``not_run`` with 0 points, and edited ``points`` in
an output are ignored. A submission with forged outputs is not detected; re-execute
it with papermill first if that matters.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .builder import REGISTRY_NAME
from .checker import MIME_TYPE, STATUSES

NOT_RUN = "not_run"
DEFAULT_REGISTRY = Path("course/solutions") / REGISTRY_NAME
_PARAMETER_TAGS = {"parameters", "injected-parameters"}


class NotANotebook(ValueError):
    """A submitted file that is JSON but not a Jupyter notebook."""


def grade(
    paths: str | Path | Iterable[str | Path],
    exercises: str | Path | dict = DEFAULT_REGISTRY,
) -> pd.DataFrame:
    """One row per submitted notebook (directories are searched for ``*.ipynb``).

    Columns: student, notebook, points, max_points, percent, one status column per
    exercise (passed / failed / not_attempted / error / not_run), error, file.
    ``exercises`` is the registry path or the ``{notebook: {exercise: points}}`` dict.
    """
    registry = load_registry(exercises)
    rows = [grade_file(path, registry) for path in expand_paths(paths)]
    graded = {row["notebook"] for row in rows}
    exercise_columns = dict.fromkeys(ex for nb in registry if nb in graded for ex in registry[nb])
    columns = ["student", "notebook", "points", "max_points", "percent",
               *exercise_columns, "error", "file"]
    return pd.DataFrame(rows, columns=columns)


def grade_to_csv(
    paths: str | Path | Iterable[str | Path],
    out_csv: str | Path,
    exercises: str | Path | dict = DEFAULT_REGISTRY,
) -> pd.DataFrame:
    """``grade`` and write the gradebook to ``out_csv``; returns the gradebook."""
    gradebook = grade(paths, exercises)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    gradebook.to_csv(out_csv, index=False)
    return gradebook


def load_registry(exercises: str | Path | dict) -> dict[str, dict[str, int]]:
    """The ``{notebook: {exercise: points}}`` registry written by ``build``."""
    if isinstance(exercises, dict):
        return exercises
    path = Path(exercises)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `vestige course build` first")
    return json.loads(path.read_text(encoding="utf-8"))


def expand_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Files as given; directories replaced by the notebooks under them, sorted."""
    paths = [paths] if isinstance(paths, (str, Path)) else paths
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        else:
            found.append(path)
    return found


def grade_file(path: Path, registry: dict[str, dict[str, int]]) -> dict:
    """The gradebook row of one submission; unreadable files give a row with an error."""
    try:
        nb = read_notebook(path)
    except (OSError, ValueError) as exc:
        notebook = notebook_from_name(path, registry)
        return _row(path, notebook, registry, {}, student_from_name(path, notebook),
                    f"cannot read {path}: {exc}")
    notebook = _dict(_dict(nb.get("metadata")).get("vestige")).get("notebook")
    if not (isinstance(notebook, str) and notebook in registry):
        notebook = notebook_from_name(path, registry)
    if notebook is None:
        return _row(path, None, registry, {}, student_from_name(path, None),
                    f"{path}: not a notebook of this course (no known notebook id)")
    student = student_from_parameters(nb) or student_from_name(path, notebook)
    return _row(path, notebook, registry, check_results(nb, notebook), student, "")


def read_notebook(path: Path) -> dict:
    """The notebook JSON; ValueError if it is not JSON or not a notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotANotebook("not a Jupyter notebook (no list of cells)")
    return nb


def check_results(nb: dict, notebook: str) -> dict[str, dict]:
    """``{exercise: result}`` from the outputs, in document order; the last one wins."""
    results = {}
    for cell in _cells(nb):
        for result in map(_check_result, cell.get("outputs") or []):
            if result.get("notebook") == notebook and result.get("status") in STATUSES:
                results[result.get("exercise")] = result
    return results


def _check_result(output) -> dict:
    """The check result in one output, or {} (also for malformed outputs)."""
    result = _dict(_dict(output).get("data")).get(MIME_TYPE)
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return {}
    return _dict(result)


def _cells(nb: dict) -> list[dict]:
    return [cell for cell in nb["cells"] if isinstance(cell, dict)]


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _row(path: Path, notebook: str | None, registry: dict, results: dict, student: str,
         error: str) -> dict:
    exercises = registry.get(notebook, {})
    statuses = {ex: results.get(ex, {}).get("status", NOT_RUN) for ex in exercises}
    points = sum(p for ex, p in exercises.items() if statuses[ex] == "passed")
    max_points = sum(exercises.values()) if notebook in registry else math.nan
    percent = round(100 * points / max_points, 1) if max_points else math.nan
    return {"student": student, "notebook": notebook, "points": points, "max_points": max_points,
            "percent": percent, **statuses, "error": error, "file": str(path)}


def notebook_from_name(path: Path, registry: dict) -> str | None:
    """The longest course notebook id contained in the file name, if any."""
    matches = [nb for nb in registry if nb in path.stem]
    return max(matches, key=len) if matches else None


def student_from_parameters(nb: dict) -> str:
    """The last ``student = "..."`` string set in a parameters cell (papermill or by hand)."""
    student = ""
    for cell in _cells(nb):
        tags = _dict(cell.get("metadata")).get("tags")
        if isinstance(tags, list) and _PARAMETER_TAGS & set(map(str, tags)):
            student = _student_assignment(cell.get("source", "")) or student
    return student


def _student_assignment(source: str | list) -> str:
    source = "".join(map(str, source)) if isinstance(source, list) else str(source)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    values = [node.value.value for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
              and isinstance(node.value.value, str)
              and any(isinstance(t, ast.Name) and t.id == "student" for t in node.targets)]
    return values[-1].strip() if values else ""


def student_from_name(path: Path, notebook: str | None) -> str:
    """The file name without the notebook id (``alice_10_train.ipynb``), else the folder name."""
    name = path.stem.replace(notebook, "") if notebook else path.stem
    return name.strip("_-. ") or path.parent.name
