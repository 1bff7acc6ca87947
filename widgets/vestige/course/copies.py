"""Code shared across students, found after every submission is graded.

A solution cell whose code (comments and spacing aside: :mod:`.fingerprint`) is identical in
several students' submissions, or identical to the reference solution, and byte-identical
files, are flagged for review. A cell left as the handout had it (the stub) is never a copy.
"""

from __future__ import annotations

from collections import defaultdict

from .survey import Survey


def flag_copies(counted: list[Survey], notebooks: dict) -> None:
    """Add the flags to each counted submission (``notebooks``: the manifest's entries)."""
    by_code: dict[tuple, set[str]] = defaultdict(set)
    by_file: dict[str, set[str]] = defaultdict(set)
    for item in counted:
        by_file[item.sha256].add(item.sub.student)
        for cell_id, fingerprint in _changed(item, notebooks):
            by_code[(item.notebook, cell_id, fingerprint)].add(item.sub.student)
    for item in counted:
        solutions = notebooks[item.notebook]["solution_cells"]
        changed = _changed(item, notebooks)
        for cell_id, fingerprint in sorted(changed):
            if fingerprint == solutions.get(cell_id, {}).get("solution"):
                item.flags.append(f"same code as the reference solution in {cell_id}")
            others = sorted(by_code[(item.notebook, cell_id, fingerprint)] - {item.sub.student})
            if others:
                more = " …" if len(others) > 8 else ""
                item.flags.append(f"same code in {cell_id} as: {', '.join(others[:8])}{more}")
        twins = sorted(by_file[item.sha256] - {item.sub.student})
        if twins and changed:
            item.flags.append(f"byte-identical file to: {', '.join(twins[:8])}")


def _changed(item: Survey, notebooks: dict) -> list[tuple[str, str]]:
    """(cell id, fingerprint) of the solution cells the learner changed from the stub."""
    solutions = notebooks[item.notebook]["solution_cells"]
    return [
        (cell_id, fingerprint)
        for cell_id, fingerprint in item.fingerprints.items()
        if fingerprint != solutions.get(cell_id, {}).get("stub")
    ]
