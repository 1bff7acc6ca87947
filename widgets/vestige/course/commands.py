"""``vestige course build|grade`` subcommands, for the main ``vestige`` CLI.

The main CLI calls ``add_course_parser(subparsers)`` and then ``args.func(args)``.
``course build`` with problems raises ``SystemExit`` (status 1) after listing them.
Submissions are positional; put them after ``--`` if a file name could start with ``-``
(``vestige course grade --runs runs -- subs/*.ipynb``). Option values that look like
submissions (``*.ipynb``) are refused rather than used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .builder import DEFAULT_COURSE_ID, build
from .grader import DEFAULT_MANIFEST, grade_to_csv
from .intake import DEFAULT_MAX_BYTES
from .sandbox import MB, Limits


def add_course_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``course build`` and ``course grade`` on an argparse subparsers object."""
    course = subparsers.add_parser(
        "course", help="build course notebooks and grade submissions", allow_abbrev=False
    )
    commands = course.add_subparsers(dest="course_command", required=True)

    build_parser = commands.add_parser(
        "build", help="generate learner and solution notebooks from course/*.py", allow_abbrev=False
    )
    build_parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; fail if generated files are out of date",
    )
    build_parser.add_argument("--course-dir", default="course")
    build_parser.add_argument("--notebooks-dir", default="notebooks")
    build_parser.add_argument("--solutions-dir", default="course/solutions")
    build_parser.add_argument(
        "--course-id",
        default=DEFAULT_COURSE_ID,
        help="stamped into every notebook; grading refuses other courses'",
    )
    build_parser.set_defaults(func=build_command)

    limits = Limits()
    grade_parser = commands.add_parser(
        "grade",
        allow_abbrev=False,
        help="re-execute submissions in a sandbox and write a gradebook CSV",
    )
    grade_parser.add_argument(
        "submissions",
        nargs="+",
        help="notebooks or folders of notebooks (after -- if a name may start with -)",
    )
    grade_parser.add_argument("--out", default="gradebook.csv", help="CSV to write")
    grade_parser.add_argument("--runs", help="precomputed runs, mounted read-only at /runs")
    grade_parser.add_argument(
        "--manifest", default=str(DEFAULT_MANIFEST), help="manifest written by `course build`"
    )
    grade_parser.add_argument(
        "--details", help="per-submission feedback and timings, JSON lines (default: next to --out)"
    )
    grade_parser.add_argument("--keep", help="keep executed notebooks and logs in this folder")
    grade_parser.add_argument(
        "--timeout",
        type=float,
        default=limits.wall_seconds,
        help="wall-time limit per submission, seconds",
    )
    grade_parser.add_argument(
        "--memory",
        type=int,
        default=limits.memory_bytes // MB,
        help="memory limit per submission (RSS of all its processes), MB",
    )
    grade_parser.add_argument(
        "--max-size",
        type=int,
        default=DEFAULT_MAX_BYTES // MB,
        help="largest submission file read, MB",
    )
    grade_parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="parameter injected into notebooks that declare NAME",
    )
    grade_parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a folder the notebooks read, mounted read-only at /data/NAME "
        "(pair with --param, e.g. study_dir='\"/data/study\"')",
    )
    grade_parser.add_argument(
        "--salt",
        help="seeds the per-submission grading choices "
        "(random by default; recorded in the details)",
    )
    grade_parser.add_argument("--jobs", type=int, default=1, help="submissions run at once")
    grade_parser.set_defaults(func=grade_command)

    return course


def build_command(args: argparse.Namespace) -> None:
    """Run ``build`` from parsed arguments; print problems and exit with status 1 if any."""
    problems = build(
        args.course_dir,
        args.notebooks_dir,
        args.solutions_dir,
        check=args.check,
        course_id=args.course_id,
    )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise SystemExit(f"vestige course build: {len(problems)} problem(s), listed above")
    print("course notebooks are up to date" if args.check else "course notebooks built")


def grade_command(args: argparse.Namespace) -> None:
    """Run ``grade_to_csv`` from parsed arguments; print a summary."""
    for option in ("out", "runs", "manifest", "details", "keep"):
        value = getattr(args, option)
        if value and str(value).lower().endswith(".ipynb"):
            raise SystemExit(
                f"vestige course grade: --{option} {value!r} looks like a submission; "
                "put submissions after `--`"
            )
    if not str(args.out).lower().endswith(".csv"):
        raise SystemExit("vestige course grade: --out must name a .csv file")
    parameters = {}
    for item in args.param:
        name, _, value = item.partition("=")
        try:
            parameters[name] = json.loads(value)
        except ValueError:
            raise SystemExit(
                f"vestige course grade: --param {item!r}: the value must be JSON"
            ) from None
    data = {}
    for item in args.data:
        name, _, folder = item.partition("=")
        if not (name.isidentifier() and folder):
            raise SystemExit(f"vestige course grade: --data {item!r}: use NAME=DIR")
        data[name] = folder
    details = args.details or str(Path(args.out).with_suffix(".details.jsonl"))
    limits = Limits(wall_seconds=args.timeout, memory_bytes=args.memory * MB)
    gradebook = grade_to_csv(
        args.submissions,
        args.out,
        manifest=args.manifest,
        runs=args.runs,
        details=details,
        limits=limits,
        max_bytes=args.max_size * MB,
        parameters=parameters,
        data=data,
        salt=args.salt,
        keep=args.keep,
        jobs=args.jobs,
    )
    problems = gradebook[gradebook["reason"] != ""]
    for _, row in problems.iterrows():
        print(f"{row['file']}: {row['reason']}", file=sys.stderr)
    summary = gradebook[["student", "notebook", "points", "max_points", "percent"]]
    print(summary.to_string(index=False))
    flagged = int((gradebook["flags"] != "").sum())
    print(f"wrote {args.out} ({len(gradebook)} rows, {flagged} flagged; details in {details})")
