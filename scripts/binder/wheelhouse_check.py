"""Refuse a wheelhouse that would not install the kit offline as intended.

Usage: python scripts/binder/wheelhouse_check.py WHEELHOUSE "torch==2.13.0"

Checks that the folder holds only wheels (no sdist, which would need a build and maybe the
network), exactly one torch wheel, of the version asked for and a CPU build (no CUDA runtime
wheels beside it: PyPI's plain ``torch`` for Linux x86_64 is a multi-GB CUDA build), and the
pip and setuptools wheels the install itself needs. Prints a one-line summary.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(folder: str, torch_requirement: str) -> int:
    files = sorted(p for p in Path(folder).iterdir() if not p.name.startswith("."))
    problems = [f"{p.name}: not a wheel" for p in files if p.suffix != ".whl"]
    wheels = [p for p in files if p.suffix == ".whl"]
    names = {p.name.split("-")[0].lower().replace("_", "-"): p.name for p in wheels}
    torches = [p.name for p in wheels if p.name.split("-")[0].lower() == "torch"]
    wanted = torch_requirement.split("==", 1)[1] if "==" in torch_requirement else None
    if len(torches) != 1:
        problems.append(f"expected one torch wheel, found {torches}")
    elif wanted and torches[0].split("-")[1].split("+")[0] != wanted.split("+")[0]:
        problems.append(f"{torches[0]} is not {torch_requirement}")
    cuda = [name for name in names if name.startswith(("nvidia-", "triton"))]
    if cuda:
        problems.append(f"CUDA wheels present (a GPU build of torch was picked): {cuda}")
    for needed in ("pip", "setuptools"):
        if needed not in names:
            problems.append(f"no {needed} wheel")
    for problem in problems:
        print(f"wheelhouse: {problem}", file=sys.stderr)
    if not problems:
        size = sum(p.stat().st_size for p in wheels) / 2**20
        print(f"wheelhouse ok: {len(wheels)} wheels, {size:.0f} MB, {torches[0]}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
