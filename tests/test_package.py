"""The package's import surface: `from vestige import NAME` gives the same object whatever
was imported before (a name equal to a submodule's would give the module once it is loaded)."""

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import vestige

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "widgets" / "vestige"


def test_every_export_resolves_to_its_object_after_every_submodule_is_loaded():
    for info in pkgutil.walk_packages(vestige.__path__, "vestige."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name, target in vestige._EXPORTS.items():
        module, colon, attribute = target.partition(":")
        expected = importlib.import_module(module)
        if not (colon and not attribute):
            expected = getattr(expected, attribute or name)
        assert getattr(vestige, name) is expected, name
        if not isinstance(expected, types.ModuleType):
            assert not hasattr(sys.modules.get(f"vestige.{name}"), "__path__"), name
            assert f"vestige.{name}" not in sys.modules, f"{name} is also a submodule's name"


def test_the_checker_alone_does_not_load_torch():
    code = "import sys\nfrom vestige import Checker, setup\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def _imported_modules(path: Path) -> set[str]:
    """The package's top-level modules that `path` imports (at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and path.parent == PACKAGE or node.level == 2:
                found.add((node.module or "").split(".")[0])
            elif (node.module or "").startswith("vestige."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("vestige."))
    return found


def test_the_readme_module_map_lists_every_module_in_import_order():
    text = (REPO / "README.md").read_text()
    table = text[text.index("| module | what |") :].split("\n\n")[0]
    rows = [re.findall(r"`(\w+)`", line.split("|")[1]) for line in table.splitlines()[2:]]
    rank = {name: i for i, names in enumerate(rows) for name in names}
    modules = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__")} | {"course"}
    assert set(rank) == modules
    for path in [*PACKAGE.glob("*.py"), *(PACKAGE / "course").rglob("*.py")]:
        name = path.stem if path.parent == PACKAGE else "course"
        if name.startswith("__"):
            continue
        later = {m for m in _imported_modules(path) if m in rank and rank[m] > rank[name]}
        assert not later, f"{path.relative_to(REPO)} imports {sorted(later)}, listed below it"
