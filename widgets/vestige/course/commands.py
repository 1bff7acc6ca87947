"""``vestige course build|grade`` subcommands, for the main ``vestige`` CLI.

The main CLI calls ``add_course_parser(subparsers)`` and then ``args.func(args)``.
``course build`` with problems raises ``SystemExit`` (status 1) after listing them.
"""

from __future__ import annotations

import argparse
import sys

from .builder import build
from .grader import DEFAULT_REGISTRY, grade_to_csv


def add_course_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``course build`` and ``course grade`` on an argparse subparsers object."""
    course = subparsers.add_parser("course", help="build course notebooks and grade submissions")
    commands = course.add_subparsers(dest="course_command", metavar="{build,grade}", required=True)

    build_parser = commands.add_parser(
        "build", help="generate learner and solution notebooks from course/*.py")
    build_parser.add_argument("--check", action="store_true",
                              help="write nothing; fail if generated files are out of date")
    build_parser.add_argument("--course-dir", default="course")
    build_parser.add_argument("--notebooks-dir", default="notebooks")
    build_parser.add_argument("--solutions-dir", default="course/solutions")
    build_parser.set_defaults(func=build_command)

    grade_parser = commands.add_parser(
        "grade", help="collect check results from executed notebooks into a gradebook CSV")
    grade_parser.add_argument("submissions", nargs="+", help="notebooks or folders of notebooks")
    grade_parser.add_argument("--out", default="gradebook.csv", help="CSV to write")
    grade_parser.add_argument("--exercises", default=str(DEFAULT_REGISTRY),
                              help="exercise registry written by `course build`")
    grade_parser.set_defaults(func=grade_command)
    return course


def build_command(args: argparse.Namespace) -> None:
    """Run ``build`` from parsed arguments; print problems and exit with status 1 if any."""
    problems = build(args.course_dir, args.notebooks_dir, args.solutions_dir, check=args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise SystemExit(f"vestige course build: {len(problems)} problem(s), listed above")
    print("course notebooks are up to date" if args.check else "course notebooks built")


def grade_command(args: argparse.Namespace) -> None:
    """Run ``grade_to_csv`` from parsed arguments; print a summary and unreadable files."""
    gradebook = grade_to_csv(args.submissions, args.out, args.exercises)
    for error in gradebook["error"][gradebook["error"] != ""]:
        print(error, file=sys.stderr)
    summary = gradebook[["student", "notebook", "points", "max_points", "percent"]]
    print(summary.to_string(index=False))
    print(f"wrote {args.out} ({len(gradebook)} notebooks)")
