"""Turn a submission into the notebook the grader executes: the learner's cells, the
instructor's check cells, the grading parameters. Outputs are never carried over.

The work is a list of small steps, in order, as nbgrader's sanitising preprocessors are.
Each submitted cell goes through :data:`CELL_STEPS` until one takes it (keeps it, restored,
or drops it); then :data:`NOTEBOOK_STEPS` run once over the result. They share a
:class:`Preparation` (the build's manifest entry, the cells kept so far, the ids given out,
the flags), so each step can be run alone on one.

Check cells are matched by cell id and sha256 against the build's manifest:

* a check cell whose id is in the manifest is replaced by the instructor's source (if its
  source differs, it was edited: flagged);
* a second cell with that id, or a copy of a check cell's source under another id, is
  dropped (flagged);
* a learner cell that consists of ``check(...)`` calls, or is tagged ``check``, is an
  extra check cell: dropped (flagged); a learner cell that calls ``check`` among other
  code is kept (the learner's work is in it) and flagged;
* a check cell missing from the submission is put back after the cell that preceded it
  in the build (flagged);
* the parameters cell is the build's too (what a learner typed there, say ``student = ...``
  or a 50k-term expression, is not run: the grader injects the parameters after it), and
  no other cell keeps a ``parameters`` tag.

Learner code is scanned (:mod:`.scan`) for what deserves a look: rebinding
``check``/``Checker``, touching the grading environment. Cells left as the handout had them
are not scanned.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from .fingerprint import code_fingerprint
from .intake import source_text
from .scan import Scan, scan_code

CELL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def prepare(nb: dict, entry: dict, parameters: dict) -> tuple[dict, list[str], dict]:
    """(notebook to execute, flags, {solution cell id: learner fingerprint})."""
    prep = Preparation(entry, parameters)
    for index, cell in enumerate(nb["cells"]):
        submitted = Cell.read(index, cell)
        for step in CELL_STEPS:
            if step(submitted, prep):
                break
    for step in NOTEBOOK_STEPS:
        step(prep)
    return prep.notebook(), prep.flags, prep.fingerprints


@dataclass
class Cell:
    """A submitted cell as the steps see it."""

    index: int
    cell_type: str | None
    source: str
    id: str | None  # as submitted (None if missing or not a string)
    tags: list[str]
    label: str  # how flags name it: its id if valid, else its position
    new_id: str | None = None  # the id it keeps, once `assign_id` has chosen one

    @classmethod
    def read(cls, index: int, cell: dict) -> Cell:
        cell_id = cell.get("id") if isinstance(cell.get("id"), str) else None
        tags = (cell.get("metadata") or {}).get("tags", [])
        return cls(
            index=index,
            cell_type=cell.get("cell_type"),
            source=source_text(cell),
            id=cell_id,
            tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
            label=cell_id if cell_id and CELL_ID.match(cell_id) else f"#{index}",
        )


@dataclass
class Preparation:
    """What the steps share: the build's manifest entry and the grading parameters in; the
    cells kept so far, the ids seen and given out, flags and fingerprints out."""

    entry: dict
    parameters: dict
    cells: list[dict] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # check and parameters cells placed
    used: set[str] = field(default_factory=set)  # ids given to cells kept
    findings: dict[str, list[str]] = field(default_factory=dict)  # finding -> cell labels
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def check_cells(self) -> dict[str, dict]:
        return self.entry["check_cells"]

    @property
    def parameters_cell(self) -> dict:
        return self.entry["parameters_cell"]

    @property
    def by_sha(self) -> dict[str, str]:
        """Check cell ids by the sha256 of their source."""
        return {spec["sha256"]: cid for cid, spec in self.check_cells.items()}

    @property
    def order(self) -> list[str]:
        """The build's cell ids, in order."""
        return self.entry["cells"]

    def notebook(self) -> dict:
        return {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"},
            },
            "cells": self.cells,
        }


# --- the steps of one cell: each returns True when it has taken the cell ------------------------


def restore_parameters(cell: Cell, prep: Preparation) -> bool:
    """The first parameters cell (by id, or by tag in a notebook without ids): the build's."""
    spec = prep.parameters_cell
    is_parameters = cell.id == spec["id"] or (cell.id is None and "parameters" in cell.tags)
    if not is_parameters or spec["id"] in prep.seen:
        return False
    prep.seen.add(spec["id"])
    prep.used.add(spec["id"])
    prep.cells.append(_parameters_cell(spec))
    return True


def drop_duplicate_parameters(cell: Cell, prep: Preparation) -> bool:
    if cell.id != prep.parameters_cell["id"]:
        return False
    prep.flags.append(f"duplicated parameters cell dropped: {cell.id}")
    return True


def strip_parameters_tag(cell: Cell, prep: Preparation) -> bool:
    """Only the build's parameters cell keeps the tag (papermill injects after it)."""
    cell.tags = [t for t in cell.tags if t != "parameters"]
    return False


def restore_check(cell: Cell, prep: Preparation) -> bool:
    """A check cell by id: the instructor's source (edited: flagged); a second one dropped."""
    if cell.id not in prep.check_cells:
        return False
    if cell.id in prep.seen:
        prep.flags.append(f"duplicated check cell dropped: {cell.id}")
        return True
    spec = prep.check_cells[cell.id]
    if cell.cell_type != "code" or sha256(cell.source) != spec["sha256"]:
        prep.flags.append(f"edited check cell restored: {cell.id}")
    _place_check(cell.id, prep)
    return True


def restore_check_by_checksum(cell: Cell, prep: Preparation) -> bool:
    """A check cell's source under another id: a copy, dropped; without an id (nbformat <
    4.5), the check cell itself if it is not placed yet."""
    if cell.cell_type != "code":
        return False
    original = prep.by_sha.get(sha256(cell.source))
    if original is None:
        return False
    if cell.id is None and original not in prep.seen:
        _place_check(original, prep)
    else:
        prep.flags.append(f"copy of check cell dropped: {cell.label} (copy of {original})")
    return True


def drop_injected_parameters(cell: Cell, prep: Preparation) -> bool:
    """Only the grader injects parameters."""
    if "injected-parameters" not in cell.tags:
        return False
    prep.flags.append(f"injected-parameters cell dropped: {cell.label}")
    return True


def assign_id(cell: Cell, prep: Preparation) -> bool:
    """The learner cell's own id if it is valid and not taken; in a notebook without ids,
    the handout's id at its position (good enough to put a deleted check cell back and to
    compare solution cells)."""
    if cell.id and CELL_ID.match(cell.id) and cell.id not in prep.used:
        cell.new_id = cell.id
    elif cell.id is None and cell.index < len(prep.order):
        positional = prep.order[cell.index]
        if (
            positional not in prep.check_cells
            and positional not in prep.used
            and positional != prep.parameters_cell["id"]
        ):
            cell.new_id = positional
    return False


def drop_extra_checks(cell: Cell, prep: Preparation) -> bool:
    """A code cell tagged ``check`` or made of ``check(...)`` calls is dropped; what the scan
    of other changed code cells finds is noted."""
    if cell.cell_type != "code":
        return False
    handout = prep.entry.get("code_cells", {})
    unchanged = cell.new_id is not None and handout.get(cell.new_id) == code_fingerprint(
        cell.source
    )
    scan = Scan() if unchanged else scan_code(cell.source)
    if "check" in cell.tags or scan.only_check_calls:
        prep.flags.append(f"extra check cell dropped: {cell.label}")
        return True
    for finding in scan.findings:
        prep.findings.setdefault(finding, []).append(cell.label)
    return False


def keep_learner_cell(cell: Cell, prep: Preparation) -> bool:
    new_id = cell.new_id if cell.new_id is not None else _fresh_id(cell.index, prep.used)
    prep.used.add(new_id)
    prep.cells.append(_learner_cell(cell.cell_type, new_id, cell.source, cell.tags))
    return True


CELL_STEPS = (
    restore_parameters,
    drop_duplicate_parameters,
    strip_parameters_tag,
    restore_check,
    restore_check_by_checksum,
    drop_injected_parameters,
    assign_id,
    drop_extra_checks,
    keep_learner_cell,
)


# --- the steps of the whole notebook -------------------------------------------------------------


def flag_findings(prep: Preparation) -> None:
    for finding, labels in prep.findings.items():
        more = " …" if len(labels) > 5 else ""
        prep.flags.append(f"{finding}: {', '.join(labels[:5])}{more}")


def reinsert_missing(prep: Preparation) -> None:
    """A check or parameters cell missing from the submission, after the nearest cell that
    preceded it in the build."""
    spec = prep.parameters_cell
    for cell_id in prep.order:
        if cell_id in prep.seen or not (cell_id in prep.check_cells or cell_id == spec["id"]):
            continue
        position = _position(cell_id, prep.order, prep.cells)
        if cell_id in prep.check_cells:
            prep.cells.insert(position, _check_cell(cell_id, prep.check_cells[cell_id]))
            prep.flags.append(f"missing check cell re-inserted: {cell_id}")
        else:
            prep.cells.insert(position, _parameters_cell(spec))
            prep.flags.append(f"missing parameters cell re-inserted: {cell_id}")
        prep.seen.add(cell_id)


def inject_parameters(prep: Preparation) -> None:
    """Papermill-style: a cell tagged ``injected-parameters`` right after the parameters cell."""
    where = next(i for i, c in enumerate(prep.cells) if c["id"] == prep.parameters_cell["id"])
    injected = {
        "cell_type": "code",
        "id": _fresh_id(0, {c["id"] for c in prep.cells}, "injected-parameters"),
        "metadata": {"tags": ["injected-parameters"]},
        "execution_count": None,
        "outputs": [],
        "source": parameter_source(prep.parameters),
    }
    prep.cells.insert(where + 1, injected)


def fingerprint_solutions(prep: Preparation) -> None:
    """The learner's code in each solution cell, for copy detection."""
    by_id = {c["id"]: c for c in prep.cells}
    for cell_id in prep.entry.get("solution_cells", {}):
        if cell_id in by_id:
            prep.fingerprints[cell_id] = code_fingerprint(by_id[cell_id]["source"])


NOTEBOOK_STEPS = (flag_findings, reinsert_missing, inject_parameters, fingerprint_solutions)


# --- parameters --------------------------------------------------------------------------------


def parameter_source(parameters: dict) -> str:
    """Papermill-style injected parameters, as Python literals (``repr``: always valid)."""
    lines = ["# Parameters injected by the grader"]
    for name, value in parameters.items():
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not an identifier")
        _check_literal(value)
        lines.append(f"{name} = {value!r}")
    return "\n".join(lines) + "\n"


def _check_literal(value, depth: int = 0) -> None:
    if depth > 8:
        raise ValueError("parameter value nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return
    if type(value) in (list, tuple):
        for v in value:
            _check_literal(v, depth + 1)
        return
    if type(value) is dict:
        for k, v in value.items():
            _check_literal(k, depth + 1)
            _check_literal(v, depth + 1)
        return
    raise ValueError(f"parameter values must be plain literals, not {type(value).__name__}")


# --- cells -------------------------------------------------------------------------------------


def _place_check(cell_id: str, prep: Preparation) -> None:
    prep.seen.add(cell_id)
    prep.used.add(cell_id)
    prep.cells.append(_check_cell(cell_id, prep.check_cells[cell_id]))


def _check_cell(cell_id: str, spec: dict) -> dict:
    return {
        "cell_type": "code",
        "id": cell_id,
        "execution_count": None,
        "outputs": [],
        "metadata": {"tags": ["check"], "editable": False, "deletable": False},
        "source": spec["source"],
    }


def _parameters_cell(spec: dict) -> dict:
    return {
        "cell_type": "code",
        "id": spec["id"],
        "execution_count": None,
        "outputs": [],
        "metadata": {"tags": ["parameters"]},
        "source": spec["source"],
    }


def _learner_cell(cell_type: str, cell_id: str, source: str, tags: list[str]) -> dict:
    keep = [t for t in tags if t == "raises-exception"]
    cell = {
        "cell_type": cell_type,
        "id": cell_id,
        "metadata": {"tags": keep} if keep else {},
        "source": source,
    }
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _fresh_id(index: int, used: set[str], prefix: str = "learner") -> str:
    candidate, n = f"{prefix}-{index}", 0
    while candidate in used:
        n += 1
        candidate = f"{prefix}-{index}-{n}"
    return candidate


def _position(cell_id: str, order: list[str], cells: list[dict]) -> int:
    """Where a missing cell goes: after the nearest cell that preceded it in the build."""
    present = {c["id"]: i for i, c in enumerate(cells)}
    for previous in reversed(order[: order.index(cell_id)]):
        if previous in present:
            return present[previous] + 1
    return 0
