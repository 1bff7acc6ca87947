"""The package's import surface: `from vestige import NAME` gives the same object whatever
was imported before (a name equal to a submodule's would give the module once it is loaded)."""

import importlib
import pkgutil
import subprocess
import sys
import types

import vestige


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
