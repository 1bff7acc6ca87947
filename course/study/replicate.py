"""The study's seeds retrained elsewhere: do their verdicts and final losses replicate?

    python course/study/replicate.py FOLDER [FOLDER ...] [--study course/study] [--json OUT]

For every `seed-K` run under the folders (e.g. `runs/pool/reference/base`, or a whole
`make study` rerun's `runs/study/reference/base runs/study/control/base`) that the committed
study also judged, prints the study's verdict and final loss beside the retrained run's, and
the number of seeds whose verdict agrees and whose final loss is bit-identical. Control seeds
are judged against the study's `control.caught_seeds` (the study records no control final
loss, so those seeds count for the verdict only). On the machine that trained the study both
should be all of them (a rerun is bit-identical there); on another CPU float rounding
differs, and this measures how much that moves the verdicts. `--json OUT` also writes the
rows and counts, so that a figure quoted from a rerun has its file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vestige import Run
from vestige.detect import detect
from vestige.report import load
from vestige.runs import atomic_write, seed_dirs
from vestige.study import outcome


def judged(study: Path) -> dict[int, dict]:
    """{seed: {"preset", "caught", "final_loss" (None: not recorded)}} of every seed the study
    judged, its report seeds and its control seeds."""
    summary, results = load(study)
    seeds = {
        r["seed"]: {
            "preset": r.get("preset", summary.get("preset")),
            "caught": r["caught"],
            "final_loss": r["base"]["final_loss"],
        }
        for r in results
    }
    control = summary.get("control") or {}
    for seed in control.get("seeds", []):
        seeds[seed] = {
            "preset": control.get("preset"),
            "caught": seed in control.get("caught_seeds", []),
            "final_loss": None,
        }
    return seeds


def compare(folders: list[Path], study: Path) -> list[dict]:
    """One row per retrained run of a seed the study judged."""
    was = judged(study)
    rows = []
    for folder in folders:
        for seed, path in seed_dirs(folder).items():
            if seed not in was:
                continue
            run = Run.open(path)
            rows.append(
                {
                    "seed": seed,
                    "preset": was[seed]["preset"],
                    "study_caught": was[seed]["caught"],
                    "caught": detect(run).vestigial is not None,
                    "study_final_loss": was[seed]["final_loss"],
                    "final_loss": outcome(run)["final_loss"],
                }
            )
    return rows


def counts(rows: list[dict]) -> dict[str, int]:
    with_loss = [r for r in rows if r["study_final_loss"] is not None]
    return {
        "seeds": len(rows),
        "verdict_agrees": sum(r["study_caught"] == r["caught"] for r in rows),
        "with_final_loss": len(with_loss),
        "final_loss_identical": sum(r["study_final_loss"] == r["final_loss"] for r in with_loss),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--study", type=Path, default=Path("course/study"))
    parser.add_argument("--json", type=Path, help="also write the rows and counts here")
    args = parser.parse_args(argv)
    rows = compare(args.folders, args.study)
    if not rows:
        names = " ".join(map(str, args.folders))
        print(f"no run under {names} of a seed the study in {args.study} judged", file=sys.stderr)
        return 2
    for r in rows:
        study_loss = (
            "not recorded" if r["study_final_loss"] is None else f"{r['study_final_loss']:.6f}"
        )
        print(
            f"seed {r['seed']}: study {'caught' if r['study_caught'] else 'not caught'}, final "
            f"loss {study_loss}; here {'caught' if r['caught'] else 'not caught'}, final loss "
            f"{r['final_loss']:.6f}"
        )
    n = counts(rows)
    print(
        f"verdict agrees in {n['verdict_agrees']} of {n['seeds']} seeds; final loss "
        f"bit-identical in {n['final_loss_identical']} of {n['with_final_loss']}"
    )
    if args.json:
        record = {"folders": [str(f) for f in args.folders], "counts": n, "rows": rows}
        atomic_write(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
