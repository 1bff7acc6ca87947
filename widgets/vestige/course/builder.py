"""Build learner and solution notebooks from the jupytext sources in ``course/``.

A source ``course/NN_name.py`` (percent format) becomes:

* ``notebooks/NN_name.ipynb``: the learner notebook, each ``### BEGIN SOLUTION`` ...
  ``### END SOLUTION`` block replaced by a stub that raises ``NotImplementedError``;
* ``course/solutions/NN_name.ipynb``: the solution notebook, markers removed;
* ``course/solutions/exercises.json``: ``{notebook: {exercise: points}}``;
* ``course/solutions/manifest.json``: what grading restores and checks against (below);
* in ``course/syllabus.md``, the plans block (`vestige.course.plans`).

**Paces.** A ``{{pace exN}}`` in a markdown cell becomes that exercise's `Pace` line
(difficulty, importance, minutes) from its checks module; each exercise with a pace has
exactly one.

**Check cells.** Cells tagged ``check`` in the source (``# %% tags=["check"]``) hold the
``Checker(...)`` construction and the ``check("exN", ...)`` calls, and nothing a learner
writes. They get stable ids (``check-setup``, ``check-ex1``, ...), are marked read-only for
JupyterLab (``editable``/``deletable`` false), and the manifest records, per notebook, the
sha256 and the source of each, the order of all cell ids (to put a deleted check cell back
where it was), the exercises and their points, the parameters' names, and code
fingerprints of the other code cells (to tell a learner's edits from the handout) and of
the solution cells (to flag submissions that paste the reference solution). A notebook
with a checks module (:mod:`vestige.course.checks`) must tag every cell that calls
``check``/``Checker`` and takes its points from that module; a notebook without one (old
inline checks) gets its check cells detected from the calls and its points from them.

**Stamps.** Every generated notebook's metadata carries the course id and a build hash
(``metadata.vestige.course`` / ``.build``; the hash covers the course id, the notebook id
and its source), so grading can flag a notebook of another course or another build.

Output is deterministic (no outputs, fixed metadata, cell ids from the cell index or the
check's exercise).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path

from . import checks as checks_registry
from . import plans
from .fingerprint import code_fingerprint

SOURCE_PATTERN = re.compile(r"^\d{2}_[A-Za-z0-9_-]+\.py$")
REGISTRY_NAME = "exercises.json"
SYLLABUS = "syllabus.md"  # its plans block is written from the checks modules' paces
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
BUILD_FORMAT = 2
DEFAULT_COURSE_ID = "vestige"
CHECK_TAG = "check"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_JUPYTEXT_KEYS = {
    "skipline",
    "noskipline",
    "cell_marker",
    "lines_to_next_cell",
    "lines_to_end_of_cell_marker",
}
_REBUILD = "run `vestige course build`"


class SourceError(ValueError):
    """A course source that cannot be built."""


def build(
    course_dir: str | Path = "course",
    notebooks_dir: str | Path = "notebooks",
    solutions_dir: str | Path = "course/solutions",
    check: bool = False,
    course_id: str = DEFAULT_COURSE_ID,
) -> list[str]:
    """Generate the course notebooks; return a list of problems (empty when all is well).

    With ``check=True`` nothing is written and missing or out-of-date files are problems too.
    Broken sources and ``.ipynb`` files without a source ("extra") are always problems.
    """
    course_dir, notebooks_dir, solutions_dir = (
        Path(course_dir),
        Path(notebooks_dir),
        Path(solutions_dir),
    )
    if not course_dir.is_dir():
        return [f"{course_dir}: no such directory"]
    sources = find_sources(course_dir)
    files, problems = render_course(sources, notebooks_dir, solutions_dir, course_id)
    syllabus = course_dir / SYLLABUS
    if syllabus.is_file() and plans.START in (text := syllabus.read_text(encoding="utf-8")):
        files[syllabus] = plans.with_plans(text)
    problems += extra_files(sources, notebooks_dir, solutions_dir)
    if check:
        return problems + out_of_sync(files)
    for path, text in files.items():
        write_if_changed(path, text)
    return problems


def find_sources(course_dir: Path) -> list[Path]:
    """The notebook sources ``NN_name.py`` directly in ``course_dir``, sorted."""
    return sorted(p for p in course_dir.glob("*.py") if SOURCE_PATTERN.match(p.name))


def render_course(
    sources: list[Path],
    notebooks_dir: Path,
    solutions_dir: Path,
    course_id: str = DEFAULT_COURSE_ID,
) -> tuple[dict[Path, str], list[str]]:
    """Render every source: ({output path: file text}, problems with broken sources)."""
    files: dict[Path, str] = {}
    registry: dict[str, dict[str, int]] = {}
    manifest: dict[str, dict] = {}
    problems = []
    for source in sources:
        try:
            rendered = render_source(source, course_id)
        except SourceError as exc:
            problems.append(f"{source}: {exc}")
            continue
        files[notebooks_dir / f"{source.stem}.ipynb"] = rendered.learner
        files[solutions_dir / f"{source.stem}.ipynb"] = rendered.solution
        registry[source.stem] = rendered.exercises
        manifest[source.stem] = rendered.manifest
    if sources and not problems:  # a registry without a broken notebook would lose its points
        files[solutions_dir / REGISTRY_NAME] = json.dumps(registry, indent=2) + "\n"
        document = {"format": MANIFEST_FORMAT, "course": course_id, "notebooks": manifest}
        files[solutions_dir / MANIFEST_NAME] = json.dumps(document, indent=1, sort_keys=True) + "\n"
    return files, problems


class Rendered:
    """One source, rendered: notebook texts, ``{exercise: points}``, its manifest entry."""

    def __init__(self, learner: str, solution: str, exercises: dict[str, int], manifest: dict):
        self.learner, self.solution, self.exercises, self.manifest = (
            learner,
            solution,
            exercises,
            manifest,
        )


def build_hash(course_id: str, notebook_id: str, source_text: str) -> str:
    """The build stamp of one notebook: changes when its source (or the course id) does."""
    text = f"vestige-course/{BUILD_FORMAT}\0{course_id}\0{notebook_id}\0{source_text}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def source_sha256(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def render_source(source: Path, course_id: str = DEFAULT_COURSE_ID) -> Rendered:
    """One source as learner and solution notebook texts, exercises and manifest entry."""
    import jupytext  # here, not at import: every `vestige` command builds a parser importing this

    notebook_id = source.stem
    text = source.read_text(encoding="utf-8")
    cells = jupytext.reads(text, fmt="py:percent").cells
    parameters = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    if not parameters:
        raise SourceError('no parameters cell (add `# %% tags=["parameters"]`)')
    try:
        checks = checks_registry.load(notebook_id)
    except Exception as exc:
        raise SourceError(f"cannot load its checks module: {exc}") from None
    roles = check_roles(cells, notebook_id, checks)
    cells = with_paces(cells, checks)
    pairs = [render_cell(cell, index, roles.get(index)) for index, cell in enumerate(cells)]
    learner, solution = [p[0] for p in pairs], [p[1] for p in pairs]
    exercises = declared_exercises(cells, roles, checks)
    stamp = build_hash(course_id, notebook_id, text)
    manifest = {
        "build": stamp,
        "api": "checks" if checks else "legacy",
        "checks_module": checks.name if checks else None,
        "exercises": exercises,
        "cells": [c.id for c in learner],
        "check_cells": {
            cell.id: {
                "sha256": source_sha256(cell.source),
                "exercises": roles[index][1],
                "source": cell.source,
            }
            for index, cell in enumerate(learner)
            if index in roles
        },
        "solution_cells": {
            sol.id: {"solution": code_fingerprint(sol.source), "stub": code_fingerprint(lrn.source)}
            for lrn, sol in zip(learner, solution)
            if lrn.source != sol.source
        },
        "code_cells": {
            cell.id: code_fingerprint(cell.source)
            for index, cell in enumerate(learner)
            if cell.cell_type == "code" and index not in roles
        },
        "parameters": _assigned_names(parameters[0].source),
        "parameters_cell": next(
            {"id": lc.id, "source": lc.source}
            for lc, c in zip(learner, cells)
            if c is parameters[0]
        ),
    }
    stamp_metadata = {"course": course_id, "build": stamp}
    return Rendered(
        notebook_text(learner, notebook_id, "learner", stamp_metadata),
        notebook_text(solution, notebook_id, "solution", stamp_metadata),
        exercises,
        manifest,
    )


PACE = re.compile(r"\{\{pace ([A-Za-z][A-Za-z0-9_-]*)\}\}")


def with_paces(cells: list, checks) -> list:
    """The cells with every ``{{pace ID}}`` in a markdown cell replaced by that exercise's
    `Pace` line from the checks module; every exercise with a pace must have its placeholder
    (one place where it is introduced) and every placeholder an exercise with a pace."""
    import nbformat

    exercises = checks.exercises if checks else {}
    placed: list[str] = []

    def line(match: re.Match) -> str:
        exercise = exercises.get(match.group(1))
        if exercise is None or exercise.pace is None:
            raise SourceError(f"{match.group(0)}: no exercise {match.group(1)!r} with a pace")
        placed.append(match.group(1))
        return exercise.pace.text()

    out = []
    for cell in cells:
        if cell.cell_type == "markdown" and PACE.search(cell.source):
            cell = nbformat.from_dict({**cell, "source": PACE.sub(line, cell.source)})
        out.append(cell)
    missing = [ex for ex, e in exercises.items() if e.pace is not None and ex not in placed]
    twice = sorted({ex for ex in placed if placed.count(ex) > 1})
    if missing or twice:
        raise SourceError(
            f"paces: add {{{{pace ID}}}} where each exercise is introduced (missing: "
            f"{', '.join(missing) or 'none'}; more than once: {', '.join(twice) or 'none'})"
        )
    return out


def check_roles(cells: list, notebook_id: str, checks) -> dict[int, tuple[str, list[str]]]:
    """``{cell index: (cell id, [exercise ids])}`` for the check cells.

    With a checks module, check cells are the cells tagged ``check``, and every cell that
    calls the checker must be one. Without (old inline checks), they are detected.
    """
    trees = {i: _parse(c.source, i) for i, c in enumerate(cells) if c.cell_type == "code"}
    checkers = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _is_checker(node.value):
                _expect_notebook_id(node.value, notebook_id)
                checkers.update(t.id for t in node.targets if isinstance(t, ast.Name))
    roles: dict[int, tuple[str, list[str]]] = {}
    for index, cell in enumerate(cells):
        tagged = CHECK_TAG in cell.metadata.get("tags", [])
        if cell.cell_type != "code":
            if tagged:
                raise SourceError(f"cell {index}: only code cells can be tagged {CHECK_TAG!r}")
            continue
        tree = trees[index]
        calls = _check_calls(tree, checkers)
        constructs = any(isinstance(n, ast.Call) and _is_checker(n) for n in ast.walk(tree))
        if checks is not None and (calls or constructs) and not tagged:
            raise SourceError(
                f"cell {index} calls check(...) or Checker(...): tag it "
                f'{CHECK_TAG!r} (`# %% tags=["{CHECK_TAG}"]`)'
            )
        if not (tagged or (checks is None and (calls or constructs))):
            continue
        if BEGIN in cell.source or END in cell.source:
            raise SourceError(f"cell {index}: a check cell cannot hold a solution")
        exercises = []
        for call in calls:
            exercise = _literal(call.args[0]) if call.args else None
            if not isinstance(exercise, str):
                raise SourceError(
                    f"line {call.lineno}: a check's exercise id must be a string literal"
                )
            if exercise in exercises or any(exercise in other for _, other in roles.values()):
                raise SourceError(f"exercise {exercise!r} is checked more than once")
            exercises.append(exercise)
        if not exercises and not constructs:
            raise SourceError(
                f"cell {index} is tagged {CHECK_TAG!r} but neither builds the "
                "Checker nor calls check(...)"
            )
        cell_id = "check-" + "-".join(exercises) if exercises else "check-setup"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cell_id):
            raise SourceError(
                f"cell {index}: exercise ids make the cell id {cell_id!r}; use "
                "letters, digits, _ and - (at most 64 in all)"
            )
        if any(cell_id == other for other, _ in roles.values()):
            raise SourceError(f"two check cells would get the id {cell_id!r}")
        roles[index] = (cell_id, exercises)
    return roles


def render_cell(cell, index: int, role: tuple[str, list[str]] | None = None) -> tuple:
    """A source cell as (learner cell, solution cell); learner cells with stubs may raise."""
    metadata = {k: v for k, v in cell.metadata.items() if k not in _JUPYTEXT_KEYS}
    cell_id = f"cell-{index}"
    if role is not None:
        cell_id = role[0]
        tags = metadata.get("tags", [])
        metadata = {
            **metadata,
            "tags": tags if CHECK_TAG in tags else [*tags, CHECK_TAG],
            "editable": False,
            "deletable": False,
        }
    learner_source = solution_source = cell.source
    if cell.cell_type == "code":
        try:
            learner_source, solution_source = split_solution(cell.source)
        except SourceError as exc:
            raise SourceError(f"cell {index}: {exc}") from None
    from nbformat import v4

    new_cell = getattr(v4, f"new_{cell.cell_type}_cell")
    solution = new_cell(solution_source, metadata=metadata, id=cell_id)
    if learner_source != solution_source:
        metadata = {**metadata, "tags": [*metadata.get("tags", []), "raises-exception"]}
    return new_cell(learner_source, metadata=metadata, id=cell_id), solution


def split_solution(source: str) -> tuple[str, str]:
    """A code cell as (learner source with stubs, solution source without markers)."""
    learner, solution, inside = [], [], False
    for line in source.splitlines():
        marker = line.strip()
        if marker.startswith(BEGIN):
            if inside:
                raise SourceError(f"nested {BEGIN!r}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            learner += [f"{indent}# YOUR CODE HERE", f"{indent}{STUB}"]
        elif marker.startswith(END):
            if not inside:
                raise SourceError(f"{END!r} without {BEGIN!r}")
            inside = False
        else:
            solution.append(line)
            if not inside:
                learner.append(line)
    if inside:
        raise SourceError(f"{BEGIN!r} without {END!r}")
    return "\n".join(learner), "\n".join(solution)


def notebook_text(cells: list, notebook_id: str, variant: str, stamp: dict | None = None) -> str:
    """Serialize cells as a notebook with fixed metadata (byte-identical on rebuild)."""
    metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        "vestige": {
            "notebook": notebook_id,
            "variant": variant,
            "source": f"{notebook_id}.py",
            **(stamp or {}),
        },
    }
    import nbformat

    return nbformat.writes(nbformat.v4.new_notebook(cells=cells, metadata=metadata)) + "\n"


def declared_exercises(
    cells: list, roles: dict[int, tuple[str, list[str]]], checks
) -> dict[str, int]:
    """``{exercise: points}`` in notebook order: points from the checks module if there is
    one, else from the ``points=`` literal of each old-style ``check(...)`` call."""
    exercises: dict[str, int] = {}
    checkers = _checker_names(cells, roles)
    for index in sorted(roles):
        tree = _parse(cells[index].source, index)
        for call in _check_calls(tree, checkers):
            if checks is None:
                exercise, points = _exercise(call)
            else:
                exercise = _literal(call.args[0])
                if any(k.arg in ("points", "hint", "success") for k in call.keywords):
                    raise SourceError(
                        f"exercise {exercise!r}: points, hints and success messages "
                        f"belong in the checks module {checks.name}"
                    )
                if exercise not in checks.exercises:
                    raise SourceError(
                        f"exercise {exercise!r} is not in the checks module {checks.name}"
                    )
                points = checks.exercises[exercise].points
            if exercise in exercises:
                raise SourceError(f"exercise {exercise!r} is checked more than once")
            exercises[exercise] = points
    if checks is not None:
        missing = [e for e in checks.exercises if e not in exercises]
        if missing:
            raise SourceError(f"no check cell for {', '.join(missing)} of {checks.name}")
    return exercises


def _checker_names(cells: list, roles) -> set[str]:
    names = set()
    for index in roles:
        for node in ast.walk(_parse(cells[index].source, index)):
            if isinstance(node, ast.Assign) and _is_checker(node.value):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _check_calls(tree: ast.Module, checkers: set[str]) -> list[ast.Call]:
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in checkers
    ]
    return sorted(calls, key=lambda n: (n.lineno, n.col_offset))


def _assigned_names(source: str) -> list[str]:
    names = []
    for node in _parse(source, 0).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


def _parse(source: str, index: int) -> ast.Module:
    """Parse a code cell, ignoring IPython magics and shell escapes."""
    if source.lstrip().startswith("%%"):
        return ast.Module(body=[], type_ignores=[])
    lines = [
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip()[:1] in ("%", "!") else line
        for line in source.splitlines()
    ]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError as exc:
        raise SourceError(f"code cell {index}: {exc.msg} (line {exc.lineno})") from None


def _is_checker(node: ast.expr) -> bool:
    func = getattr(node, "func", None)
    return isinstance(node, ast.Call) and (
        (isinstance(func, ast.Name) and func.id == "Checker")
        or (isinstance(func, ast.Attribute) and func.attr == "Checker")
    )


def _expect_notebook_id(call: ast.Call, notebook_id: str) -> None:
    given = _literal(call.args[0]) if call.args else None
    if given != notebook_id:
        raise SourceError(f"Checker({given!r}) must name its notebook: Checker({notebook_id!r})")


def _exercise(call: ast.Call) -> tuple[str, int]:
    """(exercise id, points) of one old-style check call; both must be literals."""
    exercise = _literal(call.args[0]) if call.args else None
    if not isinstance(exercise, str):
        raise SourceError(f"line {call.lineno}: a check's exercise id must be a string literal")
    points_node = next(
        (k.value for k in call.keywords if k.arg == "points"),
        call.args[2] if len(call.args) > 2 else None,
    )
    points = 1 if points_node is None else _literal(points_node)
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        raise SourceError(f"exercise {exercise!r}: points must be a non-negative integer literal")
    return exercise, points


def _literal(node: ast.expr):
    return node.value if isinstance(node, ast.Constant) else None


def extra_files(sources: list[Path], notebooks_dir: Path, solutions_dir: Path) -> list[str]:
    """Problems for notebooks in the output directories that no source generates."""
    stems = {source.stem for source in sources}
    extras = sorted(
        p for d in (notebooks_dir, solutions_dir) for p in d.glob("*.ipynb") if p.stem not in stems
    )
    return [
        f"{p}: no source for it in the course directory (delete it or add its source)"
        for p in extras
    ]


def out_of_sync(files: dict[Path, str]) -> list[str]:
    """Problems for generated files that are missing or differ from what build would write."""
    problems = []
    for path, text in files.items():
        if not path.exists():
            problems.append(f"{path}: missing ({_REBUILD})")
        elif path.read_bytes() != text.encode("utf-8"):
            problems.append(f"{path}: out of date ({_REBUILD})")
    return problems


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (atomically) unless it already holds exactly that."""
    from vestige.runs import atomic_write

    if path.exists() and path.read_bytes() == text.encode("utf-8"):
        return
    atomic_write(path, text)
