"""Execute a prepared submission inside the grading sandbox: ``python -m vestige.course.runner``.

Runs every code cell in a fresh kernel (errors do not stop the run: a broken exercise
must not cost the others), then writes the executed notebook for the instructor to look
at. Nothing this process writes is trusted: the grader only reads the captured answers
(plain data) and judges them itself.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

KERNEL_NAME = "vestige-grade"


def install_kernel_spec(root: Path) -> None:
    """A kernel spec for this very interpreter, under ``$JUPYTER_PATH``."""
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "vestige grading",
                "language": "python",
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    source, target = (argv if argv is not None else sys.argv[1:])[:2]
    import nbformat
    from nbclient import NotebookClient

    install_kernel_spec(Path(os.environ.get("JUPYTER_PATH", "/tmp/jupyter")))
    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=None,
        allow_errors=True,
        startup_timeout=120,
        record_timing=False,
        resources={"metadata": {"path": os.getcwd()}},
    )
    status = 0
    try:
        client.execute()
    except Exception as exc:
        print(f"execution stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 3
    try:
        nbformat.write(nb, target)
    except Exception as exc:
        print(f"cannot write the executed notebook: {exc}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
