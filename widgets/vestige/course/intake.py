"""Intake of submissions: which files, whose, and are they notebooks at all.

Everything here treats the submissions as hostile and never lets one file stop the others:

* **Files.** Directories are walked without following symlinks; a file counts if its name
  ends in ``.ipynb``. Only regular files are read: symlinks (not followed: they could
  point anywhere on the grader's machine), FIFOs, devices, sockets and directories named
  ``*.ipynb`` get a row saying what they are. A file over the size cap is refused from its
  ``lstat`` size, before anything is read. Files are opened with ``O_NOFOLLOW |
  O_NONBLOCK`` and checked again with ``fstat``, so swapping one for a FIFO after the
  listing cannot hang the grader. Paths are never passed to a shell or a command line.
* **Students.** The student is the first folder under the directory given
  (``subs/alice/00_welcome.ipynb``), else the file name without the notebook id
  (``alice_00_welcome.ipynb``), never the notebook's content. Names are normalised: Unicode
  NFKC, control characters dropped, case-folded, runs of spaces and underscores made one
  ``_``, separators trimmed; so ``Grace`` and ``grace`` are one student. Resubmission
  suffixes (``name (1).ipynb``, ``name - Copy.ipynb``) are stripped and remembered.
* **Notebooks.** JSON is parsed with the recursion error caught (``[[[[...`` 100k deep),
  then checked cell by cell for the structure grading relies on, then validated against
  the nbformat 4 schema (outputs aside: they are never read, so they only have to be
  lists); any failure is a reason on that file's row.
"""

from __future__ import annotations

import json
import os
import re
import stat
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .plain import PlainDataError, safe_read

DEFAULT_MAX_BYTES = 20 << 20
MAX_CELLS = 2000
_RESUBMISSION = re.compile(
    r"^(?P<name>.*?)(?:\s*\((?P<n>\d{1,4})\)|[\s_-]+copy(?:[\s_-]*(?P<c>\d{1,4}))?)$", re.IGNORECASE
)
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symlink",
}


class IntakeError(ValueError):
    """A submitted file that cannot be graded; the message is the row's reason."""


@dataclass
class Submission:
    path: Path
    student: str
    student_from: str  # "folder" or "file name"
    resubmission: int = 0
    mtime: float = 0.0
    size: int = 0
    problem: str = ""  # why it cannot be read at all ("" if readable)
    flags: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def discover(paths, notebook_ids, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Submission]:
    """Every ``*.ipynb`` under ``paths`` (files or directories), with its student."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Submission] = []
    for given in map(Path, paths):
        try:
            info = os.lstat(given)
        except OSError as exc:
            found.append(
                _submission(given, None, notebook_ids, problem=f"cannot read: {exc.strerror}")
            )
            continue
        if stat.S_ISDIR(info.st_mode):
            found += _walk(given, notebook_ids, max_bytes)
        else:
            found.append(_classify(given, None, info, notebook_ids, max_bytes))
    return found


def _walk(root: Path, notebook_ids, max_bytes: int) -> list[Submission]:
    found = []

    def unreadable(exc: OSError):
        path = Path(exc.filename or root)
        found.append(_submission(path, root, notebook_ids, problem=f"cannot read: {exc.strerror}"))

    for folder, dirs, files in os.walk(root, followlinks=False, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        for name in sorted(files) + [d for d in dirs if d.lower().endswith(".ipynb")]:
            if not name.lower().endswith(".ipynb"):
                continue
            path = Path(folder) / name
            try:
                info = os.lstat(path)
            except OSError as exc:
                found.append(
                    _submission(path, root, notebook_ids, problem=f"cannot read: {exc.strerror}")
                )
                continue
            found.append(_classify(path, root, info, notebook_ids, max_bytes))
        dirs[:] = [d for d in dirs if not d.lower().endswith(".ipynb")]
    return found


def _classify(path: Path, root: Path | None, info: os.stat_result, notebook_ids, max_bytes: int):
    kind = stat.S_IFMT(info.st_mode)
    problem = ""
    if kind != stat.S_IFREG:
        problem = f"not a regular file: {_KINDS.get(kind, 'a special file')}" + (
            ", not followed" if kind == stat.S_IFLNK else ""
        )
    elif info.st_size > max_bytes:
        problem = f"file too large: {info.st_size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB cap"
    return _submission(path, root, notebook_ids, info=info, problem=problem)


def _submission(path: Path, root: Path | None, notebook_ids, info=None, problem="") -> Submission:
    student, source, resubmission = student_of(path, root, notebook_ids)
    return Submission(
        path=path,
        student=student,
        student_from=source,
        resubmission=resubmission,
        mtime=info.st_mtime if info else 0.0,
        size=info.st_size if info else 0,
        problem=problem,
    )


def student_of(path: Path, root: Path | None, notebook_ids) -> tuple[str, str, int]:
    """(normalised student, "folder" or "file name", resubmission number) for ``path``."""
    stem, resubmission = strip_resubmission(
        path.name[: -len(".ipynb")] if path.name.lower().endswith(".ipynb") else path.stem
    )
    if root is not None:
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            parts = ()
        if len(parts) > 1:
            return normalise_student(parts[0]), "folder", resubmission
    name = stem
    for notebook in sorted(notebook_ids, key=len, reverse=True):
        index = name.casefold().find(notebook.casefold())
        if index >= 0:
            name = name[:index] + name[index + len(notebook) :]
            break
    student = normalise_student(name)
    if not student and root is None and path.parent.name:
        return normalise_student(path.parent.name), "folder", resubmission
    return student, "file name", resubmission


def strip_resubmission(stem: str) -> tuple[str, int]:
    """``"frank_00_welcome (2)"`` -> ``("frank_00_welcome", 2)``; copies count as 1."""
    number = 0
    for _ in range(3):
        match = _RESUBMISSION.match(stem)
        if not match or not match.group("name").strip():
            break
        stem = match.group("name")
        number = max(number, int(match.group("n") or match.group("c") or 1))
    return stem, number


def normalise_student(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = re.sub(r"[\s_]+", "_", text.casefold())
    return text.strip("_-. ")[:80]


# --- reading and validating -----------------------------------------------------------------


def read(submission: Submission, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[bytes, dict]:
    """(raw bytes, notebook dict) of a submission; ``IntakeError`` with the reason."""
    if submission.problem:
        raise IntakeError(submission.problem)
    try:
        raw = safe_read(submission.path, max_bytes)
    except PlainDataError as exc:
        raise IntakeError(str(exc).replace(f"{submission.path.name}: ", "")) from None
    except OSError as exc:
        raise IntakeError(f"cannot read: {exc.strerror or exc}") from None
    return raw, parse(raw)


def parse(raw: bytes) -> dict:
    """The notebook in ``raw``, checked; ``IntakeError`` says what is wrong."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        nb = json.loads(text)
    except RecursionError:
        raise IntakeError("invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise IntakeError(f"invalid JSON: {_short(exc)}") from None
    check_structure(nb)
    _validate_schema(nb)
    return nb


def check_structure(nb) -> None:
    """What grading relies on, checked without recursion (before the schema)."""
    if not isinstance(nb, dict):
        raise IntakeError("not a Jupyter notebook: the JSON is not an object")
    if nb.get("nbformat") != 4:
        raise IntakeError(f"not an nbformat 4 notebook (nbformat: {_short(nb.get('nbformat'))})")
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise IntakeError("not a Jupyter notebook: no list of cells")
    if len(cells) > MAX_CELLS:
        raise IntakeError(f"too many cells ({len(cells)} > {MAX_CELLS})")
    if not isinstance(nb.get("metadata", {}), dict):
        raise IntakeError("invalid notebook: metadata is not an object")
    for index, cell in enumerate(cells):
        where = f"cell {index}"
        if not isinstance(cell, dict):
            raise IntakeError(f"invalid notebook: {where} is not an object")
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise IntakeError(
                f"invalid notebook: {where} has cell_type {_short(cell.get('cell_type'))}"
            )
        source = cell.get("source", "")
        if not (
            isinstance(source, str)
            or (isinstance(source, list) and all(isinstance(s, str) for s in source))
        ):
            raise IntakeError(f"invalid notebook: {where} source is not text")
        if not isinstance(cell.get("metadata", {}), dict):
            raise IntakeError(f"invalid notebook: {where} metadata is not an object")
        if "id" in cell and not isinstance(cell["id"], str):
            raise IntakeError(f"invalid notebook: {where} id is not a string")
        if cell["cell_type"] == "code" and not isinstance(cell.get("outputs", []), list):
            raise IntakeError(
                f"invalid notebook: {where} outputs is {_short(cell.get('outputs'))}, not a list"
            )


def _validate_schema(nb: dict) -> None:
    """The nbformat 4 schema, outputs left out: they are never read (only checked to be
    lists), and validating them costs minutes for a 20 MB notebook of small outputs."""
    import nbformat

    cells = [
        {**cell, "outputs": []} if cell.get("cell_type") == "code" else cell for cell in nb["cells"]
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nbformat.from_dict({**nb, "cells": cells}), version=4)
    except RecursionError:
        raise IntakeError("invalid notebook: nested too deeply") from None
    except nbformat.ValidationError as exc:
        raise IntakeError(f"invalid notebook: {_short(getattr(exc, 'message', exc))}") from None
    except Exception as exc:
        raise IntakeError(f"invalid notebook: {type(exc).__name__}: {_short(exc)}") from None


def source_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _short(value, limit: int = 160) -> str:
    text = (
        " ".join(repr(value).split())
        if not isinstance(value, (str, Exception))
        else " ".join(str(value).split())
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"
