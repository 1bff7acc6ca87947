"""The study's seeds retrained elsewhere: do their verdicts and final losses replicate?

    python course/study/replicate.py runs/pool/reference/base [course/study]

For every `seed-K` run under the first folder that the committed study (second argument,
default `course/study`) also judged, prints the study's verdict and final loss beside the
retrained run's, and the number of seeds whose verdict agrees and whose final loss is
bit-identical. On the machine that trained the study both should be all of them (a rerun is
bit-identical there); on another CPU float rounding differs, and this measures how much that
moves the verdicts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vestige import Run
from vestige.detect import detect
from vestige.report import load
from vestige.runs import seed_dirs
from vestige.study import outcome


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    folder, study = Path(argv[0]), Path(argv[1] if len(argv) > 1 else "course/study")
    _, results = load(study)
    judged = {r["seed"]: r for r in results}
    rows = []
    for seed, path in seed_dirs(folder).items():
        if seed not in judged:
            continue
        run = Run.open(path)
        caught = detect(run).vestigial is not None
        was = judged[seed]
        rows.append(
            (seed, was["caught"], caught, was["base"]["final_loss"], outcome(run)["final_loss"])
        )
    if not rows:
        print(f"no run under {folder} of a seed the study in {study} judged", file=sys.stderr)
        return 2
    for seed, was, now, loss_was, loss_now in rows:
        print(
            f"seed {seed}: study {'caught' if was else 'not caught'}, final loss {loss_was:.6f}; "
            f"here {'caught' if now else 'not caught'}, final loss {loss_now:.6f}"
        )
    agree = sum(was == now for _, was, now, _, _ in rows)
    same = sum(a == b for *_, a, b in rows)
    print(
        f"verdict agrees in {agree} of {len(rows)} seeds; final loss bit-identical in {same} "
        f"of {len(rows)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
