"""Turn a submission into the notebook the grader executes: the learner's cells, the
instructor's check cells, the grading parameters. Outputs are never carried over.

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

Learner code is scanned with the tokenizer (never ``ast``: a hostile cell can make the
parser recurse) for what deserves a look: rebinding ``check``/``Checker``, touching the
grading environment. Cells left as the handout had them are not scanned.
"""

from __future__ import annotations

import hashlib
import io
import re
import tokenize

from .fingerprint import code_fingerprint
from .intake import source_text

CELL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SCAN = 200_000
_STUDENT = re.compile(
    r"""^[ \t]*student[ \t]*=[ \t]*(?P<q>["'])(?P<v>[^"'\n]{0,200})(?P=q)[ \t]*(?:#[^\n]*)?$""",
    re.MULTILINE,
)
_GRADING_WORDS = ("VESTIGE_GRADING", "VESTIGE_CHECKS", "/grade/", "vestige.course")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def prepare(nb: dict, entry: dict, parameters: dict) -> tuple[dict, list[str], dict]:
    """(notebook to execute, flags, {solution cell id: learner fingerprint})."""
    check_cells: dict[str, dict] = entry["check_cells"]
    parameters_cell = entry["parameters_cell"]
    order: list[str] = entry["cells"]
    by_sha = {c["sha256"]: cid for cid, c in check_cells.items()}
    handout = entry.get("code_cells", {})
    flags: list[str] = []
    cells: list[dict] = []
    seen: set[str] = set()
    used_ids: set[str] = set()
    findings: dict[str, list[str]] = {}
    for index, cell in enumerate(nb["cells"]):
        cell_type = cell.get("cell_type")
        source = source_text(cell)
        cell_id = cell.get("id") if isinstance(cell.get("id"), str) else None
        tags = (
            [t for t in (cell.get("metadata") or {}).get("tags", []) if isinstance(t, str)]
            if isinstance((cell.get("metadata") or {}).get("tags", []), list)
            else []
        )
        label = cell_id if cell_id and CELL_ID.match(cell_id) else f"#{index}"
        is_parameters = cell_id == parameters_cell["id"] or (
            cell_id is None and "parameters" in tags
        )
        if is_parameters and parameters_cell["id"] not in seen:
            seen.add(parameters_cell["id"])
            used_ids.add(parameters_cell["id"])
            cells.append(_parameters_cell(parameters_cell))
            continue
        if cell_id == parameters_cell["id"]:
            flags.append(f"duplicated parameters cell dropped: {cell_id}")
            continue
        tags = [t for t in tags if t != "parameters"]
        if cell_id in check_cells:
            if cell_id in seen:
                flags.append(f"duplicated check cell dropped: {cell_id}")
                continue
            seen.add(cell_id)
            if cell_type != "code" or sha256(source) != check_cells[cell_id]["sha256"]:
                flags.append(f"edited check cell restored: {cell_id}")
            cells.append(_check_cell(cell_id, check_cells[cell_id]))
            used_ids.add(cell_id)
            continue
        if cell_type == "code" and sha256(source) in by_sha:
            original = by_sha[sha256(source)]
            if cell_id is None and original not in seen:  # nbformat < 4.5: no ids
                seen.add(original)
                cells.append(_check_cell(original, check_cells[original]))
                used_ids.add(original)
            else:
                flags.append(f"copy of check cell dropped: {label} (copy of {original})")
            continue
        if "injected-parameters" in tags:
            flags.append(f"injected-parameters cell dropped: {label}")
            continue
        new_id = cell_id if cell_id and CELL_ID.match(cell_id) and cell_id not in used_ids else None
        if new_id is None and cell_id is None and index < len(order):
            # nbformat < 4.5 has no ids: assume the handout's order (good enough to put a
            # deleted check cell back and to compare solution cells)
            positional = order[index]
            if (
                positional not in check_cells
                and positional not in used_ids
                and positional != parameters_cell["id"]
            ):
                new_id = positional
        if cell_type == "code":
            unchanged = new_id is not None and handout.get(new_id) == code_fingerprint(source)
            scan = Scan() if unchanged else scan_code(source)
            if "check" in tags or scan.only_check_calls:
                flags.append(f"extra check cell dropped: {label}")
                continue
            for finding in scan.findings:
                findings.setdefault(finding, []).append(label)
        if new_id is None:
            new_id = _fresh_id(index, used_ids)
        used_ids.add(new_id)
        cells.append(_learner_cell(cell_type, new_id, source, tags))
    for finding, labels in findings.items():
        flags.append(f"{finding}: {', '.join(labels[:5])}" + (" …" if len(labels) > 5 else ""))
    for cell_id in order:
        if cell_id not in seen and (cell_id in check_cells or cell_id == parameters_cell["id"]):
            position = _position(cell_id, order, cells)
            if cell_id in check_cells:
                cells.insert(position, _check_cell(cell_id, check_cells[cell_id]))
                flags.append(f"missing check cell re-inserted: {cell_id}")
            else:
                cells.insert(position, _parameters_cell(parameters_cell))
                flags.append(f"missing parameters cell re-inserted: {cell_id}")
            seen.add(cell_id)
    where = next(i for i, c in enumerate(cells) if c["id"] == parameters_cell["id"])
    injected = {
        "cell_type": "code",
        "id": _fresh_id(0, {c["id"] for c in cells}, "injected-parameters"),
        "metadata": {"tags": ["injected-parameters"]},
        "execution_count": None,
        "outputs": [],
        "source": parameter_source(parameters),
    }
    cells.insert(where + 1, injected)
    fingerprints = {}
    by_id = {c["id"]: c for c in cells}
    for cell_id in entry.get("solution_cells", {}):
        if cell_id in by_id:
            fingerprints[cell_id] = code_fingerprint(by_id[cell_id]["source"])
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": cells,
    }
    return notebook, flags, fingerprints


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


def student_parameter(nb: dict) -> str | None:
    """The ``student = "..."`` string a parameters (or papermill injected-parameters) cell
    sets, the last one winning as when it runs; read with a regex, never evaluated."""
    said = None
    for cell in nb["cells"]:
        tags = (cell.get("metadata") or {}).get("tags", [])
        if isinstance(tags, list) and ("parameters" in tags or "injected-parameters" in tags):
            matches = list(_STUDENT.finditer(source_text(cell)[:MAX_SCAN]))
            said = matches[-1].group("v") if matches else said
    return said


class Scan:
    """What the tokenizer found in one learner cell."""

    def __init__(self):
        self.statements = 0
        self.check_calls = 0
        self.findings: list[str] = []

    @property
    def only_check_calls(self) -> bool:
        return self.statements > 0 and self.statements == self.check_calls


def scan_code(source: str) -> Scan:
    scan = Scan()
    if len(source) > MAX_SCAN:
        scan.findings.append("very large code cell, not scanned")
        return scan
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type
            not in (
                tokenize.COMMENT,
                tokenize.NL,
                tokenize.INDENT,
                tokenize.DEDENT,
                tokenize.ENCODING,
                tokenize.ENDMARKER,
            )
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError, RecursionError):
        return scan
    statement: list = []
    for token in tokens + [None]:
        if (
            token is None
            or token.type == tokenize.NEWLINE
            or (token.type == tokenize.OP and token.string == ";")
        ):
            if statement:
                _statement(statement, scan)
            statement = []
        else:
            statement.append(token)
    if 0 < scan.check_calls < scan.statements:
        scan.findings.append("calls check() in a learner cell (kept)")
    scan.findings = sorted(set(scan.findings))
    return scan


def _statement(tokens: list, scan: Scan) -> None:
    scan.statements += 1
    strings = [t.string for t in tokens]
    if len(strings) >= 2 and strings[0] == "check" and strings[1] == "(":
        scan.check_calls += 1
    for i, text in enumerate(strings):
        before = strings[i - 1] if i else ""
        after = strings[i + 1] if i + 1 < len(strings) else ""
        if tokens[i].type == tokenize.NAME and text in ("check", "Checker"):
            if after in ("=", ":=", "+=") or before in (
                "def",
                "class",
                "as",
                "del",
                "global",
                "nonlocal",
                "for",
                "import",
                ",",
            ):
                scan.findings.append(f"rebinds {text}")
            elif before == "." or after == ".":
                scan.findings.append(f"reaches into {text}")
            elif text == "Checker":
                scan.findings.append("uses Checker")
        if tokens[i].type == tokenize.STRING and any(w in text for w in _GRADING_WORDS):
            scan.findings.append("touches the grading machinery")
        if text == "vestige" and after == "." and strings[i + 2 : i + 3] == ["course"]:
            scan.findings.append("touches the grading machinery")
        if text in ("__builtins__", "builtins", "sys") and after == ".":
            scan.findings.append(f"modifies {text}")


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
    """Where a missing check cell goes: after the nearest cell that preceded it in the build."""
    present = {c["id"]: i for i, c in enumerate(cells)}
    for previous in reversed(order[: order.index(cell_id)]):
        if previous in present:
            return present[previous] + 1
    return 0
