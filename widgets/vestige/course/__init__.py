"""Course tooling: build notebooks from ``course/*.py``, check exercises, grade submissions.

* ``build(...)`` turns jupytext sources into learner and solution notebooks.
* ``Checker("10_train")("ex1", test, points=2, hint=...)`` gives immediate feedback.
* ``grade(paths)`` / ``grade_to_csv(paths, out_csv)`` make a gradebook from executed notebooks.
* ``add_course_parser(subparsers)`` adds ``vestige course build|grade`` to the CLI.
"""

from .builder import build
from .checker import MIME_TYPE, STRICT_ENV, Checker, CheckFailed
from .commands import add_course_parser, build_command, grade_command
from .grader import grade, grade_to_csv

__all__ = [
    "MIME_TYPE",
    "STRICT_ENV",
    "CheckFailed",
    "Checker",
    "add_course_parser",
    "build",
    "build_command",
    "grade",
    "grade_command",
    "grade_to_csv",
]
