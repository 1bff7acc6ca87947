"""Build the tiny checkpoint suite offline: a 2-layer GPT-NeoX (Pythia's architecture) trained
with transformers on repeated random tokens, two seeds, saved with save_pretrained at a
Pythia-like schedule (step0, step1, step2, step4, ..., then every 32 steps).

Usage (in the repository, with the kit installed)::

    python scripts/tiny_suite.py --out runs/tiny-suite [--seeds 0 1]

The work is `vestige.tiny_suite.build` (tests, the 50_real_models notebook and `make runs`
call it too); open the result with ``vestige.suites.open_folder(OUT)``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/tiny-suite", help="a folder that does not exist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local

    import torch
    from vestige.suites import open_folder
    from vestige.tiny_suite import build

    torch.set_num_threads(1)
    started = time.monotonic()
    out = build(args.out, seeds=args.seeds, progress=True)
    used = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"tiny suite in {out}: {time.monotonic() - started:.0f} s, "
        f"{used.ru_utime + used.ru_stime:.0f} s of CPU"
    )
    for run in open_folder(out):
        print(f"  {run!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
