"""Make everything the course notebooks open, by running each solution notebook once.

Usage (in the repository, with the kit installed): ``python scripts/precompute.py``

binder/postBuild runs this while the image is built, and ``make runs`` does the same
for a lab machine. Which runs, seeds, forks and analyses the notebooks open is decided by the
notebooks themselves (their parameters cells and ``vestige.ensure_run`` / ``fork`` /
``analyze``, which train or compute what is missing and cache it under ``runs/``), so there is
no second list to keep in step with them: whatever a solution notebook opens is on disk
afterwards, and a learner's session only reopens it. A notebook graded on other seeds than
its own runs once more per parameter set its checks module declares (``GRADING_SETS``,
injected papermill-style after its parameters cell), so the grader finds those runs too.

Each solution notebook (``course/solutions/NN_*.ipynb``) runs in a fresh kernel from
``notebooks/``, where learners open theirs, so its relative paths (``../runs``,
``../course/study``) resolve to the same folders; its outputs are discarded, and files it
writes beside itself (an exported page, say) are removed so that the image holds the
repository plus ``runs/``. A notebook that fails fails the build, after the others have run
(``VESTIGE_PRECOMPUTE_KEEP_GOING=1``: reported, exit status 0; ``make binder-check
BINDER_ARGS=--keep-going`` uses it to measure a course that is still being written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solutions", default="course/solutions")
    parser.add_argument("--cwd", default="notebooks", help="where the notebooks run from")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)

    from nbclient import NotebookClient
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    # HF_HUB_OFFLINE: the image holds what the notebooks make, not hub checkpoints (the
    # Pythia cells of 50_real_models skip themselves; a learner with network can run them)
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cwd = Path(args.cwd).resolve()
    runs = cwd.parent / "runs"
    notebooks = sorted(Path(args.solutions).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise SystemExit(f"precompute: no notebooks in {args.solutions}")
    failed: list[str] = []
    for path, parameters in [(p, s) for p in notebooks for s in [{}, *grading_sets(p.stem)]]:
        before = set(cwd.iterdir())
        known = {p for p in runs.glob("*/*") if p.is_dir()} if runs.exists() else set()
        started = time.monotonic()
        name = path.name + (f" {json.dumps(parameters)}" if parameters else "")
        print(f"precompute: {name} ...", flush=True)
        nb = load_notebook_node(str(path))  # nbformat's reader, with the tags papermill wants
        if parameters:
            nb = parameterize_notebook(nb, parameters)
        try:
            NotebookClient(
                nb,
                timeout=args.timeout,
                kernel_name="python3",
                resources={"metadata": {"path": str(cwd)}},
            ).execute()
        except Exception as exc:
            last = [line for line in str(exc).strip().splitlines() if line.strip()][-1:]
            failed.append(f"{name}: {type(exc).__name__}: {' '.join(last)[:300]}")
            print(f"precompute: {name} FAILED: {failed[-1]}", flush=True)
        finally:
            for made in set(cwd.iterdir()) - before:  # byproducts, not part of the image
                if made.is_file():
                    made.unlink()
        new = (
            sorted(
                str(p.relative_to(cwd.parent))
                for p in runs.glob("*/*")
                if p.is_dir() and p not in known
            )
            if runs.exists()
            else []
        )
        print(
            f"precompute: {name} done in {time.monotonic() - started:.0f} s"
            + (f"; new runs: {', '.join(new)}" if new else ""),
            flush=True,
        )
    if failed:
        print(
            f"precompute: {len(failed)} notebook(s) failed:\n  " + "\n  ".join(failed), flush=True
        )
        return 0 if os.environ.get("VESTIGE_PRECOMPUTE_KEEP_GOING") == "1" else 1
    return 0


def grading_sets(notebook: str) -> list[dict]:
    """The parameter sets `notebook`'s checks module grades submissions on (none: [])."""
    import importlib

    from vestige.course import checks

    name = checks.module_name(notebook)
    return list(getattr(importlib.import_module(name), "GRADING_SETS", ())) if name else []


if __name__ == "__main__":
    sys.exit(main())
