"""What a grading run of one submission is given: the notebook's parameters and hidden inputs.

The checks module chooses them (typically a precomputed run of another seed than the
learner's, so a pasted constant is wrong; fresh inputs for function exercises), from a
random generator seeded by the grader's salt, the student and the notebook, so a salt
reproduces a grading. ``--param NAME=JSON`` wins over the module's choice for the notebooks
that declare ``NAME``. The judge sees the same parameters with ``runs_dir`` on the host.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import Checks, one_line

INSIDE_RUNS = "/runs"  # where the sandbox sees the runs


class SetupError(Exception):
    """Grading cannot be set up for this submission; the message is its row's reason."""


@dataclass
class Grading:
    """One submission's grading: what is injected into the notebook, what the judge gets."""

    injected: dict[str, Any]
    judged: dict[str, Any]
    hidden: Any = None

    @property
    def shown(self) -> dict[str, Any]:
        """The parameters the gradebook records (the student is in its own column)."""
        return {k: v for k, v in self.injected.items() if k != "student"}


def submission_rng(salt: str, student: str, notebook: str):
    import numpy as np

    digest = hashlib.sha256(f"{salt}\0{student}\0{notebook}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def choose(
    checks: Checks | None,
    declared: list[str],
    runs: Path | None,
    extra: dict,
    student: str,
    rng,
) -> Grading:
    """The grading of a notebook that declares the parameters ``declared``, against the
    precomputed ``runs`` (host path), with the instructor's ``extra`` parameters."""
    if checks is not None and runs is None and hasattr(checks.module, "grading_parameters"):
        raise SetupError("this notebook is graded against precomputed runs: pass --runs DIR")
    try:
        chosen = checks.grading_parameters(runs, rng) if checks else {}
    except Exception as exc:
        raise SetupError(f"cannot set up grading: {one_line(exc)}") from exc
    declared = set(declared)
    injected = {}
    if "student" in declared:
        injected["student"] = student
    if "runs_dir" in declared and runs is not None:
        injected["runs_dir"] = INSIDE_RUNS
    injected.update(chosen)
    injected.update({k: v for k, v in extra.items() if k in declared})
    judged = {**injected, "runs_dir": str(runs) if runs else injected.get("runs_dir")}
    hidden = checks.hidden_inputs(judged, rng) if checks else None
    return Grading(injected, judged, hidden)
