"""A room with no network (issue 10): the kit installs from a wheelhouse with the network denied.

What the room does: someone with network runs ``make wheelhouse`` once (every wheel the kit
needs, CPU torch included, in ``wheelhouse/``) and copies the checkout with that folder; on
each machine ``make lab`` then installs with ``pip --no-index --find-links wheelhouse``.

The test does exactly that in a copy of this checkout (the files git tracks or would track),
with three things that make "offline" a fact rather than a hope:

* the install and everything after it run in a new, empty network namespace (bubblewrap
  ``--unshare-net``, else ``unshare -n``): no name resolves and no address is reachable;
  the first test shows that;
* ``PIP_CONFIG_FILE=/dev/null``: pip ignores this machine's configuration (its local torch
  folder and file indexes), so every wheel must come from the wheelhouse;
* the install is the Makefile's own ``$(STAMP)`` rule (``make .venv/.installed``), not a
  command written for the test.

Then, from that install and still without network: import the kit (CPU torch), train the
tiny preset, build the course notebooks, and run a subset of ``make test-fast``: the test
modules that exercise what the install brings (torch and transformer-lens, safetensors and
parquet, altair with vl-convert's offline PNGs, jupytext/nbformat). The whole ``make
test-fast`` takes much longer on a busy 2-core machine; ``VESTIGE_OFFLINE_FULL=1`` runs it.

Uses ``wheelhouse/`` (or ``$VESTIGE_WHEELHOUSE``) when it holds wheels, else builds one in a
temporary folder first (``make wheelhouse``, with network: 15 s here with PyPI reachable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FAST_SUBSET = [
    "tests/test_config.py",
    "tests/test_task.py",
    "tests/test_model.py",
    "tests/test_train.py",
    "tests/test_runs.py",
    "tests/test_charts.py",
    "tests/test_course.py",
]
PROBE = (
    "import socket\n"
    "try:\n"
    "    socket.create_connection(('pypi.org', 443), timeout=5)\n"
    "except OSError as exc:\n"
    "    print('denied:', exc)\n"
    "else:\n"
    "    print('CONNECTED')\n"
)


def _deny_network() -> list[str]:
    """A command prefix that runs its command in a new network namespace (loopback only)."""
    candidates = []
    if shutil.which("bwrap"):
        candidates.append(
            ["bwrap", "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent", "--"]
        )
    if shutil.which("unshare"):
        candidates.append(["unshare", "--net", "--"])
    for prefix in candidates:
        probe = subprocess.run(
            [*prefix, sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0 and "denied" in probe.stdout:
            return prefix
    pytest.skip("cannot create a network namespace here (no bwrap/unshare, or no privileges)")


def _offline_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHONPATH", "CONDA"))
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
    )
    return env


def _run(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None):
    done = subprocess.run(
        cmd, cwd=cwd, env=env or _offline_env(), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    return done


def _copy_checkout(dest: Path) -> None:
    """The files of this checkout that git tracks or would track (no .venv, runs, wheelhouse)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    if listed.returncode != 0:
        shutil.copytree(
            ROOT,
            dest,
            ignore=shutil.ignore_patterns(
                ".venv", "runs", "wheelhouse*", "build", ".git", "__pycache__", "*.egg-info"
            ),
        )
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _base_python() -> str:
    """The interpreter behind this venv: the wheelhouse was built for it."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


@pytest.fixture(scope="module")
def deny() -> list[str]:
    return _deny_network()


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    given = Path(os.environ.get("VESTIGE_WHEELHOUSE", ROOT / "wheelhouse"))
    if any(given.glob("*.whl")):
        return given.resolve()
    built = tmp_path_factory.mktemp("wheelhouse") / "wheelhouse"
    _run(
        ["make", "--no-print-directory", "wheelhouse", f"WHEELHOUSE={built}"],
        ROOT,
        timeout=1800,
        env=dict(os.environ),
    )
    return built


@pytest.fixture(scope="module")
def offline_checkout(tmp_path_factory, wheelhouse, deny) -> Path:
    """A copy of the checkout whose .venv was installed by `make` from the wheelhouse alone."""
    repo = tmp_path_factory.mktemp("room") / "vestige"
    repo.mkdir()
    _copy_checkout(repo)
    done = _run(
        [
            *deny,
            "make",
            "--no-print-directory",
            ".venv/.installed",
            f"WHEELHOUSE={wheelhouse}",
            f"PYTHON={_base_python()}",
        ],
        repo,
        timeout=3600,
    )
    assert "installing from" in done.stdout and "pip --no-index" in done.stdout, done.stdout
    return repo


def test_the_sandbox_has_no_network(deny):
    probe = subprocess.run(
        [*deny, sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60
    )
    assert "denied" in probe.stdout and "CONNECTED" not in probe.stdout


def test_stamp_install_uses_the_wheelhouse_only_when_present(tmp_path):
    """Without a wheelhouse the install lines are the online ones (a fresh machine still works)."""
    online = subprocess.run(
        ["make", "-n", "-B", ".venv/.installed", f"WHEELHOUSE={tmp_path / 'none'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert online.returncode == 0 and "--no-index" not in online.stdout
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / "x-1.0-py3-none-any.whl").write_bytes(b"")
    offline = subprocess.run(
        ["make", "-n", "-B", ".venv/.installed", f"WHEELHOUSE={tmp_path / 'wh'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert offline.returncode == 0
    installs = [line for line in offline.stdout.splitlines() if "pip install" in line]
    assert len(installs) == 3 and all("--no-index --find-links" in line for line in installs)


def test_offline_install_has_the_kit_and_cpu_torch(offline_checkout, deny):
    python = str(offline_checkout / ".venv/bin/python")
    done = _run(
        [
            *deny,
            python,
            "-c",
            (
                "import torch, vestige, transformer_lens, jupyterlab, vl_convert, pytest; "
                "print(torch.__version__, vestige.__file__)"
            ),
        ],
        offline_checkout,
        timeout=600,
    )
    version, location = done.stdout.split()
    assert version.startswith("2.13.0") and "+cpu" in version
    assert Path(location).is_relative_to(offline_checkout)  # the editable install of the copy


def test_offline_install_trains_tiny_and_builds_the_course(offline_checkout, deny):
    bin_dir = offline_checkout / ".venv/bin"
    _run(
        [
            *deny,
            str(bin_dir / "vestige"),
            "train",
            "--preset",
            "tiny",
            "--seed",
            "0",
            "--out",
            "runs/tiny/seed-0",
            "--quiet",
        ],
        offline_checkout,
        timeout=1200,
    )
    assert list((offline_checkout / "runs/tiny/seed-0/checkpoints").glob("*.safetensors"))
    _run([*deny, str(bin_dir / "vestige"), "course", "build"], offline_checkout, timeout=600)
    assert list((offline_checkout / "notebooks").glob("00_*.ipynb"))


def test_offline_install_passes_fast_tests(offline_checkout, deny):
    if os.environ.get("VESTIGE_OFFLINE_FULL"):
        cmd = ["make", "--no-print-directory", "test-fast"]
    else:
        cmd = [
            str(offline_checkout / ".venv/bin/python"),
            "-m",
            "pytest",
            "-q",
            "-m",
            "not slow",
            "-p",
            "no:cacheprovider",
            *FAST_SUBSET,
        ]
    done = _run([*deny, *cmd], offline_checkout, timeout=3600)
    assert " passed" in done.stdout


# --- Binder's limits, as `make binder-check` enforces them (vestige.course.timing) -------------


def _notebook(path: Path, *sources: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def test_memory_limit_kills_a_notebook_that_exceeds_it(tmp_path):
    from vestige.course.sandbox import MB, Limits
    from vestige.course.timing import execute_limited, verdict

    hog = _notebook(
        tmp_path / "hog.ipynb",
        "import numpy as np\nblocks = []",
        "for _ in range(24):\n    blocks.append(np.ones(2**24))  # 128 MB each",
    )
    t = execute_limited(
        hog,
        tmp_path / "out/hog.ipynb",
        tmp_path,
        "solution",
        limits=Limits(wall_seconds=300, memory_bytes=768 * MB),
    )
    assert t.limit == "memory" and not t.ok and verdict(t).startswith("no: killed")
    assert 768 < t.tree_peak_mb < 768 + 512  # killed within a few poll intervals of the limit


def test_silence_is_measured_in_kernel_cpu_and_wall_seconds(tmp_path):
    from vestige.course.timing import execute_limited, verdict

    quiet = _notebook(
        tmp_path / "quiet.ipynb",
        "import time\nstart = time.process_time()\n"
        "while time.process_time() - start < 1.5:\n    pass",  # 1.5 s of CPU, silent
        "time.sleep(2.5)",  # 2.5 s idle, silent
        "print('done')",
    )
    t = execute_limited(quiet, tmp_path / "out/quiet.ipynb", tmp_path, "solution")
    assert t.ok and t.limit == "" and t.error_cells == 0
    assert 1.3 <= t.silence_cpu_seconds < 5  # the busy cell, in CPU seconds
    assert t.silence_seconds >= 2.4  # the sleeping cell, in wall seconds
    assert verdict(t, cull_seconds=1.0).startswith("no: silent")
    assert verdict(t) == "yes"
