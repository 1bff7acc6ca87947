"""A first read of each discovered file: which notebook of the course it is, its stamps, what
its parameters claim; or why it cannot be graded. Cheap: nothing is run.

* The notebook comes from ``metadata.vestige.notebook`` if the course has it, else from the
  file name (the longest notebook id in it); a disagreement is a flag.
* A notebook of another course (``metadata.vestige.course``) is not graded; one of another
  build, without a stamp, or the solution variant is graded and flagged.
* The student is the file's (:mod:`.intake`), never the notebook's: a different
  ``student`` parameter is a flag, read with a regex, never evaluated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from . import intake
from .checks import one_line

MAX_SCAN = 200_000
_STUDENT = re.compile(
    r"""^[ \t]*student[ \t]*=[ \t]*(?P<q>["'])(?P<v>[^"'\n]{0,200})(?P=q)[ \t]*(?:#[^\n]*)?$""",
    re.MULTILINE,
)


@dataclass
class Survey:
    """A discovered file after a first read: its notebook, flags, or why it cannot be graded.

    ``flags`` is one list all the way: its gradebook row and details hold it, so what the
    later steps find (copies across students) shows there too."""

    sub: intake.Submission
    notebook: str | None = None
    reason: str = ""
    sha256: str = ""
    flags: list[str] = field(default_factory=list)
    fingerprints: dict = field(default_factory=dict)  # solution cell id -> code fingerprint


def survey(sub: intake.Submission, notebooks: dict, course: str | None, max_bytes: int) -> Survey:
    """Read and check one file against the manifest's ``notebooks`` and ``course`` id."""
    item = Survey(sub)
    try:
        raw, nb = intake.read(sub, max_bytes)
    except intake.IntakeError as exc:
        item.reason = str(exc)
        item.notebook = notebook_from_name(sub, notebooks)
        return item
    except Exception as exc:
        item.reason = f"cannot read: {one_line(exc)}"
        return item
    item.sha256 = hashlib.sha256(raw).hexdigest()
    stamp = (nb.get("metadata") or {}).get("vestige")
    stamp = stamp if isinstance(stamp, dict) else {}
    from_meta = stamp.get("notebook") if isinstance(stamp.get("notebook"), str) else None
    from_name = notebook_from_name(sub, notebooks)
    if from_meta in notebooks:
        item.notebook = from_meta
        if from_name and from_name != from_meta:
            item.flags.append(f"file name says {from_name}, notebook is {from_meta}")
    elif from_name:
        item.notebook = from_name
        if from_meta:
            item.flags.append(f"unknown notebook id in metadata: {from_meta[:60]}")
    else:
        item.reason = "not a notebook of this course (no known notebook id)"
        return item
    stamped = stamp.get("course")
    build = notebooks[item.notebook]["build"]
    if not stamp:
        item.flags.append("no course stamp in the metadata")
    elif stamped != course:
        item.reason = f"another course: stamped {str(stamped)[:60]!r}, this is {course!r}"
        return item
    elif stamp.get("build") != build:
        item.flags.append(f"another build: {str(stamp.get('build'))[:20]}, current {build}")
    if stamp.get("variant") == "solution":
        item.flags.append("the solution notebook, not the learner's")
    said = student_parameter(nb)
    if said and intake.normalise_student(said) != sub.student:
        item.flags.append(f"student parameter says {said[:60]!r}")
    if not sub.student:
        item.flags.append("no student name in the folder or file name")
    return item


def notebook_from_name(sub: intake.Submission, notebooks) -> str | None:
    """The longest notebook id in the file name (case-insensitive), if any."""
    name = sub.path.name.casefold()
    matches = [nb for nb in notebooks if nb.casefold() in name]
    return max(matches, key=len) if matches else None


def student_parameter(nb: dict) -> str | None:
    """The ``student = "..."`` string a parameters (or papermill injected-parameters) cell
    sets, the last one winning as when it runs; read with a regex, never evaluated."""
    said = None
    for cell in nb["cells"]:
        tags = (cell.get("metadata") or {}).get("tags", [])
        if isinstance(tags, list) and ("parameters" in tags or "injected-parameters" in tags):
            matches = list(_STUDENT.finditer(intake.source_text(cell)[:MAX_SCAN]))
            said = matches[-1].group("v") if matches else said
    return said
