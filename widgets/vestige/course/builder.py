"""Build learner and solution notebooks from the jupytext sources in ``course/``.

A source ``course/NN_name.py`` (percent format) becomes:

* ``notebooks/NN_name.ipynb``: the learner notebook, each ``### BEGIN SOLUTION`` ...
  ``### END SOLUTION`` block replaced by a stub that raises ``NotImplementedError``;
* ``course/solutions/NN_name.ipynb``: the solution notebook, markers removed;
* ``course/solutions/exercises.json``: ``{notebook: {exercise: points}}`` parsed from the
  ``Checker`` calls in the sources; ``grade`` takes max points from it.

Output is deterministic (no outputs, fixed metadata, cell ids from the cell index).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import jupytext
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

SOURCE_PATTERN = re.compile(r"^\d{2}_[A-Za-z0-9_-]+\.py$")
REGISTRY_NAME = "exercises.json"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_JUPYTEXT_KEYS = {"skipline", "noskipline", "cell_marker", "lines_to_next_cell",
                  "lines_to_end_of_cell_marker"}
_NEW_CELL = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}
_REBUILD = "run `vestige course build`"


class SourceError(ValueError):
    """A course source that cannot be built."""


def build(
    course_dir: str | Path = "course",
    notebooks_dir: str | Path = "notebooks",
    solutions_dir: str | Path = "course/solutions",
    check: bool = False,
) -> list[str]:
    """Generate the course notebooks; return a list of problems (empty when all is well).

    With ``check=True`` nothing is written and missing or out-of-date files are problems too.
    Broken sources and ``.ipynb`` files without a source ("extra") are always problems.
    """
    course_dir, notebooks_dir, solutions_dir = Path(course_dir), Path(notebooks_dir), Path(solutions_dir)
    if not course_dir.is_dir():
        return [f"{course_dir}: no such directory"]
    sources = find_sources(course_dir)
    files, problems = render_course(sources, notebooks_dir, solutions_dir)
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
    sources: list[Path], notebooks_dir: Path, solutions_dir: Path
) -> tuple[dict[Path, str], list[str]]:
    """Render every source: ({output path: file text}, problems with broken sources)."""
    files: dict[Path, str] = {}
    registry: dict[str, dict[str, int]] = {}
    problems = []
    for source in sources:
        try:
            learner, solution, exercises = render_source(source)
        except SourceError as exc:
            problems.append(f"{source}: {exc}")
            continue
        files[notebooks_dir / f"{source.stem}.ipynb"] = learner
        files[solutions_dir / f"{source.stem}.ipynb"] = solution
        registry[source.stem] = exercises
    if sources and not problems:  # a registry without a broken notebook would lose its points
        files[solutions_dir / REGISTRY_NAME] = json.dumps(registry, indent=2) + "\n"
    return files, problems


def render_source(source: Path) -> tuple[str, str, dict[str, int]]:
    """One source as (learner notebook text, solution notebook text, {exercise: points})."""
    notebook_id = source.stem
    cells = jupytext.read(source, fmt="py:percent").cells
    if not any("parameters" in cell.metadata.get("tags", []) for cell in cells):
        raise SourceError('no parameters cell (add `# %% tags=["parameters"]`)')
    pairs = [render_cell(cell, index) for index, cell in enumerate(cells)]
    learner, solution = [p[0] for p in pairs], [p[1] for p in pairs]
    exercises = declared_exercises([c.source for c in solution if c.cell_type == "code"], notebook_id)
    return (notebook_text(learner, notebook_id, "learner"),
            notebook_text(solution, notebook_id, "solution"), exercises)


def render_cell(cell, index: int) -> tuple:
    """A source cell as (learner cell, solution cell); learner cells with stubs may raise."""
    metadata = {k: v for k, v in cell.metadata.items() if k not in _JUPYTEXT_KEYS}
    learner_source = solution_source = cell.source
    if cell.cell_type == "code":
        try:
            learner_source, solution_source = split_solution(cell.source)
        except SourceError as exc:
            raise SourceError(f"cell {index}: {exc}") from None
    new_cell = _NEW_CELL[cell.cell_type]
    solution = new_cell(solution_source, metadata=metadata, id=f"cell-{index}")
    if learner_source != solution_source:
        metadata = {**metadata, "tags": [*metadata.get("tags", []), "raises-exception"]}
    return new_cell(learner_source, metadata=metadata, id=f"cell-{index}"), solution


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


def notebook_text(cells: list, notebook_id: str, variant: str) -> str:
    """Serialize cells as a notebook with fixed metadata (byte-identical on rebuild)."""
    metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        "vestige": {"notebook": notebook_id, "variant": variant, "source": f"{notebook_id}.py"},
    }
    return nbformat.writes(new_notebook(cells=cells, metadata=metadata)) + "\n"


def declared_exercises(code_cells: list[str], notebook_id: str) -> dict[str, int]:
    """``{exercise: points}`` from ``check = Checker(id)`` / ``check("exN", ..., points=K)`` calls."""
    trees = [_parse(source, index) for index, source in enumerate(code_cells)]
    checkers = set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Assign) and _is_checker(node.value):
            _expect_notebook_id(node.value, notebook_id)
            checkers.update(t.id for t in node.targets if isinstance(t, ast.Name))
    calls = sorted(
        ((index, n.lineno, n.col_offset, n) for index, tree in enumerate(trees) for n in ast.walk(tree)
         if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in checkers),
        key=lambda item: item[:3],
    )
    exercises: dict[str, int] = {}
    for *_, call in calls:
        exercise, points = _exercise(call)
        if exercise in exercises:
            raise SourceError(f"exercise {exercise!r} is checked more than once")
        exercises[exercise] = points
    return exercises


def _parse(source: str, index: int) -> ast.Module:
    """Parse a code cell, ignoring IPython magics and shell escapes."""
    if source.lstrip().startswith("%%"):
        return ast.Module(body=[], type_ignores=[])
    lines = [line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip()[:1] in ("%", "!")
             else line for line in source.splitlines()]
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
    """(exercise id, points) of one check call; both must be literals."""
    exercise = _literal(call.args[0]) if call.args else None
    if not isinstance(exercise, str):
        raise SourceError(f"line {call.lineno}: a check's exercise id must be a string literal")
    points_node = next((k.value for k in call.keywords if k.arg == "points"),
                       call.args[2] if len(call.args) > 2 else None)
    points = 1 if points_node is None else _literal(points_node)
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        raise SourceError(f"exercise {exercise!r}: points must be a non-negative integer literal")
    return exercise, points


def _literal(node: ast.expr):
    return node.value if isinstance(node, ast.Constant) else None


def extra_files(sources: list[Path], notebooks_dir: Path, solutions_dir: Path) -> list[str]:
    """Problems for notebooks in the output directories that no source generates."""
    stems = {source.stem for source in sources}
    extras = sorted(p for d in (notebooks_dir, solutions_dir) for p in d.glob("*.ipynb")
                    if p.stem not in stems)
    return [f"{p}: no source for it in the course directory (delete it or add its source)"
            for p in extras]


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
    """Write ``text`` to ``path`` unless it already holds exactly that."""
    if path.exists() and path.read_bytes() == text.encode("utf-8"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
